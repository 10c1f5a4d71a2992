"""The benchmark scripts still run: each at a tiny size, checked for the figures it prints.

They time nothing here (figures come from running them at size, benchmarks/RESULTS.md);
this only keeps them from rotting when the warehouse or the CLI changes under them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def bench(script: str, *args: str, cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(BENCH.parent))
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, cwd=cwd,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_places_benchmark_compares_hcode_and_sql(tmp_path):
    out = bench("places.py", "--residents", "3000", "--rounds", "1", cwd=tmp_path)
    assert "round 1: HA-Y-02 hcode" in out and "companions hcode" in out and "peak RSS" in out


@pytest.mark.slow
def test_audit_benchmark_verifies_a_two_night_warehouse(tmp_path):
    out = bench("audit.py", "--residents", "2000", "--rounds", "1", "--scans-per-day", "1",
                "--work", str(tmp_path / "w"), cwd=tmp_path)
    assert "hcode audit verify --head:" in out and "XOR-of-MD5" in out and "load_content" in out
    again = bench("audit.py", "--rounds", "1", "--work", str(tmp_path / "w"), cwd=tmp_path)  # reuses it
    assert "hcode audit verify --head:" in again


@pytest.mark.slow
def test_scale_benchmark_prints_every_step(tmp_path):
    out = bench("scale.py", "--residents", "2000", "--no-spark", cwd=tmp_path)
    for step in ("sample", "nightly", "next nightly", "evaluate embedded"):
        assert f"\n{step}" in out, out


@pytest.mark.slow
def test_ingest_benchmark_measures_the_lake_too(tmp_path):
    out = bench("ingest.py", "--residents", "2000", "--repeat", "1", "--lake", cwd=tmp_path)
    for fmt in ("parquet", "csv"):
        assert [line.split()[1] for line in out.splitlines() if line.startswith(f"{fmt} ")][:3] == [
            "bare", "hcode", "hcode-lake"]
    assert "bare / hcode / hcode-lake seconds" in out


@pytest.mark.spark
@pytest.mark.slow
def test_spark_phases_benchmark_names_each_phase(tmp_path):
    out = bench("spark_phases.py", "--residents", "2000", cwd=tmp_path)
    for phase in ("embedded evaluate", "Spark session (JVM) start", "lake sync", "first job", "second job"):
        assert phase in out


@pytest.mark.slow
def test_diff_reads_benchmark_reads_every_person_both_ways(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(BENCH.parent), HCODE_KEY="reads-bench-key-of-at-least-32-characters")
    hcode = [sys.executable, "-c", "from hcode.cli import app; app()"]
    db = tmp_path / "w.duckdb"
    for args in (["sample", "--out", "inbox", "--residents", "800", "--format", "parquet", "--scans-per-day", "0"],
                 ["init", "--db", str(db)],
                 ["nightly", "--inbox", "inbox", "--ruleset", "shanghai@2022.05.23", "--date", "2022-06-14",
                  "--db", str(db), "--reports", "reports", "--now", "2022-06-15T06:00:00"]):
        done = subprocess.run([*hcode, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
        assert done.returncode in (0, 3), done.stdout[-2000:] + done.stderr[-2000:]
    out = subprocess.run([sys.executable, str(BENCH / "diff_reads.py"), "--db", str(db), "--run", "1"],
                         capture_output=True, text=True, cwd=tmp_path, env={**env, "HCODE_BUCKETS": "3"}, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]  # (it fails when the modes' codes differ)
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith(("split ", "ranges "))]
    assert [r[0] for r in rows] == ["split", "ranges"]
    assert [r[-2] for r in rows] == ["3", "3"]  # buckets
    assert rows[0][-1] == rows[1][-1] and int(rows[0][-1].replace(",", "")) > 700  # every person, both ways


@pytest.mark.slow
def test_startup_benchmark_times_every_command(tmp_path):
    out = bench("startup.py", "--repeat", "1", "--work", str(tmp_path / "w"), cwd=tmp_path)
    for name in ("floor", "engines", "eager", "hcode --version", "hcode --help", "hcode rules list",
                 "hcode runs --json", "hcode evaluate --dry-run"):
        assert f"\n{name}" in out, out


def test_id_map_benchmark_compares_probing_and_runs(tmp_path):
    out = bench("id_map.py", "--persons", "30000", "--batch-ids", "4000", "--new", "1000", cwd=tmp_path)
    [row] = [line.split() for line in out.splitlines() if line.strip().startswith("30,000")]
    assert row[1] == "30" and row[-1].endswith("x")  # 30 batches; the same pids found both ways (asserted inside)
