"""The Polars engine equals the plain-Python reference engine, and the engine's invariants
hold, on generated populations, for every shipped ruleset."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from populations import AS_OF, population

from hcode.engine.evaluate import evaluate
from hcode.engine.reference import reference_codes
from hcode.rules.load import find_ruleset, shipped

RULESETS = {f"{s.province}@{s.version}": find_ruleset(f"{s.province}@{s.version}") for s in shipped()}
NAMES = sorted(RULESETS)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = ["pid", "district_code", "color", "rule", "matched_rules"]


def test_all_shipped_rulesets_are_covered():
    assert NAMES == ["henan@2022.06.01", "shanghai@2022.05.23", "shanghai@2022.06.28", "zhejiang@2022.03.01"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(frames=population())
def test_polars_equals_reference(name, frames):
    rs = RULESETS[name]
    got = evaluate(rs, frames, AS_OF).codes.select(KEY)
    want = reference_codes(rs, frames, AS_OF)
    assert got.to_dicts() == want.to_dicts()


@pytest.mark.slow
@SETTINGS
@given(frames=population(), name=st.sampled_from(NAMES), seed=st.integers(0, 2**16))
def test_codes_do_not_depend_on_row_order_or_duplicates(frames, name, seed):
    rs = RULESETS[name]
    shuffled = {f: pl.concat([df, df.head(2)]).sample(fraction=1.0, shuffle=True, seed=seed)
                for f, df in frames.items()}
    a = evaluate(rs, frames, AS_OF).codes
    b = evaluate(rs, shuffled, AS_OF).codes
    assert a.to_dicts() == b.to_dicts()


@pytest.mark.slow
@SETTINGS
@given(frames=population(), name=st.sampled_from(NAMES))
def test_code_is_the_most_severe_matched_colour_or_the_applied_override(frames, name):
    rs = RULESETS[name]
    codes = evaluate(rs, frames, AS_OF).codes
    for row in codes.iter_rows(named=True):
        ov = row["override"]
        if ov is not None and ov["applied"]:
            assert row["color"] == ov["color"] and row["rule"] == "override"
            continue
        colors = [rs.rule(r).color for r in row["matched_rules"]]
        want = max(colors, key=rs.rank) if colors else rs.palette[0]
        assert row["color"] == want
        if colors:
            assert rs.rule(row["rule"]).color == want
            assert row["rule"] == next(r for r in row["matched_rules"] if rs.rule(r).color == want)
            assert {e["rule"] for e in row["evidence"]} <= set(row["matched_rules"])
        else:
            assert row["rule"] is None and row["evidence"] == []
        assert row["explanation"].startswith(row["color"] + ":")


@pytest.mark.parametrize("name", NAMES)
def test_a_person_without_events_gets_the_first_colour(name):
    rs = RULESETS[name]
    frames = {"registrations": pl.DataFrame({"pid": [7], "registered_at": [dt.datetime(2022, 1, 1)],
                                             "district_code": ["310101"]}).with_columns(
        pl.col("pid").cast(pl.Int32), pl.col("registered_at").cast(pl.Datetime("us")))}
    ev = evaluate(rs, frames, AS_OF)
    row = ev.codes.row(0, named=True)
    assert row["color"] == rs.palette[0] and row["rule"] is None and row["matched_rules"] == []
    assert row["explanation"] == "green: no rule matched"
    assert ev.colors == {"green": 1, "yellow": 0, "red": 0}
