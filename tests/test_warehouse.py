from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.errors import WarehouseMissing, WarehouseVersion, WrongKey
from hcode.store import warehouse
from hcode.store.warehouse import Warehouse


def test_init_creates_a_private_key_and_is_harmless_twice(tmp_path):
    db = tmp_path / "sub" / "w.duckdb"
    first = warehouse.init(db)
    key = (tmp_path / "sub" / "w.duckdb.key").read_text().strip()
    assert first.created_db and first.created_key and len(key) == 64 and int(key, 16) >= 0
    assert stat.S_IMODE((tmp_path / "sub" / "w.duckdb.key").stat().st_mode) == 0o600
    second = warehouse.init(db)
    assert not second.created_db and not second.created_key and second.fingerprint == first.fingerprint
    assert (tmp_path / "sub" / "w.duckdb.key").read_text().strip() == key


def test_another_key_stops_every_command(tmp_path, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    monkeypatch.setenv("HCODE_KEY", "not the key the warehouse was created with, at all")
    with pytest.raises(WrongKey, match="mixing keys would split one person in two"):
        Warehouse.open(db)
    res = CliRunner().invoke(app, ["runs", "--db", str(db)])
    assert res.exit_code == 1 and "does not match" in res.output


@pytest.mark.parametrize("version", ["1", "2", "3", "4"])
def test_a_warehouse_of_another_schema_is_refused_by_init_and_every_command(tmp_path, version):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    with Warehouse.open(db) as wh:
        wh.con.execute("UPDATE meta SET v = ? WHERE k = 'schema_version'", [version])
    needs = f"has warehouse schema {version}, this hcode needs schema {warehouse.SCHEMA_VERSION}"
    with pytest.raises(WarehouseVersion, match=needs):
        Warehouse.open(db)
    with pytest.raises(WarehouseVersion):
        warehouse.init(db)
    res = CliRunner().invoke(app, ["runs", "--db", str(db)])
    assert res.exit_code == 1 and "create a new warehouse with `hcode init`" in res.output


def test_the_codes_view_joins_the_stored_parts(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    with Warehouse.open(db) as wh:
        run = ("INSERT INTO runs (run_id, province, version, ruleset_hash, as_of, cutoff, created_at, max_load_id, "
               "persons, colors, overrides_applied, overrides_not_applied, population_id) VALUES "
               "(?, 'p', '1', 'h', DATE '2022-06-14', TIMESTAMP '2022-06-15', TIMESTAMP '2022-06-15', 1, 2, '{}', "
               "0, 0, ?)")
        wh.con.execute(run, [1, 5])
        wh.con.execute(run, [2, 5])  # two runs share population 5
        wh.con.execute("INSERT INTO populations VALUES (5, 2, 'x'), (6, 1, 'y')")
        # districts are stored as numbers, given back as 6-digit codes
        wh.con.execute("INSERT INTO population_rows VALUES (5, 7, 310101), (5, 8, 10104), (6, 9, 310101)")
        wh.con.execute("INSERT INTO code_details VALUES (1, 7, 'red', 'R', ['R'], [], NULL, 'red because R')")
        wh.con.execute("INSERT INTO code_defaults VALUES (1, 'green', NULL, 'green: nothing'), "
                       "(2, 'yellow', 'Y', 'yellow: everyone')")
        rows = wh.con.execute("SELECT run_id, pid, district_code, color, rule, matched_rules, evidence, override, "
                              "explanation FROM codes ORDER BY run_id, pid").fetchall()
    assert rows == [(1, 7, "310101", "red", "R", ["R"], [], None, "red because R"),
                    (1, 8, "010104", "green", None, [], [], None, "green: nothing"),
                    (2, 7, "310101", "yellow", "Y", [], [], None, "yellow: everyone"),
                    (2, 8, "010104", "yellow", "Y", [], [], None, "yellow: everyone")]


def test_env_key_needs_no_file_and_missing_warehouse_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("HCODE_KEY", "k" * 32)
    res = CliRunner().invoke(app, ["init", "--db", str(tmp_path / "w.duckdb"), "--json"])
    out = json.loads(res.output)
    assert res.exit_code == 0 and out["key_file"] is None and not (tmp_path / "w.duckdb.key").exists()
    with pytest.raises(WarehouseMissing, match="hcode init"):
        Warehouse.open(tmp_path / "other.duckdb")


def test_explain_and_history_refuse_an_id_that_could_never_have_been_loaded(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    for args in (["explain", "123", "--run", "1"], ["history", "110101199003077757"]):
        res = CliRunner().invoke(app, [*args, "--db", str(db)])
        assert res.exit_code == 2 and "is not a valid id number" in res.output
