from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

from hcode import warehouse
from hcode.cli import app
from hcode.errors import WarehouseMissing, WarehouseVersion, WrongKey
from hcode.warehouse import Warehouse


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
    monkeypatch.setenv("HCODE_KEY", "not the key the warehouse was created with")
    with pytest.raises(WrongKey, match="mixing keys would split one person in two"):
        Warehouse.open(db)
    res = CliRunner().invoke(app, ["runs", "--db", str(db)])
    assert res.exit_code == 1 and "does not match" in res.output


def test_a_warehouse_of_another_schema_is_refused_by_init_and_every_command(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    with Warehouse.open(db) as wh:
        wh.con.execute("UPDATE meta SET v = '1' WHERE k = 'schema_version'")
    with pytest.raises(WarehouseVersion, match="has warehouse schema 1, this hcode needs schema 2"):
        Warehouse.open(db)
    with pytest.raises(WarehouseVersion):
        warehouse.init(db)
    res = CliRunner().invoke(app, ["runs", "--db", str(db)])
    assert res.exit_code == 1 and "create a new warehouse with `hcode init`" in res.output


def test_the_codes_view_joins_the_three_stored_parts(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    with Warehouse.open(db) as wh:
        wh.con.execute("INSERT INTO code_colors VALUES (1, 7, '310101', 'red', 'R'), (1, 8, '310101', 'green', NULL)")
        wh.con.execute("INSERT INTO code_details VALUES (1, 7, ['R'], [], NULL, 'red because R')")
        wh.con.execute("INSERT INTO code_defaults VALUES (1, 'green', NULL, 'green: nothing')")
        rows = wh.con.execute("SELECT pid, color, rule, matched_rules, evidence, override, explanation "
                              "FROM codes WHERE run_id = 1 ORDER BY pid").fetchall()
    assert rows == [(7, "red", "R", ["R"], [], None, "red because R"),
                    (8, "green", None, [], [], None, "green: nothing")]


def test_env_key_needs_no_file_and_missing_warehouse_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("HCODE_KEY", "k")
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
