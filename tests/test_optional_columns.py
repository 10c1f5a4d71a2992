"""Optional contract columns: `cases.diagnosed_at` and `inbound_codes.pushed_at` may be sent or
not; ingest validates them when present, rules read them, both engines agree."""

from __future__ import annotations

import datetime as dt
import textwrap

import polars as pl
import pytest
from conftest import ID_A, NOW

from hcode.engine.evaluate import evaluate
from hcode.engine.reference import reference_codes
from hcode.feeds import FEEDS, Kind
from hcode.ingest.load import ingest
from hcode.rules.load import load_ruleset
from hcode.store import audit
from hcode.store.warehouse import Warehouse
from hcode.store.warehouse import init as init_warehouse

AS_OF = dt.date(2022, 6, 14)
ID_C = "310101198001010026"  # valid (stdnum.cn.ric accepts it)


def test_the_contracts_name_them_optional():
    for feed, name, event_time in (("cases", "diagnosed_at", "reported_at"), ("inbound_codes", "pushed_at", "since")):
        col = FEEDS[feed].column(name)
        assert col.optional and col.nullable and col.kind is Kind.TIMESTAMP and not col.future_ok
        assert col not in FEEDS[feed].required_columns and col in FEEDS[feed].stored_columns
        assert FEEDS[feed].event_time == event_time  # the event time is unchanged


def load(wh, tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    [r] = ingest(wh, [path], now=NOW)
    return r


def test_files_load_with_and_without_the_optional_columns(wh, tmp_path):
    without = load(wh, tmp_path, "cases.csv", f"""\
        id_number,case_type,reported_at
        {ID_A},confirmed,2022-06-10 08:00:00
        """)
    with_ = load(wh, tmp_path, "cases_2.csv", f"""\
        id_number,reported_at,Diagnosed_At,case_type
        {ID_C},2022-06-11 08:00:00,2022-06-09 20:00,confirmed
        {ID_A},2022-06-12 08:00:00,,asymptomatic
        {ID_A},2022-06-12 09:00:00,2022-13-01,suspected
        {ID_A},2022-06-12 10:00:00,2022-06-30 10:00:00,suspected
        """)
    assert not without.rejected and (without.rows_loaded, without.rows_quarantined) == (1, 0)
    assert not with_.rejected and (with_.rows_loaded, with_.rows_quarantined) == (2, 2)
    rows = wh.con.execute("SELECT case_type, diagnosed_at FROM feed_cases ORDER BY reported_at").fetchall()
    assert rows == [("confirmed", None), ("confirmed", dt.datetime(2022, 6, 9, 20)), ("asymptomatic", None)]
    reasons = {r[0] for r in wh.con.execute(
        "SELECT e.reason FROM (SELECT unnest(errors) AS e FROM quarantine) WHERE e.column = 'diagnosed_at'").fetchall()}
    assert reasons == {"not a timestamp (expected YYYY-MM-DD[ HH:MM:SS])",
                       "more than a day after the moment of loading"}
    parquet = tmp_path / "inbound_codes.parquet"
    pl.DataFrame({"id_number": [ID_A, ID_C], "province": ["32", "44"], "color": ["Red", "yellow"],
                  "since": [dt.datetime(2022, 6, 10, 8)] * 2,
                  "pushed_at": [dt.datetime(2022, 6, 10, 9), None]}).write_parquet(parquet)
    [r] = ingest(wh, [parquet], now=NOW)
    assert (r.rows_loaded, r.rows_quarantined) == (2, 0)
    assert wh.con.execute("SELECT color, pushed_at FROM feed_inbound_codes ORDER BY province").fetchall() == [
        ("red", dt.datetime(2022, 6, 10, 9)), ("yellow", None)]


def test_a_warehouse_made_before_the_optional_columns_gets_them(tmp_path, monkeypatch):
    db = tmp_path / "old.duckdb"
    init_warehouse(db)
    with Warehouse.open(db) as wh:  # as an older hcode made it: no optional columns
        wh.con.execute("ALTER TABLE feed_cases DROP COLUMN diagnosed_at")
        wh.con.execute("ALTER TABLE feed_inbound_codes DROP COLUMN pushed_at")
    with Warehouse.open(db, read_only=True) as wh:
        cols = [r[0] for r in wh.con.execute("SELECT column_name FROM information_schema.columns "
                                             "WHERE table_name = 'feed_cases'").fetchall()]
        assert "diagnosed_at" not in cols
    with Warehouse.open(db) as wh:
        assert wh.con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'feed_cases' "
                              "ORDER BY ordinal_position").fetchall()[-1] == ("diagnosed_at",)  # added last
        r = load(wh, tmp_path, "cases.csv", f"""\
            id_number,case_type,reported_at,diagnosed_at
            {ID_A},confirmed,2022-06-10 08:00:00,2022-06-09 08:00:00
            """)
        assert r.rows_loaded == 1
        assert wh.con.execute("SELECT case_type, reported_at, diagnosed_at, load_id FROM feed_cases").fetchall() == [
            ("confirmed", dt.datetime(2022, 6, 10, 8), dt.datetime(2022, 6, 9, 8), r.load_id)]  # by name, not position
        assert audit.verify(wh.con).ok


RULESET = """\
province: testland
version: 2022.01.01
effective_from: 2022-01-01
title: {zh: 测试, en: Test}
basis: test notice
palette: [green, yellow, red]
facts:
  diagnosed_at: latest cases.diagnosed_at
  late_push: exists inbound_codes where color = 'red' and pushed_at > since + 1 day
rules:
  - {id: D-1, color: red, title: {zh: 确诊, en: Diagnosed}, trigger: diagnosed_at, window: 14 days}
  - {id: P-1, color: yellow, title: {zh: 迟报, en: Pushed late}, when: late_push}
examples:
  - name: diagnosed 3 days ago
    as_of: 2022-06-14
    events:
      cases: [{case_type: Confirmed, reported_at: 2022-06-12 08:00, diagnosed_at: 2022-06-11 08:00}]
    expect: {color: red, rules: [D-1]}
  - name: a case without a diagnosis time matches nothing here
    as_of: 2022-06-14
    events:
      cases: [{case_type: confirmed, reported_at: 2022-06-12 08:00}]
    expect: {color: green, rules: []}
  - name: a red code pushed two days late
    as_of: 2022-06-14
    events:
      inbound_codes: [{province: '32', color: red, since: 2022-06-10 08:00, pushed_at: 2022-06-12 09:00}]
    expect: {color: yellow, rules: [P-1]}
"""


@pytest.fixture
def rs(tmp_path):
    p = tmp_path / "testland" / "2022.01.01.yaml"
    p.parent.mkdir()
    p.write_text(RULESET, encoding="utf-8")
    return load_ruleset(p)


def test_rules_read_the_optional_columns(rs):
    from hcode.engine.examples import run_examples

    assert rs.reads()["cases"] == ["diagnosed_at", "reported_at"]
    assert "pushed_at" in rs.reads()["inbound_codes"]
    assert all(o.passed for o in run_examples(rs)), [o.problems for o in run_examples(rs) if not o.passed]


@pytest.mark.parametrize("with_columns", [True, False])
def test_both_engines_agree_with_and_without_the_columns(rs, with_columns):
    n = 6
    regs = pl.DataFrame({"pid": list(range(1, n + 1)), "registered_at": [dt.datetime(2020, 1, 1)] * n,
                         "district_code": ["310101"] * n})
    cases = pl.DataFrame({"pid": [1, 2, 3], "case_type": ["confirmed"] * 3,
                          "reported_at": [dt.datetime(2022, 6, d, 8) for d in (12, 12, 1)],
                          "diagnosed_at": [dt.datetime(2022, 6, 11, 8), None, dt.datetime(2022, 5, 30, 8)]})
    inbound = pl.DataFrame({"pid": [4, 5], "province": ["32", "32"], "color": ["red", "red"],
                            "since": [dt.datetime(2022, 6, 10, 8)] * 2,
                            "pushed_at": [dt.datetime(2022, 6, 12, 9), dt.datetime(2022, 6, 10, 9)]})
    if not with_columns:
        cases, inbound = cases.drop("diagnosed_at"), inbound.drop("pushed_at")
    frames = {"registrations": regs, "cases": cases, "inbound_codes": inbound}
    ours = evaluate(rs, frames, AS_OF).codes.sort("pid").select("pid", "color", "rule")
    ref = reference_codes(rs, frames, AS_OF).sort("pid").select("pid", "color", "rule")
    assert ours.equals(ref)
    expected = ["red", "green", "green", "yellow", "green", "green"] if with_columns else ["green"] * n
    assert ours["color"].to_list() == expected
