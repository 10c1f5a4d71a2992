from __future__ import annotations

import datetime as dt

import pytest

from hcode.store import warehouse
from hcode.store.warehouse import Warehouse

NOW = dt.datetime(2022, 6, 15, 6, 0, 0)
# Valid ids (stdnum.cn.ric accepts them) used across tests.
ID_A = "110101199003077758"
ID_B = "310101198001010026"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch):
    monkeypatch.delenv("HCODE_KEY", raising=False)
    monkeypatch.delenv("HCODE_DB", raising=False)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse.init(path)
    return path


@pytest.fixture
def wh(db):
    with Warehouse.open(db) as w:
        yield w
