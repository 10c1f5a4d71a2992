"""Compile resolved rule-language trees to Polars: one small function per node type.

Expressions become `pl.Expr` over a frame whose columns are the feed's columns (inside a
fact's `where`) or the facts (in a rule). Facts become lazy per-person aggregations
(`compile_fact`): filter the feed's rows before the cut-off, keep the current row per group
when asked, filter by `where` (joining the small frame of the facts it reads, and
`risk_areas` on the region code then the validity interval), then one group-by on `pid`.
A node this module does not know raises `UnsupportedNode` by name, never a silent guess.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from hcode.feeds import FEEDS, LISTINGS, TIMESTAMP, Kind
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
    IsTrue,
    Lit,
    Node,
    Not,
    Or,
    RiskArea,
    Within,
    children,
)

TS = TIMESTAMP


class UnsupportedNode(TypeError):
    """The compiler met an IR node it has no rule for (a bug, or an unresolved tree)."""


@dataclass(frozen=True)
class Ctx:
    cutoff: dt.datetime
    palette: tuple[str, ...] = ()


def compile_expr(node: Node, ctx: Ctx) -> pl.Expr:
    fn = _COMPILERS.get(type(node))
    if fn is None:
        raise UnsupportedNode(f"cannot compile {type(node).__name__} node: {node!r}")
    return fn(node, ctx)


def _lit(n: Lit, ctx: Ctx) -> pl.Expr:
    return pl.lit(n.value)


def _duration(n: Duration, ctx: Ctx) -> pl.Expr:
    return pl.lit(n.delta, dtype=pl.Duration("us"))


def _column(n: Column, ctx: Ctx) -> pl.Expr:
    return pl.col(n.name)


def _fact(n: FactRef, ctx: Ctx) -> pl.Expr:
    return pl.col(n.name)


def _cutoff(n: Cutoff, ctx: Ctx) -> pl.Expr:
    return pl.lit(ctx.cutoff, dtype=TS)


_CMP: dict[CmpOp, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    CmpOp.EQ: lambda a, b: a == b, CmpOp.NE: lambda a, b: a != b, CmpOp.LT: lambda a, b: a < b,
    CmpOp.LE: lambda a, b: a <= b, CmpOp.GT: lambda a, b: a > b, CmpOp.GE: lambda a, b: a >= b,
}


def _compare(n: Compare, ctx: Ctx) -> pl.Expr:
    return _CMP[n.op](compile_expr(n.left, ctx), compile_expr(n.right, ctx))


def _arith(n: Arith, ctx: Ctx) -> pl.Expr:
    a, b = compile_expr(n.left, ctx), compile_expr(n.right, ctx)
    return a + b if n.op is ArithOp.ADD else a - b


def _and(n: And, ctx: Ctx) -> pl.Expr:
    return pl.all_horizontal([compile_expr(i, ctx) for i in n.items]) if len(n.items) > 2 else \
        compile_expr(n.items[0], ctx) & compile_expr(n.items[1], ctx)


def _or(n: Or, ctx: Ctx) -> pl.Expr:
    return pl.any_horizontal([compile_expr(i, ctx) for i in n.items]) if len(n.items) > 2 else \
        compile_expr(n.items[0], ctx) | compile_expr(n.items[1], ctx)


def _not(n: Not, ctx: Ctx) -> pl.Expr:
    return ~compile_expr(n.item, ctx)


def _isnull(n: IsNull, ctx: Ctx) -> pl.Expr:
    e = compile_expr(n.item, ctx)
    return e.is_not_null() if n.negated else e.is_null()


def _istrue(n: IsTrue, ctx: Ctx) -> pl.Expr:
    return compile_expr(n.item, ctx).fill_null(False)


def _inlist(n: InList, ctx: Ctx) -> pl.Expr:
    e = compile_expr(n.item, ctx)
    hit = e.is_in([v.value for v in n.values])
    return pl.when(e.is_null()).then(None).otherwise(~hit if n.negated else hit)


def _within(n: Within, ctx: Ctx) -> pl.Expr:
    e = compile_expr(n.item, ctx)
    lo = pl.lit(ctx.cutoff - n.span.delta, dtype=TS)
    return (e >= lo) & (e < pl.lit(ctx.cutoff, dtype=TS))


def _risk(n: RiskArea, ctx: Ctx) -> pl.Expr:
    raise UnsupportedNode(f"{n.listing}(...) is compiled as a join by compile_fact, not as an expression")


def _companion(n: Companion, ctx: Ctx) -> pl.Expr:
    raise UnsupportedNode("companion(...) is compiled as a join by compile_fact, not as an expression")


_COMPILERS: dict[type[Node], Callable[[Any, Ctx], pl.Expr]] = {
    Lit: _lit, Duration: _duration, Column: _column, FactRef: _fact, Cutoff: _cutoff, Compare: _compare,
    Arith: _arith, And: _and, Or: _or, Not: _not, IsNull: _isnull, IsTrue: _istrue, InList: _inlist,
    Within: _within, RiskArea: _risk, Companion: _companion,
}


# ---------------------------------------------------------------- facts


def severity(col: str, palette: tuple[str, ...]) -> pl.Expr:
    """Palette rank of a colour column; colours outside the palette rank below all (-1)."""
    return pl.col(col).replace_strict(list(palette), list(range(len(palette))), default=-1,
                                      return_dtype=pl.Int16)


def current_rows(lf: pl.LazyFrame, feed: str, per: str, palette: tuple[str, ...]) -> pl.LazyFrame:
    """Each person's latest row per value of `per` (by event time; ties: most severe colour)."""
    t = FEEDS[feed].event_time
    keys = ["pid", per]
    lf = lf.filter(pl.col(t) == pl.col(t).max().over(keys))
    color = [c.name for c in FEEDS[feed].stored_columns if c.kind is Kind.COLOR]
    if color:
        lf = lf.with_columns(severity(color[0], palette).alias("__sev"))
        lf = lf.filter(pl.col("__sev") == pl.col("__sev").max().over(keys)).drop("__sev")
    return lf


def null_rejecting(node: Node, fact: str) -> bool:
    """True when `node` cannot be true if `fact` is null: then rows can be inner-joined with the
    (small) frame of persons who have the fact, instead of left-joined."""
    return _nullifies(node, fact) or (
        isinstance(node, And) and any(null_rejecting(i, fact) for i in node.items)) or (
        isinstance(node, Or) and all(null_rejecting(i, fact) for i in node.items))


def _nullifies(node: Node, fact: str) -> bool:
    """True when `node` is null whenever `fact` is (a null operand makes it null)."""
    match node:
        case FactRef():
            return node.name == fact
        case Compare() | Arith() | Within() | InList() | Not():
            return any(_nullifies(c, fact) for c in children(node))
        case And() | Or():
            return all(_nullifies(c, fact) for c in children(node))
    return False


def compile_fact(name: str, agg: Aggregate, rows: pl.LazyFrame, deps: pl.LazyFrame | None,
                 inner: bool, risk: pl.LazyFrame | Mapping[str, pl.LazyFrame], evidence_template: str | None,
                 ctx: Ctx) -> pl.LazyFrame:
    """The fact as a lazy frame ``pid, <name>, __t_<name>[, __d_<name>]`` holding only persons
    with a non-null value (exists: true; count: at least one row).

    `rows` are the feed's rows already restricted to event time < cut-off; `deps` the frame of
    the facts the `where` reads (`inner` when the where rejects persons without them). `risk`
    holds the side frames the joins need, by name: the listings (`risk_areas`, `risk_places`),
    `places` (names for the evidence's ``{place}``) and, under `companion_key(node)`, each
    companion's seed scans (`companion_seeds`); a bare frame is `risk_areas`."""
    aux: Mapping[str, pl.LazyFrame] = {"risk_areas": risk} if isinstance(risk, pl.LazyFrame) else risk
    feed = FEEDS[agg.feed]
    t = feed.event_time
    if agg.per:
        rows = current_rows(rows, agg.feed, agg.per, ctx.palette)
    if deps is not None:
        rows = rows.join(deps, on="pid", how="inner" if inner else "left")
    terms = list(agg.where.items if isinstance(agg.where, And) else (agg.where,)) if agg.where is not None else []
    plain = [compile_expr(x, ctx) for x in terms if not isinstance(x, RiskArea | Companion)]
    if plain:
        rows = rows.filter(pl.all_horizontal(plain) if len(plain) > 1 else plain[0])
    for ra in (x for x in terms if isinstance(x, RiskArea)):
        rows = _join_risk(rows, ra, aux[LISTINGS[ra.listing][0]], ctx)
    for comp in (x for x in terms if isinstance(x, Companion)):
        rows = join_companion(rows, comp, aux[companion_key(comp)])
    if evidence_template and "{place}" in evidence_template and "place_code" in rows.collect_schema().names():
        rows = with_place_name(rows, aux.get("places"))
    value = pl.col(agg.column) if agg.column else pl.col(t)
    if agg.column:
        rows = rows.filter(value.is_not_null())
    if agg.kind is AggKind.COUNT:  # distinct events: a duplicated row is one event
        rows = rows.unique(subset=["pid", *(c.name for c in feed.stored_columns)])
    key = value.max() if agg.kind is not AggKind.EARLIEST else value.min()
    aggs = [key.alias(f"__t_{name}")]
    if agg.kind is AggKind.EXISTS:
        aggs.append(pl.lit(True).alias(name))
    elif agg.kind is AggKind.COUNT:
        aggs.append(pl.len().cast(pl.Int64).alias(name))
    detail = None
    if evidence_template and has_template(evidence_template, agg.feed):
        fmt, cols = _template(evidence_template, agg.feed)
        det = pl.format(fmt, *[pl.col(c).cast(pl.String) for c in cols]) if cols else pl.lit(fmt)
        # the text of the evidence row (ties: the least text); a filter inside the group-by's
        # aggregation runs group by group, so the rows holding the key are selected first
        detail = (rows.filter(value == key.over("pid")).group_by("pid")
                  .agg(det.min().alias(f"__d_{name}")))
    out = rows.group_by("pid").agg(aggs)
    if detail is not None:
        out = out.join(detail, on="pid", how="left")
    if agg.kind in (AggKind.LATEST, AggKind.EARLIEST):
        out = out.with_columns(pl.col(f"__t_{name}").alias(name))
    return out


def template_names(feed: str) -> set[str]:
    """The names an evidence text may hold in braces: the feed's columns, and ``place`` (the
    place's name from `places`, else its code) for a feed with a place code."""
    names = {c.name for c in FEEDS[feed].stored_columns}
    return names | {"place"} if "place_code" in names else names


def has_template(text: str, feed: str) -> bool:
    """Whether an evidence text names a column of the feed (then each person's text is built
    from the evidence row)."""
    return bool(_template(text, feed)[1])


def _template(text: str, feed: str) -> tuple[str, list[str]]:
    """``"province {province} code red"`` -> (``"province {} code red"``, ["province"])."""
    cols, fmt = [], text
    out, i = [], 0
    while i < len(fmt):
        j = fmt.find("{", i)
        if j < 0:
            out.append(fmt[i:])
            break
        k = fmt.find("}", j)
        name = fmt[j + 1:k] if k > j else ""
        if k < 0 or name not in template_names(feed):
            out.append(fmt[i:j + 1])
            i = j + 1
            continue
        out.append(fmt[i:j] + "{}")
        cols.append(name)
        i = k + 1
    return "".join(out), cols


def _join_risk(rows: pl.LazyFrame, ra: RiskArea, risk: pl.LazyFrame, ctx: Ctx) -> pl.LazyFrame:
    """Keep the rows whose region had one of the levels at the row's time: join on the region
    code, then filter the validity interval. A row matching several risk rows comes out once
    per match: latest/earliest/exists are unaffected and count counts distinct rows."""
    assert isinstance(ra.region, Column)  # resolve_fact guarantees a column
    region = ra.region.name
    key = LISTINGS[ra.listing][1]
    time = compile_expr(ra.time, ctx)
    areas = (risk.filter(pl.col("level").is_in(list(ra.levels)))
             .select(pl.col(key).alias(region), pl.col("valid_from").alias("__vf"),
                     pl.col("valid_to").alias("__vt")))
    cols = rows.collect_schema().names()
    hit = (rows.with_columns(time.alias("__at"))
           .join(areas, on=region, how="inner")
           .filter((pl.col("__vf") <= pl.col("__at")) & (pl.col("__vt").is_null() | (pl.col("__at") < pl.col("__vt")))))
    return hit.select(cols)


# ---------------------------------------------------------------- places


def companion_key(n: Companion) -> str:
    """The name under which a companion's seed scans are handed to `compile_fact`."""
    return "companion:" + n.src()


def companion_seeds(n: Companion, feed_rows: pl.LazyFrame, scans: pl.LazyFrame, ctx: Ctx) -> pl.LazyFrame:
    """The scans that make a companion: ``__q`` (the other person), ``place_code``, ``__ts``:
    scans of persons having a row of `n.feed` (before C, satisfying `n.where`) whose time lies
    in [column + lo, column + hi). Each row of the feed gives its own interval. `scans` may be
    narrowed to those persons already (the seeds are few: the persons with a case)."""
    rows = feed_rows
    if n.where is not None:
        rows = rows.filter(compile_expr(n.where, ctx))
    spans = (rows.select("pid", (pl.col(n.column) + pl.lit(n.lo.delta)).alias("__lo"),
                         (pl.col(n.column) + pl.lit(n.hi.delta)).alias("__hi"))
             .drop_nulls().unique())
    return (scans.join(spans.select("pid").unique(), on="pid", how="semi")
            .join(spans, on="pid", how="inner")
            .filter((pl.col("scanned_at") >= pl.col("__lo")) & (pl.col("scanned_at") < pl.col("__hi")))
            .select(pl.col("pid").alias("__q"), "place_code", pl.col("scanned_at").alias("__ts"))
            .unique())


def _slot(col: str, width: int) -> pl.Expr:
    return pl.col(col).dt.epoch("us").floordiv(width)


def join_companion(rows: pl.LazyFrame, n: Companion, seeds: pl.LazyFrame) -> pl.LazyFrame:
    """Keep the scans (rows of `place_scans`) that shared a place, at most `n.window` apart,
    with a seed scan of another person. Vectorised and bounded: time is cut into slots of the
    window's width; each seed is copied into its slot and both neighbours, and the rows join
    the (few) seeds on (place, slot) — no range join, no pair of distant scans is ever built —
    then |Δt| <= window and "another person" are checked on the candidates."""
    width = max(n.window.micros, 1)
    near = (seeds.with_columns(_slot("__ts", width).alias("__slot"))
            .with_columns(pl.concat_list(pl.col("__slot") - 1, pl.col("__slot"), pl.col("__slot") + 1)
                          .alias("__slot"))
            .explode("__slot"))
    w = pl.lit(n.window.delta)
    slot = _slot("scanned_at", width)
    # narrow first with cheap membership tests against the (few) seeds' places and slots,
    # then join the candidates: the big side is never hashed
    idx = rows.with_row_index("__row")
    cand = (idx.select("__row", "pid", "place_code", "scanned_at")
            .filter(pl.col("place_code").is_in(near.select("place_code").unique().collect().to_series().implode())
                    & slot.is_in(near.select("__slot").unique().collect().to_series().implode()))
            .with_columns(slot.alias("__slot"))
            .join(near, on=["place_code", "__slot"], how="inner")
            .filter((pl.col("pid") != pl.col("__q")) & ((pl.col("scanned_at") - pl.col("__ts")).abs() <= w))
            .select("__row").unique())
    return idx.join(cand, on="__row", how="semi").drop("__row")


def place_names(places: pl.LazyFrame | None) -> pl.LazyFrame:
    """``place_code, __place_name``: each listed place's name from its latest `places` row
    (before the cut-off; ties: the least name)."""
    if places is None:
        return pl.LazyFrame(schema={"place_code": pl.String, "__place_name": pl.String})
    return (places.sort(["place_code", "registered_at", "name"], descending=[False, True, False])
            .unique(subset="place_code", keep="first")
            .select("place_code", pl.col("name").alias("__place_name")))


def with_place_name(rows: pl.LazyFrame, places: pl.LazyFrame | None) -> pl.LazyFrame:
    """`rows` with a ``place`` column: the place's name from `places`, else its code."""
    return (rows.join(place_names(places), on="place_code", how="left")
            .with_columns(pl.coalesce("__place_name", "place_code").alias("place")).drop("__place_name"))
