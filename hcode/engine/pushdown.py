"""Predicate pushdown: the part of a fact's `where` that the warehouse can apply while reading.

The engine always applies a fact's whole `where` itself (compile.py). A pushed predicate only
has to be *implied* by it: the warehouse may return more rows than the fact keeps, never
fewer. So `translate` turns what it can of the IR into one DuckDB SQL predicate over the feed's
columns, drops what it cannot (a conjunct that reads another fact, say), and gives up (None:
read every row) where dropping would be wrong (inside `or` and `not`).

Both sides use three-valued logic: a comparison with null is unknown, `and`/`or`/`not` are
Kleene's, and a filter keeps only true rows (Polars' `&`, `|`, `~`, `all_horizontal` and
`any_horizontal` behave as SQL's AND, OR, NOT). That is what makes an exact translation
exact, and `not` is pushed only over an exact one.

`companion(...)` becomes "the scan's place and time slot are those of a seed scan or a
neighbouring slot" (`_companion`), implied by the real test.

`risk_area(region, time, levels)` becomes "the region has a risk area of one of these levels"
(a subquery on `feed_risk_areas`): implied by the real test, which also needs the trip's time
inside the area's validity, and it keeps the few trips to listed regions out of 10M.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hcode.feeds import FEEDS, LISTINGS, Kind
from hcode.rules.lang import (
    And,
    Arith,
    ArithOp,
    CmpOp,
    Column,
    Companion,
    Compare,
    Cutoff,
    Duration,
    InList,
    IsNull,
    Lit,
    Node,
    Not,
    Or,
    RiskArea,
    Within,
)

_SQL = {CmpOp.EQ: "=", CmpOp.NE: "<>", CmpOp.LT: "<", CmpOp.LE: "<=", CmpOp.GT: ">", CmpOp.GE: ">="}
_FLIP = {CmpOp.EQ: CmpOp.EQ, CmpOp.NE: CmpOp.NE, CmpOp.LT: CmpOp.GT, CmpOp.LE: CmpOp.GE, CmpOp.GT: CmpOp.LT,
         CmpOp.GE: CmpOp.LE}
_TEXT = {k for k in Kind if k.value_type == "text"}  # compared with text literals


@dataclass(frozen=True)
class Pushed:
    """A SQL predicate with its `?` parameters; `exact` when it is equivalent to the IR node
    (given the event-time < cut-off filter every read has), not merely implied by it."""

    sql: str
    params: tuple[object, ...]
    exact: bool


def translate(node: Node | None, feed: str, cutoff: dt.datetime) -> Pushed | None:
    """The pushable part of `node` (a fact's `where` on `feed`), or None: read every row."""
    if node is None:
        return None
    return _push(node, feed, cutoff)


def any_of(preds: list[Pushed | None]) -> Pushed | None:
    """The rows any of several facts may need: None as soon as one of them needs every row."""
    present = [p for p in preds if p is not None]
    if not preds or len(present) < len(preds):
        return None
    uniq = list(dict.fromkeys(present))
    if len(uniq) == 1:
        return uniq[0]
    return Pushed(" OR ".join(f"({p.sql})" for p in uniq), sum((p.params for p in uniq), ()),
                  all(p.exact for p in uniq))


def _kind(feed: str, name: str) -> Kind | None:
    col = next((c for c in FEEDS[feed].stored_columns if c.name == name), None)
    return col.kind if col else None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _value(node: Node, kind: Kind, cutoff: dt.datetime) -> tuple[bool, object]:
    """A constant of the column's type: a literal, or cut-off +/- a duration for timestamps."""
    if isinstance(node, Lit):
        v = node.value
        return (kind in _TEXT and isinstance(v, str)) or (kind is Kind.BOOL and isinstance(v, bool)), v
    if kind is Kind.TIMESTAMP:
        if isinstance(node, Cutoff):
            return True, cutoff
        if isinstance(node, Arith) and isinstance(node.left, Cutoff) and isinstance(node.right, Duration):
            d = node.right.delta
            return True, cutoff + d if node.op is ArithOp.ADD else cutoff - d
    return False, None


def _push(n: Node, feed: str, cutoff: dt.datetime) -> Pushed | None:
    match n:
        case Column(name=name) if _kind(feed, name) is Kind.BOOL:
            return Pushed(_ident(name), (), True)
        case Lit(value=bool(v)):
            return Pushed("TRUE" if v else "FALSE", (), True)
        case Compare(op=op, left=Column(name=name), right=other) | Compare(
                op=op, left=other, right=Column(name=name)) if not isinstance(other, Column):
            if not isinstance(n.left, Column):
                op = _FLIP[op]
            kind = _kind(feed, name)
            ok, value = _value(other, kind, cutoff) if kind else (False, None)
            return Pushed(f"{_ident(name)} {_SQL[op]} ?", (value,), True) if ok else None
        case Within(item=Column(name=name), span=span) if _kind(feed, name) is Kind.TIMESTAMP:
            return Pushed(f"{_ident(name)} >= ? AND {_ident(name)} < ?", (cutoff - span.delta, cutoff), True)
        case IsNull(item=Column(name=name), negated=neg) if _kind(feed, name):
            return Pushed(f"{_ident(name)} IS {'NOT ' if neg else ''}NULL", (), True)
        case InList(item=Column(name=name), values=values, negated=neg) if _kind(feed, name) in _TEXT and all(
                isinstance(v.value, str) for v in values):
            marks = ", ".join("?" for _ in values)
            return Pushed(f"{_ident(name)} {'NOT ' if neg else ''}IN ({marks})", tuple(v.value for v in values), True)
        case And(items=items):
            parts = [_push(i, feed, cutoff) for i in items]
            kept = [p for p in parts if p is not None]
            if not kept:
                return None
            return Pushed(" AND ".join(f"({p.sql})" for p in kept), sum((p.params for p in kept), ()),
                          len(kept) == len(parts) and all(p.exact for p in kept))
        case Or(items=items):
            parts = [_push(i, feed, cutoff) for i in items]
            every = [p for p in parts if p is not None]
            if len(every) < len(parts):
                return None
            return Pushed(" OR ".join(f"({p.sql})" for p in every), sum((p.params for p in every), ()),
                          all(p.exact for p in every))
        case Not(item=item):
            inner = _push(item, feed, cutoff)
            return Pushed(f"NOT ({inner.sql})", inner.params, True) if inner is not None and inner.exact else None
        case Companion() if feed == "place_scans":
            return _companion(n, cutoff)
        case RiskArea(region=Column(name=name), levels=levels, listing=listing) if _kind(
                feed, name) is FEEDS[LISTINGS[listing][0]].column(LISTINGS[listing][1]).kind:
            table, key = FEEDS[LISTINGS[listing][0]].table, LISTINGS[listing][1]
            marks = ", ".join("?" for _ in levels)
            return Pushed(f"{_ident(name)} IN (SELECT {key} FROM {table} "
                          f"WHERE level IN ({marks}))", tuple(levels), False)
    return None


def _companion(n: Companion, cutoff: dt.datetime) -> Pushed:
    """"The scan's place and time slot (the window's width) is one of a seed scan's or its
    neighbours'": implied by the companion test (which the engine applies), and it keeps the
    scans of places and hours no case visited out of the read. Seeds: scans of persons having
    a row of the feed before C, inside that row's interval (the feed's `where` and "another
    person" are left to the engine: more rows, never fewer)."""
    width = max(n.window.micros, 1)
    other, col = FEEDS[n.feed].table, _ident(n.column)
    t = FEEDS[n.feed].event_time
    scans = FEEDS["place_scans"].table
    # one integer per (place, slot): DuckDB's hash of both (a collision only reads more rows)
    return Pushed(
        f"hash(place_code, epoch_us(scanned_at) // {width}) IN (SELECT hash(s.place_code, "
        f"epoch_us(s.scanned_at) // {width} + k.k) FROM {scans} s JOIN {other} c ON c.pid = s.pid, "
        f"(VALUES (-1), (0), (1)) k(k) WHERE c.{_ident(t)} < ? AND s.scanned_at < ? "
        f"AND s.scanned_at >= c.{col} + to_microseconds({n.lo.micros}) "
        f"AND s.scanned_at < c.{col} + to_microseconds({n.hi.micros}))",
        (cutoff, cutoff), False)
