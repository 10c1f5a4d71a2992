"""Parse and validate one export's columns against its feed contract, vectorised.

`validate(frame, feed, now)` takes the contract columns as read (strings from CSV; strings
or typed columns from Parquet) and returns, per column, the normalised value and the reason
it is bad (null when good). Nothing here touches the warehouse; `hcode.ingest` writes.
Pure and below every stage that reads feed values: ingest validates exports with it, and
`hcode.rules` validates a ruleset's example rows with it, so that an example row means
exactly what the same row in an export would (`Red` is `red`; a bad id or time is an error).

Cheap paths first (docs/architecture.md, performance choices): a column that is already clean is not re-normalised.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import polars as pl
from polars.expr.whenthen import ChainedThen, Then

from hcode import idnumber
from hcode.feeds import TIMESTAMP, Column, Feed, Kind
from hcode.series import fix_where
from hcode.textsafe import mask_ids_expr

ASCII_WS = " \t\n\r\x0b\x0c"
TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")
COLOR_PATTERN = r"^[a-z][a-z0-9_-]*$"
PLACE_PATTERN = r"^[A-Z0-9-]{1,32}$"


class KnownIds(Protocol):
    """The ids an ingest session has validated and mapped to persons so far, as the
    validation of a batch sees them (`store.persons.PersonIndex.known_ids`)."""

    @property
    def size(self) -> int:
        """How many ids the session had mapped."""
        ...

    def find(self, keys: pl.Series) -> pl.DataFrame:
        """`id_key`, `pid` of those of `keys` (distinct `idnumber.id_key`s) that are mapped."""
        ...


@dataclass(frozen=True)
class Validated:
    """Normalised contract columns (`values`) and per-column reasons (`reasons`, null = good)."""

    values: pl.DataFrame
    reasons: pl.DataFrame
    ids: pl.Series | None = None  # person feeds: the distinct valid ids not among `known_ids`
    known: pl.DataFrame | None = None  # person feeds: `id_key`, `pid` of the ids among `known_ids`

    @property
    def bad(self) -> pl.Series:
        if not self.reasons.columns:
            return pl.repeat(False, self.values.height, eager=True).alias("bad")
        return self.reasons.select(pl.any_horizontal(pl.all().is_not_null()).alias("bad")).to_series()


def _strip(s: pl.Series) -> pl.Series:
    return s.str.strip_chars(ASCII_WS)


def _empty_to_null(s: pl.Series) -> pl.Series:
    return pl.select(pl.when(s == "").then(None).otherwise(s)).to_series().alias(s.name)


def _text(s: pl.Series) -> pl.Series:
    return _empty_to_null(_strip(s))


def _reasons(name: str, n: int, checks: list[tuple[pl.Series, str]]) -> pl.Series:
    """Per row, the message of the first check it fails (null when it passes them all).
    `checks` are (failed, message) in priority order; a null `failed` passes. Messages are
    built only for the failing rows: most rows pass, and a string column of millions of
    rows costs more than every check."""
    out = pl.repeat(None, n, dtype=pl.String, eager=True).alias(name)
    if not checks:
        return out
    failed = pl.DataFrame({f"c{i}": m.fill_null(False) for i, (m, _) in enumerate(checks)})
    rows = failed.select(pl.any_horizontal(pl.all())).to_series().arg_true()
    if not rows.len():
        return out
    first: Then | ChainedThen = pl.when(pl.col("c0")).then(pl.lit(checks[0][1]))
    for i, (_, message) in enumerate(checks[1:], 1):
        first = first.when(pl.col(f"c{i}")).then(pl.lit(message))
    return out.scatter(rows, failed[rows].select(first).to_series())


def _empty_reason(s: pl.Series) -> pl.Series:
    """"empty" where `s` is null."""
    return _reasons(s.name, len(s), [(s.is_null(), "empty")])


def parse_timestamps(s: pl.Series) -> pl.Series:
    """Strings in the accepted formats → Datetime("us"); unparseable → null. Parses the
    common format over everything, then the other formats only over what is left."""
    out = s.str.strptime(TIMESTAMP, TIMESTAMP_FORMATS[0], strict=False, cache=False)
    missing = (out.is_null() & s.is_not_null()).arg_true()
    if missing.len():
        rest = s.gather(missing)
        alt = pl.Series(s.name, [None] * len(rest), dtype=TIMESTAMP)
        for fmt in TIMESTAMP_FORMATS[1:]:
            alt = alt.fill_null(rest.str.strptime(TIMESTAMP, fmt, strict=False, cache=False))
        out = out.scatter(missing, alt)
    return out.alias(s.name)


def _timestamp(s: pl.Series, col: Column, now: dt.datetime) -> tuple[pl.Series, pl.Series]:
    if s.dtype == pl.String:
        val = parse_timestamps(s)
        failed = val.is_null() & s.is_not_null()
        if failed.any():  # trim white space (and blank → empty) only where the plain parse failed
            raw = fix_where(s, failed, _text)
            val = fix_where(val, failed, lambda _: parse_timestamps(raw.filter(failed)))
        else:
            raw = s
        unparsed = raw.is_not_null() & val.is_null()
    else:
        raw = None
        if isinstance(s.dtype, pl.Datetime) and s.dtype.time_zone is not None:
            s = s.dt.convert_time_zone("Asia/Shanghai").dt.replace_time_zone(None)
        val = s.cast(TIMESTAMP)
        unparsed = pl.repeat(False, len(s), eager=True)
    late = now + dt.timedelta(days=1)
    checks = [(unparsed, "not a timestamp (expected YYYY-MM-DD[ HH:MM:SS])")]
    if not col.nullable:
        checks.append((val.is_null(), "empty"))
    if not col.future_ok:
        checks.append((val > late, "more than a day after the moment of loading"))
    return val.alias(col.name), _reasons(col.name, len(val), checks)


def _enum(s: pl.Series, col: Column) -> tuple[pl.Series, pl.Series]:
    s = s.cast(pl.String)
    values = list(col.values)
    known = s.is_in(values)
    if not known.all():  # nulls are ignored here (they stay null)
        s = fix_where(s, ~known, lambda x: _text(x).str.to_lowercase())
        known = s.is_in(values)
    return s.alias(col.name), _reasons(col.name, len(s), [(s.is_null(), "empty"),
                                                          (~known, "not one of " + ", ".join(values))])


def _bool(s: pl.Series, col: Column) -> tuple[pl.Series, pl.Series]:
    if s.dtype == pl.Boolean:
        return s, _empty_reason(s).alias(col.name)
    tokens = {"true": True, "1": True, "false": False, "0": False}
    text = s.cast(pl.String)
    known = text.is_in(list(tokens))
    if not known.all():
        text = fix_where(text, ~known, lambda x: _text(x).str.to_lowercase())
        known = text.is_in(list(tokens))
    val = text.is_in([t for t, v in tokens.items() if v])  # null stays null
    unknown = (~known).arg_true()
    if unknown.len():
        val = val.scatter(unknown, None)
    return val.alias(col.name), _reasons(col.name, len(val), [(text.is_null(), "empty"),
                                                              (val.is_null(), "not a boolean (true/false/1/0)")])


def _pattern(s: pl.Series, col: Column, pattern: str, what: str, case: str | None) -> tuple[pl.Series, pl.Series]:
    """A value matching `pattern` is already trimmed and in its case: only the others are
    normalised (trimmed, blank to null, case changed) and checked again."""
    val = s.cast(pl.String)
    ok = val.str.contains(pattern)
    if not ok.all():  # nulls are ignored here (they stay null)

        def fix(x: pl.Series) -> pl.Series:
            x = _text(x)
            return x.str.to_uppercase() if case == "upper" else x.str.to_lowercase() if case == "lower" else x

        val = fix_where(val, ~ok.fill_null(True), fix)
        ok = val.str.contains(pattern)
    return val.alias(col.name), _reasons(col.name, len(val), [(val.is_null(), "empty"), (~ok, what)])


def _id(s: pl.Series, col: Column, now: dt.datetime, known: KnownIds | None
        ) -> tuple[pl.Series, pl.Series, pl.Series, pl.DataFrame | None]:
    """(normalised ids, reasons, distinct valid ids whose `idnumber.id_key` is not in `known`,
    the `id_key`, `pid` of the others: a batch's persons already mapped are then joined with
    its rows without a search of the whole map).
    Every check runs on the distinct ids, and only on those not found valid before: the
    rows' ids are normalised only where their raw value is not already clean."""
    if s.dtype.is_integer():
        s = s.cast(pl.String)
    # (a lazy frame's unique: 0.17 s for 5M ids of which 1M distinct, Series.unique 0.45 s)
    distinct = s.to_frame().lazy().unique().collect().to_series()
    clean = distinct.str.contains(idnumber.ID_PATTERN)
    if not clean.all():  # nulls are ignored here (they stay null)
        dirty = distinct.filter(~clean)
        s = fix_where(s, s.is_in(dirty.implode()), lambda x: _empty_to_null(idnumber_normalise(x)))
        distinct = distinct.filter(clean.fill_null(True))
        fixed = _empty_to_null(idnumber_normalise(dirty)).unique()
        present = distinct.filter(distinct.is_in(fixed.implode(), nulls_equal=True))
        fixed = fixed.filter(~fixed.is_in(present.implode(), nulls_equal=True))
        distinct = pl.concat([distinct, fixed])
    found = None
    if known is not None and known.size:
        keyed = distinct.to_frame("id").with_columns(idnumber.id_key(pl.col("id")).alias("key"))
        # (searched by the batch's keys, not the session's 100M at 100M residents: `find`)
        found = known.find(keyed.get_column("key").drop_nulls())
        seen = found.get_column("id_key")
        distinct = keyed.filter(~pl.col("key").is_in(seen.implode()).fill_null(False)).get_column("id")
    bad = idnumber.bad_ids(distinct, now)
    reason = idnumber.reasons_for(s, bad)
    new = distinct.drop_nulls()
    if bad.height:
        new = new.filter(~new.is_in(bad.get_column("id").implode()))
    return s.alias(col.name), reason.alias(col.name), new.alias(col.name), found


def idnumber_normalise(s: pl.Series) -> pl.Series:
    """Trim ASCII white space and upper-case (as `idnumber.normalise`)."""
    return _strip(s).str.to_uppercase()


def _as_read(s: pl.Series) -> pl.Series:
    if s.dtype == pl.Null or s.dtype == pl.Categorical or isinstance(s.dtype, pl.Enum):
        return s.cast(pl.String)
    return s


def validate_column(s: pl.Series, col: Column, now: dt.datetime,
                    known_ids: KnownIds | None = None) -> tuple[pl.Series, pl.Series]:
    """(normalised values, reasons) for one contract column. `known_ids` are the ids already
    found valid in this session (with the same clock): they are not checked again."""
    s = _as_read(s)
    k = col.kind
    if k is Kind.ID_NUMBER:
        return _id(s, col, now, known_ids)[:2]
    if k is Kind.TIMESTAMP:
        return _timestamp(s, col, now)
    if k is Kind.ENUM:
        return _enum(s, col)
    if k is Kind.BOOL:
        return _bool(s, col)
    if k is Kind.CODE6:
        return _pattern(s, col, r"^[0-9]{6}$", "not a 6-digit code", None)
    if k is Kind.CODE2:
        return _pattern(s.cast(pl.String).str.zfill(2) if s.dtype.is_integer() else s, col,
                        r"^[0-9]{2}$", "not a 2-digit province code", None)
    if k is Kind.COLOR:
        return _pattern(s, col, COLOR_PATTERN, "not a colour word", "lower")
    if k is Kind.ORIGIN:
        return _pattern(s, col, r"^[A-Z]{2}$", "not a two-letter country code", "upper")
    if k is Kind.PLACE:
        return _pattern(s, col, PLACE_PATTERN, "not a place code (1-32 of A-Z, 0-9 and '-')", "upper")
    if k is Kind.TEXT:  # free text is kept for people: an id number in it is masked
        val = pl.select(mask_ids_expr(pl.lit(_text(s.cast(pl.String))))).to_series().alias(col.name)
        return val, _empty_reason(val).alias(col.name)
    raise ValueError(f"no validator for column kind {k}")  # pragma: no cover


def validate(frame: pl.DataFrame, feed: Feed, now: dt.datetime, known_ids: KnownIds | None = None) -> Validated:
    """Validate every contract column of `frame` (which holds exactly those columns)."""
    id_col = next((c for c in feed.columns if c.kind is Kind.ID_NUMBER), None)
    with ThreadPoolExecutor(max_workers=1) as pool:  # the ids on a second core, the rest here
        checking = id_col and pool.submit(_id, _as_read(frame.get_column(id_col.name)), id_col, now, known_ids)
        done = {c.name: validate_column(frame.get_column(c.name), c, now) for c in feed.columns if c is not id_col}
        ids = known = None
        if checking and id_col is not None:
            v, r, ids, known = checking.result()
            done[id_col.name] = (v, r)
    if feed.ordered:
        start, end = feed.ordered
        (a, ra), (b, rb) = done[start], done[end]
        before = (b < a) & ra.is_null() & rb.is_null()
        if before.any():
            done[end] = (b, rb.scatter(before.fill_null(False).arg_true(), f"before {start}"))
    values = [done[c.name][0].alias(c.name) for c in feed.columns]
    reasons = [done[c.name][1].cast(pl.String).alias(c.name) for c in feed.columns]
    return Validated(pl.DataFrame(values), pl.DataFrame(reasons), ids, known)


# Parquet physical types that can hold each kind of contract value (others reject the file).
def parquet_type_ok(dtype: pl.DataType, col: Column) -> bool:
    if dtype in (pl.String, pl.Null, pl.Categorical) or isinstance(dtype, pl.Enum):
        return True
    k = col.kind
    if k is Kind.TIMESTAMP:
        return isinstance(dtype, pl.Datetime) or dtype == pl.Date
    if k is Kind.BOOL:
        return dtype == pl.Boolean or dtype.is_integer()
    if k in (Kind.ID_NUMBER, Kind.CODE6, Kind.CODE2, Kind.PLACE):
        return dtype.is_integer()
    return False
