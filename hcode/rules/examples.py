"""A ruleset file's values typed as hcode holds them: dates, and the rows of embedded examples
typed as the feeds store them (`to_value`), with every mistake reported at load time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hcode.errors import RulesetError
from hcode.feeds import FEEDS, Kind
from hcode.rules.ruleset import Example, Rule
from hcode.rules.yaml_lines import Located

if TYPE_CHECKING:
    from hcode.rules.load import LoadErrors


def to_date(v: Any, file: str, line: int) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v))
    except ValueError:
        raise RulesetError(f"{file}:{line}: {v!r} is not a date (YYYY-MM-DD)") from None


def to_value(v: Any, kind: Kind) -> dt.datetime | bool | str | None:
    """An example's cell, typed as the feed stores it."""
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
    if kind is Kind.CODE6:  # as ingest checks it (evaluation holds a district as a number)
        if not isinstance(v, str):  # unquoted, 010101 is the octal number 4161 to YAML
            raise ValueError(f"{v!r} is a number to YAML, not a 6-digit code: write it in quotes, like '310101'")
        if not (len(v) == 6 and v.isascii() and v.isdigit()):
            raise ValueError(f"{v!r} is not a 6-digit code, like '310101'")
    return str(v)


def check_example(e: Any, file: str, line: int, palette: tuple[str, ...], rules: tuple[Rule, ...],
                   errs: LoadErrors) -> Example | None:
    if not isinstance(e, Located.Map):
        errs.add(file, line, "an example is a mapping")
        return None
    name = str(e.get("name", f"example at line {line}"))
    n0 = len(errs.items)

    def bad(msg: str, ln: int | None = None) -> None:
        errs.add(file, ln or line, f"example {name!r}: {msg}")

    as_of = None
    try:
        as_of = to_date(e.get("as_of"), file, line)
    except RulesetError as exc:
        bad(str(exc).split(": ", 1)[-1])
    events = _example_events(e.get("events") or {}, e, bad)
    others: list[dict[str, tuple[dict[str, object], ...]]] = []
    for i, other in enumerate(e.get("others") or []):
        if not isinstance(other, Located.Map):
            bad(f"others[{i}] is a mapping of feeds to rows")
            continue
        others.append(_example_events(other, e, bad))
    expect = e.get("expect") or {}
    color = str(expect.get("color"))
    if color not in palette:
        bad(f"expected colour {color!r} is not in the palette")
    ids = {r.id for r in rules if r}
    exp_rules = expect.get("rules")
    for rid in [*(exp_rules or []), *([expect["rule"]] if expect.get("rule") not in (None, "override") else [])]:
        if rid not in ids:
            bad(f"unknown rule {rid!r}")
    if len(errs.items) > n0 or as_of is None:  # as_of is None only after an error
        return None
    return Example(name, as_of, events, color, tuple(exp_rules) if exp_rules is not None else None,
                   expect.get("rule"), file, line, tuple(others))


def _example_events(doc: Any, e: Any, bad: Callable[[str, int | None], None]) -> dict[str, tuple[dict[str, object], ...]]:
    """One person's events of an example, typed as the feeds store them."""
    events: dict[str, tuple[dict[str, object], ...]] = {}
    for feed_name, rows in doc.items():
        ln = doc.line_of(feed_name) if isinstance(doc, Located.Map) else e.line
        if feed_name not in FEEDS:
            bad(f"unknown feed {feed_name!r}", ln)
            continue
        feed = FEEDS[feed_name]
        typed: list[dict[str, object]] = []
        for row in rows or []:
            out: dict[str, object] = {}
            for k in row:
                if k not in {c.name for c in feed.stored_columns}:
                    bad(f"{feed_name} has no column {k!r}", ln)
            for c in feed.stored_columns:
                if c.name not in row:
                    if c.kind is Kind.BOOL:
                        out[c.name] = False
                    elif c.nullable:
                        out[c.name] = None
                    else:
                        bad(f"{feed_name} row lacks {c.name!r}", ln)
                    continue
                try:
                    out[c.name] = to_value(row[c.name], c.kind)
                except ValueError as exc:
                    bad(f"{feed_name}.{c.name}: {exc}", ln)
            typed.append(out)
        events[feed_name] = tuple(typed)
    return events
