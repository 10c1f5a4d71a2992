"""The lake kept by ingest, retract and purge (hcode.store.lake): after every step it holds
exactly the warehouse's committed rows, pseudonymised and person-bucketed, one folder per
load; a crash between the warehouse's commit and the lake's is repaired by the next sync;
without a configured lake nothing is written."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from conftest import NOW
from test_audit_ops import _purge_warehouse

from hcode.feeds import FEEDS
from hcode.ingest import load
from hcode.ops.purge import purge
from hcode.ops.retract import retract
from hcode.paths import sample_data_dir
from hcode.store import lake as lake_mod
from hcode.store.buckets import bucket_of
from hcode.store.lake import MANIFEST, Lake, lake_files, read_manifest, sync_lake
from hcode.store.warehouse import Warehouse

FIRST = ("registrations.csv", "cases.csv", "contacts.csv", "risk_areas.csv")


def _night(tmp: Path, names: tuple[str, ...]) -> Path:
    out = tmp / "night"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for name in names:
        shutil.copy(sample_data_dir() / name, out / name)
    return out


def _kept(db: Path, buckets: int = 3) -> Path:
    (db.parent / "hcode.toml").write_text(f'[lake]\npath = "{db.parent / "lake"}"\n[engine]\nbuckets = {buckets}\n')
    return db.parent / "lake"


def _as_stored(wh: Warehouse, feed: str) -> pl.DataFrame:
    f = FEEDS[feed]
    cols = ", ".join(f"f.{c.name}" for c in f.stored_columns)
    sql = (f"SELECT f.pid, p.person_key, {cols}, f.load_id FROM {f.table} f JOIN persons p USING (pid)"
           if f.has_person else f"SELECT {cols}, f.load_id FROM {f.table} f")
    return pl.DataFrame(wh.con.sql(sql).arrow())


def _in_lake(where: Path | Lake, feed: str, like: pl.DataFrame) -> pl.DataFrame:
    lake = Lake.at(where)
    files = [f for f in lake.files(f"feed={feed}") if f.endswith(".parquet")]
    if not files:
        return like.clear()
    got = pl.DataFrame(ds.dataset(files, filesystem=lake.fs, format="parquet", partitioning="hive",
                                  partition_base_dir=lake.path(f"feed={feed}")).to_table())
    if FEEDS[feed].has_person:  # every row sits in its person's bucket
        assert [bucket_of(k, read_manifest(lake)["buckets"]) for k in got["person_key"]] == got["bucket"].to_list()
    return got.select([pl.col(c).cast(t) for c, t in like.schema.items()])


def assert_lake_is_warehouse(wh: Warehouse, lake: Path | Lake) -> None:
    manifest = read_manifest(lake)
    assert manifest is not None
    for feed in FEEDS:
        stored = _as_stored(wh, feed)
        got = _in_lake(lake, feed, stored)
        assert "id_number" not in got.columns
        assert got.sort(got.columns).equals(stored.sort(stored.columns)), feed
        per_load = stored.group_by("load_id").len()
        assert manifest["loads"].get(feed, {}) == {str(k): n for k, n in per_load.iter_rows()}


def test_ingest_retract_and_purge_keep_the_lake_in_step(db: Path, tmp_path: Path) -> None:
    lake = _kept(db)
    with Warehouse.open(db) as wh:
        first = load.ingest_paths(wh, [_night(tmp_path, FIRST)], now=NOW)
        assert_lake_is_warehouse(wh, lake)
        assert read_manifest(lake)["buckets"] == 3
        # a later file adds its load's folders and touches no other
        before = {p: p.stat().st_mtime_ns for p in lake.rglob("*.parquet")}
        second = load.ingest_paths(wh, [_night(tmp_path, ("nat_results.csv",))], now=NOW)
        assert_lake_is_warehouse(wh, lake)
        assert all(p.stat().st_mtime_ns == t for p, t in before.items())
        nat = second.files[0].load_id
        assert {p.parent.name for p in (lake / "feed=nat_results").rglob("*.parquet")} == {f"load_id={nat}"}
        # a retracted load leaves the lake
        cases = next(r.load_id for r in first.files if r.feed == "cases")
        retract(wh, cases, "sent twice by mistake", "op")
        assert not list((lake / "feed=cases").rglob(f"load_id={cases}"))
        assert_lake_is_warehouse(wh, lake)


def test_purge_reaches_the_lake(db: Path, tmp_path: Path) -> None:
    lake = _kept(db, buckets=2)
    with Warehouse.open(db) as wh:
        _purge_warehouse(wh, tmp_path)
        assert_lake_is_warehouse(wh, lake)
        res = purge(wh, dt.date(2022, 6, 1), "op")
        assert res.removed["nat_results"] == 1
        assert_lake_is_warehouse(wh, lake)


def test_a_crash_between_the_two_commits_is_repaired_by_the_next_sync(db: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    lake = _kept(db)
    with Warehouse.open(db) as wh:
        load.ingest_paths(wh, [_night(tmp_path, ("registrations.csv",))], now=NOW)

        def killed(*args: object) -> None:
            raise KeyboardInterrupt  # the process dies after the warehouse committed
        monkeypatch.setattr(lake_mod, "_write_loads", killed)
        with pytest.raises(KeyboardInterrupt):
            load.ingest_paths(wh, [_night(tmp_path, ("cases.csv",))], now=NOW)
        monkeypatch.undo()
        assert wh.con.execute("SELECT count(*) FROM feed_cases").fetchone()[0] > 0  # committed
        assert "cases" not in read_manifest(lake)["loads"]
        # half a load moved into place before a crash, not counted by the manifest
        cases = wh.con.execute("SELECT load_id FROM loads WHERE feed = 'cases'").fetchone()[0]
        stray = lake / "feed=cases" / "bucket=0" / f"load_id={cases}"
        stray.mkdir(parents=True)
        (stray / "data_0.parquet").write_bytes(b"left by a crash")
        # and the folder of a load the warehouse does not have (retracted after such a crash)
        ghost = lake / "feed=contacts" / "bucket=1" / "load_id=99"
        ghost.mkdir(parents=True)
        (ghost / "data_0.parquet").write_bytes(b"left by a crash")
        load.ingest_paths(wh, [], now=NOW)  # the next session starts with a sync
        assert not ghost.exists()
        assert_lake_is_warehouse(wh, lake)


def test_another_bucket_count_rewrites_the_lake_with_the_same_rows(db: Path, tmp_path: Path) -> None:
    lake = _kept(db)
    with Warehouse.open(db) as wh:
        load.ingest_paths(wh, [_night(tmp_path, FIRST)], now=NOW)
        synced = sync_lake(wh.con, lake, 5)
        assert synced.buckets == read_manifest(lake)["buckets"] == 5
        assert {p.name for p in (lake / "feed=registrations").iterdir()} == {f"bucket={b}" for b in range(5)}
        assert_lake_is_warehouse(wh, lake)
        assert sync_lake(wh.con, lake, 5).written == ()  # in step: nothing to do
        # what a Spark task reads: its bucket's loads up to the run's last
        [(regs_load,)] = wh.con.execute("SELECT load_id FROM loads WHERE feed = 'registrations'").fetchall()
        regs = lake_files(lake, "registrations", 0, max_load_id=regs_load)
        assert regs and all(Path(p).parent.name == f"load_id={regs_load}" for p in regs)
        assert lake_files(lake, "registrations", 0, max_load_id=regs_load - 1) == []


def test_no_lake_is_written_unless_one_is_kept(db: Path, tmp_path: Path) -> None:
    with Warehouse.open(db) as wh:
        load.ingest_paths(wh, [_night(tmp_path, FIRST)], now=NOW)
    assert not Path(str(db) + ".lake").exists() and not (tmp_path / "lake").exists()
    assert not any(p.name == MANIFEST for p in tmp_path.rglob("*"))


def test_a_lake_at_a_url_is_kept_through_its_filesystem(db: Path, tmp_path: Path) -> None:
    """An object store (pyarrow's in-memory filesystem: no folders, no rename) holds exactly
    the warehouse after loads, a retraction, a truncated manifest, a crash's stray files and
    another bucket count; and a Spark task's read of a bucket is the local lake's."""
    from hcode.engine.spark import bucket_frames

    lake = Lake("mock://lake", pafs._MockFileSystem(), "lake")
    assert not lake.local
    with Warehouse.open(db) as wh:
        load.ingest_paths(wh, [_night(tmp_path, FIRST)], now=NOW)
        assert sync_lake(wh.con, lake, 3).written
        assert_lake_is_warehouse(wh, lake)
        assert sync_lake(wh.con, lake, 3).written == ()
        cases = wh.con.execute("SELECT load_id FROM loads WHERE feed = 'cases'").fetchone()[0]
        retract(wh, cases, reason="sent twice", operator="tester")
        synced = sync_lake(wh.con, lake, 3)
        assert ("cases", cases) in synced.removed and not lake.files("feed=cases")
        assert_lake_is_warehouse(wh, lake)

        local = sync_lake(wh.con, tmp_path / "local-lake", 3).lake
        regs = wh.con.execute("SELECT max(load_id) FROM loads").fetchone()[0]
        for b in range(3):
            remote, here = bucket_frames(lake, ["registrations", "risk_areas"], b, regs), \
                bucket_frames(local, ["registrations", "risk_areas"], b, regs)
            assert remote.keys() == here.keys()
            for feed in here:
                assert remote[feed].collect().equals(here[feed].collect()), (feed, b)

        with lake.fs.open_output_stream(lake.path(MANIFEST)) as out:
            out.write(b'{"buckets": 3, "lo')  # a write cut short
        lake.fs.create_dir(lake.path("feed=contacts", "bucket=1", "load_id=99"))
        with lake.fs.open_output_stream(lake.path("feed=contacts", "bucket=1", "load_id=99", "data_0.parquet")) as out:
            out.write(b"left by a crash")
        assert read_manifest(lake) is None
        sync_lake(wh.con, lake, 3)
        assert not any("load_id=99" in f for f in lake.files())
        assert_lake_is_warehouse(wh, lake)

        assert sync_lake(wh.con, lake, 5).buckets == read_manifest(lake)["buckets"] == 5
        assert_lake_is_warehouse(wh, lake)


def test_lake_path_takes_a_folder_or_a_url(tmp_path: Path) -> None:
    from hcode.store.lake import lake_path

    assert lake_path(tmp_path / "w.duckdb", None).root == str(tmp_path / "w.duckdb.lake")
    url = Lake.at(f"file://{tmp_path}/lake")
    assert url.local and url.root == f"{tmp_path}/lake" and str(url) == f"file://{tmp_path}/lake"
    assert Lake.at(url) is url
    assert not Lake.at("mock:///lake").local
