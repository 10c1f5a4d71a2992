"""The DuckDB warehouse: where it lives, its schema, its key, and how to open it.

The tables are `hcode.store.schema`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    import polars as pl

from hcode.config import load_config
from hcode.errors import KeyRefused, WarehouseBusy, WarehouseMissing, WarehouseVersion, WrongKey
from hcode.store.keys import fingerprint, key_path, read_key, strong_key
from hcode.store.schema import DDL, SCHEMA_VERSION, add_missing

DEFAULT_DB = "hcode.duckdb"
DUCKDB_SHARE = 0.5  # of hcode's memory limit (config.py) for DuckDB's buffer pool; the rest is Polars'


def db_path(db: str | os.PathLike[str] | None = None) -> Path:
    """The warehouse file: `--db`, else `$HCODE_DB`, else `./hcode.duckdb`."""
    return Path(db or os.environ.get("HCODE_DB") or DEFAULT_DB)


@contextmanager
def private_files() -> Iterator[None]:
    """Files created in the block (the warehouse, its write-ahead log) are private to the
    owner (umask 077; the process's own umask is restored afterwards)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
    """The first row of a query, or None. (DuckDB 2.0 refuses further work on a connection
    whose last result was not fetched to the end, so never use `fetchone()` here.)"""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first value of a query that always returns a row (``SELECT count(*) ...``)."""
    row = one(con, sql, params)
    if row is None:
        raise LookupError(f"no row: {sql}")
    return row[0]


def to_polars(result: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """A DuckDB query result as a Polars frame, through the Arrow C stream interface: the
    same frame as DuckDB's `.pl()`, which imports pyarrow on its first call (0.08 s of every
    command that reads the warehouse)."""
    import polars as pl

    return pl.DataFrame(result)


class ArrowStream:
    """A Polars frame for DuckDB's `register`, read through the Arrow C stream interface
    without importing pyarrow (0.08 s). DuckDB scans a stream on one thread; the INSERTs of
    a run's details and population are as fast from it as from a pyarrow table."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.frame.__arrow_c_stream__(requested_schema)


def arrow(frame: pl.DataFrame) -> Any:  # a pyarrow.Table (pyarrow ships no types)
    """A Polars frame as the Arrow table to `register` with DuckDB. Registering the frame
    itself converts its strings to Arrow's large_string (a copy of every string); Arrow's
    string_view, which DuckDB reads as well, is Polars' own layout and costs no copy. Ingest
    hands its batches over this way (its figures were measured so; an `ArrowStream` was not
    faster and imports nothing ingest does not import anyway)."""
    import polars as pl

    return frame.to_arrow(compat_level=pl.CompatLevel.newest())


@dataclass(frozen=True)
class InitResult:
    db: Path
    key_file: Path | None
    created_db: bool
    created_key: bool
    fingerprint: str

    def as_json(self) -> dict[str, Any]:
        """What `hcode init --json` prints."""
        return {"db": str(self.db), "key_file": str(self.key_file) if self.key_file else None,
                "created_db": self.created_db, "created_key": self.created_key, "key_fingerprint": self.fingerprint}


def init(db: str | os.PathLike[str] | None = None) -> InitResult:
    """Create the warehouse and its key file; harmless when both exist.

    The key is `$HCODE_KEY` when set (no file is written then), else `<db>.key`
    (64 random hex characters, mode 0600). Its fingerprint is recorded once; a later
    `init` with another key fails rather than splitting persons in two.
    """
    path = db_path(db)
    created_db = not path.exists()
    created_key = False
    kp = key_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.environ.get("HCODE_KEY"):
        strong_key(os.environ["HCODE_KEY"], "$HCODE_KEY")
    elif not os.path.lexists(kp):
        if not created_db:
            raise KeyRefused(f"{path} exists but its key file is missing ({kp}): restore the key file (or set "
                             "HCODE_KEY); a new key would split every person in two, so none is written")
        fd = os.open(kp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        created_key = True
    key = read_key(path)
    con = _connect(path)
    if created_db:
        os.chmod(path, 0o600)
    try:
        if one(con, "SELECT 1 FROM information_schema.tables WHERE table_name = 'meta'"):
            _check_version(con, path)
        con.execute("BEGIN")
        for stmt in DDL:
            con.execute(stmt)
        add_missing(con)
        con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
        con.execute("INSERT OR IGNORE INTO meta VALUES ('key_fingerprint', ?)", [fingerprint(key)])
        con.execute("COMMIT")
        _check_key(con, path, key)
    finally:
        con.close()
    return InitResult(path, None if os.environ.get("HCODE_KEY") else kp, created_db, created_key, fingerprint(key))


def _connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    try:
        with private_files():
            con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        msg = str(exc)
        if "lock" in msg.lower():
            raise WarehouseBusy(
                f"the warehouse {path} is busy: another hcode process has it open ({msg.splitlines()[0]}); "
                "try again when it has finished"
            ) from exc
        raise
    # No progress bar: DuckDB draws it on stdout, where --json output must stand alone.
    con.execute("SET enable_progress_bar = false")
    # DuckDB's buffer pool would grow to 80 % of RAM next to Polars' frames; cap it at a share of
    # hcode's memory limit (it spills to <db>.tmp beyond that). $HCODE_DUCKDB_MEMORY overrides.
    limit = os.environ.get("HCODE_DUCKDB_MEMORY") or f"{duckdb_memory(path) // 2**20}MiB"
    con.execute(f"SET memory_limit = '{limit}'")
    return con


def duckdb_memory(db: Path) -> int:
    """DuckDB's share of the memory limit of the warehouse `db` (`HCODE_MEMORY` or its
    hcode.toml's `[memory] limit`), in bytes."""
    return int(load_config(db).memory_limit * DUCKDB_SHARE)


def _check_version(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    row = one(con, "SELECT v FROM meta WHERE k = 'schema_version'")
    if row and row[0] != SCHEMA_VERSION:
        raise WarehouseVersion(
            f"{path} has warehouse schema {row[0]}, this hcode needs schema {SCHEMA_VERSION} "
            "(schemas 1 to 3 came from development builds before the first release; schema 4's audit "
            "log does not cover persons, ruleset texts and load metadata, so it cannot be carried over): create a new warehouse with `hcode init` and load the exports again")


def _check_key(con: duckdb.DuckDBPyConnection, path: Path, key: str) -> None:
    row = one(con, "SELECT v FROM meta WHERE k = 'key_fingerprint'")
    if row and row[0] != fingerprint(key):
        raise WrongKey(
            f"the pseudonymisation key does not match the one {path} was created with "
            f"(fingerprint {fingerprint(key)[:12]}… vs recorded {row[0][:12]}…); "
            "check HCODE_KEY and the key file: mixing keys would split one person in two"
        )


class Warehouse:
    """An open warehouse: a DuckDB connection plus the checked pseudonymisation key."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, key: str):
        self.path = path
        self.con = con
        self.key = key

    @classmethod
    def open(cls, db: str | os.PathLike[str] | None = None, read_only: bool = False) -> Warehouse:
        path = db_path(db)
        if not path.exists():
            raise WarehouseMissing(f"no warehouse at {path}: run `hcode init --db {path}` first")
        key = read_key(path)
        con = _connect(path, read_only=read_only)
        try:
            _check_version(con, path)
            _check_key(con, path, key)
            if not read_only:
                add_missing(con)
        except BaseException:
            con.close()
            raise
        return cls(path, con, key)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: commit when the block ends, roll back when it raises. The files
        DuckDB creates meanwhile (write-ahead log, spill files) are private to the owner."""
        with private_files():
            self.con.execute("BEGIN TRANSACTION")
            try:
                yield self.con
            except BaseException:
                self.con.execute("ROLLBACK")
                self.con.execute("RESET preserve_insertion_order")  # see unordered_inserts
                raise
            self.con.execute("COMMIT")


@contextmanager
def view(con: duckdb.DuckDBPyConnection, name: str, data: object) -> Iterator[str]:
    """`data` (an Arrow table or a Polars frame) as the view `name` for the block's queries.
    When a statement of the block fails inside a transaction, DuckDB refuses every further
    statement, the unregister too, until the rollback: that refusal is ignored, so the error
    the caller sees is the statement's (registering the name again replaces the view)."""
    con.register(name, data)
    try:
        yield name
    finally:
        with suppress(duckdb.TransactionException):
            con.unregister(name)


def rows_of_pids(con: duckdb.DuckDBPyConnection, pids: pl.Series, columns: str, table: str, where: str = "true",
                 params: tuple[Any, ...] = ()) -> pl.DataFrame:
    """`columns` of the rows of `table` (those meeting `where` on `params`) for `pids`,
    aligned with them (a row of nulls for a pid not there; a pid at most once in `table`'s
    rows). DuckDB reads the pids' span only, and the other columns of the matching rows only
    (93 pids' keys among 14M persons: 0.02 s, where a join that reads every key takes 0.65 s)."""
    import polars as pl

    wanted = pl.DataFrame({"pid": pids.cast(pl.Int32)})
    if wanted.height == 0:
        return to_polars(con.sql(f"SELECT {columns} FROM {table} WHERE false"))
    span = (wanted["pid"].min(), wanted["pid"].max())
    with view(con, "_hcode_pids", ArrowStream(wanted)):
        got = to_polars(con.sql(f"SELECT pid, {columns} FROM {table} WHERE {where} AND pid >= ? AND pid <= ? "
                                "AND pid IN (SELECT pid FROM _hcode_pids)", params=[*params, *span]))
    at = wanted.join(got.select("pid").with_row_index("_at"), on="pid", how="left", maintain_order="left")["_at"]
    return got.drop("pid").rechunk()[at]


@contextmanager
def unordered_inserts(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Let DuckDB write the rows of the INSERTs in the block in any order, on every core
    (twice as fast for nested rows). The setting is global, so it is reset afterwards; when
    a statement failed, the transaction refuses every statement until it is rolled back, and
    `Warehouse.transaction` resets it then."""
    con.execute("SET preserve_insertion_order = false")
    try:
        yield
    finally:
        with suppress(duckdb.TransactionException):
            con.execute("RESET preserve_insertion_order")
