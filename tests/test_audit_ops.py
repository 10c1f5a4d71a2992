"""Tamper evidence, person history and purge: an edited code or loaded row is caught naming
its audit entry; history shows published runs only; purge keeps what a code needs and the
audit log still verifies."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import polars as pl
import pytest
from ops_fixtures import IDS, A, B, C, csv, key_of, load, pid_of, register, run, three_published_runs
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.errors import HcodeError
from hcode.ops.purge import purge
from hcode.rules.load import find_ruleset
from hcode.runs.store import evaluate_warehouse, run_codes
from hcode.store import audit
from hcode.store.warehouse import Warehouse

D = dt.date(2022, 6, 14)


def _entry(wh, action: str, key: str, value) -> int:
    for seq, detail in wh.con.execute("SELECT seq, detail FROM audit WHERE action = ? ORDER BY seq",
                                      [action]).fetchall():
        if json.loads(detail)[key] == value:
            return seq
    raise AssertionError(f"no {action} entry with {key}={value}")


def _cases(wh, tmp):
    register(wh, tmp, range(3), D)
    r = load(wh, csv(tmp, "cases.csv", "id_number,case_type,reported_at",
                     [f"{IDS[0]},confirmed,2022-06-10 08:00:00"]), D)
    return r, run(wh, D)


POPULATION = "population_id = (SELECT population_id FROM runs WHERE run_id = ?)"


@pytest.mark.parametrize("edit", [
    "UPDATE code_details SET color = 'green', rule = NULL WHERE run_id = ? AND pid = ?",
    "UPDATE code_details SET explanation = 'nothing to see' WHERE run_id = ? AND pid = ?",
    "DELETE FROM code_details WHERE run_id = ? AND pid = ?",  # the person gets the default code
    "UPDATE code_defaults SET explanation = 'all fine' WHERE run_id = ? AND ? IS NOT NULL",
    "UPDATE code_defaults SET color = 'red', rule = 'SH-R-02' WHERE run_id = ? AND ? IS NOT NULL",
    f"UPDATE population_rows SET district = 110101 WHERE {POPULATION} AND pid <> ?",
    f"DELETE FROM population_rows WHERE {POPULATION} AND pid <> ?",
    "UPDATE runs SET population_id = population_id + 1 WHERE run_id = ? AND ? IS NOT NULL",
])
def test_edited_code_is_caught_naming_the_run_entry(db, tmp_path, edit):
    with Warehouse.open(db) as wh:
        _, run_id = _cases(wh, tmp_path)
        assert audit.verify(wh.con).ok
        wh.con.execute(edit, [run_id, pid_of(wh, 0)])
        seq = _entry(wh, "run", "run_id", run_id)
        v = audit.verify(wh.con)
        assert not v.ok and v.first_bad_seq == seq
        assert f"entry {seq} (run): the rows of " in v.problem and " in table " in v.problem
        assert v.action == "run" and v.table in ("code_details", "code_defaults", "population_rows", "runs")
    res = CliRunner().invoke(app, ["audit", "verify", "--db", str(db)])
    assert res.exit_code == 1 and f"entry {seq}" in res.output
    res = CliRunner().invoke(app, ["audit", "verify", "--db", str(db), "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["first_bad_seq"] == seq


def test_edited_loaded_row_is_caught_naming_the_load_entry(db, tmp_path):
    with Warehouse.open(db) as wh:
        r, _ = _cases(wh, tmp_path)
        wh.con.execute("UPDATE feed_cases SET reported_at = TIMESTAMP '2022-06-01 08:00:00'")
        seq = _entry(wh, "load", "load_id", r.load_id)
        v = audit.verify(wh.con)
        assert not v.ok and v.first_bad_seq == seq and f"the rows of load {r.load_id} in table feed_cases" in v.problem
    # an edited audit entry breaks the chain at that entry
    with Warehouse.open(db) as wh:
        wh.con.execute("UPDATE audit SET operator = 'someone else' WHERE seq = 1")
        v = audit.verify(wh.con)
        assert v.first_bad_seq == 1 and "hash chain" in v.problem


def test_history_lists_published_runs_with_changes(db, tmp_path):
    with Warehouse.open(db) as wh:
        ra, held, rb, rc = three_published_runs(wh, tmp_path)
    res = CliRunner().invoke(app, ["history", IDS[4], "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    h = json.loads(res.stdout)["history"]
    assert [e["run_id"] for e in h] == [ra, rb, rc]  # the held-back run is not listed
    assert [(e["color"], e["rule"], e["changed"], e["since"]) for e in h] == [
        ("red", "NR-R-01", False, A.isoformat()), ("green", None, True, B.isoformat()),
        ("red", "NR-R-01", True, C.isoformat())]
    h3 = json.loads(CliRunner().invoke(app, ["history", IDS[3], "--db", str(db), "--json"]).stdout)["history"]
    assert [e["color"] for e in h3] == [None, None, "green"] and h3[2]["changed"] is True
    res = CliRunner().invoke(app, ["history", f"  {IDS[0].lower()} ", "--db", str(db)])
    assert res.exit_code == 0 and "SH-R-03" in res.stdout


def _purge_warehouse(wh, tmp):
    register(wh, tmp, range(6), D, when="2022-01-01")
    load(wh, csv(tmp, "cases.csv", "id_number,case_type,reported_at", [
        f"{IDS[0]},confirmed,2022-05-01 10:00:00",  # never discharged: red, must be kept
        f"{IDS[1]},confirmed,2022-04-01 10:00:00",  # discharged: both rows can go
    ]), D)
    load(wh, csv(tmp, "discharges.csv", "id_number,discharged_at", [f"{IDS[1]},2022-04-20 10:00:00"]), D)
    load(wh, csv(tmp, "contacts.csv", "id_number,contact_level,identified_at", [
        f"{IDS[2]},close,2022-05-20 10:00:00",  # released by the exit test of 06-02: can go
        f"{IDS[3]},close,2022-05-25 10:00:00",  # never released: red, must be kept
    ]), D)
    load(wh, csv(tmp, "nat_results.csv", "id_number,sampled_at,result,pooled", [
        f"{IDS[2]},2022-06-02 10:00:00,negative,false",  # after the cut: stays
        f"{IDS[4]},2022-05-01 10:00:00,negative,false",  # old and irrelevant: goes
        f"{IDS[5]},2022-06-10 10:00:00,positive,true",  # recent: stays
    ]), D)
    return run(wh, D)


def test_purge_keeps_what_a_code_needs_and_audit_still_verifies(db, tmp_path):
    with Warehouse.open(db) as wh:
        with pytest.raises(HcodeError, match="no published run"):
            purge(wh, dt.date(2022, 6, 1), "op")
        run_id = _purge_warehouse(wh, tmp_path)
        before = run_codes(wh.con, run_id)
        assert before.filter(before["color"] == "red").height == 3  # persons 0, 3, 5
        with pytest.raises(HcodeError, match="after the cut-off of run"):
            purge(wh, dt.date(2022, 6, 16), "op")

        dry = purge(wh, dt.date(2022, 6, 1), "op", dry_run=True)
        assert dry.audit_seq is None and dry.removed["cases"] == 1
        assert wh.con.execute("SELECT count(*) FROM feed_cases").fetchall() == [(2,)]

        res = purge(wh, dt.date(2022, 6, 1), "op")
        assert res.reference_runs == (run_id,)
        assert {k: v for k, v in res.removed.items() if v} == {"cases": 1, "discharges": 1, "contacts": 1,
                                                               "nat_results": 1}
        assert {k: v for k, v in res.kept.items() if v} == {"cases": 1, "contacts": 1}
        assert set(res.kept_persons) == {key_of(wh, 0), key_of(wh, 3)}
        assert wh.con.execute("SELECT count(*) FROM feed_cases").fetchall() == [(1,)]
        assert wh.con.execute("SELECT count(*) FROM feed_discharges").fetchall() == [(0,)]
        assert wh.con.execute("SELECT count(*) FROM feed_nat_results").fetchall() == [(2,)]
        assert wh.con.execute("SELECT count(*) FROM feed_registrations").fetchall() == [(6,)]

        v = audit.verify(wh.con)
        assert v.ok, v.problem
        detail = json.loads(wh.con.execute("SELECT detail FROM audit WHERE seq = ?", [res.audit_seq]).fetchall()[0][0])
        assert detail["kept_persons"] == 2 and sum(map(len, detail["content"].values())) == 4
        # the codes recomputed now are exactly the published ones
        ev, _, _ = evaluate_warehouse(wh, find_ruleset("shanghai@2022.05.23"), D)
        after = ev.codes.sort("pid").select("pid", "color", "rule", "matched_rules")
        assert after.equals(before.sort("pid").select("pid", "color", "rule", "matched_rules"))
        # a later edit of a purged load is still caught
        wh.con.execute("DELETE FROM feed_nat_results WHERE pid = ?", [pid_of(wh, 5)])
        assert not audit.verify(wh.con).ok


def test_purge_takes_the_repeats_of_the_purged_rows_along(db, tmp_path):
    with Warehouse.open(db) as wh:
        _purge_warehouse(wh, tmp_path)
        old, recent = f"{IDS[4]},2022-05-01 10:00:00,negative,false", f"{IDS[5]},2022-06-10 10:00:00,positive,true"
        again = load(wh, csv(tmp_path, "nat_results.csv", "id_number,sampled_at,result,pooled", [old, recent]), D)
        assert again.rows_new == 0
        assert wh.con.execute("SELECT load_id, count(*) FROM repeats GROUP BY ALL").fetchall() == [(again.load_id, 2)]
        res = purge(wh, dt.date(2022, 6, 1), "op")
        assert res.removed["nat_results"] == 1
        # the purged row's repeat went with it; the recent row's stays (retracting its load keeps it)
        assert wh.con.execute("SELECT load_id, count(*) FROM repeats GROUP BY ALL").fetchall() == [(again.load_id, 1)]
        detail = json.loads(wh.con.execute("SELECT detail FROM audit WHERE seq = ?", [res.audit_seq]).fetchall()[0][0])
        assert list(detail["content"]["repeats"]) == [str(again.load_id)]
        v = audit.verify(wh.con)
        assert v.ok, v.problem
        wh.con.execute("DELETE FROM repeats")
        v = audit.verify(wh.con)
        assert not v.ok and (v.first_bad_seq, v.table) == (res.audit_seq, "repeats"), v.problem


def test_purge_command(db, tmp_path):
    with Warehouse.open(db) as wh:
        _purge_warehouse(wh, tmp_path)
    res = CliRunner().invoke(app, ["purge", "--before", "2022-06-01", "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["removed"]["contacts"] == 1 and len(out["kept_persons"]) == 2
    assert CliRunner().invoke(app, ["audit", "verify", "--db", str(db)]).exit_code == 0
    assert CliRunner().invoke(app, ["purge", "--before", "June", "--db", str(db)]).exit_code == 2


def test_population_digest_is_the_documented_canonical_encoding():
    import hashlib
    import struct

    import polars as pl

    pop = pl.DataFrame({"pid": [2, 1, 3], "district": [310104, 10101, None]},
                       schema={"pid": pl.Int32, "district": pl.Int32})
    raw = struct.pack("<3i", 1, 2, 3) + struct.pack("<3i", 10101, 310104, -1)
    assert audit.population_digest(pop) == f"3:{hashlib.sha256(raw).hexdigest()}"
    assert audit.population_digest(pop.sort("pid")) == audit.population_digest(pop)
    moved = pop.with_columns(pl.when(pl.col("pid") == 3).then(310101).otherwise(pl.col("district"))
                             .alias("district"))
    assert audit.population_digest(moved) != audit.population_digest(pop)


def test_runs_on_one_population_share_it_and_a_shared_population_edit_names_the_first_run(db, tmp_path):
    with Warehouse.open(db) as wh:
        _, first = _cases(wh, tmp_path)
        second = run(wh, D, publish=False, ruleset="shanghai@2022.06.28")
        register(wh, tmp_path, [5], D)  # one more person: a new population
        third = run(wh, D, publish=False)
        pops = wh.con.execute("SELECT run_id, population_id FROM runs ORDER BY run_id").fetchall()
        assert [p for _, p in pops] == [1, 1, 2]
        assert wh.con.execute("SELECT population_id, persons, count(*) FROM populations JOIN population_rows "
                              "USING (population_id) GROUP BY ALL ORDER BY 1").fetchall() == [(1, 3, 3), (2, 4, 4)]
        counts = dict(wh.con.execute("SELECT run_id, count(*) FROM codes GROUP BY run_id").fetchall())
        assert counts == {first: 3, second: 3, third: 4}
        assert run_codes(wh.con, first).filter(pl.col("pid") == pid_of(wh, 0))["color"].to_list() == ["red"]
        assert audit.verify(wh.con).ok
        wh.con.execute("UPDATE population_rows SET district = 110101 WHERE population_id = 1")
        v = audit.verify(wh.con)
        assert not v.ok and v.first_bad_seq == _entry(wh, "run", "run_id", first)


def test_a_run_that_fails_to_store_leaves_nothing_and_says_why(db, tmp_path):
    import duckdb

    from hcode.runs.store import store_run

    with Warehouse.open(db) as wh:
        _cases(wh, tmp_path)
        ev, top, loads = evaluate_warehouse(wh, find_ruleset("shanghai@2022.05.23"), D)
        broken = dataclasses.replace(ev, results=ev.results.with_columns(pl.lit(None, pl.String).alias("color")))
        before = wh.con.execute("SELECT count(*) FROM runs").fetchall()
        with pytest.raises(duckdb.ConstraintException, match="NOT NULL"):  # the cause, not "transaction aborted"
            store_run(wh, broken, top, loads, "tester")
        assert wh.con.execute("SELECT count(*) FROM runs").fetchall() == before
        assert wh.con.execute("SELECT current_setting('preserve_insertion_order')").fetchall() == [(True,)]
        assert audit.verify(wh.con).ok
