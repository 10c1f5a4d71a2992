"""The nightly batch: publish, no-op, late feeds, guard, and kill-and-rerun with real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hcode.paths import sample_data_dir
from hcode.store import audit, warehouse
from hcode.store.warehouse import Warehouse

DATE = "2022-06-14"
NOW = "2022-06-15T06:00:00"
KEY = "nightly-test-key-of-32-characters"
CLI = [sys.executable, "-c", "from hcode.cli import app; app()"]


def setup(tmp: Path, withhold: tuple[str, ...] = ()) -> Path:
    inbox = tmp / "inbox"
    inbox.mkdir(parents=True)
    for f in sample_data_dir().glob("*.csv"):
        if f.stem not in withhold:
            shutil.copy(f, inbox / f.name)
    return inbox


def nightly(tmp: Path, *extra: str, crash: str | None = None, date: str = DATE) -> subprocess.CompletedProcess:
    env = dict(os.environ, HCODE_KEY=KEY, HCODE_DB=str(tmp / "w.duckdb"))
    env.pop("HCODE_CRASH_AT", None)
    if crash:
        env["HCODE_CRASH_AT"] = crash
    return subprocess.run([*CLI, "nightly", "--inbox", str(tmp / "inbox"), "--ruleset", "shanghai", "--date", date,
                           "--now", NOW, "--reports", str(tmp / "reports"), "--json", *extra],
                          env=env, capture_output=True, text=True, cwd=tmp, timeout=300)


def published(tmp: Path) -> tuple[list, int, int]:
    os.environ["HCODE_KEY"] = KEY
    try:
        with Warehouse.open(tmp / "w.duckdb", read_only=True) as wh:
            codes = wh.con.execute(
                "SELECT p.person_key, c.color, c.rule, c.matched_rules, c.explanation FROM codes c "
                "JOIN runs r USING (run_id) JOIN persons p USING (pid) WHERE r.published ORDER BY 1").fetchall()
            loads = wh.con.execute("SELECT count(*) FROM loads").fetchall()[0][0]
            runs = wh.con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
            assert audit.verify(wh.con).ok
    finally:
        os.environ.pop("HCODE_KEY", None)
    return codes, loads, runs


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("HCODE_KEY", KEY)
    warehouse.init(tmp_path / "w.duckdb")
    monkeypatch.delenv("HCODE_KEY")
    return tmp_path


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baseline")
    os.environ["HCODE_KEY"] = KEY
    warehouse.init(tmp / "w.duckdb")
    os.environ.pop("HCODE_KEY")
    setup(tmp)
    res = nightly(tmp)
    assert res.returncode == 3, res.stderr  # the sample night has overrides no rule supports
    return tmp, json.loads(res.stdout), published(tmp)


def test_publishes_archives_and_reports(baseline):
    tmp, summary, (codes, loads, runs) = baseline
    assert summary["published"] and summary["run_id"] == 1 and summary["exit_code"] == 3
    assert loads == 12 and runs == 1 and len(codes) == 3087
    assert not list((tmp / "inbox").glob("*.csv"))
    assert len(list((tmp / "inbox" / "archive" / DATE).glob("*.csv"))) == 12
    report = tmp / "reports" / DATE
    for name in ("report.html", "report.md", "summary.json", "changes.parquet", "changes.csv", "nightly.json"):
        assert (report / name).exists(), name
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "Overrides unsupported by any rule" in md and "Late feeds" in md
    assert any("unsupported by any rule" in w for w in summary["warnings"])


def test_same_date_again_is_a_no_op(baseline):
    tmp, _, before = baseline
    res = nightly(tmp)
    assert res.returncode == 0 and "nothing to do" in json.loads(res.stdout)["message"]
    assert published(tmp) == before


def test_withheld_discharges_are_late_and_say_who_is_affected(fresh):
    setup(fresh)
    assert nightly(fresh, date="2022-06-13").returncode in (0, 3)
    inbox = setup(fresh / "night2", withhold=("discharges",))
    shutil.rmtree(fresh / "inbox")
    shutil.move(inbox, fresh / "inbox")
    for f in (fresh / "inbox").glob("*.csv"):  # new bytes: tonight's increment repeats no file
        f.write_text(f.read_text(encoding="utf-8-sig" if f.stem == "registrations" else "gb18030"
                                 if f.stem == "overrides" else "utf-8") + "\n", encoding="utf-8")
    res = nightly(fresh, date=DATE)
    summary = json.loads(res.stdout)
    assert res.returncode == 3 and summary["published"]
    late = {f["feed"]: f for f in summary["late_feeds"]}
    assert set(late) == {"discharges"}
    assert late["discharges"]["last_loaded"] == "2022-06-13" and late["discharges"]["days_late"] == 1
    assert "SH-R-02" in late["discharges"]["impact"] and "awaiting discharge" in late["discharges"]["impact"]


def test_guard_refuses_a_jump_in_red_codes_unless_accepted(fresh):
    inbox = setup(fresh)
    assert nightly(fresh, date="2022-06-13").returncode in (0, 3)
    lines = (sample_data_dir() / "registrations.csv").read_text(encoding="utf-8-sig").splitlines()
    ids = [ln.split(",")[0] for ln in lines[1:]]
    (inbox / "contacts_2.csv").write_text("id_number,contact_level,identified_at\n"
                                          + "".join(f"{i},close,2022-06-14 09:00:00\n" for i in ids[:1500]))
    res = nightly(fresh, date=DATE)
    summary = json.loads(res.stdout)
    assert res.returncode == 1 and not summary["published"] and summary["run_id"] is None
    assert "not published" in summary["message"] and summary["guard"]["reasons"]
    accepted = nightly(fresh, "--accept-jump", date=DATE)
    assert accepted.returncode == 3 and json.loads(accepted.stdout)["published"]
    os.environ["HCODE_KEY"] = KEY
    try:
        with Warehouse.open(fresh / "w.duckdb", read_only=True) as wh:
            details = [json.loads(d) for (d,) in wh.con.execute(
                "SELECT detail FROM audit WHERE action = 'publish' ORDER BY seq").fetchall()]
    finally:
        os.environ.pop("HCODE_KEY")
    assert details[-1]["accept_jump"] is True


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after-load-3", "after-loads", "before-publish", "after-publish", "mid-report"])
def test_killed_at_any_point_then_rerun_gives_the_same_published_result(fresh, baseline, point):
    _, _, expected = baseline
    setup(fresh)
    killed = nightly(fresh, crash=point)
    assert killed.returncode == -signal.SIGKILL
    again = nightly(fresh)
    assert again.returncode in (0, 3), again.stderr
    assert published(fresh) == expected
    assert (fresh / "reports" / DATE / "summary.json").exists()
    assert not (fresh / "reports" / f"{DATE}.partial").exists() or point == "mid-report"


@pytest.mark.slow
@pytest.mark.parametrize("delay", [1.5, 3.0])
def test_killed_at_a_random_moment_then_rerun(fresh, baseline, delay):
    _, _, expected = baseline
    setup(fresh)
    env = dict(os.environ, HCODE_KEY=KEY, HCODE_DB=str(fresh / "w.duckdb"))
    proc = subprocess.Popen([*CLI, "nightly", "--inbox", str(fresh / "inbox"), "--ruleset", "shanghai", "--date",
                             DATE, "--now", NOW, "--reports", str(fresh / "reports")], env=env, cwd=fresh,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = nightly(fresh)
    assert again.returncode in (0, 3), again.stderr
    assert published(fresh) == expected
