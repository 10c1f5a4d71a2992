"""Name resolution and type checking of rule-language trees against the feed contracts.

`resolve` turns a parsed tree (`Name` nodes) into a resolved one (`Column`, `FactRef`) and
computes its type, one of ``bool number text timestamp duration``. Every mistake a rule
author can make in an expression — an unknown feed, column or fact, a type mismatch, an
enumeration value that the feed never carries, a colour outside the palette — is a
`CheckError` here; `hcode.rules.ruleset` adds the file, line and rule to the message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from hcode.feeds import FEEDS, LISTINGS, Kind
from hcode.rules.lang import (
    AggKind,
    Aggregate,
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
    Lit,
    Name,
    Node,
    Not,
    Or,
    RiskArea,
    Within,
    children,
    walk,
)


class Type(StrEnum):
    """The type of an expression."""

    BOOL = "bool"
    NUMBER = "number"
    TEXT = "text"
    TIMESTAMP = "timestamp"
    DURATION = "duration"


TYPES = tuple(Type)
AGG_TYPES = {AggKind.LATEST: Type.TIMESTAMP, AggKind.EARLIEST: Type.TIMESTAMP, AggKind.COUNT: Type.NUMBER,
             AggKind.EXISTS: Type.BOOL}


class CheckError(ValueError):
    """A static error in one expression (no location: the caller knows it)."""


def column_type(kind: Kind) -> Type:
    return Type(kind.value_type)


def lit_type(v: object) -> Type:
    if isinstance(v, bool):
        return Type.BOOL
    if isinstance(v, int | float):
        return Type.NUMBER
    return Type.TEXT


@dataclass(frozen=True)
class Scope:
    """What names mean where an expression sits: a fact's feed (its columns), or only facts."""

    feed: str | None
    facts: Mapping[str, Type]  # fact name -> type
    palette: tuple[str, ...]
    in_where: bool = False  # risk_area() is allowed only as a top-level term of a fact's where


def person_feeds() -> list[str]:
    return [f for f, feed in FEEDS.items() if feed.has_person and f not in ("registrations", "overrides")]


def resolve_fact(agg: Aggregate, facts: Mapping[str, Type], palette: tuple[str, ...]) -> Aggregate:
    if agg.feed not in FEEDS or not FEEDS[agg.feed].has_person or agg.feed in ("registrations", "overrides"):
        raise CheckError(f"unknown feed {agg.feed!r} (a fact reads one of: {', '.join(person_feeds())})")
    feed = FEEDS[agg.feed]
    names = {c.name for c in feed.stored_columns}
    if agg.column is not None:
        if agg.column not in names:
            raise CheckError(f"unknown column {agg.feed}.{agg.column} (columns: {', '.join(sorted(names))})")
        if feed.column(agg.column).kind is not Kind.TIMESTAMP:
            raise CheckError(f"{agg.kind} needs a timestamp column; {agg.feed}.{agg.column} is "
                             f"{column_type(feed.column(agg.column).kind)}")
    if agg.per is not None and agg.per not in names:
        raise CheckError(f"unknown column {agg.feed}.{agg.per} in 'current per'")
    where = None
    if agg.where is not None:
        scope = Scope(agg.feed, facts, palette, in_where=True)
        terms = agg.where.items if isinstance(agg.where, And) else (agg.where,)
        for t in terms:  # risk_area() is legal here, and only here
            if isinstance(t, RiskArea) and not isinstance(t.region, Name):
                raise CheckError(f"{t.listing}'s first argument must be a column (the "
                                 f"{LISTINGS[t.listing][1].replace('_', ' ')})")
        where, typ = resolve(agg.where, scope)
        if typ != Type.BOOL:
            raise CheckError(f"'where' must be a condition (bool), not {typ}")
        inner = where.items if isinstance(where, And) else (where,)
        for t in inner:
            if isinstance(t, Companion):
                continue
            for n in children(t):
                joined = next((m for m in walk(n) if isinstance(m, RiskArea | Companion)), None)
                if joined is not None:
                    name = joined.listing if isinstance(joined, RiskArea) else "companion"
                    raise CheckError(f"{name}(...) may only be used as an 'and' term of a fact's where")
    return replace(agg, where=where)


Resolved = tuple[Node, Type]


def resolve(node: Node, scope: Scope) -> Resolved:
    fn = _RESOLVERS.get(type(node))
    if fn is None:
        raise CheckError(f"{type(node).__name__} is not allowed here")
    return fn(node, scope)


def _name(n: Name, s: Scope) -> Resolved:
    in_feed = s.feed is not None and any(c.name == n.name for c in FEEDS[s.feed].stored_columns)
    if in_feed and n.name in s.facts:
        raise CheckError(f"{n.name!r} is both a column of {s.feed} and a fact; rename the fact")
    if in_feed and s.feed is not None:
        return Column(s.feed, n.name), column_type(FEEDS[s.feed].column(n.name).kind)
    if n.name in s.facts:
        return FactRef(n.name), s.facts[n.name]
    where = f"a column of {s.feed} or a fact" if s.feed else "a fact"
    raise CheckError(f"unknown name {n.name!r} (expected {where})")


def _lit(n: Lit, s: Scope) -> Resolved:
    return n, lit_type(n.value)


def _duration(n: Duration, s: Scope) -> Resolved:
    return n, Type.DURATION


def _cutoff(n: Cutoff, s: Scope) -> Resolved:
    return n, Type.TIMESTAMP


def _check_value(col: Node, lit: Node, s: Scope) -> None:
    """An enumeration or colour compared with a literal must be one of its values."""
    if not (isinstance(col, Column) and isinstance(lit, Lit) and isinstance(lit.value, str)):
        return
    c = FEEDS[col.feed].column(col.name)
    if c.kind is Kind.ENUM and lit.value not in c.values:
        raise CheckError(f"{lit.value!r} is not a value of {col.feed}.{col.name} ({', '.join(c.values)})")
    if c.kind is Kind.COLOR and lit.value not in s.palette:
        raise CheckError(f"unknown colour {lit.value!r} (palette: {', '.join(s.palette)})")


def _compare(n: Compare, s: Scope) -> Resolved:
    left, lt = resolve(n.left, s)
    right, rt = resolve(n.right, s)
    if lt != rt:
        raise CheckError(f"cannot compare {lt} with {rt} in '{n.src()}'")
    if n.op not in (CmpOp.EQ, CmpOp.NE) and lt in (Type.BOOL, Type.TEXT):
        raise CheckError(f"'{n.op}' does not order {lt} values in '{n.src()}'")
    _check_value(left, right, s)
    _check_value(right, left, s)
    return Compare(n.op, left, right), Type.BOOL


_T, _D, _N = Type.TIMESTAMP, Type.DURATION, Type.NUMBER
_ADD, _SUB = ArithOp.ADD, ArithOp.SUB
_ARITH = {(_T, _ADD, _D): _T, (_T, _SUB, _D): _T, (_T, _SUB, _T): _D, (_D, _ADD, _D): _D, (_D, _SUB, _D): _D,
          (_N, _ADD, _N): _N, (_N, _SUB, _N): _N}


def _arith(n: Arith, s: Scope) -> Resolved:
    left, lt = resolve(n.left, s)
    right, rt = resolve(n.right, s)
    typ = _ARITH.get((lt, n.op, rt))
    if typ is None:
        raise CheckError(f"cannot compute {lt} {n.op} {rt} in '{n.src()}'")
    return Arith(n.op, left, right), typ


def _bools(items: Iterable[Node], s: Scope, what: str) -> tuple[Node, ...]:
    out = []
    for i in items:
        r, t = resolve(i, s)
        if t != Type.BOOL:
            raise CheckError(f"'{what}' needs conditions (bool), but '{i.src()}' is {t}")
        out.append(r)
    return tuple(out)


def _and(n: And, s: Scope) -> Resolved:
    return And(_bools(n.items, s, "and")), Type.BOOL


def _or(n: Or, s: Scope) -> Resolved:
    return Or(_bools(n.items, s, "or")), Type.BOOL


def _not(n: Not, s: Scope) -> Resolved:
    return Not(_bools((n.item,), s, "not")[0]), Type.BOOL


def _isnull(n: IsNull, s: Scope) -> Resolved:
    item, _ = resolve(n.item, s)
    return IsNull(item, n.negated), Type.BOOL


def _inlist(n: InList, s: Scope) -> Resolved:
    item, t = resolve(n.item, s)
    for v in n.values:
        if lit_type(v.value) != t:
            raise CheckError(f"{v.src()} is not a {t} in '{n.src()}'")
        _check_value(item, v, s)
    return InList(item, n.values, n.negated), Type.BOOL


def _within(n: Within, s: Scope) -> Resolved:
    item, t = resolve(n.item, s)
    if t != Type.TIMESTAMP:
        raise CheckError(f"'within' needs a timestamp, but '{n.item.src()}' is {t}")
    return Within(item, n.span), Type.BOOL


def _risk(n: RiskArea, s: Scope) -> Resolved:
    if not s.in_where:
        raise CheckError(f"{n.listing}(...) may only be used in a fact's where")
    listing, key = LISTINGS[n.listing]
    region, rt = resolve(n.region, s)
    time, tt = resolve(n.time, s)
    if rt != Type.TEXT or tt != Type.TIMESTAMP:
        raise CheckError(f"{n.listing}({key}, time, level...) needs a text {key.replace('_', ' ')} and a timestamp")
    if isinstance(region, Column) and FEEDS[region.feed].column(region.name).kind is not FEEDS[listing].column(
            key).kind:
        raise CheckError(f"{n.listing}'s first argument must be a {key.replace('_', ' ')} column, "
                         f"not {region.feed}.{region.name}")
    levels = FEEDS[listing].column("level").values
    for lv in n.levels:
        if lv not in levels:
            raise CheckError(f"{lv!r} is not a risk level ({', '.join(levels)})")
    return RiskArea(region, time, n.levels, n.listing), Type.BOOL


COMPANION_FEED = "place_scans"


def _companion(n: Companion, s: Scope) -> Resolved:
    if not s.in_where or s.feed != COMPANION_FEED:
        raise CheckError("companion(...) may only be used in the where of a place_scans fact")
    feed = FEEDS.get(n.feed)
    if feed is None or not feed.has_person or n.feed in ("registrations", "overrides"):
        raise CheckError(f"companion(...): unknown feed {n.feed!r} (one of: {', '.join(person_feeds())})")
    names = {c.name for c in feed.stored_columns}
    if n.column not in names or feed.column(n.column).kind is not Kind.TIMESTAMP:
        raise CheckError(f"companion(...) needs a timestamp column of {n.feed}, not {n.column!r}")
    if n.window.amount <= 0:
        raise CheckError("companion(...)'s window must be longer than zero")
    if n.hi.delta <= n.lo.delta:
        raise CheckError(f"companion(...)'s interval is empty: {n.lo.src()} is not before {n.hi.src()}")
    where: Node | None = None
    if n.where is not None:
        # the other person's rows: only their feed's columns, never this person's facts
        where, typ = resolve(n.where, Scope(n.feed, {}, s.palette))
        if typ != Type.BOOL:
            raise CheckError(f"companion(...)'s where must be a condition (bool), not {typ}")
    return Companion(n.window, n.feed, n.column, n.lo, n.hi, where), Type.BOOL


_RESOLVERS: dict[type[Node], Callable[[Any, Scope], Resolved]] = {Name: _name, Lit: _lit, Duration: _duration, Cutoff: _cutoff, Compare: _compare,
              Arith: _arith, And: _and, Or: _or, Not: _not, IsNull: _isnull, InList: _inlist,
              Within: _within, RiskArea: _risk, Companion: _companion}


def fact_refs(n: Node) -> set[str]:
    """The names of the facts a tree reads (resolved or not)."""
    return {m.name for m in walk(n) if isinstance(m, FactRef | Name)}
