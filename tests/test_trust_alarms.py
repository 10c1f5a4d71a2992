"""Never lose a row or an alarm: alarms come from stored state, so an interrupted night
reports what an uninterrupted one would; no false late feed; locks; unregistered overrides;
a failed report step does not hide the publish."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ID_A, NOW
from ops_fixtures import IDS
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.config import Config
from hcode.ingest.load import ingest
from hcode.ops import freshness
from hcode.ops import nightly as nightly_mod
from hcode.ops.nightly import run_nightly
from hcode.store import warehouse
from hcode.store.lock import warehouse_lock

DATE = dt.date(2022, 6, 14)
HEAD = "id_number,color,authority,basis,operator,reason,issued_at,expires_at\n"


def inbox(tmp: Path) -> Path:
    box = tmp / "inbox"
    box.mkdir(parents=True)
    (box / "registrations.csv").write_text(f"id_number,registered_at,district_code\n{ID_A},2022-01-01,310101\n",
                                           encoding="utf-8")
    (box / "cases.csv").write_text("no,header,here\n", encoding="utf-8")  # rejected: columns missing
    (box / "overrides.csv").write_text(HEAD + f"{IDS[7]},red,office,notice 7,op1,test,2022-06-13 09:00:00,\n",
                                       encoding="utf-8")
    return box


def test_a_rerun_after_a_crash_after_publishing_reports_what_an_uninterrupted_night_would(tmp_path, monkeypatch):
    monkeypatch.setenv("HCODE_KEY", "one key for both warehouses of this test")  # the same person keys
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    for t in (whole, crashed):
        warehouse.init(t / "w.duckdb")
        inbox(t)
    ok = run_nightly(whole / "w.duckdb", whole / "inbox", "shanghai", DATE, operator="t", now=NOW,
                     reports=whole / "reports")
    assert ok.exit_code == 3 and any("file rejected: cases.csv" in w for w in ok.warnings)
    assert any(f.feed == "contacts" for f in ok.late_feeds)
    env = dict(os.environ, HCODE_CRASH_AT="after-publish",
               PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    res = subprocess.run([sys.executable, "-c", "from hcode.cli import app; app()", "nightly", "--db",
                          str(crashed / "w.duckdb"), "--inbox", str(crashed / "inbox"), "--ruleset", "shanghai",
                          "--date", DATE.isoformat(), "--now", NOW.isoformat(), "--operator", "t",
                          "--reports", str(crashed / "reports")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == -9, res.stderr  # killed right after publishing, before the report
    again = run_nightly(crashed / "w.duckdb", crashed / "inbox", "shanghai", DATE, operator="t", now=NOW,
                        reports=crashed / "reports")
    assert again.published and again.run_id == ok.run_id
    assert again.exit_code == ok.exit_code == 3
    assert again.warnings == ok.warnings  # the rejected file and the late feeds are not forgotten
    assert [f.as_json() for f in again.late_feeds] == [f.as_json() for f in ok.late_feeds]
    got, want = (json.loads((t / "reports" / DATE.isoformat() / "nightly.json").read_text(encoding="utf-8"))
                 for t in (crashed, whole))
    assert got == want
    md = (crashed / "reports" / DATE.isoformat() / "report.md").read_text(encoding="utf-8")
    assert "Every feed arrived on time" not in md and "cases.csv" in md
    # the rewritten report carries the audit head too, and the chain (its reject entry included) verifies
    heads = [json.loads((t / "reports" / DATE.isoformat() / "audit-head.json").read_text(encoding="utf-8"))
             for t in (crashed, whole)]
    assert heads[0]["seq"] == heads[1]["seq"] and heads[0]["run_id"] == heads[1]["run_id"] == ok.run_id
    assert again.audit_head is not None and again.audit_head.seq == heads[0]["seq"]
    _verified(crashed / "w.duckdb", crashed / "reports" / DATE.isoformat() / "audit-head.json")


def _verified(db: Path, head: Path) -> dict:
    res = CliRunner().invoke(app, ["audit", "verify", "--db", str(db), "--head", str(head), "--json"])
    got = json.loads(res.stdout)
    assert res.exit_code == 0 and got["ok"], res.output
    return got


def test_identical_header_only_files_on_two_nights_are_not_a_late_feed(tmp_path, wh):
    for day in (dt.date(2022, 6, 13), DATE):
        d = tmp_path / day.isoformat()
        d.mkdir()
        (d / "discharges.csv").write_text("id_number,discharged_at\n", encoding="utf-8")
        [r] = ingest(wh, [d / "discharges.csv"], now=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6)),
                     batch_date=day)
        assert not r.rejected and not r.duplicate and r.rows_read == 0
    fresh = {f.feed: f for f in freshness.check(wh.con, DATE, Config())}
    assert not fresh["discharges"].late and fresh["discharges"].last_loaded == DATE
    # the same header-only bytes twice on one night are still a duplicate
    [again] = ingest(wh, [tmp_path / DATE.isoformat() / "discharges.csv"], now=NOW, batch_date=DATE)
    assert again.duplicate


@pytest.mark.parametrize("args", [["ingest", "{csv}"], ["evaluate", "--ruleset", "shanghai", "--as-of", "2022-06-14"]])
def test_ingest_and_evaluate_take_the_warehouse_lock(tmp_path, db, args):
    csv = tmp_path / "cases.csv"
    csv.write_text(f"id_number,case_type,reported_at\n{ID_A},confirmed,2022-06-10 10:00:00\n", encoding="utf-8")
    with warehouse_lock(db, "hcode nightly (test)"):
        res = CliRunner().invoke(app, [*(a.format(csv=csv) for a in args), "--db", str(db)])
    assert res.exit_code == 1 and "busy" in res.output and "nightly (test)" in res.output
    res = CliRunner().invoke(app, [*(a.format(csv=csv) for a in args), "--db", str(db)])
    assert res.exit_code == 0, res.output


def test_an_override_for_a_person_not_registered_is_reported(tmp_path):
    warehouse.init(tmp_path / "w.duckdb")
    box = inbox(tmp_path)
    (box / "cases.csv").unlink()
    res = run_nightly(tmp_path / "w.duckdb", box, "shanghai", DATE, operator="t", now=NOW, reports=tmp_path / "r")
    assert res.published and res.exit_code == 3
    assert any("not registered" in w and "office" in w for w in res.warnings)
    md = (tmp_path / "r" / DATE.isoformat() / "report.md").read_text(encoding="utf-8")
    assert "Overrides for persons not registered" in md and "notice 7" in md


def test_unregistered_overrides_are_each_persons_latest_in_force_at_the_cut_off(tmp_path):
    """Of a person outside the population, the latest override in force at the cut-off (an
    expired or later one does not count, nor does one for a registered person)."""
    from hcode.ops.overrides import unregistered
    from hcode.runs.store import get_run

    warehouse.init(tmp_path / "w.duckdb")
    box = inbox(tmp_path)
    (box / "cases.csv").unlink()
    (box / "overrides.csv").write_text(HEAD + "".join(f"{i},{c},office,{b},op1,test,{at},{until}\n" for i, c, b, at, until in [
        (ID_A, "red", "notice A", "2022-06-13 09:00:00", ""),  # registered: its code carries it
        (IDS[7], "yellow", "notice 7a", "2022-06-10 09:00:00", ""),
        (IDS[7], "red", "notice 7b", "2022-06-13 09:00:00", ""),  # 7's latest
        (IDS[8], "red", "notice 8", "2022-06-01 09:00:00", "2022-06-05 00:00:00"),  # expired
        (IDS[9], "red", "notice 9", "2022-06-15 08:00:00", ""),  # after the cut-off
        (IDS[6], "green", "notice 6a", "2022-06-12 09:00:00", "2022-06-13 00:00:00"),  # expired ...
        (IDS[6], "yellow", "notice 6b", "2022-06-11 09:00:00", ""),  # ... so 6's latest in force
    ]), encoding="utf-8")
    res = run_nightly(tmp_path / "w.duckdb", box, "shanghai", DATE, operator="t", now=NOW, reports=tmp_path / "r")
    assert res.published
    with warehouse.Warehouse.open(tmp_path / "w.duckdb", read_only=True) as wh:
        got = unregistered(wh.con, get_run(wh.con, res.run_id))
    assert [(e.color, e.basis) for e in got] == [("yellow", "notice 6b"), ("red", "notice 7b")]


def test_a_failed_report_step_still_exits_as_published_and_hcode_report_writes_it(tmp_path, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    box = inbox(tmp_path)

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(nightly_mod, "write_diff", broken)
    res = run_nightly(db, box, "shanghai", DATE, operator="t", now=NOW, reports=tmp_path / "reports")
    assert res.published and res.run_id == 1 and res.exit_code == 3
    assert any("report not written" in w and "hcode report 1" in w for w in res.warnings)
    assert not (tmp_path / "reports" / DATE.isoformat()).exists()
    monkeypatch.undo()
    out = CliRunner().invoke(app, ["report", "1", "--db", str(db), "--reports", str(tmp_path / "reports"), "--json"])
    assert out.exit_code == 0, out.output
    folder = tmp_path / "reports" / DATE.isoformat()
    assert (folder / "report.md").exists() and (folder / "nightly.json").exists()
    assert any("file rejected: cases.csv" in w for w in json.loads(out.stdout)["warnings"])
    head = json.loads((folder / "audit-head.json").read_text(encoding="utf-8"))
    assert head["run_id"] == 1 and head["seq"] > 0
    _verified(db, folder / "audit-head.json")
