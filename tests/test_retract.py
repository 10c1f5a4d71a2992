"""Retracting a load: its rows go, the audit log says so, the resent file loads, and every
published run and load still verifies."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from ops_fixtures import IDS, csv, load, register, run
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.errors import HcodeError
from hcode.ops.retract import UnknownLoad, retract
from hcode.store import audit

D = dt.date(2022, 6, 14)
NAT = "id_number,sampled_at,result,pooled"


def test_retract_removes_rows_audits_and_lets_the_file_load_again(wh, tmp_path):
    register(wh, tmp_path, range(3), D)
    wrong = csv(tmp_path, "nat_results.csv", NAT, [f"{IDS[0]},2022-06-13 08:00:00,positive,true",
                                                   f"{IDS[1]},2022-06-13 08:00:00,negative,false",
                                                   "bad-id,2022-06-13 08:00:00,negative,false"])
    bad = load(wh, wrong, D)
    assert (bad.rows_loaded, bad.rows_quarantined) == (2, 1)
    run_id = run(wh, D)
    assert wh.con.execute("SELECT colors FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0].count('"red": 1')

    res = retract(wh, bad.load_id, "lab sent the wrong day's file", "op7")
    assert (res.rows_removed, res.quarantine_removed) == (2, 1)
    assert wh.con.execute("SELECT count(*) FROM feed_nat_results").fetchall() == [(0,)]
    assert wh.con.execute("SELECT count(*) FROM quarantine").fetchall() == [(0,)]
    at, reason = wh.con.execute("SELECT retracted_at, retract_reason FROM loads WHERE load_id = ?",
                                [bad.load_id]).fetchall()[0]
    assert at is not None and reason == "lab sent the wrong day's file"
    action, operator, detail = wh.con.execute(
        "SELECT action, operator, detail FROM audit ORDER BY seq DESC LIMIT 1").fetchall()[0]
    assert (action, operator) == ("retract", "op7")
    assert json.loads(detail)["load_id"] == bad.load_id and json.loads(detail)["rows_removed"] == 2
    assert audit.verify(wh.con).ok  # the published run's codes are untouched

    again = load(wh, wrong, D)  # same bytes: no longer a duplicate
    assert not again.duplicate and again.rows_loaded == 2 and again.load_id != bad.load_id
    assert wh.con.execute("SELECT count(*) FROM feed_nat_results").fetchall() == [(2,)]
    assert audit.verify(wh.con).ok

    with pytest.raises(UnknownLoad, match="already retracted"):
        retract(wh, bad.load_id, "again", "op7")
    with pytest.raises(UnknownLoad, match="no load 99"):
        retract(wh, 99, "x", "op7")
    with pytest.raises(HcodeError, match="needs a reason"):
        retract(wh, again.load_id, "  ", "op7")


def test_retract_command(db, tmp_path):
    from hcode.store.warehouse import Warehouse

    with Warehouse.open(db) as wh:
        r = load(wh, csv(tmp_path, "cases.csv", "id_number,case_type,reported_at",
                         [f"{IDS[0]},confirmed,2022-06-10"]), D)
    res = CliRunner().invoke(app, ["retract", str(r.load_id), "--reason", "wrong person", "--db", str(db),
                                   "--operator", "op1", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rows_removed"] == 1
    res = CliRunner().invoke(app, ["audit", "verify", "--db", str(db), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["ok"] is True
    res = CliRunner().invoke(app, ["audit", "log", "--db", str(db), "--action", "retract", "--json"])
    [entry] = json.loads(res.stdout)["entries"]
    assert entry["operator"] == "op1" and entry["detail"]["reason"] == "wrong person"
