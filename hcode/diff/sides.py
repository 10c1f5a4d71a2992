"""Diff sides from the warehouse: a stored run, or a ruleset evaluated now (not stored).

`hcode.diff` compares two `Side`s; this module is the bridge from `hcode.runs`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import polars as pl

from hcode.diff.changes import Side
from hcode.engine.evaluate import Evaluation
from hcode.rules.ruleset import Ruleset
from hcode.runs.store import (
    code_evidence,
    evaluate_warehouse,
    get_run,
    run_codes,
    run_codes_by_pid,
    stored_ruleset,
    with_person_keys,
)
from hcode.store.persons import stored_keys
from hcode.store.warehouse import Warehouse


def _titles(rs: Ruleset) -> dict[str, dict[str, str]]:
    return {r.id: dict(r.title) for r in rs.rules}


def side_from_evaluation(wh: Warehouse, ev: Evaluation, run_id: int | None = None) -> Side:
    return _side(wh, ev.ruleset, ev.as_of, ev.codes, run_id)


def _side(wh: Warehouse, rs: Ruleset, as_of: dt.date, codes: pl.DataFrame, run_id: int | None = None) -> Side:
    """Codes by pid, as evaluated, as a side (person keys in place of pids)."""
    label = f"run {run_id}" if run_id is not None else rs.name
    return Side(label, run_id, rs.province, rs.version, as_of, tuple(rs.palette), _titles(rs),
                with_person_keys(wh.con, codes).drop("pid"))


@dataclass(frozen=True)
class StoredDetails:
    """`Details` of a stored run: fetched from the warehouse for the pids asked."""

    con: duckdb.DuckDBPyConnection
    run_id: int

    def keys(self, pids: pl.Series) -> pl.Series:
        return stored_keys(self.con, pids)

    def evidence(self, pids: pl.Series) -> pl.DataFrame:
        return code_evidence(self.con, self.run_id, pids)


def load_side(wh: Warehouse, run_id: int, pid_range: tuple[int, int] | None = None, *,
              explanations: bool = True, by_pid: bool = False) -> Side:
    """A stored run as a diff side (its ruleset as stored with it); with `pid_range` =
    (lo, hi), only the persons with lo <= pid < hi (one bucket of `hcode.diff.buckets`);
    `explanations` False: the codes' explanation texts left out (a diff does not read them);
    `by_pid`: a side by pid (`Side.details`), to compare with another run's side by pid."""
    run = get_run(wh.con, run_id)
    rs = stored_ruleset(wh.con, run)
    meta = (f"run {run_id}", run_id, run.province, run.version, run.as_of, tuple(rs.palette), _titles(rs))
    if by_pid:
        return Side(*meta, run_codes_by_pid(wh.con, run_id, pid_range), StoredDetails(wh.con, run_id))
    return Side(*meta, run_codes(wh.con, run_id, ordered=False, pid_range=pid_range,
                                 explanations=explanations).drop("pid"))


def evaluate_side(wh: Warehouse, ruleset: Ruleset, as_of: dt.date, lang: str = "en", *, engine: str = "embedded",
                  spark_master: str = "local[*]") -> Side:
    """A ruleset evaluated on the warehouse's current data, nothing stored: here, or bucket by
    bucket on Spark (`engine="spark"`, as `hcode evaluate --engine spark`)."""
    if engine == "embedded":
        ev, _, _ = evaluate_warehouse(wh, ruleset, as_of, lang=lang)
        return side_from_evaluation(wh, ev)
    from hcode.runs.bucketed import evaluations_on

    _, evaluations, _, _ = evaluations_on(wh, ruleset, as_of, lang, engine, spark_master)
    return _side(wh, ruleset, as_of, pl.concat([ev.codes for ev in evaluations]))
