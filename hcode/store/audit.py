"""The tamper-evident audit log: every load, retraction, run, publish and purge appends an
entry chained by hash to the previous one.

An entry is `(seq, happened_at, action, operator, detail)`; `detail` is JSON holding what
happened, its counts, and the content hashes of the data it wrote. `entry_hash` =
SHA-256(prev_hash + canonical JSON of the entry). `verify` recomputes the chain and the
content hashes of the data that must still be there, and names the first entry that no
longer matches.

Content hashes are order-independent digests computed inside DuckDB: the XOR of the MD5
of each row's text (rows of one load, or one run's codes, are distinct, so nothing
cancels). One exception keeps a 10M-person run cheap to record: its population (every
person's pid and district, one row per pid) is hashed as SHA-256 of a canonical byte
encoding in pid order (`population_digest`), computed from the frame the run stored and,
by `verify`, from the table sorted by pid (once per stored population, which runs share);
per-row MD5 of 10M rows cost a second. The other persons' codes are the run's default
(`code_defaults`), digested once; the codes that differ (`code_details`) row by row. A
run's rows point at their population through `runs.population_id`, and the population's
digest is part of the run's: re-pointing a run at another population is caught too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from hcode.feeds import FEEDS
from hcode.store.warehouse import one, to_polars

GENESIS = "0" * 64


def _row_digest(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], where: str, params: list[Any],
                optional: frozenset[str] = frozenset()) -> str:
    # an empty optional column adds nothing (concat_ws skips nulls): a load digested before the
    # column existed still verifies once the warehouse has it
    cols = ", ".join(f"CAST({c} AS VARCHAR)" if c in optional else f"coalesce(CAST({c} AS VARCHAR), '\\N')"
                     for c in columns)
    n, xor = one(
        con,
        f"SELECT count(*), coalesce(bit_xor(md5_number(concat_ws(chr(31), {cols}))), 0) FROM {table} WHERE {where}",
        params,
    ) or (0, 0)  # an aggregate always returns its row
    return f"{n}:{int(xor):032x}"


def load_digest(con: duckdb.DuckDBPyConnection, feed: str, load_id: int) -> str:
    """Digest of a load's stored rows plus its quarantine rows."""
    f = FEEDS[feed]
    cols = (["pid"] if f.has_person else []) + [c.name for c in f.stored_columns]
    rows = _row_digest(con, f.table, cols, "load_id = ?", [load_id],
                       frozenset(c.name for c in f.stored_columns if c.optional))
    quarantine = _row_digest(con, "quarantine", ["line", "errors", "raw"], "load_id = ?", [load_id])
    return f"{rows}/{quarantine}"


def population_digest(population: pl.DataFrame) -> str:
    """SHA-256 of (pid, district) rows in pid order: the pids, then the districts (the 6-digit
    code as a number; null: -1), each as little-endian int32, concatenated. (10M persons are
    80 MB, hashed from the frame's buffers.)"""
    import numpy as np  # (here: most commands never digest a population)

    pop = population if population["pid"].is_sorted() else population.sort("pid")
    h = hashlib.sha256()
    for column in (pop["pid"], pop["district"].fill_null(-1)):
        h.update(np.ascontiguousarray(column.cast(pl.Int32).to_numpy(), dtype="<i4").data)
    return f"{pop.height}:{h.hexdigest()}"


def run_digest(con: duckdb.DuckDBPyConnection, run_id: int, population: str | None = None, cache: dict[int, str] | None = None) -> str:
    """Digest of a run's codes (its population, details and default, warehouse.py) and its
    summary row. `population` is the run's `population_digest` when the caller has the frame
    at hand; else it is computed from the stored rows (once per population in `cache`)."""
    where = ("run_id = ?", [run_id])
    if population is None:
        row = one(con, "SELECT population_id FROM runs WHERE run_id = ?", [run_id])
        population_id: int | None = row[0] if row else None
        if cache is not None and population_id in cache:
            population = cache[population_id]
        else:
            population = population_digest(to_polars(con.sql(
                "SELECT pid, district FROM population_rows WHERE population_id = ? ORDER BY pid",
                params=[population_id])))
            if cache is not None and population_id is not None:
                cache[population_id] = population
    details = _row_digest(con, "code_details", ["pid", "color", "rule", "matched_rules", "evidence", "override",
                                                "explanation"], *where)
    default = _row_digest(con, "code_defaults", ["color", "rule", "explanation"], *where)
    meta = _row_digest(con, "runs", ["run_id", "province", "version", "ruleset_hash", "as_of", "persons", "colors"],
                       *where)
    return f"{population}/{details}/{default}/{meta}"


def _entry_hash(prev: str, seq: int, at: str, action: str, operator: str | None, detail: str) -> str:
    body = json.dumps([seq, at, action, operator, detail], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


def record(con: duckdb.DuckDBPyConnection, action: str, operator: str | None, detail: dict[str, Any], content: str | None = None) -> int:
    """Append an entry inside the caller's transaction. For `load` entries the content
    digest of the load is added here; for `run` and `publish` entries, the run's (`content`
    when the caller computed it already)."""
    detail = dict(detail)
    if action == "load":
        detail["content"] = content or load_digest(con, detail["feed"], detail["load_id"])
    elif action in ("run", "publish"):
        detail["content"] = content or run_digest(con, detail["run_id"])
    last = one(con, "SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1")
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    h = _entry_hash(prev, seq, at.isoformat(sep=" "), action, operator, text)
    con.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)", [seq, at, action, operator, text, prev, h])
    return seq


@dataclass(frozen=True)
class Verification:
    entries: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        """What `hcode audit verify --json` prints."""
        return {"ok": self.ok, "entries": self.entries, "first_bad_seq": self.first_bad_seq, "problem": self.problem}


def verify(con: duckdb.DuckDBPyConnection) -> Verification:
    """Recompute the chain, then the content digests that must still hold."""
    rows = con.execute(
        "SELECT seq, happened_at, action, operator, detail, prev_hash, entry_hash FROM audit ORDER BY seq"
    ).fetchall()
    prev = GENESIS
    expected_loads: dict[int, tuple[int, str, str]] = {}  # load_id -> (seq, feed, digest)
    expected_runs: dict[int, tuple[int, str]] = {}
    for seq, at, action, operator, text, prev_hash, entry_hash in rows:
        if prev_hash != prev or _entry_hash(prev, seq, at.isoformat(sep=" "), action, operator, text) != entry_hash:
            return Verification(len(rows), False, seq, f"entry {seq} ({action}) does not match its hash chain")
        prev = entry_hash
        d = json.loads(text)
        if action == "load":
            expected_loads[d["load_id"]] = (seq, d["feed"], d["content"])
        elif action == "retract":
            expected_loads.pop(d["load_id"], None)
        elif action == "purge":
            for load_id, digest in d.get("loads_after", {}).items():
                if int(load_id) in expected_loads:
                    s, feed, _ = expected_loads[int(load_id)]
                    expected_loads[int(load_id)] = (seq, feed, digest)
        elif action in ("run", "publish"):
            expected_runs.setdefault(d["run_id"], (seq, d["content"]))  # the first entry that recorded it
    problems = []
    for load_id, (seq, feed, digest) in expected_loads.items():
        if load_digest(con, feed, load_id) != digest:
            problems.append((seq, f"entry {seq}: the rows of load {load_id} ({feed}) no longer match their hash"))
    populations: dict[int, str] = {}  # runs sharing a population hash it once
    for run_id, (seq, digest) in expected_runs.items():
        if run_digest(con, run_id, cache=populations) != digest:
            problems.append((seq, f"entry {seq}: the codes of run {run_id} no longer match their hash"))
    if problems:
        seq, msg = min(problems)
        return Verification(len(rows), False, seq, msg)
    return Verification(len(rows), True)
