"""One person's code, every rule that matched and its evidence, and their history.

Answers the auditor's question "who gave this person a red code, on what basis?" for a
stored run, or for a ruleset evaluated now on the warehouse (only that person's events
are read, so it is instant on a 10M-person warehouse).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from hcode.errors import UsageError
from hcode.rules.ruleset import Ruleset
from hcode.runs.store import evaluate_warehouse, get_run, run_codes, stored_ruleset, with_person_keys
from hcode.store.persons import find_person
from hcode.store.warehouse import Warehouse


@dataclass(frozen=True)
class MatchedRule:
    id: str
    color: str
    title: str
    evidence: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Explanation:
    person_key: str
    source: str  # "run 7" or "shanghai@2022.05.23 as of 2022-06-14"
    color: str | None  # None: not registered before the cut-off
    rule: str | None
    explanation: str
    matched_rules: tuple[MatchedRule, ...]
    override: dict[str, Any] | None
    history: tuple[dict[str, Any], ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "person_key": self.person_key, "source": self.source, "color": self.color, "rule": self.rule,
            "explanation": self.explanation,
            "matched_rules": [{"id": m.id, "color": m.color, "title": m.title, "evidence": list(m.evidence)}
                              for m in self.matched_rules],
            "override": self.override, "history": list(self.history),
        }


def history(con: duckdb.DuckDBPyConnection, pid: int, published_only: bool = False) -> list[dict[str, Any]]:
    rows = con.execute(
        "SELECT r.run_id, r.province, r.version, r.as_of, r.published, c.color, c.rule FROM codes c "
        "JOIN runs r USING (run_id) WHERE c.pid = ? AND (NOT ? OR r.published) ORDER BY r.as_of, r.run_id",
        [pid, published_only]).fetchall()
    return [{"run_id": r, "ruleset": f"{p}@{v}", "as_of": a.isoformat(), "published": pub, "color": c, "rule": rule}
            for r, p, v, a, pub, c, rule in rows]


def explain(wh: Warehouse, id_number: str, *, run_id: int | None = None, ruleset: Ruleset | None = None,
            as_of: dt.date | None = None, lang: str = "en") -> Explanation:
    if (run_id is None) == (ruleset is None):
        raise UsageError("give either a run id or a ruleset and an as-of date")
    key, pid = find_person(wh.con, wh.key, id_number)
    if run_id is not None:
        run = get_run(wh.con, run_id)
        rs = stored_ruleset(wh.con, run)
        source = f"run {run_id} ({run.ruleset}, as of {run.as_of})"
        codes = run_codes(wh.con, run_id, [pid]) if pid is not None else pl.DataFrame()
    else:
        if as_of is None or ruleset is None:
            raise UsageError("a ruleset needs an as-of date")
        rs = ruleset
        source = f"{rs.name} as of {as_of}"
        codes = pl.DataFrame()
        if pid is not None:
            ev, _, _ = evaluate_warehouse(wh, rs, as_of, lang=lang, pids=[pid])
            codes = with_person_keys(wh.con, ev.codes)
    hist = tuple(history(wh.con, pid)) if pid is not None else ()
    if codes.is_empty():
        return Explanation(key, source, None, None,
                           "not registered before the cut-off: no code is computed for this person",
                           (), None, hist)
    row = codes.row(0, named=True)
    evidence = row["evidence"] or []
    matched = []
    for rid in row["matched_rules"]:
        r = rs.rule(rid)
        ev_rows = tuple({"feed": e["feed"], "time": e["time"].isoformat(sep=" ") if e["time"] else None,
                         "detail": e["detail"]} for e in evidence if e["rule"] == rid)
        matched.append(MatchedRule(rid, r.color, r.title.get(lang) or r.title.get("en", rid), ev_rows))
    override = row["override"]
    if override:
        override = {k: (v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v) for k, v in override.items()}
    return Explanation(key, source, row["color"], row["rule"], row["explanation"], tuple(matched), override, hist)


def previous_differs(exp: Explanation, run_id: int | None) -> dict[str, Any] | None:
    """The latest other run whose code for this person differs, if any."""
    h: dict[str, Any]
    for h in reversed(exp.history):
        if h["run_id"] != run_id and (h["color"], h["rule"]) != (exp.color, exp.rule):
            return h
    return None

