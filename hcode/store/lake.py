"""The lake: a pseudonymised, person-bucketed Parquet copy of the warehouse's events, kept
beside it by ingest, retract and purge; what Spark reads (engine/spark.py) and what DuckDB,
Polars or pandas users can read too.

Layout (hive-partitioned), one folder per load so that a load is written, replaced or
removed alone:

    <lake>/_hcode_lake.json                                     the manifest
    <lake>/feed=<person feed>/bucket=<b>/load_id=<L>/data_0.parquet
    <lake>/feed=<global table>/load_id=<L>/data_0.parquet       (risk areas: every bucket reads them)

Columns: `pid` (the warehouse's surrogate, so that codes come back as warehouse rows without
a join on keys), `person_key`, and the feed's contract columns without the id number: no raw
id ever. The manifest records the bucket count and, per feed, the rows of each load the lake
holds.

In step with the warehouse (`sync_lake`): the warehouse's rows per load are compared with the
manifest's, and a load that differs (new, retracted, or with rows a purge removed or a
retraction moved to it) has its folders deleted and written again from the warehouse's
committed rows, then the manifest is replaced (written beside, renamed). Ingest syncs a
file's feed right after the file's transaction commits, and the whole lake when a session
starts; retract and purge after theirs; a Spark run before it starts. A crash between a
commit and the manifest's rename leaves that load counted differently in the two, so the
next sync writes it again: the lake never holds a row the warehouse has not committed for
long, and a reader that synced first (every Spark run) reads exactly the warehouse. Spark
reads only the loads its run saw (`load_id` ≤ the run's last load). Rows are compared by
count: loads only ever gain rows by being written, and lose them by retraction or purge
(a hand edit of the warehouse is `hcode audit verify`'s to find, not the lake's).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from hcode.config import Config, load_config
from hcode.feeds import FEEDS
from hcode.store.buckets import bucket_count, bucket_sql, persons_in_warehouse

MANIFEST = "_hcode_lake.json"
MIN_BUCKETS = 8  # at least this many buckets in a new lake (Spark tasks to spread), when none is set


@dataclass(frozen=True)
class Synced:
    """What a sync did: the lake, its bucket count, and the (feed, load) pairs written anew
    and removed (a load written again is in both)."""

    lake: Path
    buckets: int
    written: tuple[tuple[str, int], ...] = ()
    removed: tuple[tuple[str, int], ...] = ()


def lake_path(db: Path, configured: str | None) -> Path:
    """`[lake] path` of hcode.toml, else `<db>.lake` beside the warehouse."""
    return Path(configured) if configured else Path(str(db) + ".lake")


def kept_lake(db: Path, config: Config) -> Path | None:
    """The lake ingest, retract and purge keep in step for the warehouse at `db`: the
    configured `[lake] path`, or the default one once a Spark run made it; else None."""
    path = lake_path(db, config.lake)
    return path if config.lake or (path / MANIFEST).exists() else None


def read_manifest(lake: Path) -> dict[str, Any] | None:
    path = Path(lake) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def lake_buckets(con: duckdb.DuckDBPyConnection, config: Config, lake: Path) -> int:
    """The bucket count a lake is kept with: `[engine] buckets` / HCODE_BUCKETS when set, else
    the manifest's, else enough for the population (store/buckets.py), at least MIN_BUCKETS."""
    manifest = read_manifest(lake)
    if config.bucket_setting is not None or manifest is None:
        return config.bucket_setting or max(bucket_count(persons_in_warehouse(con), config), MIN_BUCKETS)
    return int(manifest["buckets"])


def sync_lake(con: duckdb.DuckDBPyConnection, lake: Path, buckets: int, feeds: list[str] | None = None) -> Synced:
    """Bring `feeds` (default: all) of `lake` in step with the warehouse's committed rows.
    A lake of another bucket count is written anew beside and renamed into place."""
    lake = Path(lake)
    manifest = read_manifest(lake)
    if manifest is not None and int(manifest["buckets"]) != buckets:
        tmp = lake.with_name(lake.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        synced = _sync(con, tmp, buckets, {"buckets": buckets, "loads": {}}, list(FEEDS))
        old = lake.with_name(lake.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        lake.rename(old)
        tmp.rename(lake)
        shutil.rmtree(old, ignore_errors=True)
        return Synced(lake, buckets, synced.written, synced.removed)
    return _sync(con, lake, buckets, manifest or {"buckets": buckets, "loads": {}}, feeds or list(FEEDS))


def _sync(con: duckdb.DuckDBPyConnection, lake: Path, buckets: int, manifest: dict[str, Any], feeds: list[str]) -> Synced:
    lake.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, int]] = []
    removed: list[tuple[str, int]] = []
    for name in feeds:
        f = FEEDS[name]
        rows = {int(load): int(n) for load, n in
                con.execute(f"SELECT load_id, count(*) FROM {f.table} GROUP BY load_id").fetchall()}
        held = {int(load): int(n) for load, n in manifest["loads"].get(name, {}).items()}
        folder = lake / f"feed={name}"
        parts = "bucket=*/load_id=" if f.has_person else "load_id="
        # (a load's folders on disk that the warehouse no longer has: moved into place just
        # before a crash, then retracted; the manifest never counted them)
        on_disk = {int(p.name.split("=", 1)[1]) for p in folder.glob(parts + "*")}
        stale = sorted(load for load in rows.keys() | held.keys() | on_disk
                       if load not in rows or rows[load] != held.get(load))
        if not stale:
            continue
        for load in stale:
            for part in folder.glob(f"{parts}{load}"):
                shutil.rmtree(part)
            if load in held:
                removed.append((name, load))
        again = [load for load in stale if load in rows]
        if again:
            _write_loads(con, lake, name, buckets, again)
            written += [(name, load) for load in again]
        manifest["loads"][name] = {str(load): n for load, n in sorted(rows.items())}
        _write_manifest(lake, manifest)
    if not (lake / MANIFEST).exists():
        _write_manifest(lake, manifest)
    return Synced(lake, buckets, tuple(written), tuple(removed))


def _write_loads(con: duckdb.DuckDBPyConnection, lake: Path, name: str, buckets: int, loads: list[int]) -> None:
    """Write `loads` of feed `name` into a scratch folder, then move each load's folders into
    the feed's (a crash leaves a scratch folder, cleared by the next write, never half a load
    where a reader looks: the manifest does not count it yet)."""
    f = FEEDS[name]
    scratch = lake / ".partial" / name
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    cols = ", ".join(f"f.{c.name}" for c in f.stored_columns)
    where = f"f.load_id IN ({', '.join(str(int(load)) for load in loads)})"
    if f.has_person:
        sql = (f"SELECT f.pid, p.person_key, {cols}, {bucket_sql(buckets, 'p.person_key')} AS bucket, f.load_id "
               f"FROM {f.table} f JOIN persons p USING (pid) WHERE {where}")
        partition = "bucket, load_id"
    else:
        sql, partition = f"SELECT {cols}, f.load_id FROM {f.table} f WHERE {where}", "load_id"
    con.execute(f"COPY ({sql}) TO '{scratch}' (FORMAT parquet, PARTITION_BY ({partition}), COMPRESSION zstd)")
    folder = lake / f"feed={name}"
    for part in sorted(scratch.glob("bucket=*/load_id=*" if f.has_person else "load_id=*")):
        target = folder / part.relative_to(scratch)
        target.parent.mkdir(parents=True, exist_ok=True)
        part.rename(target)
    shutil.rmtree(scratch, ignore_errors=True)


def _write_manifest(lake: Path, manifest: dict[str, Any]) -> None:
    tmp = lake / (MANIFEST + ".partial")
    tmp.write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
    os.replace(tmp, lake / MANIFEST)


def lake_files(lake: Path, feed: str, bucket: int, max_load_id: int) -> list[Path]:
    """The files of one bucket of a person feed (or of a global table, whole) holding loads up
    to `max_load_id`, in load order."""
    folder = Path(lake) / f"feed={feed}"
    if FEEDS[feed].has_person:
        folder = folder / f"bucket={bucket}"
    parts = [(int(p.name.split("=", 1)[1]), p) for p in folder.glob("load_id=*")]
    return [file for load, part in sorted(parts) if load <= max_load_id for file in sorted(part.glob("*.parquet"))]


def keep_lake(con: duckdb.DuckDBPyConnection, db: Path, feeds: list[str] | None = None) -> Synced | None:
    """Sync the lake kept for the warehouse at `db` (`kept_lake`), if there is one."""
    config = load_config(db)
    lake = kept_lake(db, config)
    return None if lake is None else sync_lake(con, lake, lake_buckets(con, config, lake), feeds)
