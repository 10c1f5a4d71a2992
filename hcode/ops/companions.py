"""The companions test (rules.md): what the experts did by eye, on every night's scans.

The article: depositors turned red after scanning the place code at the "Southwest Exit of
Zhengzhou Station" while the family members who scanned with them stayed green, and experts
concluded that the codes had been changed by hand. For a run with as-of date D:

* **gatherings**: the scans of one place on day D, sorted by time, split wherever two
  consecutive scans are more than `window` apart;
* **shown vs published**: each scan's `shown_color` against the person's code in the latest
  *published* run whose as-of date is before D (the code in force when they scanned);
  a colour outside the palette is "not comparable", a person absent from that run "not
  compared";
* an **unexplained** person of a gathering showed a colour more severe than the published
  code, or has a code in the run checked that an override no rule supports decides;
* a gathering is **flagged** when it holds an unexplained person and a companion (a person
  who is not unexplained) whose scan showed the palette's first colour.

Everything is computed on frames of one day's scans (vectorised, no loop over persons);
reports get counts, the member file gets person keys.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from hcode.rules.ruleset import Ruleset
from hcode.runs.store import RunInfo, get_run, stored_ruleset
from hcode.store.warehouse import Warehouse, one, to_polars
from hcode.textsafe import mask_ids_in

DEFAULT_WINDOW = dt.timedelta(minutes=10)
UNKNOWN_DISTRICT = "unknown"


@dataclass(frozen=True)
class Gathering:
    place_code: str
    place_name: str  # the registry's name, else the code
    district_code: str | None
    start: dt.datetime
    end: dt.datetime
    persons: int
    unexplained: int
    first_color_companions: int
    shown: dict[str, int]  # scans per shown colour
    authorities: tuple[str, ...]
    operators: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"place_code": self.place_code, "place_name": self.place_name, "district_code": self.district_code,
                "from": self.start.isoformat(sep=" "), "to": self.end.isoformat(sep=" "), "persons": self.persons,
                "unexplained": self.unexplained, "first_color_companions": self.first_color_companions,
                "shown": dict(self.shown), "authorities": list(self.authorities), "operators": list(self.operators)}


@dataclass(frozen=True)
class ShownVsPublished:
    scans: int
    compared: int
    more_severe: int
    less_severe: int
    not_compared: int  # the person is not in the published run (or there is none)
    not_comparable: int  # the shown colour is outside the palette
    by_district: tuple[dict[str, Any], ...] = ()  # the place's district: the same counts
    by_pair: tuple[dict[str, Any], ...] = ()  # {"published", "shown", "scans"} for every pair seen

    def as_json(self) -> dict[str, Any]:
        return {"scans": self.scans, "compared": self.compared, "more_severe": self.more_severe,
                "less_severe": self.less_severe, "not_compared": self.not_compared,
                "not_comparable": self.not_comparable, "by_district": list(self.by_district),
                "by_pair": list(self.by_pair)}


@dataclass(frozen=True)
class CompanionsResult:
    run_id: int
    date: dt.date
    window_minutes: float
    published_run: int | None  # the run whose codes the scans are compared with
    gatherings: int  # every gathering of the day
    groups: tuple[Gathering, ...]  # flagged ones, most unexplained first
    shown_vs_published: ShownVsPublished
    unlisted_places: int  # places scanned that the registry does not list
    note: str | None  # "no scans on D", "place_scans never loaded"
    first_color: str  # the palette's first colour: what a companion showed
    members: pl.DataFrame = field(repr=False)  # person_key, gathering (index in groups), unexplained

    @property
    def flagged(self) -> bool:
        return bool(self.groups)

    @property
    def unexplained(self) -> int:
        return sum(g.unexplained for g in self.groups)

    def as_json(self) -> dict[str, Any]:
        """What `hcode companions --json` prints and the nightly report keeps (id-shaped values
        masked: place names and operators are text from data)."""
        out: dict[str, Any] = mask_ids_in({"run_id": self.run_id, "date": self.date.isoformat(), "window_minutes": self.window_minutes,
                "published_run": self.published_run, "gatherings": self.gatherings,
                "groups": [g.as_json() for g in self.groups],
                "shown_vs_published": self.shown_vs_published.as_json(),
                "unlisted_places": self.unlisted_places, "first_color": self.first_color, "note": self.note})
        return out


def published_before(con: duckdb.DuckDBPyConnection, run: RunInfo) -> int | None:
    """The latest published run of the run's province with an as-of date before the run's."""
    row = one(con, "SELECT run_id FROM runs WHERE published AND province = ? AND as_of < ? "
              "ORDER BY as_of DESC, run_id DESC LIMIT 1", [run.province, run.as_of])
    return int(row[0]) if row else None


def _read(rel: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    frame: pl.DataFrame = to_polars(rel)
    return frame


def _day_scans(con: duckdb.DuckDBPyConnection, run: RunInfo) -> pl.DataFrame:
    start = dt.datetime.combine(run.as_of, dt.time())
    return _read(con.sql(
        "SELECT pid, place_code, scanned_at, shown_color FROM feed_place_scans "
        "WHERE scanned_at >= ? AND scanned_at < ? AND load_id <= ?",
        params=[start, start + dt.timedelta(days=1), run.max_load_id]))


def _places(con: duckdb.DuckDBPyConnection, run: RunInfo) -> pl.DataFrame:
    return _read(con.sql(
        "SELECT place_code, arg_max(name, (registered_at, name)) AS place_name, "
        "arg_max(district_code, (registered_at, name)) AS district_code FROM feed_places "
        "WHERE registered_at < ? AND load_id <= ? GROUP BY place_code", params=[run.cutoff, run.max_load_id]))


def _codes(con: duckdb.DuckDBPyConnection, run_id: int | None, pids: pl.DataFrame, what: str) -> pl.DataFrame:
    """`pid`, `<what>` columns of a run for the persons in `pids` (the day's scanners)."""
    if run_id is None:
        return pl.DataFrame(schema={"pid": pl.Int32, "color": pl.String, "matched_rules": pl.List(pl.String),
                                    "override": pl.Struct({})}).select("pid", *what.split(", "))
    con.register("_hcode_scanners", pids.to_arrow())
    try:
        return _read(con.sql(f"SELECT pid, {what} FROM codes WHERE run_id = ? "
                                 "AND pid IN (SELECT pid FROM _hcode_scanners)", params=[run_id]))
    finally:
        con.unregister("_hcode_scanners")


def _unsupported(checked: pl.DataFrame, rs: Ruleset) -> pl.DataFrame:
    """pid, authority, operator of persons whose code an applied override no rule supports
    decides (its colour more severe than every matching rule's, or no rule matches)."""
    colors = {r.id: rs.rank(r.color) for r in rs.rules}
    ov = pl.col("override")
    return (checked.filter(ov.is_not_null() & ov.struct.field("applied").fill_null(False))
            .with_columns(pl.col("matched_rules").list.eval(pl.element().replace_strict(
                list(colors), list(colors.values()), default=0, return_dtype=pl.Int32)).list.max()
                .fill_null(0).alias("__rules"),
                ov.struct.field("color").replace_strict(list(rs.palette), list(range(len(rs.palette))),
                                                        default=-1, return_dtype=pl.Int32).alias("__ov"))
            .filter(pl.col("__ov") > pl.col("__rules"))
            .select("pid", ov.struct.field("authority").alias("authority"), ov.struct.field("operator").alias("operator")))


def _rank(col: str, palette: tuple[str, ...]) -> pl.Expr:
    return pl.col(col).replace_strict(list(palette), list(range(len(palette))), default=None, return_dtype=pl.Int32)


def companions(wh: Warehouse, run_id: int | None = None, window: dt.timedelta = DEFAULT_WINDOW) -> CompanionsResult:
    """The companions test for a stored run (default: the latest published run)."""
    con = wh.con
    if run_id is None:
        row = one(con, "SELECT max(run_id) FROM runs WHERE published")
        if not row or row[0] is None:
            row = one(con, "SELECT max(run_id) FROM runs")
        if not row or row[0] is None:
            from hcode.errors import HcodeError
            raise HcodeError("no run to check: evaluate (or run nightly) first")
        run_id = row[0]
    run = get_run(con, run_id)
    rs = stored_ruleset(con, run)
    first = rs.palette[0]
    minutes = window.total_seconds() / 60
    published = published_before(con, run)
    scans = _day_scans(con, run)
    note = None
    if not scans.height:
        loaded = one(con, "SELECT count(*) FROM loads WHERE feed = 'place_scans' AND retracted_at IS NULL")
        ever = loaded[0] if loaded else 0
        note = (f"no place scans on {run.as_of}" if ever else
                "place_scans has never been loaded: no scans to check")
    places = _places(con, run)
    pids = scans.select(pl.col("pid").unique())
    pub = _codes(con, published, pids, "color").rename({"color": "published"})
    checked = _codes(con, run_id, pids, "matched_rules, override")
    unsupported = _unsupported(checked, rs) if checked.height else pl.DataFrame(
        schema={"pid": pl.Int32, "authority": pl.String, "operator": pl.String})

    s = (scans.sort(["place_code", "scanned_at", "pid"])
         .with_columns(((pl.col("place_code") != pl.col("place_code").shift(1)).fill_null(True)
                        | ((pl.col("scanned_at") - pl.col("scanned_at").shift(1)) > pl.lit(window)))
                       .cum_sum().cast(pl.Int64).alias("gathering"))
         .join(pub.with_columns(pl.col("pid").cast(pl.Int32)), on="pid", how="left")
         .join(places, on="place_code", how="left")
         .with_columns(_rank("shown_color", rs.palette).alias("__shown"), _rank("published", rs.palette).alias("__pub")))
    comparable = pl.col("__shown").is_not_null()
    compared = comparable & pl.col("__pub").is_not_null()
    s = s.with_columns(
        (compared & (pl.col("__shown") > pl.col("__pub"))).alias("more_severe"),
        (compared & (pl.col("__shown") < pl.col("__pub"))).alias("less_severe"),
        compared.alias("compared"), (comparable & pl.col("__pub").is_null()).alias("not_compared"),
        (~comparable).alias("not_comparable"))
    svp = _shown_vs_published(s)

    # per person and gathering: unexplained (a more severe scan, or an unsupported override)
    # and whether one of their scans there showed the first colour
    members = (s.group_by("gathering", "pid")
               .agg(pl.col("more_severe").any().alias("more"), (pl.col("shown_color") == first).any().alias("firsts"))
               .join(unsupported.select("pid", pl.lit(True).alias("override")).unique("pid"), on="pid", how="left")
               .with_columns((pl.col("more") | pl.col("override").fill_null(False)).alias("unexplained")))
    per = (members.group_by("gathering")
           .agg(pl.len().alias("persons"), pl.col("unexplained").sum().alias("unexplained"),
                (pl.col("firsts") & ~pl.col("unexplained")).sum().alias("first_color_companions")))
    flagged = per.filter((pl.col("unexplained") > 0) & (pl.col("first_color_companions") > 0))
    groups, member_rows = _groups(s, flagged, members, unsupported)
    keys = _read(con.sql("SELECT pid, person_key FROM persons")) if member_rows.height else None
    member_file = (member_rows.join(keys, on="pid", how="left").select("person_key", "gathering", "unexplained")
                   if keys is not None else pl.DataFrame(schema={"person_key": pl.String, "gathering": pl.Int64,
                                                                 "unexplained": pl.Boolean}))
    unlisted = s.filter(pl.col("place_name").is_null())["place_code"].n_unique() if s.height else 0
    return CompanionsResult(run_id, run.as_of, minutes, published, int(s["gathering"].n_unique()) if s.height else 0,
                            groups, svp, unlisted, note, first, member_file)


def _groups(s: pl.DataFrame, flagged: pl.DataFrame, members: pl.DataFrame, unsupported: pl.DataFrame
            ) -> tuple[tuple[Gathering, ...], pl.DataFrame]:
    """The flagged gatherings (most unexplained first, then place and time) and their members
    (`pid`, `gathering`: the index in the returned tuple, `unexplained`)."""
    if not flagged.height:
        return (), pl.DataFrame(schema={"pid": pl.Int32, "gathering": pl.Int64, "unexplained": pl.Boolean})
    ids = flagged["gathering"]
    heads = (s.filter(pl.col("gathering").is_in(ids.implode()))
             .group_by("gathering")
             .agg(pl.col("place_code").first(), pl.col("place_name").first(), pl.col("district_code").first(),
                  pl.col("scanned_at").min().alias("start"), pl.col("scanned_at").max().alias("end"),
                  pl.col("shown_color").value_counts(sort=True).alias("shown"))
             .join(flagged, on="gathering")
             .sort(["unexplained", "place_code", "start"], descending=[True, False, False])
             .with_row_index("index"))
    who = members.filter(pl.col("gathering").is_in(ids.implode())).join(
        heads.select("gathering", "index"), on="gathering")
    ovs = (who.filter(pl.col("unexplained")).join(unsupported, on="pid", how="inner")
           .group_by("index").agg(pl.col("authority").unique().sort(), pl.col("operator").unique().sort()))
    heads = heads.join(ovs, on="index", how="left")
    out = []
    for r in heads.iter_rows(named=True):  # one row per flagged gathering: a handful
        out.append(Gathering(
            r["place_code"], r["place_name"] or r["place_code"], r["district_code"], r["start"], r["end"],
            r["persons"], r["unexplained"], r["first_color_companions"],
            {v["shown_color"]: v["count"] for v in r["shown"]},
            tuple(r["authority"] or ()), tuple(r["operator"] or ())))
    rows = who.select("pid", pl.col("index").cast(pl.Int64).alias("gathering"), "unexplained").sort("gathering", "pid")
    return tuple(out), rows


def _counts(df: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return df.group_by(by).agg(pl.len().alias("scans"), pl.col("compared").sum(), pl.col("more_severe").sum(),
                               pl.col("less_severe").sum(), pl.col("not_compared").sum(),
                               pl.col("not_comparable").sum()).sort(by, nulls_last=True)


def _shown_vs_published(s: pl.DataFrame) -> ShownVsPublished:
    if not s.height:
        return ShownVsPublished(0, 0, 0, 0, 0, 0)
    tot = _counts(s.with_columns(pl.lit(1).alias("__all")), ["__all"]).row(0, named=True)
    by_d = _counts(s.with_columns(pl.col("district_code").fill_null(UNKNOWN_DISTRICT)), ["district_code"])
    pairs = (s.filter(pl.col("compared")).group_by("published", "shown_color").agg(pl.len().alias("scans"))
             .sort("published", "shown_color")
             .select("published", pl.col("shown_color").alias("shown"), "scans"))
    return ShownVsPublished(tot["scans"], tot["compared"], tot["more_severe"], tot["less_severe"],
                            tot["not_compared"], tot["not_comparable"],
                            tuple(by_d.to_dicts()), tuple(pairs.to_dicts()))
