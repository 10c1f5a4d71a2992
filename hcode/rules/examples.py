"""A ruleset file's values typed as hcode holds them: its dates, and its embedded examples,
their rows validated as ingest validates exports.

An example's row is a row of a department export written in YAML, so it goes through the
same validation (`hcode.validate`) with the example's cut-off as the moment of loading: a
value ingest would quarantine (an unknown enumeration value, an unparseable or far-future
time, a bad id number, a code that is not six digits) is an error naming its line, and a
value ingest would normalise is normalised (`Red` is `red`, ` Close ` is `close`). A row may
carry the person's `id_number`, as an export does: it is checked, then dropped (an example
is one person), and never echoed in a message.

A file's examples are walked twice: once to gather every cell they hold, which are then
validated together (`Cells`: one `validate_column` per feed, column and cut-off of the file,
where each example's rows of a feed took one call per column, about a millisecond each:
0.45 s of loading shanghai@2022.05.23's 42 examples, in every command that loads it), then
to build the examples from the results, finding the same problems in the same order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol
from zoneinfo import ZoneInfo

import polars as pl

from hcode.errors import RulesetError, RulesetProblem
from hcode.feeds import FEEDS, Column, Feed, Kind
from hcode.rules.definitions import LoadErrors
from hcode.rules.ruleset import Example
from hcode.rules.yaml_lines import Located
from hcode.textsafe import mask_ids
from hcode.validate import validate_column

EXAMPLE_KEYS = {"name", "as_of", "events", "others", "expect", "notes"}
EXPECT_KEYS = {"color", "rules", "rule"}
CST = ZoneInfo("Asia/Shanghai")


class Problems(Protocol):
    def add(self, file: str, line: int, msg: str, rule: str | None = None, fact: str | None = None) -> None: ...


def _as_date(v: object) -> dt.date | None:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v))
    except ValueError:
        return None


def to_date(v: object, file: str, line: int) -> dt.date:
    """A ruleset's date (YAML reads 2022-06-28 as a date; a quoted one is text)."""
    d = _as_date(v)
    if d is None:
        raise RulesetError(problems=(RulesetProblem(f"{v!r} is not a date (YYYY-MM-DD)", file, line),))
    return d


def to_value(v: object, kind: Kind) -> dt.datetime | bool | str | None:
    """One cell, typed as the feed stores it, without the checks of ingest (for a caller that
    holds single values, such as the test vectors; an example's rows go through `check_rows`)."""
    if v is None:
        return None
    if kind is Kind.TIMESTAMP:
        if isinstance(v, dt.datetime):
            return v
        if isinstance(v, dt.date):
            return dt.datetime(v.year, v.month, v.day)
        return dt.datetime.fromisoformat(str(v))
    if kind is Kind.BOOL:
        if isinstance(v, bool):
            return v
        raise ValueError(f"{v!r} is not true/false")
    if kind is Kind.CODE6:
        if not isinstance(v, str):  # unquoted, 010101 is the octal number 4161 to YAML
            raise ValueError(f"{v!r} is a number to YAML, not a 6-digit code: write it in quotes, like '310101'")
        if not (len(v) == 6 and v.isascii() and v.isdigit()):
            raise ValueError(f"{v!r} is not a 6-digit code, like '310101'")
    return str(v)


def _as_text(v: object, col: Column) -> str | None:
    """A YAML value as a CSV export would hold it (raises ValueError for what no export can)."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:  # as ingest reads a zoned Parquet time: China Standard Time
            v = v.astimezone(CST).replace(tzinfo=None)
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, int) and col.kind is Kind.CODE6:  # unquoted, 010101 is the octal number 4161 to YAML
        raise ValueError(f"{v!r} is a number to YAML, not a 6-digit code: write it in quotes, like '310101'")
    if isinstance(v, int) and col.kind is Kind.CODE2:
        return f"{v:02d}"
    if isinstance(v, int | float):
        return str(v)
    raise ValueError(f"{v!r} is not a single value")


CellKey = tuple[str, str, dt.datetime]  # feed, column, cut-off


class Cells:
    """`validate_column` of example cells, computed for a whole file at once. While
    `gathering`, `column` records the cells asked and answers nulls; `validate` then checks
    each feed's column once per cut-off, over its distinct cells (validation is cell by cell),
    and `column` answers from those results."""

    def __init__(self) -> None:
        self.gathering = True
        self._asked: dict[CellKey, tuple[Column, set[str | None]]] = {}
        self._done: dict[CellKey, dict[str | None, tuple[object, str | None]]] = {}

    def column(self, feed: Feed, col: Column, cutoff: dt.datetime, cells: list[str | None]
               ) -> tuple[list[object], list[str | None]]:
        key = (feed.name, col.name, cutoff)
        if self.gathering:
            self._asked.setdefault(key, (col, set()))[1].update(cells)
            return [None] * len(cells), [None] * len(cells)
        done = self._done[key]  # (the walk that builds asks what the gathering walk asked)
        return [done[c][0] for c in cells], [done[c][1] for c in cells]

    def validate(self) -> None:
        for key, (col, cells) in self._asked.items():
            distinct = list(cells)
            values, reasons = _validated(col, key[2], distinct)
            self._done[key] = dict(zip(distinct, zip(values, reasons, strict=True), strict=True))
        self.gathering = False


def _validated(col: Column, cutoff: dt.datetime, cells: list[str | None]) -> tuple[list[object], list[str | None]]:
    values, reasons = validate_column(pl.Series(col.name, cells, dtype=pl.String), col, cutoff)
    return values.to_list(), reasons.to_list()


def check_rows(feed: Feed, rows: Located.List, cutoff: dt.datetime,
               bad: Callable[[str, int | None], None], checked: Cells | None = None) -> tuple[dict[str, object], ...]:
    """The example's rows of `feed`, validated and normalised column by column as ingest does;
    `bad(message, line)` is told every problem. `checked`: validation computed for the whole
    file (else each column is validated here)."""
    names = {c.name for c in feed.columns}
    maps = [r for r in rows if isinstance(r, Located.Map)]
    for i, r in enumerate(rows):
        if not isinstance(r, Located.Map):
            bad(f"{feed.name}: a row is a mapping of column to value", rows.line_at(i))
    for r in maps:
        for k in r:
            if k not in names:
                bad(f"{feed.name} has no column {k!r}", r.line_of(k))
    out: list[dict[str, object]] = [{} for _ in maps]
    for col in feed.columns:
        cells: list[str | None] = []
        for r in maps:
            if col.name not in r:
                cells.append("false" if col.kind is Kind.BOOL else None)
                if col.kind is not Kind.BOOL and not col.nullable and col.kind is not Kind.ID_NUMBER:
                    bad(f"{feed.name} row lacks {col.name!r}", r.line)
                continue
            try:
                cells.append(_as_text(r[col.name], col))
            except ValueError as exc:
                bad(f"{feed.name}.{col.name}: {exc}", r.line_of(col.name))
                cells.append(None)
        if not maps:
            continue
        given = [col.name in r and cells[i] is not None for i, r in enumerate(maps)]
        if col.kind is Kind.ID_NUMBER and not any(given):
            continue  # the id is optional in an example
        values, reasons = (checked.column(feed, col, cutoff, cells) if checked is not None
                           else _validated(col, cutoff, cells))
        for i, (r, value, reason) in enumerate(zip(maps, values, reasons, strict=True)):
            if reason is not None and (given[i] or not col.nullable) and col.name in r:
                shown = "" if col.kind is Kind.ID_NUMBER else f" {cells[i]!r}"  # never echo an id number
                bad(f"{feed.name}.{col.name}{shown}: {reason}", r.line_of(col.name))
            if col.kind is not Kind.ID_NUMBER:
                out[i][col.name] = value
    return tuple(out)


def check_example(e: object, file: str, line: int, palette: tuple[str, ...], rule_ids: Iterable[str],
                  errs: Problems, checked: Cells | None = None) -> Example | None:
    if not isinstance(e, Located.Map):
        errs.add(file, line, "an example is a mapping")
        return None
    name = str(e.get("name", f"example at line {line}"))
    failed = False

    def bad(msg: str, ln: int | None = None) -> None:
        nonlocal failed
        failed = True
        errs.add(file, ln or line, mask_ids(f"example {name!r}: {msg}"))  # a value may hold an id number

    for k in e:
        if k not in EXAMPLE_KEYS:
            bad(f"unknown key {k!r} (allowed: {', '.join(sorted(EXAMPLE_KEYS))})", e.line_of(k))
    as_of = _as_date(e.get("as_of"))
    if as_of is None:
        bad(f"as_of {e.get('as_of')!r} is not a date (YYYY-MM-DD)", e.line_of("as_of"))
    cutoff = dt.datetime.combine(as_of or dt.date.max - dt.timedelta(days=2), dt.time()) + dt.timedelta(days=1)
    events = _events(e.get("events"), e.line_of("events") or line, "events", cutoff, bad, checked)
    others: list[dict[str, tuple[Mapping[str, object], ...]]] = []
    given_others = e.get("others")
    if given_others is not None and not isinstance(given_others, Located.List):
        bad("others is a list of persons, each a mapping of feed names to lists of rows", e.line_of("others"))
    persons = given_others if isinstance(given_others, Located.List) else Located.List(line)
    for i, other in enumerate(persons):
        others.append(_events(other, persons.line_at(i), f"others[{i}]", cutoff, bad, checked))
    expect = e.get("expect")
    if not isinstance(expect, Located.Map):
        bad("expect is a mapping: {color: ..., rules: [...], rule: ...}", e.line_of("expect"))
        expect = Located.Map(line)
    for k in expect:
        if k not in EXPECT_KEYS:
            bad(f"expect: unknown key {k!r} (allowed: {', '.join(sorted(EXPECT_KEYS))})", expect.line_of(k))
    color = str(expect.get("color"))
    if palette and color not in palette:  # (no palette: its own error says so)
        bad(f"expected colour {color!r} is not in the palette", expect.line_of("color"))
    ids = set(rule_ids)
    exp_rules = expect.get("rules")
    for rid in [*(exp_rules or []), *([expect["rule"]] if expect.get("rule") not in (None, "override") else [])]:
        if rid not in ids:
            bad(f"unknown rule {rid!r}", expect.line_of("rules" if rid in (exp_rules or []) else "rule"))
    if failed or as_of is None:
        return None
    return Example(name, as_of, events, color, tuple(exp_rules) if exp_rules is not None else None,
                   expect.get("rule"), file, line, tuple(others))


def check_examples(examples: Located.List, file: str, palette: tuple[str, ...], rule_ids: Iterable[str],
                   errs: Problems) -> list[Example | None]:
    """`check_example` of each of a file's `examples`, their cells validated together (`Cells`):
    a first walk gathers the cells, a second builds the examples and tells `errs` the problems."""
    ids = list(rule_ids)
    checked = Cells()
    for i, e in enumerate(examples):
        check_example(e, file, examples.line_at(i), palette, ids, LoadErrors(), checked)  # (told again below)
    checked.validate()
    return [check_example(e, file, examples.line_at(i), palette, ids, errs, checked) for i, e in enumerate(examples)]


def _events(given: object, line: int, what: str, cutoff: dt.datetime,
            bad: Callable[[str, int | None], None], checked: Cells | None
            ) -> dict[str, tuple[Mapping[str, object], ...]]:
    """One person's events (`events`, or one of `others`): feed name -> checked rows."""
    events: dict[str, tuple[Mapping[str, object], ...]] = {}
    if given is None:
        return events
    if not isinstance(given, Located.Map):
        bad(f"{what} maps feed names to lists of rows", line)
        return events
    for feed_name, rows in given.items():
        ln = given.line_of(feed_name)
        if feed_name not in FEEDS:
            bad(f"unknown feed {feed_name!r}", ln)
            continue
        if rows is None:
            rows = Located.List(ln)
        if not isinstance(rows, Located.List):
            bad(f"{feed_name}: a list of rows, like [{{...}}, {{...}}]", ln)
            continue
        events[feed_name] = check_rows(FEEDS[feed_name], rows, cutoff, bad, checked)
    return events
