"""Turn the planted scenarios (`sample_scenarios`) into feed rows and manifest entries.

Planted persons have fixed, recognisable id numbers: Huangpu (310101), born 1980-08-08,
sequence 001, 002, ... in scenario order, with the right check character. They get no
random events: their rows are exactly the scenario's, so their expected codes hold.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from hcode.feeds import FEEDS
from hcode.idnumber import check_char
from hcode.sample.scenarios import HOME_DISTRICT, PLANTED_RISK_AREAS, RULESETS, SCENARIOS, Scenario, Ts

PLANTED_BIRTH = "19800808"
STD_FORMAT = "%Y-%m-%d %H:%M:%S"


def planted_id(number: int) -> str:
    """The id of the `number`-th planted person (1-based)."""
    body = f"{HOME_DISTRICT}{PLANTED_BIRTH}{number:03d}"
    return body + check_char(body)


def planted_ids() -> list[str]:
    return [planted_id(i + 1) for i in range(len(SCENARIOS))]


def format_ts(value: Ts | None, cutoff: dt.datetime) -> str | None:
    """A scenario time (offset from the cut-off, maybe with a format) as export text."""
    if value is None:
        return None
    offset, style = value if isinstance(value, tuple) else (value, "std")
    t = cutoff + dt.timedelta(seconds=offset)
    if style == "T":
        return t.strftime("%Y-%m-%dT%H:%M:%S")
    if style == "date":
        return t.strftime("%Y-%m-%d")
    return t.strftime(STD_FORMAT)


def _row(feed: str, values: dict[str, Any], cutoff: dt.datetime) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for col in FEEDS[feed].required_columns:
        if col.name == "id_number":
            continue
        v = values.get(col.name)
        out[col.name] = format_ts(v, cutoff) if col.kind == "timestamp" else v
    return out


def planted_rows(feed: str, cutoff: dt.datetime, places: bool = False) -> pl.DataFrame:
    """Every planted row of `feed`, as raw export text in contract column order (with
    `places`, the place scenarios' persons, registry and risk places too)."""
    from hcode.sample import places as pl_scenes

    columns = [c.name for c in FEEDS[feed].required_columns]
    rows: list[dict[str, str | None]] = []
    if feed == "risk_areas":
        for region, level, start, end in PLANTED_RISK_AREAS:
            rows.append({"region_code": region, "level": level,
                         "valid_from": format_ts(start, cutoff), "valid_to": format_ts(end, cutoff)})
    else:
        for number, sc in enumerate(SCENARIOS, start=1):
            pid = planted_id(number)
            for f, values in sc.registrations + sc.events:
                if f == feed:
                    rows.append({"id_number": pid, **_row(feed, values, cutoff)})
    if places:
        if feed == "places":
            rows += [{"place_code": c, "name": n, "district_code": dist, "registered_at": format_ts(t, cutoff)}
                     for c, n, dist, t in pl_scenes.PLANTED_PLACES]
        if feed == "risk_places":
            rows += [{"place_code": c, "level": lv, "valid_from": format_ts(a, cutoff),
                      "valid_to": format_ts(b, cutoff)} for c, lv, a, b in pl_scenes.PLANTED_RISK_PLACES]
        for pid, (sc, _) in zip(pl_scenes.place_ids(), pl_scenes.PLACE_SCENARIOS, strict=True):
            for f, values in sc.registrations + sc.events:
                if f == feed:
                    rows.append({"id_number": pid, **_row(feed, values, cutoff)})
    return pl.DataFrame(rows, schema={c: pl.String for c in columns}, orient="row") if rows else \
        pl.DataFrame(schema={c: pl.String for c in columns})


def rule_color(rule_id: str) -> str:
    """The color of a shipped rule, from its id (`-R-` red, `-Y-` yellow)."""
    return "red" if "-R-" in rule_id else "yellow"


def expectation(text: str) -> dict[str, Any]:
    """Parse a scenario's expectation text into ``{"color", "rules", "rule"}``.

    ``rule`` is the deciding rule: the first listed rule of the code's color, ``"override"``
    when an override decides, None when no rule matched (the palette's first color) or the
    person is absent from the population.
    """
    if text == "absent":
        return {"color": "absent", "rules": [], "rule": None}
    head, _, tail = text.partition(":")
    rules = tail.split()
    if head.endswith(" by override"):
        return {"color": head.split()[0], "rules": rules, "rule": "override"}
    color = head.strip()
    return {"color": color, "rules": rules, "rule": next((r for r in rules if rule_color(r) == color), None)}


def _district(sc: Scenario) -> str:
    latest = max(sc.registrations, key=lambda e: _offset(e[1]["registered_at"]))
    return str(latest[1]["district_code"])


def _offset(v: Ts) -> int:
    return v[0] if isinstance(v, tuple) else v


def manifest_persons() -> list[dict[str, Any]]:
    """The planted persons as listed in `planted.json`."""
    return [
        {
            "id_number": planted_id(number),
            "key": sc.key,
            "scenario": sc.text,
            "district": _district(sc),
            "expected": {rs: expectation(text) for rs, text in sc.expectations().items()},
        }
        for number, sc in enumerate(SCENARIOS, start=1)
    ]


__all__ = ["RULESETS", "SCENARIOS", "expectation", "format_ts", "manifest_persons", "planted_id",
           "planted_ids", "planted_rows", "rule_color"]
