"""A second engine, for the test suite only: the same ruleset IR evaluated in plain Python,
person by person, row by row.

It is written to be obviously right rather than fast: no joins, no group-bys, no reduction
of big tables — each fact is a loop over the person's rows, each condition a direct
three-valued (Kleene) interpretation of the tree, exactly as docs/rulesets.md states it.
Property tests (tests/test_engines_agree.py) check that `hcode.engine.evaluate` gives the same codes
on generated populations. Never use it on real data: it is O(rows × persons).
"""

from __future__ import annotations

import datetime as dt
import operator
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from hcode.feeds import FEEDS, LISTINGS, Kind
from hcode.rules.lang import (
    AggKind,
    And,
    Arith,
    ArithOp,
    CmpOp,
    Column,
    Companion,
    Compare,
    Cutoff,
    Duration,
    FactRef,
    InList,
    IsNull,
    IsTrue,
    Lit,
    Node,
    Not,
    Or,
    RiskArea,
    Within,
)
from hcode.rules.ruleset import Ruleset

_OPS: dict[CmpOp, Callable[[Any, Any], bool]] = {
    CmpOp.EQ: operator.eq, CmpOp.NE: operator.ne, CmpOp.LT: operator.lt, CmpOp.LE: operator.le,
    CmpOp.GT: operator.gt, CmpOp.GE: operator.ge}


class Interp:
    """Evaluates one tree against a row (fact filters) or the facts (rules).

    `world` holds every feed's rows before the cut-off, of every person (registered or not):
    the listings (`risk_areas`, `risk_places`) and what a companion looks at."""

    def __init__(self, cutoff: dt.datetime, world: Mapping[str, list[dict[str, Any]]], env: Mapping[str, object],
                 row: Mapping[str, Any] | None = None) -> None:
        self.cutoff, self.world, self.env = cutoff, world, env
        self.row: Mapping[str, Any] = row if row is not None else {}

    def __call__(self, n: Node) -> Any:
        match n:
            case Lit():
                return n.value
            case Duration():
                return n.delta
            case Column():
                return self.row[n.name]
            case FactRef():
                return self.env[n.name]
            case Cutoff():
                return self.cutoff
            case Compare():
                a, b = self(n.left), self(n.right)
                return None if a is None or b is None else _OPS[n.op](a, b)
            case Arith():
                a, b = self(n.left), self(n.right)
                return None if a is None or b is None else (a + b if n.op is ArithOp.ADD else a - b)
            case And():
                vals = [self(i) for i in n.items]
                return False if False in vals else None if None in vals else True
            case Or():
                vals = [self(i) for i in n.items]
                return True if True in vals else None if None in vals else False
            case Not():
                v = self(n.item)
                return None if v is None else not v
            case IsNull():
                return (self(n.item) is None) != n.negated
            case IsTrue():
                return self(n.item) is True
            case InList():
                v = self(n.item)
                return None if v is None else (v in [x.value for x in n.values]) != n.negated
            case Within():
                v = self(n.item)
                return None if v is None else self.cutoff - n.span.delta <= v < self.cutoff
            case RiskArea():
                listing, key = LISTINGS[n.listing]
                region, t = self(n.region), self(n.time)
                return any(r[key] == region and r["level"] in n.levels and r["valid_from"] <= t
                           and (r["valid_to"] is None or t < r["valid_to"]) for r in self.world.get(listing, []))
            case Companion():
                return self.companion(n)
        raise TypeError(f"reference engine: unknown node {type(n).__name__}")

    def companion(self, n: Companion) -> bool:
        """Straight from the definition: another person's scan at this place at most the window
        apart, inside an interval given by one of that person's rows of the feed."""
        me = self.row
        for other in self.world.get("place_scans", []):
            if other["pid"] == me["pid"] or other["place_code"] != me["place_code"]:
                continue
            if abs(other["scanned_at"] - me["scanned_at"]) > n.window.delta:
                continue
            for r in self.world.get(n.feed, []):
                if r["pid"] != other["pid"] or r[n.column] is None:
                    continue
                if n.where is not None and Interp(self.cutoff, self.world, {}, r)(n.where) is not True:
                    continue
                if r[n.column] + n.lo.delta <= other["scanned_at"] < r[n.column] + n.hi.delta:
                    return True
        return False


def _sev(color: str, palette: tuple[str, ...]) -> int:
    return palette.index(color) if color in palette else -1


def _current(rows: list[dict[str, Any]], feed: str, per: str, palette: tuple[str, ...]) -> list[dict[str, Any]]:
    t = FEEDS[feed].event_time
    color = [c.name for c in FEEDS[feed].stored_columns if c.kind is Kind.COLOR]
    groups: dict[object, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r[per]].append(r)
    out = []
    for g in groups.values():
        latest = max(r[t] for r in g)
        g = [r for r in g if r[t] == latest]
        if color:
            top = max(_sev(r[color[0]], palette) for r in g)
            g = [r for r in g if _sev(r[color[0]], palette) == top]
        out.extend(g)
    return out


def person_facts(rs: Ruleset, rows: Mapping[str, list[dict[str, Any]]], risk: Mapping[str, list[dict[str, Any]]],
                 cutoff: dt.datetime) -> dict[str, Any]:
    env: dict[str, object] = {}
    for name, fact in rs.facts.items():
        agg = fact.expr
        feed_rows = rows.get(agg.feed, [])
        if agg.per:
            feed_rows = _current(feed_rows, agg.feed, agg.per, rs.palette)
        hits = [r for r in feed_rows
                if agg.where is None or Interp(cutoff, risk, env, r)(agg.where) is True]
        if agg.kind is AggKind.EXISTS:
            env[name] = bool(hits)
        elif agg.kind is AggKind.COUNT:
            cols = [c.name for c in FEEDS[agg.feed].stored_columns]
            env[name] = len({tuple(r[c] for c in cols) for r in hits})
        else:
            col = agg.column or ""  # latest/earliest always name their column
            vals = [r[col] for r in hits if r[col] is not None]
            env[name] = (max(vals) if agg.kind is AggKind.LATEST else min(vals)) if vals else None
    return env


def reference_codes(rs: Ruleset, frames: Mapping[str, pl.DataFrame], as_of: dt.date) -> pl.DataFrame:
    """pid, district_code, color, rule, matched_rules — as `evaluate` computes them."""
    cutoff = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    by_feed: dict[str, dict[int, list[dict[str, Any]]]] = {}
    risk: dict[str, list[dict[str, Any]]] = {}  # every feed's rows before C, of everyone
    for name, feed in FEEDS.items():
        df = frames.get(name)
        empty: dict[str, Any] = dict.fromkeys(c.name for c in feed.stored_columns)  # an optional column may be absent
        rows = [] if df is None else [empty | r for r in df.to_dicts()]
        rows = [r for r in rows if r[feed.event_time] is not None and r[feed.event_time] < cutoff]
        risk[name] = rows
        if not feed.has_person:
            continue
        per: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            per[r["pid"]].append(r)
        by_feed[name] = per
    out = []
    for pid in sorted(by_feed["registrations"]):
        reg = max(by_feed["registrations"][pid], key=lambda r: (r["registered_at"], r["district_code"]))
        person = {f: by_feed[f].get(pid, []) for f in by_feed}
        env = person_facts(rs, person, risk, cutoff)
        matched = [r for r in rs.rules if Interp(cutoff, risk, env)(r.condition) is True]
        rank = max((rs.rank(r.color) for r in matched), default=0)
        decider = next((r.id for r in matched if rs.rank(r.color) == rank), None)
        color = rs.palette[rank]
        ovs = [o for o in person["overrides"] if o["expires_at"] is None or o["expires_at"] >= cutoff]
        if ovs:
            latest = max(o["issued_at"] for o in ovs)
            top = max((o for o in ovs if o["issued_at"] == latest), key=lambda o: _sev(o["color"], rs.palette))
            if top["color"] in rs.palette:
                color, decider = top["color"], "override"
        out.append({"pid": pid, "district_code": reg["district_code"], "color": color, "rule": decider,
                    "matched_rules": [r.id for r in matched]})
    return pl.DataFrame(out, schema={"pid": pl.Int32, "district_code": pl.String, "color": pl.String,
                                     "rule": pl.String, "matched_rules": pl.List(pl.String)})
