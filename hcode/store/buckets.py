"""Person buckets: the unit of evaluation for populations that do not fit in memory at once.

Two partitions of the persons, for two places:

- **pid ranges** (`person_ranges`), the embedded engine's buckets and the diff's: the
  warehouse's persons cut into consecutive ranges of their `pid`, of equal width. A pid
  names one person in every run of a warehouse, and every person feed is read with a range
  filter on it, which DuckDB applies in its scans (skipping the row groups outside the
  range), where a list of pids cost a semi-join on every feed and every bucket: on a 10M
  night of 14M persons, 2 buckets took 9.5 to 10 s that way and 3.0 to 3.8 s as ranges, one
  bucket 3.4 s (2026-12-06).
- **key buckets** (`bucket_sql`, `bucket_expr`), the lake's and Spark's: the first 32 bits
  of the `person_key` (the keyed HMAC, hex) modulo the count. It depends on nothing but the
  person and the key, not on load order or a warehouse's pid numbering, so a lake folder
  holds the same persons whatever was loaded first.

Every rule is a function of one person's rows (and of the small global tables, risk areas,
which every bucket reads whole): evaluating bucket by bucket and adding the results up gives
exactly the whole population's result, whatever the partition and the count
(tests/test_buckets.py).

The count is `HCODE_BUCKETS` / `[engine] buckets` when set, else derived from the number of
persons and the memory limit (`bucket_count`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import duckdb
import polars as pl

from hcode.config import Config
from hcode.store.warehouse import one

# What one more person in a bucket adds to an evaluation's peak, measured as the peak with
# one bucket less the peak with eight, over the persons that left the bucket (2026-12-06,
# generated nights, dry runs): 53 bytes for Shanghai's rules at 10M, 126 for Zhejiang's and
# 140 for Henan's (which reads the place scans, 42 a resident) at 1M; 250 is 1.8 times the
# largest. The rest of the peak does not shrink
# with the bucket: the process itself, and DuckDB's buffer pool, which caches the blocks every
# bucket scans (capped by warehouse.DUCKDB_SHARE). 1,500 bytes before (the whole peak of a 1M
# evaluation divided by its persons) gave 3 buckets at 10M on a 24 GiB machine for no memory
# saved (2.0 GiB with one bucket, 2.2 GiB with eight when storing) and 2.5 to 4 times the time.
BYTES_PER_PERSON = 250
# The share of the memory limit one bucket's evaluation may use: the rest is DuckDB's buffer
# pool (warehouse.DUCKDB_SHARE) and the slack Polars' allocator needs.
BUCKET_SHARE = 0.4
HEX_DIGITS = 8  # the bucket hash: the first 32 bits of the person key


def bucket_count(persons: int, config: Config, per_person: int = BYTES_PER_PERSON,
                 share: float = BUCKET_SHARE) -> int:
    """The setting when there is one, else enough buckets for one bucket's work, `per_person`
    bytes a person at its peak (default: an evaluation's), to use at most `share` of the
    memory limit (1 for every population that fits)."""
    asked = config.bucket_setting
    if asked is not None:
        return asked
    return max(1, math.ceil(persons * per_person / (config.memory_limit * share)))


def bucket_sql(n: int, column: str = "person_key") -> str:
    """A person's bucket (0..n-1) as a DuckDB expression over the hex `person_key`."""
    return f"CAST(('0x' || substr({column}, 1, {HEX_DIGITS})) AS UBIGINT) % {int(n)}"


def bucket_expr(n: int, column: str = "person_key") -> pl.Expr:
    """The same bucket as a Polars expression (for frames that hold person keys)."""
    return (pl.col(column).str.slice(0, HEX_DIGITS).str.to_integer(base=16, dtype=pl.UInt64) % n).cast(pl.Int32)


def persons_in_warehouse(con: duckdb.DuckDBPyConnection) -> int:
    row = one(con, "SELECT count(*) FROM persons")
    return int(row[0]) if row else 0


def pid_span(con: duckdb.DuckDBPyConnection, rows: str, params: Sequence[Any] = ()) -> tuple[int, int]:
    """The smallest range [lo, hi) holding every pid of `rows` (SQL after FROM: a table, with
    its WHERE clause and `params` when it has one); (0, 0) when there are none."""
    lo, hi = one(con, f"SELECT coalesce(min(pid), 0), coalesce(max(pid) + 1, 0) FROM {rows}", list(params)) or (0, 0)
    return int(lo), int(hi)


def person_ranges(con: duckdb.DuckDBPyConnection, n: int) -> list[tuple[int, int]]:
    """`n` consecutive ranges (lo, hi) of pids of equal width that hold every person of the warehouse."""
    return equal_ranges(*pid_span(con, "persons"), n)


def equal_ranges(lo: int, hi: int, n: int) -> list[tuple[int, int]]:
    """[lo, hi) cut into `n` consecutive ranges of equal width (some empty when n > hi - lo)."""
    hi = max(lo, hi)
    edges = [lo + (hi - lo) * b // n for b in range(n + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def bucket_of(person_key: str, n: int) -> int:
    """The reference, for one key."""
    return int(person_key[:HEX_DIGITS], 16) % n
