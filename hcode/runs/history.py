"""One person's code in every published run: what people were shown, and when it changed.

Answers the resident's question "since when have I been red, and why?" from the published
runs only (a dry run or a held-back run was never shown to anyone). A run in which the
person had no code (not registered yet) is listed as absent and breaks the streak, as in
the push file's `since` (`hcode.runs.export`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import duckdb

from hcode.runs.explain import history as explain_history
from hcode.store.persons import find_person
from hcode.store.warehouse import Warehouse


@dataclass(frozen=True)
class HistoryEntry:
    run_id: int
    ruleset: str
    as_of: dt.date
    color: str | None  # None: no code in this run (not registered before its cut-off)
    rule: str | None
    changed: bool  # the colour differs from the previous published run of the province
    since: dt.date | None  # the as-of date this colour started (its unbroken streak)

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        d["since"] = self.since.isoformat() if self.since else None
        return d


@dataclass(frozen=True)
class PersonHistory:
    person_key: str
    entries: tuple[HistoryEntry, ...]

    def as_json(self) -> dict[str, Any]:
        return {"person_key": self.person_key, "history": [e.as_json() for e in self.entries]}


def history_of_pid(con: duckdb.DuckDBPyConnection, pid: int | None) -> tuple[HistoryEntry, ...]:
    runs = con.execute("SELECT run_id, province, version, as_of FROM runs WHERE published "
                       "ORDER BY province, as_of, run_id").fetchall()
    mine = {h["run_id"]: h for h in explain_history(con, pid, published_only=True)} if pid is not None else {}
    out: list[HistoryEntry] = []
    prev: dict[str, tuple[str | None, dt.date | None]] = {}  # province -> (colour, since)
    for run_id, province, version, as_of in runs:
        h = mine.get(run_id)
        color, rule = (h["color"], h["rule"]) if h else (None, None)
        last_color, last_since = prev.get(province, (None, None))
        changed = province in prev and color != last_color
        since = None if color is None else (last_since if province in prev and not changed else as_of)
        prev[province] = (color, since)
        out.append(HistoryEntry(run_id, f"{province}@{version}", as_of, color, rule, changed, since))
    out.sort(key=lambda e: (e.as_of, e.run_id))
    return tuple(out)


def person_history(wh: Warehouse, id_number: str) -> PersonHistory:
    """The history of the person holding `id_number` (hashed with the key, never stored)."""
    key, pid = find_person(wh.con, wh.key, id_number)
    return PersonHistory(key, history_of_pid(wh.con, pid))
