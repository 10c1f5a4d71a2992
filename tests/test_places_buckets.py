"""Place codes at province scale: a companion is another person, in any bucket. The Henan
codes of a night with place scans are the same whatever the bucket count, and the same on
Spark (where each bucket runs on an executor that holds only its own persons' rows: the
driver ships the companions' seed scans with the job)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from hcode.engine import spark as spark_mod
from hcode.ingest.load import ingest
from hcode.rules.load import find_ruleset
from hcode.runs import bucketed
from hcode.runs import store as runs
from hcode.sample.night import generate, write
from hcode.store import audit, warehouse
from hcode.store.warehouse import Warehouse

AS_OF = dt.date(2022, 6, 14)
KEY = "places-buckets-key-of-at-least-32-characters"
RULESET = "henan@2022.06.01"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("places-buckets")
    write(generate(400, 3, AS_OF), tmp / "night")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HCODE_KEY", KEY)
        warehouse.init(tmp / "w.duckdb")
        with Warehouse.open(tmp / "w.duckdb") as wh:
            ingest(wh, [tmp / "night"], now=dt.datetime(2022, 6, 15, 6))
    return tmp / "w.duckdb"


def _codes(db: Path, tmp: Path, **how: object) -> tuple[list[tuple[object, ...]], dict[str, int]]:
    with Warehouse.open(db) as wh:
        totals, run_id = bucketed.evaluate_run(wh, find_ruleset(RULESET), AS_OF, operator="t", **how)  # type: ignore[arg-type]
        assert run_id is not None
        codes = runs.run_codes(wh.con, run_id).select("person_key", "color", "rule", "matched_rules",
                                                       "explanation").rows()
        assert audit.verify(wh.con).ok
    return codes, totals.colors


@pytest.mark.slow
def test_companions_do_not_depend_on_the_bucket_count(loaded, tmp_path, monkeypatch):
    monkeypatch.setenv("HCODE_KEY", KEY)
    one, colors = _codes(loaded, tmp_path, buckets=1)
    companions = [c for c in one if "HA-Y-02" in c[3]]
    assert len(companions) >= 3, "the night's station scene makes companions"
    for n in (2, 5):
        got, got_colors = _codes(loaded, tmp_path, buckets=n)
        assert got_colors == colors
        assert got == one


@pytest.mark.spark
@pytest.mark.slow
def test_companions_on_spark_are_the_embedded_ones(loaded, tmp_path, monkeypatch):
    try:
        spark_mod.check_spark()
    except spark_mod.SparkUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (CI=true: Spark tests never skip)")
        pytest.skip(str(exc))
    monkeypatch.setenv("HCODE_KEY", KEY)
    embedded, colors = _codes(loaded, tmp_path, buckets=1)
    on_spark, spark_colors = _codes(loaded, tmp_path, engine="spark", spark_master="local[2]", buckets=3)
    assert any("HA-Y-02" in c[3] for c in on_spark)
    assert spark_colors == colors
    assert on_spark == embedded
