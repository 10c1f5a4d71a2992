"""Content digests of warehouse rows: SHA-256 over the rows in a canonical order.

A table's rows are grouped by a key column (a load, a run, a population, a ruleset hash):
the digest of one group is `"<rows>:<hex>"`, the SHA-256 of an injective byte encoding of
its rows sorted by every column (the key excluded), so it does not depend on the order in
which the rows were written, and two different multisets of rows cannot share it without a
SHA-256 collision (an XOR or a sum of per-row hashes can be forged by choosing rows).

How it is computed, and why so (DuckDB 2.0, measured on 10M rows of a NAT-like table): each
column is cast in SQL to a 64-bit integer (integers, booleans, dates and timestamps as
microseconds) or to text (nested values as JSON), DuckDB sorts the rows (`ORDER BY ALL`,
spilling to disk beyond its memory limit) and streams them as Arrow batches, and the
column buffers of each batch are fed to `hashlib` whole: no Python per row. Per column there
are three streams, so batch boundaries change nothing: the values (integers little-endian;
texts' UTF-8 bytes concatenated), the texts' byte lengths, and the positions of the nulls.
The alternatives computed entirely in DuckDB, a SHA-256 per row then an ordered
`string_agg` (whole, or in buckets), took 30 to 66 s for 10M rows against about 1.5 s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import duckdb
import numpy as np

BATCH_ROWS = 1 << 20


def int_values(arr: Any) -> np.ndarray:
    """A pyarrow integer array without nulls as a numpy view of its buffer. (pyarrow's own
    `to_numpy` imports pandas when it is installed: 0.3 s in every process that digests.)"""
    width = arr.type.bit_width // 8
    kind = "u" if str(arr.type).startswith("uint") else "i"
    return np.frombuffer(arr.buffers()[1], dtype=f"<{kind}{width}", count=len(arr) + arr.offset)[arr.offset:]


def _expr(name: str, sql_type: str) -> tuple[str, str]:
    """(the column's canonical SQL expression, 'int' or 'text')."""
    t = sql_type.upper()
    q = f'"{name}"'
    if t in ("INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BOOLEAN", "UINTEGER", "USMALLINT", "UTINYINT"):
        return f"CAST({q} AS BIGINT)", "int"
    if t in ("TIMESTAMP", "DATE"):
        return f"epoch_us({q})", "int"
    if t == "VARCHAR":
        return q, "text"
    return f"CAST(to_json({q}) AS VARCHAR)", "text"


Schema = dict[str, list[tuple[str, str]]]


def schema(con: duckdb.DuckDBPyConnection) -> Schema:
    """Every table's (column, type) in their order (one catalog query for many digests)."""
    out: Schema = {}
    for table, name, sql_type in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "ORDER BY table_name, ordinal_position").fetchall():
        out.setdefault(table, []).append((name, sql_type))
    return out


class Digester:
    """The running digest of a sequence of rows fed batch by batch (canonical order is the
    caller's: rows sorted by every column)."""

    def __init__(self, names: list[str], kinds: list[str]):
        self.names = names
        self.kinds = kinds
        self.rows = 0
        self._values = [hashlib.sha256() for _ in kinds]
        self._lengths = [hashlib.sha256() for _ in kinds]
        self._nulls = [hashlib.sha256() for _ in kinds]

    def update(self, arrays: list[Any], start: int = 0, stop: int | None = None) -> None:
        """Feed rows [start, stop) of Arrow arrays (one per column). A null is hashed as its
        position, and as 0 or "" among the values. (Done on the buffers with numpy: pyarrow's
        `fill_null` or `scalar` would import pandas, 0.3 s a process.)"""
        import pyarrow as pa

        n = (stop if stop is not None else len(arrays[0])) - start
        if n <= 0:
            return
        for i, arr in enumerate(arrays):
            a = arr.slice(start, n)
            text = self.kinds[i] != "int"
            if text and not (pa.types.is_string(a.type) or pa.types.is_large_string(a.type)):
                a = a.cast(pa.large_string())  # (string views)
            valid = None
            if a.null_count:
                bits = np.unpackbits(np.frombuffer(a.buffers()[0], dtype=np.uint8), bitorder="little")
                valid = bits[a.offset:a.offset + len(a)].astype(bool)
                self._nulls[i].update((np.flatnonzero(~valid) + self.rows).astype("<i8").tobytes())
            if not text:
                values = np.frombuffer(a.buffers()[1], dtype="<i8", count=len(a) + a.offset)[a.offset:]
                self._values[i].update((values if valid is None else np.where(valid, values, 0)).tobytes())
                continue
            width = "<i4" if pa.types.is_string(a.type) else "<i8"
            offsets = np.frombuffer(a.buffers()[1], dtype=width, count=len(a) + 1 + a.offset)[a.offset:]
            lengths = np.diff(offsets).astype("<i8")
            data = memoryview(a.buffers()[2] or b"")[int(offsets[0]):int(offsets[-1])]
            if valid is not None and lengths[~valid].any():  # a null slot over bytes: they are not its value
                data = memoryview(np.frombuffer(data, dtype=np.uint8)[np.repeat(valid, lengths)].tobytes())
            if valid is not None:
                lengths = np.where(valid, lengths, 0)
            self._lengths[i].update(lengths.tobytes())
            self._values[i].update(data)
        self.rows += n

    def hexdigest(self) -> str:
        h = hashlib.sha256(f"{self.rows}\n{','.join(self.names)}\n".encode())
        for parts in zip(self._values, self._lengths, self._nulls, strict=True):
            for p in parts:
                h.update(p.digest())
        return f"{self.rows}:{h.hexdigest()}"


def _query(con: duckdb.DuckDBPyConnection, table: str, key: str, where: str, tables: Schema | None
           ) -> tuple[str, list[str], list[str]]:
    cols = [(n, t) for n, t in (tables or schema(con))[table] if n != key]
    exprs = [_expr(n, t) for n, t in cols]
    select = ", ".join([f'"{key}"', *(e for e, _ in exprs)])
    sql = f"SELECT {select} FROM {table}" + (f" WHERE {where}" if where else "") + " ORDER BY ALL"
    return sql, [n for n, _ in cols], [k for _, k in exprs]


def _batches(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> Iterator[Any]:
    yield from con.sql(sql, params=params).to_arrow_reader(BATCH_ROWS)


def digests(con: duckdb.DuckDBPyConnection, table: str, key: str, where: str = "",
            params: Iterable[Any] = (), tables: Schema | None = None) -> dict[str, str]:
    """The digest of each key's rows of `table` (one sorted pass over the table), keyed by
    the key as text. `tables`: the `schema`, when the caller digests many tables."""
    import pyarrow as pa

    sql, names, kinds = _query(con, table, key, where, tables)
    out: dict[str, str] = {}
    current: tuple[str, Digester] | None = None
    for batch in _batches(con, sql, list(params)):
        keys, arrays = batch.column(0), batch.columns[1:]
        if keys.null_count:
            raise ValueError(f"{table}.{key} holds nulls")
        if pa.types.is_integer(keys.type):
            k = int_values(keys)
            cuts = [0, *(np.flatnonzero(k[1:] != k[:-1]) + 1).tolist(), len(k)]
            labels = [str(k[c]) for c in cuts[:-1]]
        else:  # text keys (ruleset hashes): a few rows only
            vals = keys.to_pylist()
            cuts = [0, *(j for j in range(1, len(vals)) if vals[j] != vals[j - 1]), len(vals)]
            labels = [str(vals[c]) for c in cuts[:-1]]
        for label, lo, hi in zip(labels, cuts[:-1], cuts[1:], strict=True):
            if current is None or current[0] != label:
                if current is not None:
                    out[current[0]] = current[1].hexdigest()
                current = (label, Digester(names, kinds))
            current[1].update(arrays, lo, hi)
    if current is not None:
        out[current[0]] = current[1].hexdigest()
    return out


def digest(con: duckdb.DuckDBPyConnection, table: str, key: str, value: Any, tables: Schema | None = None) -> str:
    """The digest of the rows of `table` whose `key` is `value` (the empty digest when none).
    `tables`: the `schema`, when the caller digests many tables."""
    tables = tables or {table: schema_of(con, table)}
    got = digests(con, table, key, f'"{key}" = ?', [value], tables)
    return got.get(str(value)) or empty(con, table, key, tables)


def schema_of(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """One table's (column, type) in their order."""
    return [(n, t) for n, t in con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
        "ORDER BY ordinal_position", [table]).fetchall()]


def empty(con: duckdb.DuckDBPyConnection, table: str, key: str, tables: Schema | None = None) -> str:
    """The digest of no rows of `table`."""
    _, names, kinds = _query(con, table, key, "", tables)
    return Digester(names, kinds).hexdigest()
