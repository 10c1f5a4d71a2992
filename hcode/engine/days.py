"""One ruleset (or two) evaluated on every day of a date range, sharing the work across days.

`evaluate` run once per day would read the feeds, build the population and write every
explanation thirty times over. A `DaysEvaluator` reads each feed once for the whole range
(rows before the last day's cut-off), and derives each day's codes from those rows:

- the pushed predicate of a read is the union (`or`) of the fact's pushed predicates over
  every day of the range, so the rows read are a superset of each day's;
- a read that `evaluate` narrows to the persons having the facts it reads (`_inner` facts,
  such as the negatives after a positive) is narrowed to the persons having rows in those
  facts' own reads for the range: everyone who has the facts on any day, and a few more;
  the fact's inner join with the facts drops the rows of other persons, exactly as the
  narrowed read would;
- the population of persons whose registrations all come before the first day's cut-off is
  built once; only the persons registered during the range are built again each day;
- each day filters the rows by its own cut-off and computes the facts with the same
  compiled plans as `evaluate` (compile.py), then the same population, overrides, touched
  persons and rule booleans;
- the listings (risk areas, risk places) are read once for the range; a companion's seed
  scans are read for each day as `evaluate` reads them (few rows: the scans of the persons
  having the companion's feed rows);
- only the colour and the deciding rule are built (no evidence, no explanation): they are
  all a backtest counts.

So day D's colours are exactly those of `evaluate(ruleset, source, D)` (tests compare them
person by person). Memory is the feeds' narrowed rows for the range, and one day's facts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import duckdb
import polars as pl

from hcode.engine.compile import TS, Ctx, compile_expr, compile_fact
from hcode.engine.evaluate import (
    _deps_frame,
    _fill,
    _inner,
    _null_person,
    active_overrides,
    cutoff_of,
    population,
    registered,
    side_frames,
    widen,
)
from hcode.engine.pushdown import Pushed, any_of, translate
from hcode.engine.sources import WarehouseSource
from hcode.feeds import FEEDS
from hcode.rules.ruleset import Ruleset

# the Polars engine `evaluate` uses over warehouse rows (WarehouseSource.engine)
ENGINE: Literal["in-memory"] = "in-memory"
# a read: (feed, pushed predicate, the reads whose persons narrow it, or None)
ReadKey = tuple[str, Pushed | None, tuple["ReadKey", ...] | None]


@dataclass(frozen=True)
class DayCodes:
    """One day's codes of one ruleset: the population's pids (sorted), the colour and deciding
    rule of the persons some rule matched or an override names (`details`: pid, color, rule),
    and the code of everyone else (`default_color`, `default_rule`)."""

    day: dt.date
    pids: pl.Series
    details: pl.DataFrame
    default_color: str
    default_rule: str | None

    @property
    def persons(self) -> int:
        return self.pids.len()

    def colors(self, palette: tuple[str, ...]) -> dict[str, int]:
        counts = dict(self.details.group_by("color").len().iter_rows())
        counts[self.default_color] = counts.get(self.default_color, 0) + self.persons - self.details.height
        return {c: counts.get(c, 0) for c in palette}

    def rules(self) -> dict[str, int]:
        """Persons per deciding rule (`override` included; the default code's rule when it has one)."""
        counts = {r: n for r, n in self.details.group_by("rule").len().iter_rows() if r is not None}
        if self.default_rule is not None:
            counts[self.default_rule] = counts.get(self.default_rule, 0) + self.persons - self.details.height
        return counts

    def codes(self) -> pl.DataFrame:
        """One row per person (pid, color, rule), sorted by pid: for checks, not for 10M-person hot paths."""
        return (self.pids.to_frame("pid").join(self.details, on="pid", how="left", maintain_order="left")
                .with_columns(pl.when(pl.col("color").is_null()).then(pl.lit(self.default_rule, pl.String))
                              .otherwise(pl.col("rule")).alias("rule"),
                              pl.col("color").fill_null(self.default_color)))


class DaysEvaluator:
    """Evaluates rulesets on any of `days` from the warehouse's rows of loads up to
    `max_load_id`, each feed read once for all days and rulesets (rows before the last day's
    cut-off)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, days: list[dt.date], max_load_id: int):
        if not days:
            raise ValueError("no days to evaluate")
        self.days = sorted(days)
        self.source = WarehouseSource(con, cutoff_of(self.days[-1]), max_load_id)
        self._reads: dict[ReadKey, pl.DataFrame] = {}  # read -> rows for the range
        self._groups: dict[tuple[str, str, bool, tuple[str, ...]], ReadKey] = {}  # (hash, feed, inner, facts)
        self._fact_read: dict[tuple[str, str], ReadKey] = {}  # (ruleset hash, fact) -> its read
        self._fixed: dict[str, pl.DataFrame] = {}
        self._stable: tuple[pl.DataFrame, pl.DataFrame] | None = None
        self._population: tuple[dt.date, pl.DataFrame] | None = None

    # ------------------------------------------------------------ reads

    def _whole(self, feed: str) -> pl.DataFrame:
        """Every row of a small feed (risk areas, overrides) for the range."""
        if feed not in self._fixed:
            self._fixed[feed] = self.source.rows(feed).collect()
        return self._fixed[feed]

    def _before(self, frame: pl.DataFrame, feed: str, cutoff: dt.datetime) -> pl.LazyFrame:
        return frame.lazy().filter(pl.col(FEEDS[feed].event_time or "") < pl.lit(cutoff, dtype=TS))

    def population(self, day: dt.date) -> pl.DataFrame:
        """The day's population (as `evaluate` builds it), shared by the rulesets of the day."""
        if self._population is not None and self._population[0] == day:
            return self._population[1]
        if self._stable is None:
            regs = self.source.registrations().collect()
            late = regs.filter(pl.col("registered_at") >= pl.lit(cutoff_of(self.days[0]), dtype=TS)).select("pid")
            self._stable = (population(regs.join(late, on="pid", how="anti").lazy()),
                            regs.join(late.unique(), on="pid", how="semi"))
        stable, moving_rows = self._stable
        pop = stable
        if moving_rows.height:
            part = population(self._before(moving_rows, "registrations", cutoff_of(day)))
            pop = pl.concat([stable, part]).sort("pid") if part.height else stable
        self._population = (day, pop)
        return pop

    def _pushed(self, rs: Ruleset, members: list[str], feed: str) -> Pushed | None:
        """The rows any member fact may need on any day of the range."""
        return any_of([None if rs.facts[n].expr.per else translate(rs.facts[n].expr.where, feed, cutoff_of(d))
                       for n in members for d in self.days])

    def _rows(self, rs: Ruleset, feed: str, members: list[str], inner: bool) -> pl.DataFrame:
        """The rows of a group of facts for the whole range, read once (and shared with another
        ruleset making the same read). A narrowed (`inner`) group reads the rows of the persons
        having rows in the reads of the facts its members read (read before: lower levels)."""
        group = (rs.content_hash, feed, inner, tuple(members))
        key = self._groups.get(group)
        if key is None:
            pushed = self._pushed(rs, members, feed)
            deps = (tuple(sorted({self._fact_read[(rs.content_hash, d)] for n in members for d in rs.facts[n].deps},
                                 key=repr)) if inner else None)
            key = self._groups[group] = (feed, pushed, deps)
            for n in members:
                self._fact_read[(rs.content_hash, n)] = key
        if key not in self._reads:
            feed, pushed, deps = key
            pids = pl.concat([self._reads[k].select("pid") for k in deps]).unique() if deps is not None else None
            self._reads[key] = self.source.rows(feed, pushed, pids).collect()
        return self._reads[key]

    # ------------------------------------------------------------ one day

    def facts(self, rs: Ruleset, day: dt.date) -> dict[str, pl.DataFrame]:
        """Every fact of `rs` on `day`, as `compute_facts` gives them (without evidence texts)."""
        cutoff = cutoff_of(day)
        ctx = Ctx(cutoff, rs.palette)
        done: dict[str, pl.DataFrame] = {}
        level = {n: 0 for n in rs.facts}
        for n, f in rs.facts.items():  # dependency order
            level[n] = 1 + max((level[d] for d in f.deps), default=-1)
        day_source = WarehouseSource(self.source.con, cutoff, self.source.max_load_id)
        risk = side_frames(rs, day_source, ctx, lambda feed: self._before(self._whole(feed), feed, cutoff))
        for lv in sorted(set(level.values())):
            names = [n for n in rs.facts if level[n] == lv]
            groups: dict[tuple[str, bool], list[str]] = {}
            for n in names:
                groups.setdefault((rs.facts[n].feed, _inner(rs, rs.facts[n])), []).append(n)
            reads = {}
            for (feed, inner), members in groups.items():
                reads[(feed, inner)] = self._before(self._rows(rs, feed, members, inner), feed, cutoff)
            plans = []
            for n in names:
                f = rs.facts[n]
                deps, inner = _deps_frame(rs, f, done)
                plans.append(compile_fact(n, f.expr, reads[(f.feed, inner)], deps, inner, risk, None, ctx))
            for n, df in zip(names, pl.collect_all(plans, engine=ENGINE), strict=True):
                done[n] = df
        return done

    def codes(self, rs: Ruleset, day: dt.date) -> DayCodes:
        """The day's colour and deciding rule of every registered person under `rs`."""
        cutoff = cutoff_of(day)
        ctx = Ctx(cutoff, rs.palette)
        facts = self.facts(rs, day)
        pop = self.population(day)
        ov = active_overrides(self._before(self._whole("overrides"), "overrides", cutoff), rs, cutoff)
        default = decide_codes(_null_person(rs, facts), rs, ctx)
        everyone = default["rule"][0] is not None  # a rule that matches people without events
        touched = pop["pid"] if everyone else registered(
            pop, pl.concat([df["pid"] for df in facts.values()] + [ov["pid"]]).unique().sort())
        frame = widen(touched, [*facts.values(), ov]).with_columns([_fill(rs, n) for n in facts])
        details = decide_codes(frame.lazy(), rs, ctx, only_matched=not everyone)
        return DayCodes(day, pop["pid"], details, default["color"][0], default["rule"][0])


def decide_codes(frame: pl.LazyFrame, rs: Ruleset, ctx: Ctx, *, only_matched: bool = False) -> pl.DataFrame:
    """`pid, color, rule` as `evaluate.decide` gives them (the same rule booleans, palette ranks,
    deciding rule and override), without matched rules, evidence or explanation. With
    `only_matched`, persons whom no rule matched and no override names are dropped."""
    ms = [compile_expr(r.condition, ctx).fill_null(False).alias(f"__m_{i}") for i, r in enumerate(rs.rules)]
    m = [pl.col(f"__m_{i}") for i in range(len(rs.rules))]
    rank = pl.max_horizontal([pl.lit(0, pl.Int16)] + [pl.when(mi).then(pl.lit(rs.rank(r.color), pl.Int16))
                                                      for mi, r in zip(m, rs.rules, strict=True)])
    decider = pl.coalesce([pl.when(mi & (pl.col("__rank") == rs.rank(r.color))).then(pl.lit(r.id))
                           for mi, r in zip(m, rs.rules, strict=True)] + [pl.lit(None, pl.String)])
    applied = pl.col("override").struct.field("applied").fill_null(False)
    return (frame.with_columns(ms).with_columns(rank.alias("__rank"))
            .with_columns(decider.alias("__decider"),
                          pl.col("__rank").replace_strict(list(range(len(rs.palette))), list(rs.palette),
                                                          return_dtype=pl.String).alias("__rule_color"))
            .filter(pl.col("__decider").is_not_null() | pl.col("override").is_not_null() if only_matched else True)
            .select("pid",
                    pl.when(applied).then(pl.col("override").struct.field("color"))
                    .otherwise(pl.col("__rule_color")).cast(pl.String).alias("color"),
                    pl.when(applied).then(pl.lit("override")).otherwise(pl.col("__decider"))
                    .cast(pl.String).alias("rule"))
            .collect(engine=ENGINE))
