"""The sample's place codes: scans at realistic rates, planted persons for every Henan rule,
and the article's scene, which the companions test flags (and not the control gathering)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from hcode.engine.days import DayCodes
from hcode.ingest.load import ingest
from hcode.ops.companions import companions
from hcode.rules.load import find_ruleset
from hcode.runs.backtest import backtest
from hcode.runs.store import evaluate_warehouse, run_codes, store_run
from hcode.sample.night import generate, write
from hcode.sample.places import place_count
from hcode.store.pseudonym import person_key

AS_OF = dt.date(2022, 6, 14)
RESIDENTS = 400


@pytest.fixture(scope="module")
def night():
    return generate(RESIDENTS, 3, AS_OF)


def test_scans_per_day_rates_and_zero_leaves_the_place_feeds_out(night):
    scans = night.feeds["place_scans"]
    assert 0.8 * RESIDENTS * 42 < scans.height < 1.2 * RESIDENTS * 42 + 200
    assert night.feeds["places"].height >= place_count(RESIDENTS)
    busiest = scans.group_by("place_code").len().sort("len", descending=True)
    assert busiest["len"][0] > 10 * scans.height / busiest.height  # stations and markets are busy
    assert {"high", "medium"} <= set(night.feeds["risk_places"]["level"].to_list())
    bare = generate(RESIDENTS, 3, AS_OF, scans_per_day=0)
    assert not {"places", "place_scans", "risk_places"} & set(bare.feeds)
    assert "place_persons" not in bare.manifest() and "scene" in night.manifest()


@pytest.mark.slow
def test_planted_place_persons_and_the_scene(night, wh, tmp_path):
    write(night, tmp_path / "n")
    ingest(wh, [tmp_path / "n"], now=dt.datetime(2022, 6, 15, 6))
    manifest = night.manifest()
    runs = {}
    for name in manifest["place_persons"][0]["expected"]:
        ev, top, loads = evaluate_warehouse(wh, find_ruleset(name), AS_OF)
        runs[name] = store_run(wh, ev, top, loads, "tester", publish=name != "henan@2022.06.01")
    for name, run_id in runs.items():
        codes = run_codes(wh.con, run_id)
        got = {k: (c, list(m)) for k, c, m in codes.select("person_key", "color", "matched_rules").iter_rows()}
        for p in manifest["place_persons"]:
            want = p["expected"][name]
            assert got[person_key(p["id_number"], wh.key)] == (want["color"], want["rules"]), (name, p["key"])
    # the day before, published: then the scene's red scans are more severe than the code in force
    henan = find_ruleset("henan@2022.06.01")
    ev, top, loads = evaluate_warehouse(wh, henan, AS_OF - dt.timedelta(days=1))
    store_run(wh, ev, top, loads, "tester", publish=True)
    res = companions(wh, runs["henan@2022.06.01"])
    scene = manifest["scene"]
    [g] = res.groups
    assert (g.place_code, g.place_name) == (scene["flagged"]["place_code"], scene["flagged"]["name"])
    assert (g.unexplained, g.first_color_companions) == (6, 4)
    keys = {person_key(i, wh.key) for i in scene["flagged"]["unexplained"]}
    assert set(res.members.filter(pl.col("unexplained"))["person_key"]) == keys
    control = {person_key(i, wh.key) for i in scene["control"]["persons"]}
    assert not control & set(res.members["person_key"])
    assert res.shown_vs_published.more_severe == 6 and res.shown_vs_published.less_severe >= 0


@pytest.mark.slow
def test_backtest_days_of_henan_are_evaluate_person_by_person(night, wh, tmp_path):
    """The backtest's shared reads (listings once per range, companion seeds per day) give each
    day exactly the colours and deciding rules of `evaluate` for the Henan rules."""
    write(night, tmp_path / "n")
    ingest(wh, [tmp_path / "n"], now=dt.datetime(2022, 6, 15, 6))
    henan = find_ruleset("henan@2022.06.01")
    seen: dict[dt.date, DayCodes] = {}
    bt = backtest(wh, henan, AS_OF - dt.timedelta(days=2), AS_OF, on_day=lambda a, b: seen.setdefault(a.day, a))
    assert len(bt.days) == 3 and sorted(seen) == [d.date for d in bt.days]
    deciding: set[str] = set()
    for day, codes in seen.items():
        ev, _, _ = evaluate_warehouse(wh, henan, day)
        assert codes.codes().equals(ev.codes.select("pid", "color", "rule")), day
        deciding |= set(codes.rules())
    # the planted place persons: a place listing and a companion decide codes on these days
    assert {"HA-R-03", "HA-Y-02"} <= deciding
