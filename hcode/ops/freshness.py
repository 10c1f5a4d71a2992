"""Which feeds are late, and what their lateness does to people's codes.

The article's complaint: cured patients stay red because the hospital discharge list never
reached the big-data office. Nothing in the data says "a file is missing" — a missing file
looks exactly like a quiet night — so every feed has an expected cadence (days between
files; `hcode.config.DEFAULT_CADENCE`, overridable in `hcode.toml` `[freshness]`) and the
nightly batch asks, for its date D: did each feed send at least one new file in the last
`cadence` batches?

Lateness is judged on *batch dates* (`loads.batch_date`, recorded by the nightly batch for
every file it loads; a load made outside a batch counts on the date of its loading clock),
never on today's clock: a back-fill of June 2022 run in 2026 sees exactly what the live
nights saw. Duplicates are never recorded as loads and retracted loads do not count, so
"a file arrived" means new bytes that are still in the warehouse.

A late feed's `impact` is one sentence computed from the data: for `discharges`, how many
persons are red under a case rule with a case older than 14 days (they may be cured and
waiting for a list that did not come); for other feeds, which rules read the feed and how
many persons they currently match.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from hcode.config import DEFAULT_CADENCE, Config
from hcode.feeds import FEEDS, LISTINGS, PLACE_FEEDS
from hcode.rules.lang import Companion, FactRef, RiskArea, walk
from hcode.rules.ruleset import Ruleset
from hcode.store.warehouse import to_polars

CASE_AGE_DAYS = 14


@dataclass(frozen=True)
class FeedFreshness:
    feed: str
    cadence: int | None  # days; None = never late
    last_loaded: dt.date | None  # batch date of the latest live file at or before D
    days_late: int | None  # 0 when on time; None when the feed never sent a file
    late: bool
    impact: str | None  # one sentence for a late feed
    read_by: tuple[str, ...] = ()  # rule ids reading the feed (when a ruleset was given)

    def as_json(self) -> dict[str, Any]:
        return {"feed": self.feed, "cadence": self.cadence,
                "last_loaded": self.last_loaded.isoformat() if self.last_loaded else None,
                "days_late": self.days_late, "late": self.late, "impact": self.impact,
                "read_by": list(self.read_by)}


def rule_feeds(ruleset: Ruleset) -> dict[str, set[str]]:
    """Per rule id, every feed its condition reads (through its facts and their facts)."""
    def fact_feeds(name: str, seen: set[str]) -> set[str]:
        if name in seen:
            return set()
        seen.add(name)
        fact = ruleset.facts[name]
        out = {fact.feed}
        for n in walk(fact.expr):
            if isinstance(n, RiskArea):
                out.add(LISTINGS[n.listing][0])
            if isinstance(n, Companion):
                out |= {n.feed, "place_scans"}
        if any("{place}" in t for t in fact.evidence.values()):
            out.add("places")
        for dep in fact.deps:
            out |= fact_feeds(dep, seen)
        return out

    result = {}
    for rule in ruleset.rules:
        feeds: set[str] = set()
        for node in walk(rule.condition):
            if isinstance(node, FactRef):
                feeds |= fact_feeds(node.name, set())
        result[rule.id] = feeds
    return result


def last_batches(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> dict[str, dt.date]:
    """Per feed, the latest batch date at or before `as_of` that brought a live file."""
    rows = con.execute(
        "SELECT feed, max(bd) FROM (SELECT feed, coalesce(batch_date, CAST(clock AS DATE)) AS bd FROM loads "
        "WHERE retracted_at IS NULL) WHERE bd <= ? GROUP BY feed", [as_of]).fetchall()
    return dict(rows)


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def _cases_waiting(con: duckdb.DuckDBPyConnection, cutoff: dt.datetime, pids: pl.DataFrame | None) -> int:
    """Persons (among `pids`, or everyone registered) whose latest case is older than 14 days
    at the cut-off and (without `pids`) has no discharge at or after it."""
    old = cutoff - dt.timedelta(days=CASE_AGE_DAYS)
    cases = to_polars(con.sql(
        "SELECT c.pid, c.at FROM (SELECT pid, max(reported_at) AS at FROM feed_cases WHERE reported_at < ? "
        "GROUP BY pid) c WHERE c.at < ? AND c.pid IN (SELECT pid FROM feed_registrations WHERE registered_at < ?)"
        + ("" if pids is not None else
           " AND NOT EXISTS (SELECT 1 FROM feed_discharges d WHERE d.pid = c.pid AND d.discharged_at >= c.at "
           "AND d.discharged_at < ?)"),
        params=[cutoff, old, cutoff] + ([] if pids is not None else [cutoff])))
    if pids is not None:
        cases = cases.join(pids.select(pl.col("pid").cast(cases.schema["pid"])), on="pid", how="semi")
    return cases.height


def impact(con: duckdb.DuckDBPyConnection, feed: str, head: str, as_of: dt.date, ruleset: Ruleset | None = None, codes: pl.DataFrame | None = None,
           feeds_of: Mapping[str, set[str]] | None = None) -> str:
    """The sentence for a late feed; `head` is its first clause ("discharges: last file …")."""
    cutoff = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    feeds_of = feeds_of if feeds_of is not None else (rule_feeds(ruleset) if ruleset is not None else {})
    readers = [r for r, fs in feeds_of.items() if feed in fs]
    if feed == "discharges":
        case_rules = [r for r, fs in feeds_of.items() if "cases" in fs]
        if ruleset is not None and codes is not None and case_rules:
            who = codes.filter(pl.col("matched_rules").list.eval(pl.element().is_in(case_rules)).list.any())
            n = _cases_waiting(con, cutoff, who.select("pid"))
            colors = sorted({ruleset.rule(r).color for r in case_rules}, key=ruleset.rank, reverse=True)
            return (f"{head}; {n:,} person{'s are' if n != 1 else ' is'} {'/'.join(colors)} under "
                    f"{', '.join(case_rules)} with a case older than {CASE_AGE_DAYS} days and may be "
                    "awaiting discharge")
        n = _cases_waiting(con, cutoff, None)
        return (f"{head}; {n:,} registered person{'s have' if n != 1 else ' has'} a case reported more than "
                f"{CASE_AGE_DAYS} days ago and no discharge since: they stay red until the list arrives")
    if feed == "registrations":
        return (f"{head}; newly registered residents get no code and residents who moved keep their old "
                "district until it arrives")
    if feed == "overrides":
        return f"{head}; manual decisions issued since then are not applied"
    if ruleset is None:
        return f"{head}; codes that depend on it may be out of date"
    if not readers:
        return f"{head}; no rule of {ruleset.name} reads it, so no code depends on it"
    one_rule = len(readers) == 1
    tail = (f"; {', '.join(readers)} read{'s' if one_rule else ''} it, so {'its' if one_rule else 'their'} "
            "matches may be stale")
    if codes is not None:
        n = codes.filter(pl.col("matched_rules").list.eval(pl.element().is_in(readers)).list.any()).height
        tail += f" ({n:,} person{'s' if n != 1 else ''} currently matched)"
    return head + tail


def check(con: duckdb.DuckDBPyConnection, as_of: dt.date, config: Config | None = None, *, ruleset: Ruleset | None = None,
          codes: pl.DataFrame | None = None) -> tuple[FeedFreshness, ...]:
    """Every feed's freshness for batch date `as_of`. `ruleset` and `codes` (a run's codes:
    `pid`, `matched_rules`; usually the night's or the latest run) sharpen the impact sentences."""
    cadence = dict(config.cadence) if config is not None else dict(DEFAULT_CADENCE)
    last = last_batches(con, as_of)
    feeds_of = rule_feeds(ruleset) if ruleset is not None else {}
    out = []
    for feed in FEEDS:
        every = cadence.get(feed)
        seen = last.get(feed)
        readers = tuple(r for r, fs in feeds_of.items() if feed in fs)
        if feed in PLACE_FEEDS and not readers:
            every = None  # place feeds matter only to rulesets reading them (most nights have none)
        if every is None:
            out.append(FeedFreshness(feed, None, seen, 0, False, None, readers))
            continue
        if seen is None:
            head = f"{feed}: no file loaded yet (expected every {_days(every)})"
            out.append(FeedFreshness(feed, every, None, None, True,
                                     impact(con, feed, head, as_of, ruleset, codes, feeds_of), readers))
            continue
        gap = (as_of - seen).days
        late = gap >= every
        days_late = gap - every + 1 if late else 0
        text = None
        if late:
            head = f"{feed}: last file {seen.isoformat()}, {_days(days_late)} late"
            text = impact(con, feed, head, as_of, ruleset, codes, feeds_of)
        out.append(FeedFreshness(feed, every, seen, days_late, late, text, readers))
    return tuple(out)


def report_json(as_of: dt.date, report: tuple[FeedFreshness, ...]) -> dict[str, Any]:
    """What `hcode freshness --json` prints."""
    return {"date": as_of.isoformat(), "feeds": [f.as_json() for f in report]}


def late_feeds(report: tuple[FeedFreshness, ...]) -> tuple[FeedFreshness, ...]:
    return tuple(f for f in report if f.late)


def never_arrived(con: duckdb.DuckDBPyConnection, ruleset: Ruleset) -> tuple[str, ...]:
    """One sentence per place feed the ruleset's rules read that no live load ever brought
    (the rules reading it match nobody through it): "place_scans: no file loaded yet; …"."""
    feeds_of = rule_feeds(ruleset)
    loaded = {f for (f,) in con.execute("SELECT DISTINCT feed FROM loads WHERE retracted_at IS NULL").fetchall()}
    out: list[str] = []
    for feed in PLACE_FEEDS:
        readers = [r for r, fs in feeds_of.items() if feed in fs]
        if readers and feed not in loaded:
            out.append(f"{feed}: no file loaded yet; {', '.join(readers)} read{'s' if len(readers) == 1 else ''} "
                       "it and can match nobody through it")
    return tuple(out)
