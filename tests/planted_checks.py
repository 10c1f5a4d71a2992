"""Planted persons' expected codes (planted.json) against what the warehouse evaluates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from hcode.rules.load import find_ruleset
from hcode.runs import store as runs
from hcode.store.pseudonym import person_key
from hcode.store.warehouse import Warehouse


def planted_mismatches(wh: Warehouse, persons: Iterable[dict[str, Any]], name: str, as_of: dt.date) -> list[Any]:
    """(key, wanted, got) for each planted person whose code under ruleset `name` differs from
    their `expected[name]` in planted.json (color, every matching rule, the deciding rule)."""
    ev, _, _ = runs.evaluate_warehouse(wh, find_ruleset(name), as_of)
    codes = {r["person_key"]: r for r in runs.with_person_keys(wh.con, ev.codes).iter_rows(named=True)}
    assert ev.persons == len(codes)
    mismatches: list[Any] = []
    for person in persons:
        want = person["expected"][name]
        got = codes.get(person_key(person["id_number"], wh.key))
        if want["color"] == "absent":
            if got is not None:
                mismatches.append((person["key"], "absent", got["color"]))
            continue
        have = (got["color"], list(got["matched_rules"]), got["rule"]) if got else None
        if have != (want["color"], want["rules"], want.get("rule")):
            mismatches.append((person["key"], want, have))
        assert got is None or got["explanation"]
    return mismatches
