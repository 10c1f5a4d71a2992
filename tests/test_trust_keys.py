"""Keys and files: private modes, refused weak or exposed keys, a keyed fingerprint, and no
new key beside a warehouse that has data."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.errors import KeyRefused
from hcode.store import warehouse
from hcode.store.warehouse import Warehouse

LONG_KEY = "k" * 32


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_warehouse_and_key_files_are_created_private(tmp_path):
    old = os.umask(0o022)
    try:
        warehouse.init(tmp_path / "w.duckdb")
        with Warehouse.open(tmp_path / "w.duckdb") as wh:
            wh.con.execute("CHECKPOINT")
    finally:
        os.umask(old)
    assert mode(tmp_path / "w.duckdb") == 0o600 and mode(tmp_path / "w.duckdb.key") == 0o600


@pytest.mark.parametrize("perm", [0o640, 0o604, 0o644])
def test_a_key_file_readable_by_others_is_refused(tmp_path, perm):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    os.chmod(tmp_path / "w.duckdb.key", perm)
    with pytest.raises(KeyRefused, match="readable by"):
        Warehouse.open(db)
    res = CliRunner().invoke(app, ["runs", "--db", str(db)])
    assert res.exit_code == 1 and "chmod 600" in res.output


def test_a_symlinked_key_file_is_refused(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    real = tmp_path / "elsewhere.key"
    os.replace(tmp_path / "w.duckdb.key", real)
    os.symlink(real, tmp_path / "w.duckdb.key")
    with pytest.raises(KeyRefused, match="symbolic link"):
        Warehouse.open(db)


def test_a_short_env_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HCODE_KEY", "abc")
    with pytest.raises(KeyRefused, match="32 characters"):
        warehouse.init(tmp_path / "w.duckdb")
    assert not (tmp_path / "w.duckdb").exists()
    monkeypatch.setenv("HCODE_KEY", LONG_KEY)
    assert warehouse.init(tmp_path / "w.duckdb").created_db


def test_the_fingerprint_is_keyed_not_a_bare_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("HCODE_KEY", LONG_KEY)
    warehouse.init(tmp_path / "w.duckdb")
    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        [(stored,)] = wh.con.execute("SELECT v FROM meta WHERE k = 'key_fingerprint'").fetchall()
    assert stored != hashlib.sha256(LONG_KEY.encode()).hexdigest()
    assert stored == warehouse.fingerprint(LONG_KEY) and len(stored) == 64


def test_init_never_writes_a_new_key_beside_an_existing_warehouse(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    (tmp_path / "w.duckdb.key").unlink()
    with pytest.raises(KeyRefused, match="key file is missing"):
        warehouse.init(db)
    assert not (tmp_path / "w.duckdb.key").exists()
