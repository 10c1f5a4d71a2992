"""Person buckets: a person's bucket depends on their key alone, and nothing hcode computes,
stores or writes depends on the bucket count (1, 3 and 16 buckets on the sample night)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcode.config import Config, ConfigError, GuardConfig, load_config, parse_size
from hcode.diff.changes import diff
from hcode.diff.sides import load_side
from hcode.ingest.load import ingest
from hcode.ops import guard
from hcode.ops.nightly import run_nightly
from hcode.paths import sample_data_dir
from hcode.report.files import write_diff
from hcode.rules.load import find_ruleset
from hcode.runs import bucketed
from hcode.runs import store as runs
from hcode.store import audit, warehouse
from hcode.store.buckets import bucket_count, bucket_expr, bucket_of, bucket_sql
from hcode.store.warehouse import Warehouse

PLANTED = json.loads((sample_data_dir() / "planted.json").read_text(encoding="utf-8"))
AS_OF = dt.date.fromisoformat(PLANTED["as_of"])
LOADED_AT = dt.datetime.fromisoformat(PLANTED["loaded_at"])
COUNTS = (1, 3, 16)
KEY = "bucket-test-key-of-at-least-32-characters"

keys = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@settings(deadline=None, max_examples=50)  # each example runs a DuckDB query
@given(st.lists(keys, min_size=1, max_size=50), st.integers(1, 1000))
def test_the_bucket_is_the_same_in_python_duckdb_and_polars(person_keys, n):
    expected = [bucket_of(k, n) for k in person_keys]
    assert all(0 <= b < n for b in expected)
    frame = pl.DataFrame({"person_key": person_keys})
    assert frame.select(bucket_expr(n))["person_key"].to_list() == expected
    got = duckdb.sql(f"SELECT {bucket_sql(n)} AS b FROM frame").fetchall()
    assert [b for (b,) in got] == expected


def test_bucket_count_is_the_setting_or_what_the_memory_needs(monkeypatch):
    monkeypatch.delenv("HCODE_BUCKETS", raising=False)
    monkeypatch.delenv("HCODE_MEMORY", raising=False)
    small = Config(memory=parse_size("4GB", "t"))
    assert bucket_count(1000, small) == 1
    big = bucket_count(100_000_000, small)
    assert big > 1 and bucket_count(200_000_000, small) >= 2 * big - 1
    assert bucket_count(100_000_000, Config(memory=parse_size("8GB", "t"))) < big
    assert bucket_count(100_000_000, Config(buckets=5, memory=small.memory)) == 5
    monkeypatch.setenv("HCODE_BUCKETS", "7")
    assert bucket_count(10, small) == 7
    monkeypatch.setenv("HCODE_MEMORY", "2GB")
    assert Config().memory_limit == 2 * 10**9


def test_the_memory_limit_sets_ingest_batches(db, tmp_path, monkeypatch):
    from hcode.ingest import load as load_mod

    for limit, rows in (("1GiB", 238_609), ("12GiB", 2_863_311), ("100MB", 100_000), ("64GiB", 5_000_000)):
        monkeypatch.setenv("HCODE_MEMORY", limit)
        assert Config().ingest_batch_rows == rows
    seen = []
    real = load_mod.read_export

    def spy(*args, **kwargs):
        seen.append(kwargs["batch_rows"])
        return real(*args, **kwargs)

    monkeypatch.setattr(load_mod, "read_export", spy)
    monkeypatch.setenv("HCODE_MEMORY", "1GiB")
    with Warehouse.open(db) as wh:
        ingest(wh, [sample_data_dir() / "cases.csv"], now=LOADED_AT)
    assert seen == [238_609]


def test_engine_and_memory_settings_are_read_and_checked(tmp_path, monkeypatch):
    monkeypatch.delenv("HCODE_BUCKETS", raising=False)
    monkeypatch.delenv("HCODE_MEMORY", raising=False)
    monkeypatch.delenv("HCODE_DUCKDB_MEMORY", raising=False)
    toml = tmp_path / "hcode.toml"
    toml.write_text('[engine]\nbuckets = 12\n[memory]\nlimit = "4GiB"\n', encoding="utf-8")
    cfg = load_config(path=toml)
    assert (cfg.bucket_setting, cfg.memory_limit) == (12, 4 * 2**30)
    for bad in ('[engine]\nbuckets = 0\n', '[memory]\nlimit = "lots"\n', '[engine]\nbucket = 3\n'):
        toml.write_text(bad, encoding="utf-8")
        with pytest.raises(ConfigError, match="hcode.toml"):
            load_config(path=toml)
    # the memory limit sets DuckDB's buffer pool (half of it)
    toml.write_text('[memory]\nlimit = "2GiB"\n', encoding="utf-8")
    monkeypatch.setenv("HCODE_KEY", KEY)
    warehouse.init(tmp_path / "w.duckdb")
    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        limit = wh.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit.replace(" ", "") in ("1.0GiB", "1024.0MiB", "1GiB")
    monkeypatch.setenv("HCODE_BUCKETS", "x")
    with pytest.raises(ConfigError, match="HCODE_BUCKETS"):
        bucket_count(10, Config())


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    db = tmp_path_factory.mktemp("buckets") / "w.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HCODE_KEY", KEY)
        warehouse.init(db)
        with Warehouse.open(db) as wh:
            ingest(wh, [sample_data_dir()], now=LOADED_AT)
    return db


def _copy(loaded: Path, tmp: Path) -> Path:
    db = tmp / "w.duckdb"
    shutil.copy(loaded, db)
    return db


@pytest.fixture(scope="module")
def per_count(loaded, tmp_path_factory):
    """Per bucket count: two stored runs (two rulesets), --out files, the runs' codes, digests
    and the diff report between them."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HCODE_KEY", KEY)
        for n in COUNTS:
            tmp = tmp_path_factory.mktemp(f"n{n}")
            with Warehouse.open(_copy(loaded, tmp)) as wh:
                ids, totals = [], []
                for name in ("shanghai@2022.05.23", "shanghai@2022.06.28"):
                    t, run_id = bucketed.evaluate_run(wh, find_ruleset(name), AS_OF, operator="t", buckets=n,
                                                      out=tmp / f"{name}.csv")
                    ids.append(run_id)
                    totals.append(t)
                bucketed.evaluate_run(wh, find_ruleset("zhejiang@2022.03.01"), AS_OF, store=False, buckets=n,
                                      out=tmp / "dry.parquet", lang="zh")
                digests = [json.loads(d)["content"] for (d,) in wh.con.execute(
                    "SELECT detail FROM audit WHERE action = 'run' ORDER BY seq").fetchall()]
                codes = [runs.run_codes(wh.con, i) for i in ids]
                report = write_diff(diff(load_side(wh, ids[0]), load_side(wh, ids[1])), tmp / "report", "en")
                assert audit.verify(wh.con).ok
                verdicts = _guard_verdicts(wh, ids, totals[1], n)
            out[n] = {"tmp": tmp, "totals": totals, "digests": digests, "codes": codes, "report": report,
                      "verdicts": verdicts}
    return out


def _guard_verdicts(wh: Warehouse, ids: list[int], totals: runs.Totals, n: int) -> list[dict[str, object]]:
    """The guard's verdicts on the second ruleset's evaluation (its buckets counted by a
    `guard.Tally`, as the nightly batch does) against the first run published, with a strict
    and the default guard, and the stored run's verdict (`guard.check_run`)."""
    wh.con.execute("UPDATE runs SET published = true WHERE run_id = ?", [ids[0]])
    strict = GuardConfig(max_changed=0.0, max_color_change=0.0, min_persons=1)
    rs = find_ruleset("shanghai@2022.06.28")
    evaluations, _, _ = bucketed.evaluate_buckets(wh, rs, AS_OF, n)
    tally = guard.Tally(wh.con, rs.province, AS_OF, exclude_run=ids[1])
    for ev in evaluations:
        tally.add(wh.con, ev)
    return [tally.verdict(wh.con, totals.persons, totals.colors, cfg).as_json() for cfg in (strict, None)] + \
        [guard.check_run(wh.con, ids[1], strict).as_json()]


def test_stored_runs_and_their_digests_do_not_depend_on_the_bucket_count(per_count):
    one = per_count[1]
    assert one["totals"][0].persons > 1000
    for n in COUNTS[1:]:
        got = per_count[n]
        assert got["totals"][0].buckets == n
        assert [(t.persons, t.colors, t.overrides_applied, t.overrides_not_applied) for t in got["totals"]] == \
            [(t.persons, t.colors, t.overrides_applied, t.overrides_not_applied) for t in one["totals"]]
        # every digest but the `runs` row's (it holds the moment the run was computed)
        assert [{t: d for t, d in c.items() if t != "runs"} for c in got["digests"]] == \
            [{t: d for t, d in c.items() if t != "runs"} for c in one["digests"]]
        for a, b in zip(got["codes"], one["codes"], strict=True):
            assert a.equals(b)


def test_the_guard_verdict_does_not_depend_on_the_bucket_count(per_count):
    strict, default, stored = per_count[1]["verdicts"]
    assert not strict["ok"] and strict["figures"]["changed_persons"] > 0  # the two rulesets differ
    assert strict["figures"]["rules_moved"] and any("rules that moved most" in r for r in strict["reasons"])
    assert strict == stored  # bucket by bucket = the whole stored run
    assert default["figures"]["changed_persons"] == strict["figures"]["changed_persons"]
    for n in COUNTS[1:]:
        assert per_count[n]["verdicts"] == per_count[1]["verdicts"]


@pytest.mark.parametrize("seed", range(6))
def test_the_guard_reads_a_buckets_span_of_the_previous_run_and_counts_the_same(per_count, seed, monkeypatch):
    """`RunCodes.of_run(among=...)` reads the previous run between the bucket's least and
    greatest pid (and, for scattered pids, those only): the persons changed are those counted
    with the previous run cut to the bucket's persons exactly, for a range of pids (an
    embedded bucket) as for a scattered set (a Spark bucket's)."""
    import random

    monkeypatch.setenv("HCODE_KEY", KEY)
    with Warehouse.open(per_count[1]["tmp"] / "w.duckdb", read_only=True) as wh:
        whole = [guard.RunCodes.of_run(wh.con, i) for i in (1, 2)]
        pids = whole[1].pids.to_list()
        rng = random.Random(seed)
        lo = rng.randrange(len(pids))
        ranged = pids[lo:lo + rng.randrange(1, len(pids) // 2)]
        scattered = sorted(rng.sample(pids, rng.randrange(1, len(pids) // 4)))
        for among in (pl.Series(ranged, dtype=pl.Int32), pl.Series(scattered, dtype=pl.Int32)):

            def cut(codes: guard.RunCodes, among: pl.Series = among) -> guard.RunCodes:
                return guard.RunCodes(codes.pids.filter(codes.pids.is_in(among.implode())),
                                      codes.details.filter(pl.col("pid").is_in(among.implode())),
                                      codes.default_color, codes.default_rule)

            after = cut(whole[1])
            want = guard.changed_persons(cut(whole[0]), after)
            assert guard.changed_persons(guard.RunCodes.of_run(wh.con, 1, among=among), after) == want
            defaults = guard.RunCodes(after.pids, after.details, "red", "R")  # every other person changed too
            assert guard.changed_persons(guard.RunCodes.of_run(wh.con, 1, among=among), defaults) == \
                guard.changed_persons(cut(whole[0]), defaults) > 0
        assert guard.RunCodes.of_run(wh.con, 1, among=pl.Series([], dtype=pl.Int32)).pids.len() == 0


def test_codes_files_do_not_depend_on_the_bucket_count(per_count):
    base = per_count[1]["tmp"]
    for n in COUNTS[1:]:
        tmp = per_count[n]["tmp"]
        for name in ("shanghai@2022.05.23.csv", "shanghai@2022.06.28.csv"):
            assert (tmp / name).read_bytes() == (base / name).read_bytes()
        got, want = pl.read_parquet(tmp / "dry.parquet"), pl.read_parquet(base / "dry.parquet")
        assert want.height > 1000 and got.equals(want)
        assert want.columns == ["person_key", "color", "rule", "matched_rules", "explanation"]


def test_diff_reports_do_not_depend_on_the_bucket_count(per_count):
    base = per_count[1]["report"]
    assert base
    for n in COUNTS[1:]:
        report = per_count[n]["report"]
        assert sorted(p.name for p in report.values()) == sorted(p.name for p in base.values())
        for k, path in base.items():
            assert report[k].read_bytes() == path.read_bytes(), k


def test_a_diff_computed_bucket_by_bucket_is_the_whole_diff(per_count, tmp_path, monkeypatch):
    """diff_runs with 3 and 16 buckets writes exactly the files of one diff of the whole runs,
    between two runs and for a first night (no run before: everyone newly registered), also
    when the files are written in many batches (the bucketed diff's listed rows are read back
    from its files in DuckDB's order, the whole diff's sliced from memory)."""
    from hcode.diff.buckets import diff_runs
    from hcode.ops.nightly import _empty_side

    monkeypatch.setenv("HCODE_KEY", KEY)
    monkeypatch.setattr("hcode.diff.listed.BATCH_ROWS", 7)
    with Warehouse.open(per_count[1]["tmp"] / "w.duckdb", read_only=True) as wh:
        run = runs.get_run(wh.con, 2)

        def empty():
            return _empty_side(runs.stored_ruleset(wh.con, run), run.as_of)

        # (the bucketed diff reads its sides without the codes' explanations: the same otherwise)
        whole, lean = load_side(wh, 2).codes, load_side(wh, 2, explanations=False).codes
        assert "explanation" not in lean.columns and lean.equals(whole.drop("explanation"))
        for name, before, base in (("runs", 1, diff(load_side(wh, 1), load_side(wh, 2))),
                                   ("first", None, diff(empty(), load_side(wh, 2)))):
            assert base.n_changes > 2 * 7 and base.rules["started"].sum() > 0
            want = write_diff(base, tmp_path / f"{name}-whole", "en")
            for n in (1, 3, 16):
                got = write_diff(diff_runs(wh, before, 2, "en", buckets=n, empty_before=empty),
                                 tmp_path / f"{name}-{n}", "en")
                for k, path in want.items():
                    assert got[k].read_bytes() == path.read_bytes(), (name, n, k)


def test_two_runs_compared_by_pid_give_the_diff_of_their_whole_codes(per_count, monkeypatch):
    """Sides by pid (read without keys, evidence or overrides, those fetched for the listed
    persons) give the very diff of the sides read whole, in either direction and per range."""
    monkeypatch.setenv("HCODE_KEY", KEY)
    with Warehouse.open(per_count[1]["tmp"] / "w.duckdb", read_only=True) as wh:
        for b, a in ((1, 2), (2, 1)):
            whole = diff(load_side(wh, b), load_side(wh, a))
            by_pid = diff(load_side(wh, b, by_pid=True), load_side(wh, a, by_pid=True))
            assert by_pid.matrix == whole.matrix and by_pid.persons_compared == whole.persons_compared
            assert by_pid.rules.equals(whole.rules) and by_pid.districts.equals(whole.districts)
            for name in ("changes", "rule_changes"):
                got, want = getattr(by_pid, name).frame(), getattr(whole, name).frame()
                assert want.height > 0 and got.equals(want), name
        # what a side by pid fetches, aligned with the pids asked (reversed, with one absent)
        codes = runs.run_codes(wh.con, 2, ordered=False).sort("pid")
        parts = [codes.filter(pl.col("override").is_not_null())["pid"].head(20),
                 codes.filter(pl.col("evidence").list.len() > 0)["pid"].head(20),
                 codes.filter(pl.col("rule").is_null())["pid"].head(5)]
        assert all(part.len() > 0 for part in parts)
        asked = pl.concat(parts).reverse()
        details = load_side(wh, 2, by_pid=True).details
        want = pl.DataFrame({"pid": asked}).join(codes, on="pid", how="left", maintain_order="left")
        assert details.keys(asked).equals(want["person_key"], check_names=False)
        assert details.evidence(asked).equals(want.select("evidence", "override"))
        absent = details.evidence(pl.Series([asked[0], 10**9]))
        assert absent["override"][1] is None and absent["evidence"].to_list()[1] == []
        none = pl.Series([], dtype=pl.Int32)
        assert details.keys(none).len() == 0 and details.evidence(none).columns == ["evidence", "override"]
        lo, hi = runs.pid_ranges(wh.con, [1, 2], 3)[1]
        side = load_side(wh, 2, (lo, hi), by_pid=True)
        assert side.codes["pid"].is_between(lo, hi, closed="left").all() and side.codes.height > 100
        with pytest.raises(ValueError, match="by pid"):
            diff(load_side(wh, 1), side)


def test_runs_of_two_populations_compared_by_pid_give_the_whole_diff(per_count, tmp_path, monkeypatch):
    """Persons in one run only (registered between the two as-of dates) are listed alike by
    pid and by key, as appeared one way and gone the other, bucket by bucket too."""
    from hcode.diff.buckets import diff_runs

    monkeypatch.setenv("HCODE_KEY", KEY)
    db = _copy(per_count[1]["tmp"] / "w.duckdb", tmp_path)
    with Warehouse.open(db) as wh:
        _, early = bucketed.evaluate_run(wh, find_ruleset("shanghai@2022.05.23"), dt.date(2022, 6, 1), operator="t")
        for b, a in ((early, 1), (1, early)):
            whole = diff(load_side(wh, b), load_side(wh, a))
            assert whole.only_before + whole.only_after > 10
            by_pid = diff(load_side(wh, b, by_pid=True), load_side(wh, a, by_pid=True))
            assert (by_pid.matrix, by_pid.only_before, by_pid.only_after) == \
                (whole.matrix, whole.only_before, whole.only_after)
            assert by_pid.changes.frame().equals(whole.changes.frame())
            assert by_pid.rule_changes.frame().equals(whole.rule_changes.frame())
            want = write_diff(whole, tmp_path / f"whole-{b}-{a}", "en")
            got = write_diff(diff_runs(wh, b, a, "en", buckets=3), tmp_path / f"by-pid-{b}-{a}", "en")
            for k, path in want.items():
                assert got[k].read_bytes() == path.read_bytes(), k


def test_a_bucket_file_that_cannot_be_written_fails_the_diff_and_stops_its_thread(per_count, monkeypatch):
    """A bucket's listed rows are written on a thread while the next bucket is compared: a
    write that fails (a full disk) fails the diff, and the thread ends with it."""
    import errno
    import threading

    from hcode.diff import buckets

    monkeypatch.setenv("HCODE_KEY", KEY)
    real, calls = buckets.write_arrow_part, []

    def full_disk_at_the_third(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(buckets, "write_arrow_part", full_disk_at_the_third)
    threads = threading.active_count()
    with Warehouse.open(per_count[1]["tmp"] / "w.duckdb", read_only=True) as wh, \
            pytest.raises(OSError, match="No space left"):
        buckets.diff_runs(wh, 1, 2, "en", buckets=3)
    assert len(calls) >= 3 and threading.active_count() == threads


@pytest.mark.parametrize("n", [2, 3, 16])
def test_an_evaluation_buckets_person_feeds_are_its_pid_range(per_count, n, monkeypatch):
    """Each evaluation bucket reads exactly the person-feed rows of its range of pids, the
    ranges cover every person of the warehouse once, and feeds without persons are read
    whole by every bucket."""
    from hcode.engine.evaluate import cutoff_of
    from hcode.engine.sources import WarehouseSource
    from hcode.store.buckets import person_ranges

    monkeypatch.setenv("HCODE_KEY", KEY)
    with Warehouse.open(per_count[1]["tmp"] / "w.duckdb", read_only=True) as wh:
        cutoff = cutoff_of(AS_OF)
        whole = WarehouseSource(wh.con, cutoff, 10**6)
        persons = wh.con.execute("SELECT count(*), min(pid), max(pid) FROM persons").fetchall()[0]
        ranges = person_ranges(wh.con, n)
        assert len(ranges) == n and ranges[0][0] == persons[1] and ranges[-1][1] == persons[2] + 1
        for feed in ("nat_results", "registrations"):
            want = whole.rows(feed).collect()
            parts = [WarehouseSource(wh.con, cutoff, 10**6, pid_range=r).rows(feed).collect() for r in ranges]
            for (lo, hi), part in zip(ranges, parts, strict=True):
                assert part["pid"].is_between(lo, hi, closed="left").all()
            got = pl.concat(parts)
            assert got.height == want.height > 100
            assert got.sort(got.columns).equals(want.sort(want.columns))
        areas = whole.rows("risk_areas").collect()
        assert areas.height > 0
        assert WarehouseSource(wh.con, cutoff, 10**6, pid_range=ranges[0]).rows("risk_areas").collect().equals(areas)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64])
def test_a_runs_pid_ranges_partition_its_persons(per_count, n, monkeypatch):
    """`pid_ranges` cuts the pids of the runs into `n` consecutive ranges, and reading a run
    range by range gives exactly its stored codes."""
    monkeypatch.setenv("HCODE_KEY", KEY)
    with Warehouse.open(per_count[1]["tmp"] / "w.duckdb", read_only=True) as wh:
        whole = runs.run_codes(wh.con, 2)
        ranges = runs.pid_ranges(wh.con, [1, 2], n)
        assert len(ranges) == n
        assert all(lo <= hi for lo, hi in ranges)
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        assert ranges[0][0] == whole["pid"].min() and ranges[-1][1] == whole["pid"].max() + 1
        parts = [runs.run_codes(wh.con, 2, ordered=False, pid_range=r) for r in ranges]
        for (lo, hi), part in zip(ranges, parts, strict=True):
            assert part["pid"].is_between(lo, hi, closed="left").all()
        got = pl.concat(parts)
        assert got.height == whole.height > 1000
        assert got.sort("person_key").equals(whole)


def test_more_pid_ranges_than_pids_leave_some_empty(per_count, monkeypatch):
    monkeypatch.setenv("HCODE_KEY", KEY)
    with Warehouse.open(per_count[1]["tmp"] / "w.duckdb", read_only=True) as wh:
        lo, hi = runs.pid_ranges(wh.con, [2], 1)[0]
        ranges = runs.pid_ranges(wh.con, [2], 2 * (hi - lo))
    assert len(ranges) == 2 * (hi - lo) and ranges[0][0] == lo and ranges[-1][1] == hi
    assert sum(a == b for a, b in ranges) == hi - lo  # half of them empty
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_a_diff_with_empty_buckets_writes_the_same_report(per_count, tmp_path, monkeypatch):
    """Buckets with no person on either side change nothing (a warehouse's pids outside a
    run, more buckets than persons)."""
    from hcode.diff import buckets

    def with_empty(con, run_ids, n):
        ranges = runs.pid_ranges(con, run_ids, n)
        return [(-5, -1), *[r for lo, hi in ranges for r in ((lo, hi), (hi, hi))]]

    monkeypatch.setenv("HCODE_KEY", KEY)
    with Warehouse.open(per_count[1]["tmp"] / "w.duckdb", read_only=True) as wh:
        want = write_diff(buckets.diff_runs(wh, 1, 2, "en", buckets=1), tmp_path / "one", "en")
        monkeypatch.setattr(buckets, "pid_ranges", with_empty)
        got = write_diff(buckets.diff_runs(wh, 1, 2, "en", buckets=4), tmp_path / "empty", "en")
    assert want and sorted(got) == sorted(want)
    for k, path in want.items():
        assert got[k].read_bytes() == path.read_bytes(), k


def test_the_nightly_report_does_not_depend_on_the_bucket_count(tmp_path, monkeypatch):
    monkeypatch.setenv("HCODE_KEY", KEY)
    folders = {}
    for n in COUNTS:
        monkeypatch.setenv("HCODE_BUCKETS", str(n))
        tmp = tmp_path / "night"  # the same paths every time: the report names the files it loaded
        shutil.rmtree(tmp, ignore_errors=True)
        inbox = tmp / "inbox"
        inbox.mkdir(parents=True)
        for f in sample_data_dir().glob("*.csv"):
            shutil.copy(f, inbox / f.name)
        warehouse.init(tmp / "w.duckdb")
        res = run_nightly(tmp / "w.duckdb", inbox, "shanghai", AS_OF, operator="t", reports=tmp / "reports",
                          now=LOADED_AT)
        assert res.run_id is not None and res.published
        folders[n] = shutil.move(tmp / "reports" / AS_OF.isoformat(), tmp_path / f"report-{n}")
    files = sorted(p.name for p in folders[1].iterdir())
    assert "summary.json" in files
    for n in COUNTS[1:]:
        assert sorted(p.name for p in folders[n].iterdir()) == files
        for name in files:
            if name == "audit-head.json":  # the chain's entries hold the moments they were written
                a, b = (json.loads((f / name).read_text()) for f in (folders[n], folders[1]))
                assert (a["seq"], a["run_id"]) == (b["seq"], b["run_id"])
                continue
            assert (folders[n] / name).read_bytes() == (folders[1] / name).read_bytes(), name


def test_a_run_left_unfinished_stores_nothing(loaded, tmp_path, monkeypatch):
    monkeypatch.setenv("HCODE_KEY", KEY)
    with Warehouse.open(_copy(loaded, tmp_path)) as wh:
        before = [wh.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                  for t in ("runs", "code_details", "population_rows", "audit")]
        evaluations, _, _ = bucketed.evaluate_buckets(wh, find_ruleset("shanghai@2022.05.23"), AS_OF, 3)
        with pytest.raises(RuntimeError, match="bucket 2 failed"):
            with bucketed.RunWriter(wh, 3) as writer:
                for i, ev in enumerate(evaluations):
                    if i == 2:
                        raise RuntimeError("bucket 2 failed")
                    writer.add(ev)
        after = [wh.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                 for t in ("runs", "code_details", "population_rows", "audit")]
        assert after == before
        # and the warehouse takes the next run as usual
        _, run_id = bucketed.evaluate_run(wh, find_ruleset("shanghai@2022.05.23"), AS_OF, buckets=3)
        assert run_id == 1 and audit.verify(wh.con).ok
