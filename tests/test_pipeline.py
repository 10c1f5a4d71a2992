"""End to end on the checked-in sample night: ingest, evaluate every shipped ruleset, and
check the codes against the planted persons' expectations, which the sample generator
derived from docs/rulesets.md independently of the engine."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from planted_checks import planted_mismatches

from hcode.ingest.load import ingest
from hcode.paths import sample_data_dir
from hcode.rules.load import find_ruleset
from hcode.runs import store as runs
from hcode.runs.explain import explain
from hcode.store import warehouse
from hcode.store.warehouse import Warehouse

PLANTED = json.loads((sample_data_dir() / "planted.json").read_text(encoding="utf-8"))
AS_OF = dt.date.fromisoformat(PLANTED["as_of"])
LOADED_AT = dt.datetime.fromisoformat(PLANTED["loaded_at"])
RULESETS = ["shanghai@2022.05.23", "shanghai@2022.06.28", "zhejiang@2022.03.01"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    db = tmp_path_factory.mktemp("pipeline") / "w.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HCODE_KEY", raising=False)
        warehouse.init(db)
        with Warehouse.open(db) as wh:
            results = ingest(wh, [sample_data_dir()], now=LOADED_AT)
    return db, results


def test_sample_night_loads_with_every_bad_row_quarantined(loaded):
    db, results = loaded
    assert not any(r.rejected for r in results)
    assert len(results) == 12
    for r in results:
        assert r.rows_read == r.rows_loaded + r.rows_quarantined
    with Warehouse.open(db, read_only=True) as wh:
        got = {(f, line, e["column"]) for f, line, errors in wh.con.execute(
            "SELECT feed, line, errors FROM quarantine").fetchall() for e in errors}
    expected = {(b["feed"], b["line"], b["column"]) for b in PLANTED["bad_rows"]}
    assert expected <= got
    assert len({(f, line) for f, line, _ in got}) == sum(r.rows_quarantined for r in results)


@pytest.mark.parametrize("name", RULESETS)
def test_planted_persons_get_the_codes_rules_md_gives_them(loaded, name):
    db, _ = loaded
    with Warehouse.open(db, read_only=True) as wh:
        assert not planted_mismatches(wh, PLANTED["persons"], name, AS_OF)


def test_stored_run_explain_and_codes_file(loaded, tmp_path):
    db, _ = loaded
    rs = find_ruleset("shanghai", as_of=AS_OF)
    assert rs.name == "shanghai@2022.05.23"
    contact = next(p for p in PLANTED["persons"] if p["expected"][rs.name]["rules"] == ["SH-R-03"])
    with Warehouse.open(db) as wh:
        ev, max_load, loads = runs.evaluate_warehouse(wh, rs, AS_OF)
        run_id = runs.store_run(wh, ev, max_load, loads, "tester")
        info = runs.get_run(wh.con, run_id)
        assert (info.persons, info.colors, info.loads) == (ev.persons, ev.colors, loads)
        assert sum(info.colors.values()) == info.persons
        out = runs.write_codes(runs.with_person_keys(wh.con, ev.codes), tmp_path / "codes.csv")
        exp = explain(wh, contact["id_number"], run_id=run_id)
        live = explain(wh, contact["id_number"], ruleset=rs, as_of=AS_OF, lang="zh")
    frame = pl.read_csv(out)
    assert frame.columns == ["person_key", "color", "rule", "matched_rules", "explanation"]
    assert frame.height == ev.persons and frame["person_key"].is_sorted()
    assert exp.color == "red" and exp.rule == "SH-R-03"
    [m] = exp.matched_rules
    assert m.id == "SH-R-03" and m.evidence and m.evidence[0]["feed"] == "contacts"
    assert live.color == "red" and live.explanation != exp.explanation  # Chinese sentence
    assert exp.history[-1]["run_id"] == run_id


def test_codes_do_not_depend_on_load_order(loaded, tmp_path, monkeypatch):
    monkeypatch.setenv("HCODE_KEY", "order-test-key-of-32-characters!")
    files = sorted(p for p in sample_data_dir().iterdir() if p.suffix == ".csv")
    outs = []
    for n, order in enumerate((files, files[::-1])):
        db = tmp_path / f"w{n}.duckdb"
        warehouse.init(db)
        with Warehouse.open(db) as wh:
            ingest(wh, order, now=LOADED_AT)
            ev, _, _ = runs.evaluate_warehouse(wh, find_ruleset("zhejiang@2022.03.01"), AS_OF)
            outs.append(runs.with_person_keys(wh.con, ev.codes).drop("pid"))
    assert outs[0].equals(outs[1])
