"""--engine spark: the same codes as the embedded engine on the sample night, stored as a run
like any other; without pyspark or Java, one sentence and nothing stored; a failed job stores
no run. Tests marked `spark` need pyspark and Java 17: they skip (with the reason) when either
is absent, except under CI=true, where that is a failure (.ci/run installs both)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from hcode.cli import app
from hcode.engine import spark as spark_mod
from hcode.ingest.load import ingest
from hcode.paths import sample_data_dir
from hcode.rules.load import find_ruleset
from hcode.runs import bucketed
from hcode.runs import store as runs
from hcode.store import audit, warehouse
from hcode.store.warehouse import Warehouse

PLANTED = json.loads((sample_data_dir() / "planted.json").read_text(encoding="utf-8"))
AS_OF = dt.date.fromisoformat(PLANTED["as_of"])
LOADED_AT = dt.datetime.fromisoformat(PLANTED["loaded_at"])
KEY = "spark-test-key-of-at-least-32-characters"
RULESET = "shanghai@2022.05.23"
CODE_COLUMNS = ["person_key", "color", "rule", "matched_rules", "explanation"]


@pytest.fixture(scope="session")
def spark_session():
    """One local[2] session for every Spark test (the JVM starts once)."""
    try:
        spark_mod.check_spark()
    except spark_mod.SparkUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (CI=true: Spark tests never skip)")
        pytest.skip(str(exc))
    s = spark_mod.session("local[2]")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    db = tmp_path_factory.mktemp("spark") / "w.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HCODE_KEY", KEY)
        warehouse.init(db)
        with Warehouse.open(db) as wh:
            ingest(wh, [sample_data_dir()], now=LOADED_AT)
    return db


def _copy(loaded: Path, tmp: Path) -> Path:
    shutil.copy(loaded, tmp / "w.duckdb")
    return tmp / "w.duckdb"


def _counts(wh: Warehouse) -> list[int]:
    return [wh.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            for t in ("runs", "code_details", "population_rows", "audit")]


@pytest.mark.spark
@pytest.mark.slow
def test_spark_gives_exactly_the_embedded_codes_and_a_run_like_any_other(spark_session, loaded, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("HCODE_KEY", KEY)
    rs = find_ruleset(RULESET)
    with Warehouse.open(_copy(loaded, tmp_path)) as wh:
        embedded, a = bucketed.evaluate_run(wh, rs, AS_OF, operator="t", out=tmp_path / "embedded.csv")
        on_spark, b = bucketed.evaluate_run(wh, rs, AS_OF, operator="t", engine="spark", spark_master="local[2]",
                                            buckets=3, out=tmp_path / "spark.csv")
        assert (on_spark.persons, on_spark.colors) == (embedded.persons, embedded.colors)
        assert on_spark.persons > 1000 and on_spark.buckets == 3
        codes_a, codes_b = runs.run_codes(wh.con, a), runs.run_codes(wh.con, b)
        assert codes_b.select(CODE_COLUMNS).equals(codes_a.select(CODE_COLUMNS))
        assert codes_b.equals(codes_a)  # evidence and overrides too
        # the digests of the population, details and default (keyed by run id; not the runs row, which
        # holds the moment it was computed)
        contents = [{t: sorted(v.values()) for t, v in json.loads(d)["content"].items() if t != "runs"}
                    for (d,) in wh.con.execute("SELECT detail FROM audit WHERE action = 'run' ORDER BY seq").fetchall()]
        assert contents[0] == contents[1]
        assert audit.verify(wh.con).ok
        # the lake: person-bucketed, pseudonymised, with the contract's columns
        lake = tmp_path / "w.duckdb.lake"
        regs = pl.read_parquet(lake / "feed=registrations" / "**" / "*.parquet", hive_partitioning=True)
        assert regs["bucket"].n_unique() == 3 and "id_number" not in regs.columns
        assert "person_key" in regs.columns
    assert (tmp_path / "spark.csv").read_bytes() == (tmp_path / "embedded.csv").read_bytes()
    # the tasks' result files went with the job
    assert not any(p.is_file() for p in (lake / spark_mod.JOBS).rglob("*"))


@pytest.mark.spark
@pytest.mark.slow
def test_a_lake_given_as_a_url_is_read_by_the_executors(spark_session, loaded, tmp_path, monkeypatch):
    """`[lake] path` as a URL (here file://; s3:// and hdfs:// go through the same
    `pyarrow.fs` calls): the driver writes it there, the executors read it there."""
    monkeypatch.setenv("HCODE_KEY", KEY)
    rs = find_ruleset(RULESET)
    db = _copy(loaded, tmp_path)
    (tmp_path / "hcode.toml").write_text(f'[lake]\npath = "file://{tmp_path}/url-lake"\n', encoding="utf-8")
    with Warehouse.open(db) as wh:
        _, a = bucketed.evaluate_run(wh, rs, AS_OF, operator="t")
        _, b = bucketed.evaluate_run(wh, rs, AS_OF, operator="t", engine="spark", spark_master="local[2]", buckets=2)
        assert runs.run_codes(wh.con, b).equals(runs.run_codes(wh.con, a))
    assert (tmp_path / "url-lake" / "_hcode_lake.json").exists() and not (tmp_path / "w.duckdb.lake").exists()


def _failing(*args, **kwargs):
    """An `evaluate_buckets` whose tasks die."""
    def run(batches):
        raise RuntimeError("an executor died")
    return run


def _dropping_bucket_1(*args, **kwargs):
    """An `evaluate_buckets` whose tasks all succeed, but bucket 1's result never comes back
    (a lost file, a task that returned nothing)."""
    inner = REAL_EVALUATE_BUCKETS(*args, **kwargs)

    def run(batches):
        for returned in inner(batches):
            if returned.column(0)[0].as_py() != 1:
                yield returned
    return run


REAL_EVALUATE_BUCKETS = spark_mod.evaluate_buckets


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("broken, error", [(_failing, "the Spark job failed, nothing stored"),
                                           (_dropping_bucket_1, "incomplete, nothing stored: missing buckets 1$")],
                         ids=["failed", "incomplete"])
def test_a_failed_or_incomplete_spark_job_stores_no_run(spark_session, loaded, tmp_path, monkeypatch, broken, error):
    """A run is never stored without every bucket's persons; the job's result files go too."""
    monkeypatch.setenv("HCODE_KEY", KEY)
    monkeypatch.setattr(spark_mod, "evaluate_buckets", broken)
    with Warehouse.open(_copy(loaded, tmp_path)) as wh:
        before = _counts(wh)
        with pytest.raises(spark_mod.SparkFailed, match=error):
            bucketed.evaluate_run(wh, find_ruleset(RULESET), AS_OF, engine="spark", buckets=3,
                                  spark_master="local[2]")
        assert _counts(wh) == before
    assert not any(p.is_file() for p in (tmp_path / "w.duckdb.lake" / spark_mod.JOBS).rglob("*"))


def test_the_driver_takes_each_buckets_file_once():
    rows = [(2, "c"), (0, "a"), (1, "b")]
    assert spark_mod.returned_files(rows, 3) == ["a", "b", "c"]
    for bad, n, what in [([(0, "a"), (2, "c")], 3, "missing buckets 1"),
                         ([(0, "a"), (1, "b"), (1, "b2")], 2, "buckets returned twice 1"),
                         ([(0, "a"), (1, "b"), (5, "x")], 2, "unknown buckets 5")]:
        with pytest.raises(spark_mod.SparkFailed, match=f"nothing stored: {what}$"):
            spark_mod.returned_files(bad, n)


def test_results_a_dead_driver_left_are_removed_by_the_next_job(tmp_path):
    from hcode.store.lake import Lake

    old, new = tmp_path / spark_mod.JOBS / "dead" / "bucket=0" / "x.parquet", tmp_path / spark_mod.JOBS / "live" / "y"
    for f in (old, new):
        f.parent.mkdir(parents=True)
        f.write_bytes(b"rows")
    stale = os.path.getmtime(old) - spark_mod.STALE_SECONDS - 60
    os.utime(old, (stale, stale))
    spark_mod._remove_stale_jobs(Lake.at(tmp_path))
    assert not old.exists() and new.exists()


@pytest.mark.spark
@pytest.mark.slow
def test_the_auditors_dry_run_on_spark_is_the_embedded_one(spark_session, loaded, tmp_path, monkeypatch):
    """hcode diff --ruleset A --against B --engine spark writes exactly the embedded files."""
    monkeypatch.setenv("HCODE_KEY", KEY)
    db = _copy(loaded, tmp_path)
    args = ["diff", "--ruleset", RULESET, "--against", "shanghai@2022.06.28", "--as-of", str(AS_OF), "--db", str(db)]
    outs = {}
    for engine in ("embedded", "spark"):
        res = CliRunner().invoke(app, [*args, "--engine", engine, "--spark-master", "local[2]", "--out",
                                       str(tmp_path / engine), "--json"])
        assert res.exit_code == 0, res.output
        outs[engine] = json.loads(res.stdout)
    assert outs["spark"] == outs["embedded"] and outs["embedded"]["changes"] > 0
    for name in ("changes.parquet", "changes.csv", "report.md", "report.html", "summary.json"):
        assert (tmp_path / "spark" / name).read_bytes() == (tmp_path / "embedded" / name).read_bytes(), name
    refused = CliRunner().invoke(app, ["diff", "1", "2", "--engine", "spark", "--db", str(db)])
    assert refused.exit_code == 2 and "two stored runs are read from the warehouse" in refused.output


@pytest.mark.parametrize("missing", ["java", "pyspark", "pandas"])
def test_without_java_or_pyspark_one_sentence_and_nothing_stored(loaded, tmp_path, monkeypatch, missing):
    monkeypatch.setenv("HCODE_KEY", KEY)
    db = _copy(loaded, tmp_path)
    if missing == "java":
        monkeypatch.setattr(spark_mod, "java", lambda: None)
    else:
        real = spark_mod.importlib.util.find_spec
        monkeypatch.setattr(spark_mod.importlib.util, "find_spec",
                            lambda name, *a: None if name == missing else real(name, *a))
    res = CliRunner().invoke(app, ["evaluate", "--ruleset", RULESET, "--as-of", AS_OF.isoformat(), "--db", str(db),
                                   "--engine", "spark"])
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    assert ("Java 17" if missing == "java" else f"needs {missing}: install with `pip install -e '.[spark]'`") in text
    assert "Traceback" not in res.output
    with Warehouse.open(db) as wh:
        assert _counts(wh)[0] == 0
    assert not (tmp_path / "w.duckdb.lake").exists()


def test_executors_get_this_python_and_hcode_on_their_path():
    env = spark_mod.executor_env()
    import sys

    import hcode
    assert env["PYSPARK_PYTHON"] == sys.executable
    assert str(Path(hcode.__file__).resolve().parents[1]) in env["PYTHONPATH"].split(os.pathsep)
