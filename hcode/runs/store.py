"""Evaluation runs against the warehouse: read the feeds a ruleset needs, evaluate, store.

A run is a pure function of (the rows loaded before it started with an event time before
its cut-off, the ruleset). It records the ruleset's name, version and content hash, the
as-of date, the loads it saw and the counts per colour; its codes (one per registered
person: its population, shared with the runs that saw the same one, and the codes that
differ from a person's with no events) are written in the same transaction as the run row
and its audit entry, so a run is either wholly there or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from hcode.engine.evaluate import Evaluation, cutoff_of, evaluate
from hcode.engine.sources import WarehouseSource
from hcode.errors import HcodeError, UnknownRun
from hcode.profiling import Stages
from hcode.rules.ruleset import Ruleset
from hcode.store import audit
from hcode.store.buckets import equal_ranges, pid_span
from hcode.store.warehouse import (
    ArrowStream,
    Warehouse,
    one,
    rows_of_pids,
    scalar,
    to_polars,
    unordered_inserts,
    view,
)
from hcode.textsafe import csv_safe_frame, joined_lists

ALWAYS_READ = ("registrations", "overrides")


# the columns of `runs` a RunInfo is read from, in its order (`population_id` is internal)
RUN_COLUMNS = ("run_id", "province", "version", "ruleset_hash", "as_of", "cutoff", "created_at", "max_load_id",
               "persons", "colors", "overrides_applied", "overrides_not_applied", "operator", "published",
               "published_at", "info")


@dataclass(frozen=True)
class RunInfo:
    run_id: int
    province: str
    version: str
    ruleset_hash: str
    as_of: dt.date
    cutoff: dt.datetime
    created_at: dt.datetime
    max_load_id: int
    persons: int
    colors: dict[str, int]
    overrides_applied: int
    overrides_not_applied: int
    operator: str | None
    published: bool
    published_at: dt.datetime | None
    loads: tuple[int, ...]

    @property
    def ruleset(self) -> str:
        return f"{self.province}@{self.version}"

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "ruleset": self.province, "version": self.version,
                "ruleset_hash": self.ruleset_hash, "as_of": self.as_of.isoformat(),
                "created_at": self.created_at.isoformat(sep=" "), "published": self.published,
                "colors": self.colors, "persons": self.persons, "operator": self.operator}


def current_loads(con: duckdb.DuckDBPyConnection) -> tuple[int, tuple[int, ...]]:
    """The newest load id and every live (not retracted) load a run started now would see."""
    ids = tuple(i for (i,) in con.execute(
        "SELECT load_id FROM loads WHERE retracted_at IS NULL ORDER BY load_id").fetchall())
    top = scalar(con, "SELECT coalesce(max(load_id), 0) FROM loads")
    return top, ids


def load_frames(con: duckdb.DuckDBPyConnection, feeds: Iterable[str], cutoff: dt.datetime, max_load_id: int,
                pids: list[int] | None = None) -> dict[str, pl.DataFrame]:
    """Every row of each feed (and of the feeds every run reads) that a run started now would
    see, as frames: for callers that change them before evaluating (purge's what-if)."""
    source = WarehouseSource(con, cutoff, max_load_id, pids)
    return {name: source.rows(name).collect() for name in dict.fromkeys([*ALWAYS_READ, *feeds])}


def evaluate_warehouse(wh: Warehouse, ruleset: Ruleset, as_of: dt.date, lang: str = "en",
                       pids: list[int] | None = None) -> tuple[Evaluation, int, tuple[int, ...]]:
    max_load_id, loads = current_loads(wh.con)
    source = WarehouseSource(wh.con, cutoff_of(as_of), max_load_id, pids)
    return evaluate(ruleset, source, as_of, lang=lang), max_load_id, loads


def store_run(wh: Warehouse, ev: Evaluation, max_load_id: int, loads: tuple[int, ...],
              operator: str | None, *, publish: bool = False, batch: dict[str, Any] | None = None) -> int:
    """Store the run, its codes and its audit entry in one transaction; returns the run id.

    The population is stored once per distinct content: a run whose population (pid,
    district) has the digest of one already stored shares it, as two runs on one night's data
    do (a ruleset and its successor, a re-run). The digest is computed on a second thread
    while DuckDB writes the details."""
    import numpy  # noqa: F401  (population_digest's, imported on this thread: an import on the
    # digest thread holds the GIL that DuckDB's scan of the details needs, 0.12 s at 1M)

    stages = Stages("store")
    with ThreadPoolExecutor(1) as pool:
        population = pool.submit(audit.population_digest, ev.population)
        with wh.transaction() as con:
            run_id = int(scalar(con, "SELECT coalesce(max(run_id), 0) + 1 FROM runs"))
            store_details(con, run_id, ev.results)
            stages.tick("code_details")
            digest = population.result()
            population_id = store_population(con, digest, ev.population.height,
                                              lambda: view(con, "_hcode_population", ArrowStream(ev.population)))
            stages.tick("population")
            store_run_row(con, run_id, Totals.of(ev), population_id, digest, max_load_id, loads, operator,
                           publish, batch)
            stages.tick("digest")
    stages.tick("commit")
    return run_id


@dataclass(frozen=True)
class Totals:
    """What a run records of its evaluation besides the codes: sums over its buckets, and the
    code of a person with no events (the same in every bucket)."""

    ruleset: Ruleset
    as_of: dt.date
    cutoff: dt.datetime
    persons: int
    colors: dict[str, int]
    overrides_applied: int
    overrides_not_applied: int
    default_color: str
    default_rule: str | None
    default_explanation: str
    buckets: int = 1

    @classmethod
    def of(cls, ev: Evaluation) -> Totals:
        return cls(ev.ruleset, ev.as_of, ev.cutoff, ev.persons, dict(ev.colors), ev.overrides_applied,
                   ev.overrides_not_applied, ev.default_color, ev.default_rule, ev.default_explanation)

    def plus(self, ev: Evaluation) -> Totals:
        if (ev.default_color, ev.default_rule, ev.default_explanation) != (
                self.default_color, self.default_rule, self.default_explanation):
            raise AssertionError("buckets disagree on the code of a person with no events")
        return Totals(self.ruleset, self.as_of, self.cutoff, self.persons + ev.persons,
                      {c: self.colors.get(c, 0) + ev.colors.get(c, 0) for c in self.colors},
                      self.overrides_applied + ev.overrides_applied,
                      self.overrides_not_applied + ev.overrides_not_applied,
                      self.default_color, self.default_rule, self.default_explanation, self.buckets + 1)


def store_run_row(con: duckdb.DuckDBPyConnection, run_id: int, t: Totals, population_id: int, digest: str, max_load_id: int,
                   loads: tuple[int, ...], operator: str | None, publish: bool, batch: dict[str, Any] | None) -> None:
    """The code of a person with no events, the run's row, its ruleset's text and its audit
    entries (and the publish), inside the caller's transaction."""
    rs = t.ruleset
    con.execute("INSERT INTO code_defaults VALUES (?, ?, ?, ?)",
                [run_id, t.default_color, t.default_rule, t.default_explanation])
    now = dt.datetime.now().replace(microsecond=0)
    info = {"loads": list(loads), **(batch or {})}
    con.execute(
        f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}, population_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, rs.province, rs.version, rs.content_hash, t.as_of, t.cutoff, now, max_load_id,
         t.persons, json.dumps(t.colors), t.overrides_applied, t.overrides_not_applied, operator,
         publish, now if publish else None, json.dumps(info), population_id],
    )
    if not one(con, "SELECT 1 FROM ruleset_texts WHERE ruleset_hash = ?", [rs.content_hash]):
        con.execute("INSERT INTO ruleset_texts VALUES (?, ?, ?, ?)",
                    [rs.content_hash, rs.province, rs.version, rs.source_text])
    content = audit.run_content(con, run_id, digest)
    audit.record(con, "run", operator, {
        "run_id": run_id, "ruleset": rs.name, "ruleset_hash": rs.content_hash,
        "as_of": t.as_of.isoformat(), "persons": t.persons, "colors": t.colors,
        "max_load_id": max_load_id, "published": publish,
    }, content)
    if publish:
        superseded = [r for r in (batch or {}).get("supersedes", []) if r is not None]
        if superseded:
            con.execute("UPDATE runs SET published = false WHERE list_contains(?, run_id)", [superseded])
        audit.record(con, "publish", operator, {"run_id": run_id, "supersedes": superseded, **(batch or {})},
                     audit.runs_content(con, superseded))


def store_population(con: duckdb.DuckDBPyConnection, digest: str, persons: int, rows: Callable[[], AbstractContextManager[str]]) -> int:
    """The id of the stored population with this digest, stored now from the relation `rows`
    names (pid, district) if there is none."""
    row = one(con, "SELECT population_id FROM populations WHERE digest = ?", [digest])
    if row:
        return int(row[0])
    population_id = int(scalar(con, "SELECT coalesce(max(population_id), 0) + 1 FROM populations"))
    con.execute("INSERT INTO populations VALUES (?, ?, ?)", [population_id, persons, digest])
    with rows() as name:
        con.execute(f"INSERT INTO population_rows SELECT ?, pid, district FROM {name}", [population_id])
    return population_id


def store_details(con: duckdb.DuckDBPyConnection, run_id: int, results: pl.DataFrame) -> None:
    """The full codes of the persons some rule matched or an override names (warehouse.py)."""
    # rows in any order (the table has no order; readers of `codes` sort): DuckDB then
    # writes them on every core, twice as fast
    with view(con, "_hcode_details", ArrowStream(results)), unordered_inserts(con):
        con.execute("INSERT INTO code_details SELECT ?, pid, color, rule, matched_rules, evidence, override, "
                    "explanation FROM _hcode_details", [run_id])


def _run_from_row(row: tuple[Any, ...]) -> RunInfo:
    (run_id, province, version, h, as_of, cutoff, created, max_load, persons, colors, applied, not_applied,
     operator, published, published_at, info) = row
    return RunInfo(run_id, province, version, h, as_of, cutoff, created, max_load, persons, json.loads(colors),
                   applied, not_applied, operator, published, published_at,
                   tuple(json.loads(info or "{}").get("loads", [])))


def list_runs(con: duckdb.DuckDBPyConnection) -> list[RunInfo]:
    return [_run_from_row(r) for r in con.execute(
        f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY run_id").fetchall()]


def runs_json(runs: Iterable[RunInfo]) -> dict[str, Any]:
    """What `hcode runs --json` prints."""
    return {"runs": [r.as_json() for r in runs]}


def get_run(con: duckdb.DuckDBPyConnection, run_id: int) -> RunInfo:
    rows = con.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ?", [run_id]).fetchall()
    if not rows:
        known = [r for (r,) in con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()]
        raise UnknownRun(f"no run {run_id} in this warehouse (runs: {', '.join(map(str, known)) or 'none'})")
    return _run_from_row(rows[0])


_RULESETS: dict[str, Ruleset] = {}  # content hash -> ruleset: a stored text never changes
_RULESETS_HELD = 16


def stored_ruleset(con: duckdb.DuckDBPyConnection, run: RunInfo) -> Ruleset:
    """The ruleset a stored run used, from the text stored with it (not today's file). Kept
    by content hash for the process: a bucketed diff asks for it once a bucket, and loading
    checks every example of the ruleset (0.2 s each time)."""
    rs = _RULESETS.get(run.ruleset_hash)
    if rs is None:
        rs = _stored_ruleset(con, run)
        if len(_RULESETS) >= _RULESETS_HELD:
            _RULESETS.pop(next(iter(_RULESETS)))
        _RULESETS[run.ruleset_hash] = rs
    return rs


def _stored_ruleset(con: duckdb.DuckDBPyConnection, run: RunInfo) -> Ruleset:
    import tempfile

    from hcode.rules.load import find_ruleset

    try:
        rs = find_ruleset(run.ruleset)
        if rs.content_hash == run.ruleset_hash:
            return rs
    except HcodeError:
        pass
    row = one(con, "SELECT text FROM ruleset_texts WHERE ruleset_hash = ?", [run.ruleset_hash])
    if not row:
        raise UnknownRun(f"run {run.run_id}: its ruleset {run.ruleset} ({run.ruleset_hash[:12]}) is not stored")
    # source_text is the file's text, then "# --- extends province@version" and the parent's.
    parts = re.split(r"\n# --- extends (\S+)@(\S+)\n", row[0])
    with tempfile.TemporaryDirectory() as d:
        files = [(run.province, run.version, parts[0])]
        files += [(parts[i], parts[i + 1], parts[i + 2]) for i in range(1, len(parts), 3)]
        for province, version, text in files:
            target = Path(d) / province / f"{version}.yaml"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        return find_ruleset(Path(d) / run.province / f"{run.version}.yaml")


def run_codes(con: duckdb.DuckDBPyConnection, run_id: int, pids: list[int] | None = None, *, ordered: bool = True,
              pid_range: tuple[int, int] | None = None, explanations: bool = True) -> pl.DataFrame:
    """A stored run's codes with each person's `person_key`, sorted by person_key unless
    `ordered` is False (a diff needs no order: sorting 10M keys is costly);
    `pids`: only these persons; `pid_range` = (lo, hi): only the persons with lo <= pid < hi
    (given to both sides of the join with `persons`, so that DuckDB skips the row groups of
    every other range: `pid_ranges`); `explanations` False: without the codes' explanations
    (a diff writes its own: a sixth of the read)."""
    where = "c.run_id = ?"
    params: list[Any] = [run_id]
    if pids is not None:
        where += " AND list_contains(?, c.pid)"
        params.append(pids)
    if pid_range is not None:
        where += " AND c.pid >= ? AND c.pid < ? AND p.pid >= ? AND p.pid < ?"
        params += [*pid_range, *pid_range]
    columns = CODE_COLUMNS if explanations else LEAN_CODE_COLUMNS
    return to_polars(con.sql(f"SELECT {columns} {CODES_WITH_KEYS} WHERE {where}"
                             + (" ORDER BY p.person_key" if ordered else ""), params=params))


def run_codes_by_pid(con: duckdb.DuckDBPyConnection, run_id: int,
                     pid_range: tuple[int, int] | None = None) -> pl.DataFrame:
    """A stored run's codes by pid, without person keys, evidence, overrides or explanations:
    what a diff of two runs of the warehouse compares (a quarter of the read with keys, at
    10M: `hcode.diff.changes`), fetching the rest for its listed persons (`store.persons.stored_keys`,
    `code_evidence`); `pid_range` as in `run_codes`."""
    where, params = "run_id = ?", [run_id]
    if pid_range is not None:
        where, params = where + " AND pid >= ? AND pid < ?", [run_id, *pid_range]
    return to_polars(con.sql(f"SELECT pid, district_code, color, rule, matched_rules FROM codes WHERE {where}",
                             params=params))


def code_evidence(con: duckdb.DuckDBPyConnection, run_id: int, pids: pl.Series) -> pl.DataFrame:
    """The evidence and override of each pid of `pids` in stored run `run_id`, aligned with
    them, as the `codes` view gives them (a person without details: evidence [], no override)."""
    got = rows_of_pids(con, pids, "evidence, override", "code_details", "run_id = ?", (run_id,))
    return got.with_columns(pl.col("evidence").fill_null(pl.lit([], got.schema["evidence"])))


LEAN_CODE_COLUMNS = "p.person_key, c.pid, c.district_code, c.color, c.rule, c.matched_rules, c.evidence, c.override"
CODE_COLUMNS = LEAN_CODE_COLUMNS + ", c.explanation"  # (the lean read leaves the explanations out)
CODES_WITH_KEYS = "FROM codes c JOIN persons p USING (pid)"


def pid_ranges(con: duckdb.DuckDBPyConnection, run_ids: Iterable[int], n: int) -> list[tuple[int, int]]:
    """`n` consecutive ranges (lo, hi) of pids, of equal width, that together hold every
    person of the runs `run_ids`: a partition of their persons that every one of these runs
    shares (a pid names the same person in every run of a warehouse), for reading the runs
    part by part with `run_codes(pid_range=...)`. Each read filters the tables on `pid`, so
    DuckDB skips what lies outside the range; splitting the runs by a hash of the key instead
    took a DuckDB pass that wrote every code to files and read them back (2026-12-06, a run of
    10M persons in 18 parts: 11.0 s against 3.9 s; `benchmarks/diff_reads.py`)."""
    span = pid_span(con, "population_rows WHERE population_id IN "
                         "(SELECT population_id FROM runs WHERE list_contains(?, run_id))", [list(run_ids)])
    return equal_ranges(*span, n)


def with_person_keys(con: duckdb.DuckDBPyConnection, codes: pl.DataFrame) -> pl.DataFrame:
    keys = to_polars(con.sql("SELECT pid, person_key FROM persons"))
    return codes.join(keys, on="pid", how="left").sort("person_key")


def write_codes(codes: pl.DataFrame, path: Path) -> Path:
    """The codes file of `hcode evaluate --out` (docs/cli.md): person_key, color, rule, matched_rules, explanation."""
    out = codes.select("person_key", "color", "rule", "matched_rules", "explanation").sort("person_key")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        csv_safe_frame(out.with_columns(joined_lists(out.get_column("matched_rules")))).write_csv(path)
    elif path.suffix.lower() in (".parquet", ".pq"):
        out.write_parquet(path, compression="zstd", compression_level=1)
    else:
        raise HcodeError(f"{path}: write .parquet or .csv", option="path")
    return path
