"""The random population of a sample night: one vectorised generator per feed.

Every generator works on numpy arrays of person indices (into `Context.ids`) and of event
times in seconds relative to the cut-off C, and only turns them into export text at the
end (`Context.text_times`). Each feed draws from its own random stream, so a feed can be
generated (and written, and dropped) on its own and still be the same for a seed.
Rates follow the `sample` contract: "per resident, over the 14 days before D".

A large night is generated in blocks of residents (`night.generate_and_write`), one
`Context` per block, each block's streams spawned for it (`Context.rng`). Generators that
refer to more than one person stay within a block: cases and discharges share one block's
case draws, contacts and centralized isolation one block's contact draws (no row names
another person). Night-wide tables come from night-wide streams: the risk areas (which
every block's trips use) and the place registry and risk places (`places.py`, sized by the
night's residents; every block's scans go to the same places, so people of different
blocks still meet there). Every rate is per resident, so blocks keep it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from hcode.feeds import FEEDS, TIMESTAMP
from hcode.idnumber import divisions, indexed_ids, make_ids
from hcode.sample.scenarios import OVERRIDE_TEXTS, PLANTED_REGIONS

DAY = 86_400
HOUR = 3_600
WINDOW = 14 * DAY
EPOCH = dt.datetime(1970, 1, 1)
STD_FORMAT = "%Y-%m-%d %H:%M:%S"
ID_KEY_STREAM = 103  # the night's key for blocks' indexed ids

OTHER_ORIGINS = ("TW", "US", "JP", "KR", "SG", "GB", "DE", "FR", "AU", "CA", "TH", "MY")
OTHER_PROVINCES = ("11", "12", "13", "14", "15", "21", "22", "23", "32", "34", "35", "36", "37", "41",
                   "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65")
MORE_OVERRIDE_TEXTS = (
    ("嘉兴市疫情防控工作领导小组办公室", "健康码赋码转码工作指引第三条", "陈晓明", "跨省协查信息有误，核实后予以纠正"),
    ("浦东新区卫生健康委员会", "沪防控办〔2022〕45号 健康码管理规定第十二条", "张伟", "隔离期满且七天内两次核酸阴性"),
)
TEXTS = OVERRIDE_TEXTS + MORE_OVERRIDE_TEXTS


@dataclass(frozen=True)
class Context:
    """What every feed generator shares: the night's parameters and the random residents.

    A night written in blocks (`night.generate_and_write`) has one context per block of
    residents: `residents` is the block's, `population` the night's (it sizes the place
    registry), `first` the night-wide index of the block's first resident. Block 0 is the
    whole night when the night fits in one block, and then everything is as it always was.
    """

    residents: int
    seed: int
    as_of: dt.date
    excluded_ids: tuple[str, ...] = ()  # planted ids: never drawn for the random population
    scans_per_day: float = 3.0  # place scans a resident a day (0: no place feeds at all)
    block: int = 0
    first: int = 0
    population: int = -1  # the night's residents; -1: `residents` (one block)

    @property
    def cutoff(self) -> dt.datetime:
        return dt.datetime.combine(self.as_of + dt.timedelta(days=1), dt.time())

    @property
    def loaded_at(self) -> dt.datetime:
        """The moment of loading the night is made for: D+1 06:00."""
        return self.cutoff + dt.timedelta(hours=6)

    @property
    def c_epoch(self) -> int:
        return int((self.cutoff - EPOCH).total_seconds())

    @property
    def night_residents(self) -> int:
        return self.residents if self.population < 0 else self.population

    def rng(self, *stream: int) -> np.random.Generator:
        """This block's random stream `stream`: in block 0 the night's own (as before blocks),
        in block b >= 1 one spawned from it for b (an independent stream)."""
        spawn = (self.block,) if self.block else ()
        return np.random.default_rng(np.random.SeedSequence([self.seed, *stream], spawn_key=spawn))

    def night_rng(self, *stream: int) -> np.random.Generator:
        """The night's random stream `stream`, the same in every block (for night-wide tables)."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, *stream]))

    @cached_property
    def ids(self) -> pl.Series:
        """`residents` distinct valid id numbers, none of them a planted person's.

        Block 0 draws them at random (`make_ids`) and drops repeats and planted ids. Blocks
        >= 1 take `indexed_ids` of their residents' night-wide indices: distinct by
        construction, from counties `make_ids` never uses, and not from the planted ids'
        county, so ids are distinct across the whole night without a global check.
        """
        if self.block:
            index = np.arange(self.first, self.first + self.residents, dtype=np.int64)
            key = int(self.night_rng(ID_KEY_STREAM).integers(0, 2**62))
            return indexed_ids(index, key, excluded=frozenset(i[:6] for i in self.excluded_ids))
        rng = self.rng(0)
        got = pl.Series("id_number", [], pl.String)
        while got.len() < self.residents:
            more = make_ids(int(self.residents * 1.01) + 64, rng)
            got = pl.concat([got, more]).unique(maintain_order=True)
            if self.excluded_ids:
                got = got.filter(~got.is_in(list(self.excluded_ids)))
        return got.head(self.residents)

    @cached_property
    def districts(self) -> np.ndarray:
        """Current Shanghai (31) and Zhejiang (33) county codes: the registration districts."""
        return _codes(("31", "33"))

    @cached_property
    def regions(self) -> np.ndarray:
        """Current county codes of the whole country, the planted regions left out."""
        codes = _codes(None)
        return codes[~np.isin(codes, PLANTED_REGIONS)]

    def id_text(self, person: np.ndarray) -> pl.Series:
        return self.ids.gather(person)

    def text_times(self, rel: np.ndarray, rng: np.random.Generator | None = None,
                   null: np.ndarray | None = None) -> pl.Series:
        """Times (seconds relative to C) as export text; with `rng`, 1 % are written with a `T`
        and 0.5 % as a bare date (the time truncated to midnight: the text is the truth)."""
        micros = (np.asarray(rel, dtype=np.int64) + self.c_epoch) * 1_000_000
        s = pl.Series(micros).cast(TIMESTAMP).dt.strftime(STD_FORMAT)
        if rng is not None and len(s):
            u = rng.random(len(s))
            t_idx = np.flatnonzero(u < 0.01)
            if len(t_idx):
                s = s.scatter(t_idx, s.gather(t_idx).str.replace(" ", "T", literal=True))
            d_idx = np.flatnonzero((u >= 0.01) & (u < 0.015))
            if len(d_idx):
                s = s.scatter(d_idx, s.gather(d_idx).str.slice(0, 10))
        if null is not None and null.any():
            s = s.scatter(np.flatnonzero(null), None)
        return s


def _codes(provinces: tuple[str, ...] | None) -> np.ndarray:
    div = divisions().filter((pl.col("last_year") == 9999) & ~pl.col("code").str.ends_with("00"))
    if provinces:
        div = div.filter(pl.col("code").str.slice(0, 2).is_in(list(provinces)))
    return np.asarray(div.get_column("code").unique().sort().to_list())


def _pick(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    return np.flatnonzero(rng.random(n) < rate)


def _labels(values: Sequence[str] | np.ndarray, idx: np.ndarray) -> pl.Series:
    """`values[idx]` as a String series (gathering from a small series is ~10x faster than
    converting a numpy string array)."""
    return pl.Series(list(values), dtype=pl.String).gather(np.asarray(idx, dtype=np.int64))


def _choice(rng: np.random.Generator, values: Sequence[str], n: int, p: Sequence[float] | None = None) -> pl.Series:
    return _labels(values, rng.choice(len(values), n, p=p))


def _frame(feed: str, **cols: pl.Series) -> pl.DataFrame:
    names = [c.name for c in FEEDS[feed].required_columns]
    return pl.DataFrame([cols[n].alias(n).cast(pl.String) for n in names])


def _uniform(rng: np.random.Generator, lo: ArrayLike, hi: ArrayLike, n: int) -> np.ndarray:
    """Integer seconds uniform in [lo, hi)."""
    out: np.ndarray = (np.asarray(lo) + rng.random(n) * (np.asarray(hi) - np.asarray(lo))).astype(np.int64)
    return out


def registrations(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    n = ctx.residents
    rel = -_uniform(rng, HOUR, 800 * DAY, n)
    late = _pick(rng, n, 0.002)  # registered after the cut-off: not in the run's population
    rel[late] = _uniform(rng, 0, 6 * HOUR, len(late))
    district = rng.integers(0, len(ctx.districts), n)
    moved = np.setdiff1d(_pick(rng, n, 0.005), late)  # a second registration, another district
    moved_rel = rel[moved] + ((-rel[moved]) * rng.random(len(moved))).astype(np.int64)  # before C
    moved_district = (district[moved] + rng.integers(1, len(ctx.districts), len(moved))) % len(ctx.districts)
    person = np.concatenate([np.arange(n), moved])
    return _frame("registrations", id_number=ctx.id_text(person),
                  registered_at=ctx.text_times(np.concatenate([rel, moved_rel]), rng),
                  district_code=_labels(ctx.districts, np.concatenate([district, moved_district])))


def nat_results(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    """Mass testing every ~72 h (4-5 tests in 14 days) plus a third of a test at random.

    The biggest feed (~5 rows per resident): intermediates are dropped as soon as used so
    that 10M residents stay within a few GB.
    """
    n = ctx.residents
    period = 72 * HOUR
    phase = rng.random(n) * period
    base = np.ceil((WINDOW - phase) / period).astype(np.int64)
    counts = base + rng.poisson(1 / 3, n)
    total = int(counts.sum())
    person = np.repeat(np.arange(n, dtype=np.int32), counts)
    starts = np.cumsum(counts) - counts
    j = np.arange(total) - np.repeat(starts, counts)
    scheduled = j < np.repeat(base, counts)
    del base
    rel = -WINDOW + phase[person] + j * period + rng.normal(0, 2 * HOUR, total)
    del j, phase
    rel = np.where(scheduled, rel, -WINDOW + rng.random(total) * WINDOW)
    del scheduled
    rel = np.clip(rel, -WINDOW, -1).astype(np.int64)
    positive = np.zeros(total, dtype=bool)
    pos_persons = _pick(rng, n, 0.002)
    positive[starts[pos_persons] + (rng.random(len(pos_persons)) * counts[pos_persons]).astype(np.int64)] = True
    del starts, counts
    pooled = rng.random(total) < 0.1
    # a few results sampled just after the cut-off: valid rows a run as of D must ignore
    after = _pick(rng, n, 0.0001)
    person = np.concatenate([person, after.astype(np.int32)])
    rel = np.concatenate([rel, _uniform(rng, 0, 6 * HOUR, len(after))])
    positive = np.concatenate([positive, np.zeros(len(after), dtype=bool)])
    pooled = np.concatenate([pooled, np.zeros(len(after), dtype=bool)])
    ids = ctx.id_text(person)
    del person
    times = ctx.text_times(rel, rng)
    del rel
    return _frame("nat_results", id_number=ids, sampled_at=times,
                  result=_labels(("negative", "positive"), positive), pooled=_labels(("false", "true"), pooled))


def risk_area_rows(ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """About 250 rows over 150 regions: high -> medium -> low chains, ongoing highs and mediums.

    Returns region codes, levels, valid_from and valid_to (relative seconds; valid_to -1 = empty).
    """
    rng = ctx.night_rng(100)  # night-wide: every block's trips see the same risk areas
    k = 150
    region = rng.choice(ctx.regions, k, replace=False)
    pattern = rng.choice(3, k, p=[0.3, 0.5, 0.2])  # 0 high ongoing, 1 high->medium->low, 2 medium ongoing
    t0 = -(rng.integers(5 * 24, 40 * 24, k) * HOUR)
    t1 = t0 + rng.integers(3 * 24, 10 * 24, k) * HOUR
    t2 = t1 + rng.integers(3 * 24, 7 * 24, k) * HOUR
    none = np.full(k, np.iinfo(np.int64).max)
    reg = np.concatenate([region, region, region])
    lvl = np.concatenate([np.where(pattern == 2, "medium", "high"), np.full(k, "medium"), np.full(k, "low")])
    frm = np.concatenate([t0, t1, t2])
    to = np.concatenate([np.where(pattern == 1, t1, none), np.where(pattern == 1, t2, none), none])
    keep = np.concatenate([np.ones(k, bool), pattern == 1, pattern == 1]) & (frm < 0)
    reg, lvl, frm, to = reg[keep], lvl[keep], frm[keep], to[keep]
    to = np.where(to >= 0, -1, to)  # ends at or after the cut-off: still in force as far as we know
    order = np.lexsort((frm, reg))
    return reg[order], lvl[order], frm[order], to[order]


def risk_areas(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    reg, lvl, frm, to = risk_area_rows(ctx)
    return _frame("risk_areas", region_code=pl.Series(reg), level=pl.Series(lvl),
                  valid_from=ctx.text_times(frm), valid_to=ctx.text_times(np.where(to == -1, 0, to), null=to == -1))


def trips(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    """About one trip per resident; 5 % of them to a region medium or high at the visit."""
    n = ctx.residents
    counts = rng.poisson(1.0, n)
    person = np.repeat(np.arange(n), counts)
    total = len(person)
    reg, lvl, frm, to = risk_area_rows(ctx)
    safe = ctx.regions[~np.isin(ctx.regions, reg)]
    region = rng.integers(0, len(safe), total)  # index into safe + reg
    rel = -_uniform(rng, 1, WINDOW + 1, total)
    risky = _pick(rng, total, 0.05)
    lo = np.maximum(frm, -WINDOW)
    hi = np.where(to == -1, 0, to)
    eligible = np.flatnonzero((lvl != "low") & (hi - lo >= HOUR))
    row = eligible[rng.integers(0, len(eligible), len(risky))]
    region[risky] = len(safe) + row
    rel[risky] = _uniform(rng, lo[row], hi[row], len(risky))
    source = _choice(rng, ("telecom", "railway", "aviation"), total, p=[0.7, 0.2, 0.1])
    return _frame("trips", id_number=ctx.id_text(person), region_code=_labels([*safe, *reg], region),
                  visited_at=ctx.text_times(rel, rng), source=source)


def cases(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    person, rel = _case_draws(ctx)
    kind = _choice(rng, ("confirmed", "asymptomatic", "suspected"), len(person), p=[0.45, 0.5, 0.05])
    return _frame("cases", id_number=ctx.id_text(person), case_type=kind, reported_at=ctx.text_times(rel, rng))


def _case_draws(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """0.05 % cases reported over the 60 days before D (shared by cases and discharges)."""
    rng = ctx.rng(101)
    person = _pick(rng, ctx.residents, 0.0005)
    return person, -_uniform(rng, 1, 60 * DAY + 1, len(person))


def discharges(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    person, rel = _case_draws(ctx)
    half = rng.random(len(person)) < 0.5
    when = rel[half] + (rng.random(int(half.sum())) * -rel[half]).astype(np.int64)
    return _frame("discharges", id_number=ctx.id_text(person[half]), discharged_at=ctx.text_times(when, rng))


def _contact_draws(ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1 % close and 1 % secondary contacts per 14 days, drawn over 21 days (older ones exercise
    the exit-test release)."""
    rng = ctx.rng(102)
    n = ctx.residents
    close = _pick(rng, n, 0.015)
    secondary = _pick(rng, n, 0.015)
    person = np.concatenate([close, secondary])
    level = np.concatenate([np.zeros(len(close), np.int64), np.ones(len(secondary), np.int64)])
    return person, level, -_uniform(rng, 1, 21 * DAY + 1, len(person))


def contacts(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    person, level, rel = _contact_draws(ctx)
    return _frame("contacts", id_number=ctx.id_text(person), contact_level=_labels(("close", "secondary"), level),
                  identified_at=ctx.text_times(rel, rng))


def entries(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    """0.05 % entries per 14 days (a third from HK, a tenth from MO), drawn over 21 days."""
    person = _pick(rng, ctx.residents, 0.0005 * 1.5)
    k = len(person)
    rest = (1 - 1 / 3 - 1 / 10) / len(OTHER_ORIGINS)
    origin = _choice(rng, ("HK", "MO", *OTHER_ORIGINS), k, p=[1 / 3, 1 / 10] + [rest] * len(OTHER_ORIGINS))
    return _frame("entries", id_number=ctx.id_text(person),
                  entered_at=ctx.text_times(-_uniform(rng, 1, 21 * DAY + 1, k), rng), origin=origin)


def isolation(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    """2 % home health observation started in the 14 days; centralized isolation for close contacts."""
    hho = _pick(rng, ctx.residents, 0.02)
    hho_start = -_uniform(rng, 1, WINDOW + 1, len(hho))
    cperson, level, crel = _contact_draws(ctx)
    close = level == 0
    cperson, crel = cperson[close], crel[close]
    c_start = np.minimum(crel + _uniform(rng, 0, 6 * HOUR, len(crel)), -1)
    person = np.concatenate([hho, cperson])
    start = np.concatenate([hho_start, c_start])
    end = start + 7 * DAY
    open_ = (end >= 6 * HOUR) & (rng.random(len(end)) < 0.5)  # not ended yet when exported
    kind = np.concatenate([np.zeros(len(hho), np.int64), np.ones(len(cperson), np.int64)])
    return _frame("isolation", id_number=ctx.id_text(person),
                  kind=_labels(("home_health_observation", "centralized"), kind),
                  started_at=ctx.text_times(start, rng), ended_at=ctx.text_times(end, null=open_))


def symptoms(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    person = _pick(rng, ctx.residents, 0.005)
    k = len(person)
    return _frame("symptoms", id_number=ctx.id_text(person),
                  symptom=_choice(rng, ("fever", "respiratory", "shortness_of_breath"), k, p=[0.5, 0.3, 0.2]),
                  reported_at=ctx.text_times(-_uniform(rng, 1, WINDOW + 1, k), rng),
                  reporter=_choice(rng, ("self", "clinic"), k, p=[0.7, 0.3]))


def inbound_codes(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    person = _pick(rng, ctx.residents, 0.001)
    k = len(person)
    return _frame("inbound_codes", id_number=ctx.id_text(person), province=_choice(rng, OTHER_PROVINCES, k),
                  color=_choice(rng, ("green", "yellow", "red"), k, p=[0.3, 0.5, 0.2]),
                  since=ctx.text_times(-_uniform(rng, 1, WINDOW + 1, k), rng))


def overrides(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    person = _pick(rng, ctx.residents, 0.00002)
    k = len(person)
    text = rng.integers(0, len(TEXTS), k)
    issued = -_uniform(rng, 1, WINDOW + 1, k)
    expires = issued + rng.integers(7, 31, k) * DAY
    no_expiry = rng.random(k) < 0.5
    table = np.asarray(TEXTS)  # (texts, 4): authority, basis, operator, reason
    cols = {name: pl.Series(table[text, i], dtype=pl.String)
            for i, name in enumerate(("authority", "basis", "operator", "reason"))}
    return _frame("overrides", id_number=ctx.id_text(person),
                  color=_choice(rng, ("green", "red", "yellow"), k, p=[0.7, 0.2, 0.1]), **cols,
                  issued_at=ctx.text_times(issued, rng), expires_at=ctx.text_times(expires, null=no_expiry))


GENERATORS = {
    "registrations": registrations, "cases": cases, "discharges": discharges, "contacts": contacts,
    "nat_results": nat_results, "entries": entries, "trips": trips, "risk_areas": risk_areas,
    "isolation": isolation, "symptoms": symptoms, "inbound_codes": inbound_codes, "overrides": overrides,
}
