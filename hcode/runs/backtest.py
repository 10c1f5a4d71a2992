"""Backtests: what a ruleset would have done over a date range, day by day, on the warehouse.

For every day D of the range, the colours of every registered person exactly as
`evaluate --as-of D --dry-run` gives them on the same warehouse (computed by
`engine.days`, which shares the reads across days), counted:

- colour counts per day, and person-days per colour over the range;
- per rule, the person-days it decided (`override` counts as a rule);
- with a second ruleset (`against`, the reference, such as the version in force): its
  counts too, and per rule what the ruleset *adds* in restricted person-days (restricted:
  any colour but the palette's first; a person-day restricted under the ruleset and not
  under the reference is added, and counted for the ruleset's deciding rule) or *removes*
  (restricted under the reference only, counted for the reference's deciding rule).

Nothing is stored. The result is a frozen `Backtest`; rendering is `report.backtest`'s.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from hcode.engine.days import DayCodes, DaysEvaluator
from hcode.errors import UsageError
from hcode.rules.ruleset import Ruleset
from hcode.runs.store import current_loads
from hcode.store.warehouse import Warehouse

MAX_DAYS = 366
NO_RULE = "(no rule)"


@dataclass(frozen=True)
class BacktestDay:
    date: dt.date
    persons: int
    colors: dict[str, int]
    against_colors: dict[str, int] | None


@dataclass(frozen=True)
class RuleDays:
    """One rule's person-days over the range (None: the rule is not in that ruleset, or no
    reference was given)."""

    id: str
    color: str | None
    title: dict[str, str]
    person_days_decided: int | None
    against_person_days_decided: int | None
    restricted_added: int | None
    restricted_removed: int | None


@dataclass(frozen=True)
class Backtest:
    ruleset: str
    ruleset_hash: str
    palette: tuple[str, ...]
    against: str | None
    against_hash: str | None
    against_palette: tuple[str, ...] | None
    start: dt.date
    end: dt.date
    days: tuple[BacktestDay, ...]
    person_days: dict[str, int]
    against_person_days: dict[str, int] | None
    rules: tuple[RuleDays, ...]

    @property
    def restricted_person_days(self) -> int:
        return sum(n for c, n in self.person_days.items() if c != self.palette[0])

    @property
    def against_restricted_person_days(self) -> int | None:
        if self.against_person_days is None or self.against_palette is None:
            return None
        return sum(n for c, n in self.against_person_days.items() if c != self.against_palette[0])

    def as_json(self) -> dict[str, Any]:
        """The `backtest` JSON shape of cli.md, plus palettes, hashes and restricted person-days."""
        return {
            "ruleset": self.ruleset, "ruleset_hash": self.ruleset_hash, "palette": list(self.palette),
            "against": self.against, "against_hash": self.against_hash,
            "against_palette": list(self.against_palette) if self.against_palette else None,
            "from": self.start.isoformat(), "to": self.end.isoformat(),
            "days": [{"date": d.date.isoformat(), "persons": d.persons, "colors": d.colors,
                      "against_colors": d.against_colors} for d in self.days],
            "person_days": self.person_days, "against_person_days": self.against_person_days,
            "restricted_person_days": self.restricted_person_days,
            "against_restricted_person_days": self.against_restricted_person_days,
            "rules": [{"id": r.id, "color": r.color, "title": r.title,
                       "person_days_decided": r.person_days_decided,
                       "against_person_days_decided": r.against_person_days_decided,
                       "restricted_person_days_added": r.restricted_added,
                       "restricted_person_days_removed": r.restricted_removed} for r in self.rules],
        }


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}")
    n = (end - start).days + 1
    if n > MAX_DAYS:
        raise UsageError(f"{n} days from {start} to {end}: a backtest covers at most {MAX_DAYS} days")
    return [start + dt.timedelta(days=i) for i in range(n)]


def _filled(details: pl.DataFrame, codes: DayCodes, suffix: str) -> list[pl.Expr]:
    absent = pl.col(f"color{suffix}").is_null()
    return [pl.col(f"color{suffix}").fill_null(codes.default_color).alias(f"c{suffix}"),
            pl.when(absent).then(pl.lit(codes.default_rule, pl.String)).otherwise(pl.col(f"rule{suffix}"))
            .fill_null(NO_RULE).alias(f"r{suffix}")]


def restricted_moves(a: DayCodes, b: DayCodes, first_a: str, first_b: str) -> tuple[Counter[str], Counter[str]]:
    """Per rule, the persons restricted under `a` and not under `b` (by `a`'s deciding rule),
    and restricted under `b` only (by `b`'s), on one day (one population)."""
    both = (a.details.join(b.details, on="pid", how="full", coalesce=True, suffix="_b")
            .with_columns(*_filled(a.details, a, ""), *_filled(b.details, b, "_b"))
            .with_columns((pl.col("c") != first_a).alias("ra"), (pl.col("c_b") != first_b).alias("rb")))
    added = Counter(dict(both.filter(pl.col("ra") & ~pl.col("rb")).group_by("r").len().iter_rows()))
    removed = Counter(dict(both.filter(pl.col("rb") & ~pl.col("ra")).group_by("r_b").len().iter_rows()))
    rest = a.persons - both.height  # persons in neither details: the default code on both sides
    if rest:
        if a.default_color != first_a and b.default_color == first_b:
            added[a.default_rule or NO_RULE] += rest
        elif b.default_color != first_b and a.default_color == first_a:
            removed[b.default_rule or NO_RULE] += rest
    return added, removed


def backtest(wh: Warehouse, ruleset: Ruleset, start: dt.date, end: dt.date, against: Ruleset | None = None, *,
             progress: Callable[[dt.date], None] | None = None,
             on_day: Callable[[DayCodes, DayCodes | None], None] | None = None) -> Backtest:
    """`ruleset` (and `against`) on every day from `start` to `end` inclusive, on the rows of
    the loads a run started now would see. `progress(day)` is called after each day;
    `on_day(codes, against_codes)` receives each day's codes (tests compare them with
    `evaluate`)."""
    days = date_range(start, end)
    max_load_id, _ = current_loads(wh.con)
    ev = DaysEvaluator(wh.con, days, max_load_id)
    rows: list[BacktestDay] = []
    pd_a: Counter[str] = Counter()
    pd_b: Counter[str] = Counter()
    rules_a: Counter[str] = Counter()
    rules_b: Counter[str] = Counter()
    added: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    for day in days:
        a = ev.codes(ruleset, day)
        b = ev.codes(against, day) if against is not None else None
        colors_a = a.colors(ruleset.palette)
        pd_a.update(colors_a)
        rules_a.update(a.rules())
        colors_b = None
        if b is not None and against is not None:
            colors_b = b.colors(against.palette)
            pd_b.update(colors_b)
            rules_b.update(b.rules())
            more, fewer = restricted_moves(a, b, ruleset.palette[0], against.palette[0])
            added.update(more)
            removed.update(fewer)
        rows.append(BacktestDay(day, a.persons, colors_a, colors_b))
        if on_day is not None:
            on_day(a, b)
        if progress is not None:
            progress(day)
    return Backtest(
        ruleset.name, ruleset.content_hash, tuple(ruleset.palette),
        against.name if against else None, against.content_hash if against else None,
        tuple(against.palette) if against else None, start, end, tuple(rows),
        {c: pd_a.get(c, 0) for c in ruleset.palette},
        {c: pd_b.get(c, 0) for c in against.palette} if against else None,
        _rule_rows(ruleset, against, rules_a, rules_b, added, removed))


def _rule_rows(rs: Ruleset, against: Ruleset | None, decided: Counter[str], decided_b: Counter[str],
               added: Counter[str], removed: Counter[str]) -> tuple[RuleDays, ...]:
    """Every rule of the ruleset in its order, then the reference's other rules, then
    `override` (and the default code's absence of a rule) when they decided anything."""
    ids_a = {r.id: r for r in rs.rules}
    ids_b = {r.id: r for r in against.rules} if against else {}
    order = list(ids_a) + [i for i in ids_b if i not in ids_a]
    extra = [i for i in ("override", NO_RULE) if decided.get(i) or decided_b.get(i) or added.get(i)
             or removed.get(i)]
    out = []
    for rid in order + extra:
        rule = ids_a.get(rid) or ids_b.get(rid)
        out.append(RuleDays(
            rid, rule.color if rule else None, dict(rule.title) if rule else {},
            decided.get(rid, 0) if rid in ids_a or rid in extra else None,
            (decided_b.get(rid, 0) if rid in ids_b or rid in extra else None) if against else None,
            added.get(rid, 0) if against else None, removed.get(rid, 0) if against else None))
    return tuple(out)
