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

Where (`Lake`): a local folder, or a URL that `pyarrow.fs` opens (`s3://bucket/prefix`,
`hdfs://namenode:8020/path`, `gs://...`, `file:///...`; credentials as pyarrow takes them,
from the environment). In a local folder a load is written beside and renamed into place
and the manifest is replaced by a rename, and another bucket count is written beside and
renamed over the old lake. An object store has no rename: a load's files are uploaded in
place (the manifest does not count them until they are all there, and a sync deletes a
load's files that it does not count), the manifest is written with one PUT, and another
bucket count empties the lake and writes it again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from hcode.config import Config, load_config
from hcode.feeds import FEEDS
from hcode.store.buckets import bucket_count, bucket_sql, persons_in_warehouse

if TYPE_CHECKING:
    import pyarrow.fs as pafs

MANIFEST = "_hcode_lake.json"
MIN_BUCKETS = 8  # at least this many buckets in a new lake (Spark tasks to spread), when none is set


@dataclass(frozen=True)
class Lake:
    """Where a lake is: `url` as configured (a folder path or a URL; what Spark's executors are
    given), the `pyarrow.fs` filesystem it names, and the lake's `root` path within it."""

    url: str
    fs: pafs.FileSystem
    root: str

    @classmethod
    def at(cls, where: str | os.PathLike[str] | Lake) -> Lake:
        import pyarrow.fs as pafs  # (here: 0.09 s, which commands that keep no lake do not pay)

        if isinstance(where, Lake):
            return where
        text = os.fspath(where)
        if "://" in text:
            fs, root = pafs.FileSystem.from_uri(text)
            return cls(text, fs, root.rstrip("/"))
        folder = str(Path(text).absolute())
        return cls(folder, pafs.LocalFileSystem(), folder)

    @property
    def local(self) -> bool:
        """A folder of this machine's (or a mounted) filesystem: renames are atomic there."""
        import pyarrow.fs as pafs

        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self, *parts: str) -> bool:
        import pyarrow.fs as pafs

        return bool(self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound)

    def files(self, *parts: str) -> list[str]:
        """Every file below a folder (none when it does not exist), sorted."""
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.path(*parts), recursive=True, allow_not_found=True)
        return sorted(i.path for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.File)

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class Synced:
    """What a sync did: the lake, its bucket count, and the (feed, load) pairs written anew
    and removed (a load written again is in both)."""

    lake: Lake
    buckets: int
    written: tuple[tuple[str, int], ...] = ()
    removed: tuple[tuple[str, int], ...] = ()


def lake_path(db: Path, configured: str | None) -> Lake:
    """`[lake] path` of hcode.toml (a folder or a URL), else `<db>.lake` beside the warehouse."""
    return Lake.at(configured if configured else str(db) + ".lake")


def kept_lake(db: Path, config: Config) -> Lake | None:
    """The lake ingest, retract and purge keep in step for the warehouse at `db`: the
    configured `[lake] path`, or the default one once a Spark run made it; else None."""
    if config.lake:
        return Lake.at(config.lake)
    default = Path(str(db) + ".lake")  # (a local folder: no filesystem to open when there is none)
    return Lake.at(default) if (default / MANIFEST).exists() else None


def read_manifest(where: str | os.PathLike[str] | Lake) -> dict[str, Any] | None:
    """The manifest, or None when there is none (or only a truncated one: every load is then
    written again)."""
    lake = Lake.at(where)
    try:
        with lake.fs.open_input_stream(lake.path(MANIFEST)) as f:
            manifest: dict[str, Any] = json.loads(f.read().decode("utf-8"))
            return manifest
    except FileNotFoundError:
        return None
    except ValueError:  # (a write cut short on a filesystem without rename)
        return None


def lake_buckets(con: duckdb.DuckDBPyConnection, config: Config, lake: str | os.PathLike[str] | Lake) -> int:
    """The bucket count a lake is kept with: `[engine] buckets` / HCODE_BUCKETS when set, else
    the manifest's, else enough for the population (store/buckets.py), at least MIN_BUCKETS."""
    manifest = read_manifest(lake)
    if config.bucket_setting is not None or manifest is None:
        return config.bucket_setting or max(bucket_count(persons_in_warehouse(con), config), MIN_BUCKETS)
    return int(manifest["buckets"])


def sync_lake(con: duckdb.DuckDBPyConnection, where: str | os.PathLike[str] | Lake, buckets: int,
              feeds: list[str] | None = None) -> Synced:
    """Bring `feeds` (default: all) of the lake in step with the warehouse's committed rows.
    A lake of another bucket count is written anew (see the module docstring)."""
    lake = Lake.at(where)
    manifest = read_manifest(lake)
    if manifest is not None and int(manifest["buckets"]) != buckets:
        fresh = {"buckets": buckets, "loads": {}}
        if not lake.local:  # (no rename: emptied, then written again)
            lake.fs.delete_dir_contents(lake.root, missing_dir_ok=True)
            synced = _sync(con, lake, buckets, fresh, list(FEEDS))
            return Synced(lake, buckets, synced.written, synced.removed)
        folder = Path(lake.root)
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        synced = _sync(con, Lake.at(tmp), buckets, fresh, list(FEEDS))
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
        return Synced(lake, buckets, synced.written, synced.removed)
    return _sync(con, lake, buckets, manifest or {"buckets": buckets, "loads": {}}, feeds or list(FEEDS))


def _load_of(part: str) -> int | None:
    return int(part.split("=", 1)[1]) if part.startswith("load_id=") and part[8:].isdigit() else None


def _sync(con: duckdb.DuckDBPyConnection, lake: Lake, buckets: int, manifest: dict[str, Any], feeds: list[str]) -> Synced:
    lake.fs.create_dir(lake.root, recursive=True)
    written: list[tuple[str, int]] = []
    removed: list[tuple[str, int]] = []
    for name in feeds:
        f = FEEDS[name]
        rows = {int(load): int(n) for load, n in
                con.execute(f"SELECT load_id, count(*) FROM {f.table} GROUP BY load_id").fetchall()}
        held = {int(load): int(n) for load, n in manifest["loads"].get(name, {}).items()}
        # Each load's folders as found (one per bucket): finding them also finds the folders
        # of a load moved into place just before a crash, then retracted, which the manifest
        # never counted.
        on_disk: dict[int, set[str]] = {}
        for file in lake.files(f"feed={name}"):
            parts = file.split("/")
            at = next((i for i, part in enumerate(parts) if _load_of(part) is not None), None)
            if at is not None:
                on_disk.setdefault(_load_of(parts[at]) or 0, set()).add("/".join(parts[:at + 1]))
        stale = sorted(load for load in rows.keys() | held.keys() | on_disk.keys()
                       if load not in rows or rows[load] != held.get(load))
        if not stale:
            continue
        for load in stale:
            for folder in sorted(on_disk.get(load, ())):
                lake.fs.delete_dir(folder)
            if load in held:
                removed.append((name, load))
        again = [load for load in stale if load in rows]
        if again:
            _write_loads(con, lake, name, buckets, again)
            written += [(name, load) for load in again]
        manifest["loads"][name] = {str(load): n for load, n in sorted(rows.items())}
        _write_manifest(lake, manifest)
    if not lake.exists(MANIFEST):
        _write_manifest(lake, manifest)
    return Synced(lake, buckets, tuple(written), tuple(removed))


def _write_loads(con: duckdb.DuckDBPyConnection, lake: Lake, name: str, buckets: int, loads: list[int]) -> None:
    """Write `loads` of feed `name` into a scratch folder (in a local lake, inside it), then
    move each load's folders into the feed's, or upload them there (a crash leaves a scratch
    folder, cleared by the next write, or files the manifest does not count yet)."""
    f = FEEDS[name]
    scratch = Path(lake.root) / ".partial" / name if lake.local else Path(tempfile.mkdtemp(prefix="hcode-lake-"))
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
    import pyarrow.fs as pafs

    try:
        con.execute(f"COPY ({sql}) TO '{scratch}' (FORMAT parquet, PARTITION_BY ({partition}), COMPRESSION zstd)")
        for part in sorted(scratch.glob("bucket=*/load_id=*" if f.has_person else "load_id=*")):
            target = lake.path(f"feed={name}", part.relative_to(scratch).as_posix())
            if lake.local:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                part.rename(target)
            else:
                lake.fs.create_dir(target, recursive=True)  # (a no-op on an object store)
                pafs.copy_files(str(part), target, source_filesystem=pafs.LocalFileSystem(),
                                destination_filesystem=lake.fs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_manifest(lake: Lake, manifest: dict[str, Any]) -> None:
    data = json.dumps(manifest, sort_keys=True).encode("utf-8")
    if not lake.local:  # (one PUT replaces an object whole)
        with lake.fs.open_output_stream(lake.path(MANIFEST)) as out:
            out.write(data)
        return
    tmp = Path(lake.path(MANIFEST + ".partial"))
    tmp.write_bytes(data)
    os.replace(tmp, lake.path(MANIFEST))


def lake_files(where: str | os.PathLike[str] | Lake, feed: str, bucket: int, max_load_id: int) -> list[str]:
    """The files (paths within the lake's filesystem) of one bucket of a person feed (or of a
    global table, whole) holding loads up to `max_load_id`, in load order."""
    lake = Lake.at(where)
    folder = [f"feed={feed}", *([f"bucket={bucket}"] if FEEDS[feed].has_person else [])]
    found = []
    for file in lake.files(*folder):
        load = _load_of(file.split("/")[-2])
        if load is not None and load <= max_load_id:
            found.append((load, file))
    return [file for _, file in sorted(found)]


def keep_lake(con: duckdb.DuckDBPyConnection, db: Path, feeds: list[str] | None = None) -> Synced | None:
    """Sync the lake kept for the warehouse at `db` (`kept_lake`), if there is one."""
    config = load_config(db)
    lake = kept_lake(db, config)
    return None if lake is None else sync_lake(con, lake, lake_buckets(con, config, lake), feeds)
