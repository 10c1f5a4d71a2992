"""The tamper-evident audit log: every load, retraction, run, publish and purge appends an
entry chained by SHA-256 to the previous one, carrying the digests of every row it wrote.

An entry is `(seq, happened_at, action, operator, detail)`; `detail` is JSON holding what
happened, its counts, and under `content` the digests of what it wrote or changed, as
`{table: {key: digest}}`: the rows of that table with that key (a load id, run id,
population id or ruleset hash; `digest.py`). `entry_hash` = SHA-256(prev_hash + canonical
JSON of the entry).

What the entries cover, i.e. everything that decides a published code:

- a `load`: its rows in its feed table, its quarantine rows, its `loads` row (metadata),
  the persons it created (`persons.load_id`: the pid ↔ person_key map) and its `repeats`
  (the rows it sent that an earlier load had stored);
- a `run` (and its `publish`): its `runs` row (with the published flag), its codes
  (`code_details`, `code_defaults`, its population's `population_rows` and `populations`
  row) and the text of its ruleset (`ruleset_texts`); a publish that supersedes runs
  records their rows as they are now (unpublished);
- a `retract` and a `purge`: the new digests of the rows they removed or changed (a
  retraction that keeps a row under a later load that repeated it records that load's
  rows and repeats too).

`verify` replays the chain: each (table, key) must still have the digest of the last entry
that recorded it, and no table may hold rows under a key no entry recorded for it (a row
added to another feed under an existing load id names that load's entry). It also checks
the `codes` view's definition. `verify(head=...)` checks that the chain still holds a head
written outside the warehouse (`audit-head.json`): without it, an administrator who deletes
the last entries, or rewrites the whole chain, is not caught.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from hcode.feeds import FEEDS
from hcode.store import digest as dg
from hcode.store.schema import DDL
from hcode.store.warehouse import one, scalar

GENESIS = "0" * 64

# every table an entry can record, with its key column and what the key names
LOAD_TABLES = tuple(f.table for f in FEEDS.values()) + ("quarantine", "loads", "persons", "repeats")
RUN_TABLES = ("runs", "code_details", "code_defaults")
TRACKED: dict[str, tuple[str, str]] = {
    **{t: ("load_id", "load") for t in LOAD_TABLES},
    **{t: ("run_id", "run") for t in RUN_TABLES},
    "population_rows": ("population_id", "population"),
    "populations": ("population_id", "population"),
    "ruleset_texts": ("ruleset_hash", "ruleset"),
}

Content = dict[str, dict[str, str]]


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


def population_digest_of_table(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """`population_digest` of the (pid, district) rows of a table, streamed from DuckDB in pid
    order a million at a time: a population cut into buckets is never whole in memory."""
    import numpy as np

    h = hashlib.sha256()
    count = scalar(con, f"SELECT count(*) FROM {table}")
    for column in ("pid", "coalesce(district, -1)"):
        reader = con.sql(f"SELECT CAST({column} AS INTEGER) AS v FROM {table} ORDER BY pid"
                         ).to_arrow_reader(1 << 20)
        for batch in reader:
            h.update(np.ascontiguousarray(dg.int_values(batch.column(0)), dtype="<i4").data)
    return f"{count}:{h.hexdigest()}"


def _stored_population_digest(con: duckdb.DuckDBPyConnection, population_id: int) -> str:
    return population_digest(pl.DataFrame(con.sql(  # (as warehouse.to_polars: Arrow C stream)
        "SELECT pid, district FROM population_rows WHERE population_id = ? ORDER BY pid",
        params=[population_id])))


def load_content(con: duckdb.DuckDBPyConnection, feed: str, load_id: int, empty: Iterable[str] = ()) -> Content:
    """The digests a load entry records: its rows, quarantine rows, `loads` row, new persons
    and repeats. `empty`: tables the caller knows the load wrote no row into (their digest
    is that of no rows, which needs no query)."""
    key, none, tables = str(load_id), set(empty), dg.schema(con)
    return {t: {key: dg.empty(con, t, "load_id", tables) if t in none else
                dg.digest(con, t, "load_id", load_id, tables)}
            for t in (FEEDS[feed].table, "quarantine", "loads", "persons", "repeats")}


def run_content(con: duckdb.DuckDBPyConnection, run_id: int, population: str | None = None) -> Content:
    """The digests a run entry records. `population` is the run's `population_digest` when
    the caller has the frame at hand; else it is computed from the stored rows."""
    population_id, ruleset_hash = one(
        con, "SELECT population_id, ruleset_hash FROM runs WHERE run_id = ?", [run_id]) or (None, None)
    out: Content = {t: {str(run_id): dg.digest(con, t, "run_id", run_id)} for t in RUN_TABLES}
    out["population_rows"] = {str(population_id): population or _stored_population_digest(con, population_id)}
    out["populations"] = {str(population_id): dg.digest(con, "populations", "population_id", population_id)}
    out["ruleset_texts"] = {str(ruleset_hash): dg.digest(con, "ruleset_texts", "ruleset_hash", ruleset_hash)}
    return out


def runs_content(con: duckdb.DuckDBPyConnection, run_ids: list[int]) -> Content:
    """The `runs` rows of these runs as they are now (a publish that unpublished them)."""
    return {"runs": {str(r): dg.digest(con, "runs", "run_id", r) for r in run_ids}} if run_ids else {}


def _entry_hash(prev: str, seq: int, at: str, action: str, operator: str | None, detail: str) -> str:
    body = json.dumps([seq, at, action, operator, detail], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


def record(con: duckdb.DuckDBPyConnection, action: str, operator: str | None, detail: dict[str, Any],
           content: Content | None = None) -> int:
    """Append an entry inside the caller's transaction, with the digests of what it wrote."""
    detail = dict(detail)
    if content:
        detail["content"] = content
    last = one(con, "SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1")
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    h = _entry_hash(prev, seq, at.isoformat(sep=" "), action, operator, text)
    con.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)", [seq, at, action, operator, text, prev, h])
    return seq


@dataclass(frozen=True)
class Head:
    """The chain's last entry: kept outside the warehouse, it anchors `verify`."""
    seq: int
    digest: str
    run_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "digest": self.digest, "run_id": self.run_id}

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> Head:
        from hcode.errors import HcodeError

        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(int(d["seq"]), str(d["digest"]), d.get("run_id"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HcodeError(f"--head {path}: not an audit-head.json ({exc})") from None


def head(con: duckdb.DuckDBPyConnection, run_id: int | None = None) -> Head | None:
    row = one(con, "SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1")
    return Head(row[0], row[1], run_id) if row else None


@dataclass(frozen=True)
class Problem:
    seq: int | None  # the entry whose record no longer holds (None: rows no entry recorded)
    action: str | None
    table: str | None
    message: str


@dataclass(frozen=True)
class Verification:
    entries: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None
    action: str | None = None
    table: str | None = None
    problems: tuple[Problem, ...] = field(default=(), repr=False)

    def as_json(self) -> dict[str, Any]:
        """What `hcode audit verify --json` prints."""
        return {"ok": self.ok, "entries": self.entries, "first_bad_seq": self.first_bad_seq,
                "action": self.action, "table": self.table, "problem": self.problem,
                "problems": [{"seq": p.seq, "action": p.action, "table": p.table, "problem": p.message}
                             for p in self.problems]}


def _chain(rows: list[tuple[Any, ...]], expected: dict[tuple[str, str], tuple[int, str, str]],
           owner: dict[tuple[str, str], tuple[int, str]]) -> Problem | None:
    prev = GENESIS
    for seq, at, action, operator, text, prev_hash, entry_hash in rows:
        if prev_hash != prev or _entry_hash(prev, seq, at.isoformat(sep=" "), action, operator, text) != entry_hash:
            return Problem(seq, action, "audit", f"entry {seq} ({action}): the audit entry does not match its hash chain")
        prev = entry_hash
        for table, keys in json.loads(text).get("content", {}).items():
            for key, digest in keys.items():
                if expected.get((table, key), (0, "", ""))[2] != digest:  # else the first to record it
                    expected[(table, key)] = (seq, action, digest)
                owner[(TRACKED[table][1], key)] = (seq, action)
    return None


def _head(rows: list[tuple[Any, ...]], anchor: Head) -> Problem | None:
    by_seq = {r[0]: r for r in rows}
    last = rows[-1][0] if rows else 0
    if anchor.seq not in by_seq:
        return Problem(anchor.seq, "publish", "audit",
                       f"entry {anchor.seq} (publish of run {anchor.run_id}, the head) is missing from the audit "
                       f"table: the chain ends at entry {last}; entries were deleted")
    if by_seq[anchor.seq][6] != anchor.digest:
        r = by_seq[anchor.seq]
        return Problem(anchor.seq, r[2], "audit", f"entry {anchor.seq} ({r[2]}): the audit entry is not the head's "
                       f"(digest {r[6][:12]}… vs {anchor.digest[:12]}…): the chain was rewritten")
    return None


def _actual(con: duckdb.DuckDBPyConnection, table: str, tables: dg.Schema) -> dict[str, str]:
    key = TRACKED[table][0]
    if table != "population_rows":
        return dg.digests(con, table, key, tables=tables)
    ids = [i for (i,) in con.execute("SELECT DISTINCT population_id FROM population_rows ORDER BY 1").fetchall()]
    return {str(i): _stored_population_digest(con, i) for i in ids}


def _codes_view_ok(con: duckdb.DuckDBPyConnection) -> bool:
    """The `codes` view is the one hcode created (as DuckDB normalises it)."""
    sql = "SELECT sql FROM duckdb_views() WHERE view_name = 'codes' AND NOT internal"
    scratch = duckdb.connect()
    try:
        for stmt in DDL:
            scratch.execute(stmt)
        return con.execute(sql).fetchall() == scratch.execute(sql).fetchall()
    finally:
        scratch.close()


def verify(con: duckdb.DuckDBPyConnection, anchor: Head | None = None) -> Verification:
    """Recompute the chain, then every digest it records (see the module docstring)."""
    rows = con.execute(
        "SELECT seq, happened_at, action, operator, detail, prev_hash, entry_hash FROM audit ORDER BY seq"
    ).fetchall()
    expected: dict[tuple[str, str], tuple[int, str, str]] = {}
    owner: dict[tuple[str, str], tuple[int, str]] = {}
    problems: list[Problem] = []
    for p in (_head(rows, anchor) if anchor else None, _chain(rows, expected, owner)):
        if p:
            problems.append(p)
    if not problems:
        tables = dg.schema(con)
        for table, (key, space) in TRACKED.items():
            if table not in tables:  # `repeats` in a warehouse made before it, opened read-only
                actual, empty = {}, "no such table"
            else:
                actual = _actual(con, table, tables)
                empty = dg.empty(con, table, key, tables) if table != "population_rows" else "0:"
            for (t, k), (seq, action, want) in expected.items():
                if t == table and actual.get(k, empty) != want:
                    problems.append(Problem(seq, action, table, f"entry {seq} ({action}): the rows of {space} {k} "
                                            f"in table {table} no longer match the digest it recorded"))
            for k in actual.keys() - {k for (t, k) in expected if t == table}:
                if (space, k) in owner:
                    seq, action = owner[(space, k)]
                    problems.append(Problem(seq, action, table, f"entry {seq} ({action}): table {table} holds "
                                            f"rows of {space} {k} that the entry did not record"))
                else:
                    problems.append(Problem(None, None, table, f"table {table} holds rows of {space} {k}, "
                                            "which no audit entry records"))
        if not _codes_view_ok(con):
            problems.append(Problem(None, None, "codes", "the view codes is not the one hcode defines: "
                                    "it was replaced"))
    if not problems:
        return Verification(len(rows), True)
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    first = problems[0]
    return Verification(len(rows), False, first.seq, first.message, first.action, first.table, tuple(problems))
