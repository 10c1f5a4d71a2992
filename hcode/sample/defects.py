"""Deliberately bad rows and harmless messiness, so that every sample night exercises ingest.

Bad rows (quarantine material) are *extra* rows, built from a clean random row with exactly
one column spoiled, for random (never planted) persons: whatever ingest does with them,
no planted person's code can change. At least one of each kind is planted in a fixed
feed and column (`GUARANTEED`, in a night's first block); on top of that about 0.01 % of
each feed's rows (in every block).

Messiness is not bad: a few random rows get enum values in other case or with spaces, a
lower-case `x` check character, ids and codes with surrounding white space, colors in title
case and lower-case origins. Ingest must normalise them and load the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from hcode.feeds import FEEDS, Column, Kind
from hcode.idnumber import CHECK_CHARS, WEIGHTS, make_ids
from hcode.sample.random_events import DAY, HOUR, OTHER_ORIGINS, OTHER_PROVINCES, TEXTS, WINDOW, Context

BAD_RATE = 0.0001
FULL_WIDTH = dict(zip("0123456789", "０１２３４５６７８９", strict=True))

# kind -> (feed, column) of the one row of that kind every night has
GUARANTEED: dict[str, tuple[str, str]] = {
    "bad_check": ("nat_results", "id_number"),
    "fullwidth": ("trips", "id_number"),
    "unknown_region": ("contacts", "id_number"),
    "bad_enum": ("nat_results", "result"),
    "bad_bool": ("nat_results", "pooled"),
    "bad_timestamp": ("cases", "reported_at"),
    "future": ("symptoms", "reported_at"),
    "empty": ("overrides", "operator"),
}
KINDS = tuple(GUARANTEED)


@dataclass(frozen=True)
class BadRow:
    """One deliberately bad row: where it is (row index from 0), the failing column, why."""

    feed: str
    row: int
    column: str
    kind: str
    reason: str
    value: str

    def as_json(self, fmt: str) -> dict[str, Any]:
        where = {"line": self.row + 2} if fmt == "csv" else {"row": self.row}
        return {"feed": self.feed, **where, "column": self.column, "reason": self.reason,
                "kind": self.kind, "value": self.value}


def _columns_for(kind: str, feed: str) -> list[Column]:
    f = FEEDS[feed]
    cols = f.required_columns
    if kind in ("bad_check", "fullwidth", "unknown_region"):
        return [c for c in cols if c.kind is Kind.ID_NUMBER]
    if kind == "bad_enum":
        return [c for c in cols if c.kind is Kind.ENUM]
    if kind == "bad_bool":
        return [c for c in cols if c.kind is Kind.BOOL]
    if kind == "bad_timestamp":
        return [c for c in cols if c.kind is Kind.TIMESTAMP]
    if kind == "future":
        return [f.column(f.event_time)] if f.event_time else []
    return [c for c in cols if not c.nullable]  # empty


def _check_char(body: pl.Expr) -> pl.Expr:
    digits = [body.str.slice(i, 1).cast(pl.Int32) for i in range(17)]
    weighted = pl.sum_horizontal([d * w for d, w in zip(digits, WEIGHTS, strict=True)])
    return pl.lit(CHECK_CHARS).str.slice(weighted % 11, 1)


def _spoil(kind: str, ctx: Context, clean: pl.Series, rng: np.random.Generator, first: bool) -> pl.Series:
    """Bad values of `kind` made from clean values (the first one canonical when `first`)."""
    k = clean.len()
    v = pl.col("v")
    if kind == "bad_check":
        expr = v.str.slice(0, 17) + pl.when(v.str.slice(17, 1) == "1").then(pl.lit("2")).otherwise(pl.lit("1"))
    elif kind == "fullwidth":
        expr = v.str.replace_many(list(FULL_WIDTH), list(FULL_WIDTH.values()))
    elif kind == "unknown_region":
        body = pl.lit("319999") + v.str.slice(6, 11)
        expr = body + _check_char(body)
    else:
        choices = {
            "bad_enum": ["maybe", "unknown", "n/a"],
            "bad_bool": ["yes", "2", "no"],
            "bad_timestamp": [f"{ctx.as_of:%Y-%m-%d} 25:10:00", f"{ctx.as_of:%d/%m/%Y} 08:30",
                              "yesterday", f"{ctx.as_of:%Y-%m}-32 10:00:00"],
            "empty": ["", "   "],
        }.get(kind)
        if choices is not None:
            pick = rng.integers(0, len(choices), k)
            if first:
                pick[0] = 0
            return pl.Series(np.asarray(choices, dtype=object)[pick], dtype=pl.String)
        # future: more than a day after the moment of loading (C + 6 h)
        return ctx.text_times(6 * HOUR + rng.integers(2 * DAY, 30 * DAY, k))
    return pl.DataFrame({"v": clean}).select(expr).to_series()


def _reason(kind: str, column: Column, value: str) -> str:
    return {
        "bad_check": "wrong check character",
        "fullwidth": "full-width digits in the id number",
        "unknown_region": "unknown region prefix 319999 (correct check character)",
        "bad_enum": f"{value!r} is not one of {', '.join(column.values)}",
        "bad_bool": f"{value!r} is not a boolean (true/false/1/0)",
        "bad_timestamp": f"unparseable timestamp {value!r}",
        "future": "event time more than a day after the moment of loading (D+1 06:00)",
        "empty": "required column is empty",
    }[kind]


def template(ctx: Context, feed: str, rng: np.random.Generator, k: int) -> pl.DataFrame:
    """`k` clean rows of `feed` for random residents: the bases of bad rows."""
    cols: dict[str, pl.Series] = {}
    for c in FEEDS[feed].required_columns:
        if c.kind is Kind.ID_NUMBER:
            s = ctx.id_text(rng.integers(0, ctx.residents, k)) if ctx.residents else make_ids(k, rng)
        elif c.kind is Kind.TIMESTAMP:
            s = ctx.text_times(-rng.integers(1, WINDOW + 1, k), null=np.full(k, c.nullable))
        elif c.kind is Kind.ENUM:
            s = pl.Series(np.asarray(c.values)[rng.integers(0, len(c.values), k)])
        elif c.kind is Kind.BOOL:
            s = pl.Series(np.where(rng.random(k) < 0.5, "true", "false"))
        elif c.kind is Kind.CODE6:
            pool = ctx.districts if feed == "registrations" else ctx.regions
            s = pl.Series(pool[rng.integers(0, len(pool), k)])
        elif c.kind is Kind.CODE2:
            s = pl.Series(np.asarray(OTHER_PROVINCES)[rng.integers(0, len(OTHER_PROVINCES), k)])
        elif c.kind is Kind.COLOR:
            s = pl.Series(["green"] * k)
        elif c.kind is Kind.ORIGIN:
            s = pl.Series(np.asarray(OTHER_ORIGINS)[rng.integers(0, len(OTHER_ORIGINS), k)])
        elif c.kind is Kind.PLACE:
            s = pl.Series([f"P{i:07d}" for i in rng.integers(0, 20, k)])
        elif c.name == "name":
            s = pl.Series([f"超市{i:05d}" for i in rng.integers(0, 20, k)])
        else:
            i = ("authority", "basis", "operator", "reason").index(c.name)
            s = pl.Series(np.asarray(TEXTS)[rng.integers(0, len(TEXTS), k), i])
        cols[c.name] = s.alias(c.name).cast(pl.String)
    return pl.DataFrame(list(cols.values()))


def bad_rows(ctx: Context, feed: str, n_body: int, rng: np.random.Generator, guaranteed: bool = True
             ) -> tuple[pl.DataFrame, list[tuple[str, str, str, str]]]:
    """Bad rows for `feed` and, for each, (column, kind, reason, value); the `GUARANTEED` ones
    only when `guaranteed` (a night's first block)."""
    plan = [(kind, col) for kind, (f, col) in GUARANTEED.items() if f == feed and guaranteed]
    n_guaranteed = len(plan)
    applicable = [kind for kind in KINDS if _columns_for(kind, feed)]
    for _ in range(int(rng.binomial(n_body, BAD_RATE))):
        kind = applicable[rng.integers(0, len(applicable))]
        cols = _columns_for(kind, feed)
        plan.append((kind, cols[rng.integers(0, len(cols))].name))
    df = template(ctx, feed, rng, len(plan))
    plan_arr = np.asarray(plan, dtype=object).reshape(-1, 2)
    for kind, col in sorted({(k, c) for k, c in plan}):
        idx = np.flatnonzero((plan_arr[:, 0] == kind) & (plan_arr[:, 1] == col))
        first = bool(idx[0] < n_guaranteed)
        df = df.with_columns(df[col].scatter(idx, _spoil(kind, ctx, df[col].gather(idx), rng, first)))
    meta = []
    for i, (kind, col) in enumerate(plan):
        value = df[col][i]
        meta.append((col, kind, _reason(kind, FEEDS[feed].column(col), value), value))
    return df, meta


def _scatter(s: pl.Series, idx: np.ndarray, fn: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    if len(idx) == 0:
        return s
    return s.scatter(idx, pl.DataFrame({"v": s.gather(idx)}).select(fn(pl.col("v"))).to_series())


def messy(feed: str, df: pl.DataFrame, rng: np.random.Generator) -> tuple[pl.DataFrame, int]:
    """Harmless messiness in a few random rows; returns the frame and how many values changed."""
    n = df.height
    changed = 0
    out = []
    for c in FEEDS[feed].required_columns:
        s = df[c.name]
        u = rng.random(n)
        if c.kind is Kind.ID_NUMBER:
            pads = [lambda v: " " + v, lambda v: v + " ", lambda v: "  " + v + "\t"]
            for i, pad in enumerate(pads):
                idx = np.flatnonzero((u >= i * 0.0002) & (u < (i + 1) * 0.0002))
                s = _scatter(s, idx, pad)
                changed += len(idx)
            x_idx = np.flatnonzero(s.str.ends_with("X").to_numpy() & (rng.random(n) < 0.02))
            s = _scatter(s, x_idx, lambda v: v.str.to_lowercase())
            changed += len(x_idx)
        elif c.kind is Kind.ENUM:
            styles = [lambda v: v.str.to_uppercase(), lambda v: v.str.to_titlecase(),
                      lambda v: " " + v.str.to_titlecase() + " "]
            for i, style in enumerate(styles):
                idx = np.flatnonzero((u >= i * 0.0004) & (u < (i + 1) * 0.0004))
                s = _scatter(s, idx, style)
                changed += len(idx)
        elif c.kind in (Kind.COLOR, Kind.ORIGIN):
            idx = np.flatnonzero(u < 0.01)
            s = _scatter(s, idx, (lambda v: v.str.to_titlecase()) if c.kind is Kind.COLOR
                         else (lambda v: v.str.to_lowercase()))
            changed += len(idx)
        elif c.kind in (Kind.CODE6, Kind.CODE2):
            idx = np.flatnonzero(u < 0.0005)
            s = _scatter(s, idx, lambda v: " " + v)
            changed += len(idx)
        out.append(s)
    return pl.DataFrame(out), changed


def insert(body: pl.DataFrame, extra: pl.DataFrame, rng: np.random.Generator) -> tuple[pl.DataFrame, np.ndarray]:
    """Insert `extra` rows at random places in `body`; returns the frame and each extra row's index."""
    n, m = body.height, extra.height
    if m == 0:
        return body, np.zeros(0, dtype=np.int64)
    pos = rng.integers(0, n + 1, m)
    order = np.argsort(pos, kind="stable")
    sorted_pos = pos[order]
    final = np.empty(m, dtype=np.int64)
    final[order] = sorted_pos + np.arange(m)
    pieces, prev = [], 0
    for k, p in enumerate(sorted_pos.tolist()):
        if p > prev:
            pieces.append(body.slice(prev, p - prev))
        pieces.append(extra.slice(int(order[k]), 1))
        prev = p
    if prev < n:
        pieces.append(body.slice(prev))
    return pl.concat(pieces), final
