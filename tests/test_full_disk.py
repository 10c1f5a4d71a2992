"""A full disk while a run is written bucket by bucket: the command says so in one sentence,
nothing of the run is stored, the published run and its audit head stay intact, and the
same command succeeds once there is room.

The disk is made "full" for real, by the operating system: the hcode process runs with a
file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored), so DuckDB's writes past it fail with
EFBIG ("File too large") exactly where a full disk fails them with ENOSPC.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hcode.ops.nightly import run_nightly
from hcode.paths import sample_data_dir
from hcode.store import audit
from hcode.store.warehouse import Warehouse

resource = pytest.importorskip("resource", reason="RLIMIT_FSIZE needs a POSIX system")

AS_OF = dt.date(2022, 6, 14)
LIMIT = 64 * 1024  # a run of 3,000 persons needs far more write-ahead log than this

CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.argv = ["hcode", *sys.argv[2:]]
from hcode.cli import app
app()
"""


def hcode(args: list[str], limit: int | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"HCODE_BUCKETS": "3", "COLUMNS": "200"}
    cmd = [sys.executable, "-c", CHILD, str(limit or resource.RLIM_INFINITY), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def night(db, tmp_path):
    """The sample night published (run 1), its audit head, the state of its tables."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for f in sample_data_dir().glob("*.csv"):
        shutil.copy(f, inbox / f.name)
    res = run_nightly(db, inbox, "shanghai@2022.05.23", AS_OF, operator="t", reports=tmp_path / "reports",
                      now=dt.datetime(2022, 6, 15, 6))
    assert res.published and res.run_id == 1
    return db, tmp_path / "reports" / AS_OF.isoformat()


def _state(db: Path) -> list[tuple[object, ...]]:
    with Warehouse.open(db, read_only=True) as wh:
        return wh.con.execute("SELECT run_id, published, persons FROM runs ORDER BY run_id").fetchall() + \
            wh.con.execute("SELECT count(*) FROM code_details").fetchall() + \
            wh.con.execute("SELECT max(seq) FROM audit").fetchall()


def _intact(db: Path, report: Path) -> None:
    head = audit.Head.read(report / "audit-head.json")
    with Warehouse.open(db, read_only=True) as wh:
        v = audit.verify(wh.con, head)
        assert v.ok, v.message
        assert wh.con.execute("SELECT run_id FROM runs WHERE published").fetchall() == [(1,)]


@pytest.mark.slow
def test_a_full_disk_during_the_bucket_writes_stores_nothing(night):
    db, report = night
    before = _state(db)
    args = ["evaluate", "--ruleset", "shanghai@2022.06.28", "--as-of", str(AS_OF), "--db", str(db)]
    res = hcode(args, LIMIT)
    assert res.returncode == 1, res.stderr
    assert "error: no room to write" in res.stderr and "File too large" in res.stderr
    assert "Traceback" not in res.stderr and "rolled back" in res.stderr
    assert _state(db) == before
    _intact(db, report)
    wal = db.with_name(db.name + ".wal")
    if wal.exists():  # the write-ahead log DuckDB began is the owner's alone
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    # with room again, the same command stores the run
    again = hcode(args)
    assert again.returncode == 0, again.stderr
    with Warehouse.open(db, read_only=True) as wh:
        assert wh.con.execute("SELECT run_id, published FROM runs ORDER BY run_id").fetchall() == \
            [(1, True), (2, False)]
        assert audit.verify(wh.con).ok


@pytest.mark.slow
def test_a_full_disk_during_a_nightly_recompute_leaves_the_published_run(night):
    db, report = night
    before, summary = _state(db), (report / "summary.json").read_bytes()
    empty = db.parent / "empty-inbox"
    empty.mkdir()
    args = ["nightly", "--inbox", str(empty), "--ruleset", "shanghai@2022.05.23", "--date", str(AS_OF),
            "--rerun", "--reports", str(report.parent), "--db", str(db), "--json"]
    res = hcode(args, 4096)  # a rerun shares the population: its run needs less log than an evaluate's
    assert res.returncode == 1, res.stdout[:3000] + res.stderr
    assert "error: no room to write" in res.stderr and "Traceback" not in res.stderr
    assert _state(db) == before
    assert (report / "summary.json").read_bytes() == summary  # the published night's report untouched
    _intact(db, report)
    again = hcode(args)
    assert again.returncode in (0, 3), again.stderr
    out = json.loads(again.stdout)
    assert out["published"] and out["run_id"] == 2


@pytest.mark.slow
def test_a_report_that_runs_out_of_room_gives_its_room_back(night):
    """A report written again on a full disk fails in one sentence and leaves neither its
    half-written folder (a province's takes tens of GB) nor a changed report behind."""
    db, report = night
    summary = (report / "summary.json").read_bytes()
    args = ["report", "1", "--reports", str(report.parent), "--db", str(db)]
    env_one_bucket = {"HCODE_BUCKETS": "1"}  # no diff buckets spilled: the failure is the report's own files
    res = subprocess.run([sys.executable, "-c", CHILD, str(4096), *args], capture_output=True, text=True,
                         env=os.environ | env_one_bucket | {"COLUMNS": "200"}, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "error: no room to write" in res.stderr and "Traceback" not in res.stderr
    assert not report.with_name(report.name + ".partial").exists()
    assert (report / "summary.json").read_bytes() == summary
    _intact(db, report)
    again = hcode(args)
    assert again.returncode == 0, again.stderr
    assert (report / "summary.json").exists() and not report.with_name(report.name + ".partial").exists()
