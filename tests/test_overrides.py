"""Overrides held to account: unsupported ones flagged, expiring ones listed, the active list
with authority, basis, operator and reason."""

from __future__ import annotations

import datetime as dt
import json

from ops_fixtures import IDS, csv, key_of, load, register, run
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.ops.overrides import active, overrides_report

D = dt.date(2022, 6, 14)
OV = "id_number,color,authority,basis,operator,reason,issued_at,expires_at"


def _warehouse(wh, tmp):
    register(wh, tmp, range(6), D)
    load(wh, csv(tmp, "inbound_codes.csv", "id_number,province,color,since", [f"{IDS[1]},44,yellow,2022-06-12 08:00"]), D)
    load(wh, csv(tmp, "contacts.csv", "id_number,contact_level,identified_at", [f"{IDS[2]},close,2022-06-12 08:00"]), D)
    load(wh, csv(tmp, "overrides.csv", OV, [
        f"{IDS[0]},yellow,street office,notice 3,op2,old decision,2022-06-01 09:00,",
        f"{IDS[0]},red,Henan village bank office,none given,op9,scanned a place code,2022-06-13 09:00,",
        f"{IDS[1]},red,district office,notice 5,op3,escalated,2022-06-13 10:00,",
        f"{IDS[2]},green,Xuhui epidemic office,case review 118,op17,mistaken identity,2022-06-13 11:00,",
        f"{IDS[3]},yellow,district office,notice 6,op3,home monitoring,2022-06-12 09:00,2022-06-16 12:00",
        f"{IDS[4]},orange,district office,notice 7,op3,guangxi colour,2022-06-12 09:00,",
        f"{IDS[5]},red,district office,notice 8,op3,expired already,2022-06-01 09:00,2022-06-14 12:00",
    ]), D)
    return run(wh, D)


def test_overrides_report_flags_unsupported_and_expiring(wh, tmp_path):
    run_id = _warehouse(wh, tmp_path)
    rep = overrides_report(wh.con, run_id)
    by = {e.person_key: e for e in rep.applied + rep.not_applied}
    assert set(by) == {key_of(wh, i) for i in range(5)}  # person 5's override expired before the cut-off
    henan = by[key_of(wh, 0)]
    assert (henan.color, henan.rules_color, henan.matched_rules) == ("red", "green", ())
    assert henan.authority == "Henan village bank office" and henan.operator == "op9"
    assert henan.note == "unsupported by any rule: no rule matches this person"
    assert by[key_of(wh, 1)].note == "more severe than every matching rule (yellow under NR-Y-01)"
    assert by[key_of(wh, 2)].note is None and by[key_of(wh, 2)].matched_rules == ("SH-R-03",)
    assert [e.person_key for e in rep.unsupported] == [key_of(wh, 3), key_of(wh, 0), key_of(wh, 1)]
    assert [e.person_key for e in rep.expiring_soon] == [key_of(wh, 3)]
    assert rep.expiring_soon[0].expires_at == dt.datetime(2022, 6, 16, 12)
    assert [e.person_key for e in rep.not_applied] == [key_of(wh, 4)]
    assert "outside the palette" in rep.not_applied[0].note
    assert json.loads(json.dumps(rep.as_json()))["unsupported"][0]["reason"] == "home monitoring"


def test_active_overrides_list_and_command(db, tmp_path):
    from hcode.store.warehouse import Warehouse

    with Warehouse.open(db) as wh:
        run_id = _warehouse(wh, tmp_path)
        f = active(wh.con, D)
        assert f.height == 6  # persons 0 (two), 1, 2, 3, 4
        superseded = f.filter(~f["current"])
        assert superseded["reason"].to_list() == ["old decision"]
        assert f.filter(f["person_key"] == key_of(wh, 5)).is_empty()
        assert set(f.columns) >= {"authority", "basis", "operator", "reason", "issued_at", "expires_at", "file_name"}
        later = active(wh.con, dt.date(2022, 6, 17))  # person 3's override expired on 06-16
        assert later.height == 5 and key_of(wh, 3) not in later["person_key"].to_list()
    res = CliRunner().invoke(app, ["overrides", "--as-of", "2022-06-14", "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["overrides"]) == 6
    res = CliRunner().invoke(app, ["overrides", "--run", str(run_id), "--db", str(db)])
    assert res.exit_code == 0 and "unsupported by any rule" in res.stdout and "expiring within 3 days" in res.stdout
