"""The lake: a pseudonymised, person-bucketed Parquet copy of the warehouse's events, what
Spark reads (engine/spark.py) and what DuckDB, Polars or pandas users can read too.

Layout (hive-partitioned): `<lake>/feed=<name>/bucket=<b>/data_0.parquet` for person feeds,
`<lake>/feed=risk_areas/data_0.parquet` for the global table. Columns: `pid` (the
warehouse's surrogate, so that codes come back as warehouse rows without a join on keys),
`person_key`, and the feed's contract columns without the id number: no raw id ever.

It is regenerated from the warehouse, in one DuckDB read, before a Spark run (`export_lake`)
rather than kept beside it by every ingest: a lake written from the warehouse's committed
rows is consistent with it by construction (a crash between the two writes of an ingest
cannot leave them apart, a retraction or a purge reaches the lake at the next export), and it
is written to a temporary folder renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from hcode.engine.buckets import bucket_sql
from hcode.feeds import FEEDS


def export_lake(con: duckdb.DuckDBPyConnection, lake: Path, buckets: int, max_load_id: int,
                feeds: list[str] | None = None) -> Path:
    """Write the rows of loads up to `max_load_id` of `feeds` (default: all) to `lake`,
    replacing what was there; returns the lake's folder."""
    lake = Path(lake)
    lake.parent.mkdir(parents=True, exist_ok=True)
    tmp = lake.with_name(lake.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name in feeds or list(FEEDS):
        f = FEEDS[name]
        cols = ", ".join(f"f.{c.name}" for c in f.stored_columns)
        target = tmp / f"feed={name}"
        if f.has_person:
            sql = (f"SELECT f.pid, p.person_key, {cols}, {bucket_sql(buckets, 'p.person_key')} AS bucket "
                   f"FROM {f.table} f JOIN persons p USING (pid) WHERE f.load_id <= {int(max_load_id)}")
            con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet, PARTITION_BY (bucket), COMPRESSION zstd)")
        else:
            target.mkdir()
            con.execute(f"COPY (SELECT {cols} FROM {f.table} f WHERE f.load_id <= {int(max_load_id)}) TO "
                        f"'{target / 'data_0.parquet'}' (FORMAT parquet, COMPRESSION zstd)")
    old = lake.with_name(lake.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if lake.exists():
        lake.rename(old)
    tmp.rename(lake)
    shutil.rmtree(old, ignore_errors=True)
    return lake


def lake_path(db: Path, configured: str | None) -> Path:
    """`[lake] path` of hcode.toml, else `<db>.lake` beside the warehouse."""
    return Path(configured) if configured else Path(str(db) + ".lake")
