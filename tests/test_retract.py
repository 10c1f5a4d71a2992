"""Retracting a load: its rows go, the audit log says so, the resent file loads, and every
published run and load still verifies."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from ops_fixtures import IDS, csv, load, pid_of, register, run
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


# Issue 14, "never lose a row": an event two loads sent is stored once, under the first; the
# second's copy is a `repeats` row. Retracting either load must leave the event as long as
# the other one is live.
POSITIVE = f"{IDS[0]},2022-06-13 08:00:00,positive,true"  # person 0: red while it counts


def _nat(tmp_path, *rows: str):
    return csv(tmp_path, "nat_results.csv", NAT, list(rows))


def _owners(wh) -> dict[int, int]:
    """load_id of each stored NAT row, by person (0..3)."""
    got = dict(wh.con.execute("SELECT pid, load_id FROM feed_nat_results").fetchall())
    return {i: got[pid_of(wh, i)] for i in range(4) if pid_of(wh, i) in got}


def _repeats(wh) -> list[tuple[int, str]]:
    return wh.con.execute("SELECT load_id, feed FROM repeats ORDER BY ALL").fetchall()


def _color(wh, i: int) -> str:
    """Person i's colour in a fresh (unpublished) run on what the warehouse holds now."""
    r = run(wh, D, publish=False)
    return wh.con.execute("SELECT color FROM codes WHERE run_id = ? AND pid = ?", [r, pid_of(wh, i)]).fetchall()[0][0]


def _verified(wh) -> None:
    v = audit.verify(wh.con)
    assert v.ok, v.problem


def _two_loads(wh, tmp_path):
    """Two NAT files with different bytes that both carry POSITIVE."""
    register(wh, tmp_path, range(4), D)
    first = load(wh, _nat(tmp_path, POSITIVE, f"{IDS[1]},2022-06-13 09:00:00,negative,false"), D)
    second = load(wh, _nat(tmp_path, f"{IDS[2]},2022-06-13 10:00:00,negative,false", POSITIVE), D)
    assert (first.rows_new, second.rows_new) == (2, 1)  # POSITIVE is stored once, under the first
    assert _owners(wh) == {0: first.load_id, 1: first.load_id, 2: second.load_id}
    assert _repeats(wh) == [(second.load_id, "nat_results")]
    return first, second


def test_retracting_the_first_of_two_loads_that_sent_a_row_keeps_it_under_the_second(wh, tmp_path):
    first, second = _two_loads(wh, tmp_path)
    assert _color(wh, 0) == "red"

    res = retract(wh, first.load_id, "wrong file", "op7")
    assert (res.rows_removed, res.rows_kept, res.kept_by) == (1, 1, (second.load_id,))
    assert _owners(wh) == {0: second.load_id, 2: second.load_id}  # person 1's row went, POSITIVE stayed
    assert _repeats(wh) == []  # POSITIVE is the second load's own now
    assert _color(wh, 0) == "red"
    _verified(wh)
    detail = json.loads(wh.con.execute("SELECT detail FROM audit WHERE seq = ?", [res.audit_seq]).fetchall()[0][0])
    assert (detail["rows_removed"], detail["rows_kept"], detail["kept_by"]) == (1, 1, [second.load_id])
    assert set(detail["content"]["feed_nat_results"]) == {str(first.load_id), str(second.load_id)}
    assert set(detail["content"]["repeats"]) == {str(first.load_id), str(second.load_id)}

    res = retract(wh, second.load_id, "wrong file too", "op7")
    assert (res.rows_removed, res.rows_kept) == (2, 0)
    assert _owners(wh) == {}
    assert _color(wh, 0) == "green"
    _verified(wh)


def test_retracting_the_second_of_two_loads_keeps_the_row_under_the_first(wh, tmp_path):
    first, second = _two_loads(wh, tmp_path)
    res = retract(wh, second.load_id, "wrong file", "op7")
    assert (res.rows_removed, res.rows_kept) == (1, 0)  # only person 2's row: POSITIVE was the first's
    assert _owners(wh) == {0: first.load_id, 1: first.load_id}
    assert _repeats(wh) == []  # the second load's repeats went with it
    assert _color(wh, 0) == "red"
    _verified(wh)
    res = retract(wh, first.load_id, "wrong file too", "op7")  # no live load sent POSITIVE again
    assert (res.rows_removed, res.rows_kept) == (2, 0)
    assert _owners(wh) == {}
    _verified(wh)


def test_with_three_loads_a_row_moves_to_the_earliest_live_one(wh, tmp_path):
    first, second = _two_loads(wh, tmp_path)
    third = load(wh, _nat(tmp_path, POSITIVE, f"{IDS[3]},2022-06-13 11:00:00,negative,false"), D)
    assert _repeats(wh) == [(second.load_id, "nat_results"), (third.load_id, "nat_results")]

    res = retract(wh, first.load_id, "wrong file", "op7")
    assert (res.rows_kept, res.kept_by) == (1, (second.load_id,))
    assert _owners(wh)[0] == second.load_id
    assert _repeats(wh) == [(third.load_id, "nat_results")]  # the third still repeats it
    _verified(wh)

    res = retract(wh, second.load_id, "wrong file", "op7")
    assert (res.rows_removed, res.rows_kept, res.kept_by) == (1, 1, (third.load_id,))
    assert _owners(wh) == {0: third.load_id, 3: third.load_id}
    assert _repeats(wh) == []
    assert _color(wh, 0) == "red"
    _verified(wh)


def test_a_row_repeated_within_one_file_is_no_repeat(wh, tmp_path, monkeypatch):
    import hcode.ingest.read

    monkeypatch.setattr(hcode.ingest.read, "BATCH_ROWS", 2)  # files of 3 rows come in 2 batches
    register(wh, tmp_path, range(4), D)
    other = f"{IDS[1]},2022-06-13 09:00:00,negative,false"
    once = load(wh, _nat(tmp_path, POSITIVE, other, POSITIVE), D)  # the repeat in the second batch
    assert once.rows_new == 2 and _repeats(wh) == []
    twice = load(wh, _nat(tmp_path, POSITIVE, POSITIVE), D)  # both in one batch
    assert twice.rows_new == 0 and _repeats(wh) == [(twice.load_id, "nat_results")]
    # a later file that repeats the row in both its batches records it once
    again = load(wh, _nat(tmp_path, POSITIVE, f"{IDS[2]},2022-06-13 10:00:00,negative,false", POSITIVE), D)
    assert again.rows_new == 1
    assert _repeats(wh) == [(twice.load_id, "nat_results"), (again.load_id, "nat_results")]
    _verified(wh)
    assert retract(wh, once.load_id, "wrong", "op7").kept_by == (twice.load_id,)
    assert _owners(wh) == {0: twice.load_id, 2: again.load_id}
    _verified(wh)


def test_retract_command_says_what_it_kept(db, tmp_path):
    from hcode.store.warehouse import Warehouse

    with Warehouse.open(db) as wh:
        first, second = _two_loads(wh, tmp_path)
    res = CliRunner().invoke(app, ["retract", str(first.load_id), "--reason", "wrong file", "--db", str(db),
                                   "--operator", "op1"])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert f"1 rows and 0 quarantine rows removed, 1 rows kept (load {second.load_id} sent them too)" in said
    res = CliRunner().invoke(app, ["retract", str(second.load_id), "--reason", "wrong file", "--db", str(db),
                                   "--operator", "op1", "--json"])
    out = json.loads(res.stdout)
    assert (out["rows_removed"], out["rows_kept"], out["kept_by"]) == (2, 0, [])
    res = CliRunner().invoke(app, ["audit", "verify", "--db", str(db), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["ok"] is True


def test_a_warehouse_made_before_repeats_gets_the_table_when_opened_for_writing(db, tmp_path, monkeypatch):
    from hcode.store.warehouse import Warehouse

    recorded = audit.load_content
    with monkeypatch.context() as m, Warehouse.open(db) as wh:  # loads as hcode wrote them before repeats
        m.setattr(audit, "load_content", lambda *a, **k: {t: d for t, d in recorded(*a, **k).items() if t != "repeats"})
        register(wh, tmp_path, range(4), D)
        first = load(wh, _nat(tmp_path, POSITIVE), D)
        wh.con.execute("DROP TABLE repeats")
    with Warehouse.open(db, read_only=True) as wh:
        _verified(wh)  # no entry recorded repeats: nothing is missing
    with Warehouse.open(db) as wh:
        second = load(wh, _nat(tmp_path, POSITIVE, f"{IDS[1]},2022-06-13 09:00:00,negative,false"), D)
        assert _repeats(wh) == [(second.load_id, "nat_results")]
        _verified(wh)
        assert retract(wh, first.load_id, "wrong", "op").kept_by == (second.load_id,)
        _verified(wh)
        wh.con.execute("DROP TABLE repeats")
        v = audit.verify(wh.con)
        assert not v.ok and v.table == "repeats", v.problem  # entries recorded it: a dropped table is caught
