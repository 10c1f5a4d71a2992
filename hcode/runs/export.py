"""The push file for the health-code platform: one row per person, `person_key, color, since,
rule`.

`since` is the day the person's current colour started, as the platform shows it ("red since
2022-06-11"): the as-of date of the earliest run in the person's current unbroken streak of
that colour, over the *published* runs of the run's province up to and including the
exported run (which need not be published itself: the batch exports before it pushes). A
run in which the person had another colour, or no code at all (not registered yet), breaks
the streak. Unpublished runs never count: nobody saw them.

The streak is one window query in DuckDB (gaps and islands: within a person and colour,
`k - row_number()` is constant over consecutive runs), not a loop over persons.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from hcode.errors import HcodeError, UnknownRun
from hcode.store.warehouse import one, to_polars, view
from hcode.textsafe import csv_safe_frame


@dataclass(frozen=True)
class ExportResult:
    run_id: int
    path: Path
    rows: int
    runs_considered: tuple[int, ...]  # the published runs (and the run itself) `since` looked back over

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "out": str(self.path), "rows": self.rows,
                "runs_considered": list(self.runs_considered)}


def streak_runs(con: duckdb.DuckDBPyConnection, run_id: int) -> tuple[int, ...]:
    """The runs `since` looks back over, oldest first: the published runs of the run's
    province up to the run's (as_of, run_id), then the run itself."""
    row = one(con, "SELECT province, as_of FROM runs WHERE run_id = ?", [run_id])
    if row is None:
        known = [r for (r,) in con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()]
        raise UnknownRun(f"no run {run_id} in this warehouse (runs: {', '.join(map(str, known)) or 'none'})")
    province, as_of = row
    ids = [r for (r,) in con.execute(
        "SELECT run_id FROM runs WHERE province = ? AND published AND run_id != ? "
        "AND (as_of < ? OR (as_of = ? AND run_id < ?)) ORDER BY as_of, run_id",
        [province, run_id, as_of, as_of, run_id]).fetchall()]
    return (*ids, run_id)


def push_frame(con: duckdb.DuckDBPyConnection, run_id: int) -> pl.DataFrame:
    """`person_key, color, since, rule` for every person of run `run_id`, sorted by person_key."""
    seq = streak_runs(con, run_id)
    order = pl.DataFrame({"run_id": pl.Series(seq, dtype=pl.Int32),
                          "k": pl.Series(range(len(seq)), dtype=pl.Int64)})
    with view(con, "_hcode_seq", order):
        return to_polars(con.sql(
            """
            WITH s AS (SELECT q.run_id, q.k, r.as_of FROM _hcode_seq q JOIN runs r USING (run_id)),
            c AS (SELECT c.pid, c.color, s.k, s.as_of,
                         s.k - row_number() OVER (PARTITION BY c.pid, c.color ORDER BY s.k) AS island
                  FROM codes c JOIN s USING (run_id)),
            start AS (SELECT pid, color, island, min(as_of) AS since FROM c GROUP BY ALL),
            cur AS (SELECT pid, color, island FROM c WHERE k = ?)
            SELECT p.person_key, x.color, st.since, coalesce(x.rule, '') AS rule
            FROM codes x
            JOIN cur USING (pid)
            JOIN start st ON st.pid = cur.pid AND st.color = cur.color AND st.island = cur.island
            JOIN persons p ON p.pid = x.pid
            WHERE x.run_id = ?
            ORDER BY p.person_key
            """,
            params=[len(seq) - 1, run_id]))


def export(con: duckdb.DuckDBPyConnection, run_id: int, path: str | Path) -> ExportResult:
    """Write the push file of run `run_id` to `path` (.csv or .parquet)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise HcodeError(f"{path}: write .csv or .parquet", option="path")
    frame = push_frame(con, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":  # text cells a spreadsheet would run as formulas are defused
        csv_safe_frame(frame).write_csv(path)
    else:
        frame.write_parquet(path, compression="zstd", compression_level=1)
    return ExportResult(run_id, path, frame.height, streak_runs(con, run_id))
