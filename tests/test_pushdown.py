"""Predicate pushdown: what a fact's filter lets the warehouse skip, and that reading through
the warehouse gives exactly the codes that reading every row gives."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from populations import AS_OF, CUTOFF, population, warehouse_of

from hcode.engine.evaluate import evaluate
from hcode.engine.pushdown import Pushed, any_of, translate
from hcode.engine.sources import WarehouseSource
from hcode.rules.lang import (
    And,
    Arith,
    Column,
    Compare,
    Cutoff,
    Duration,
    FactRef,
    InList,
    IsNull,
    Lit,
    Not,
    Or,
    RiskArea,
    Within,
)
from hcode.rules.load import find_ruleset, shipped

NAT = "nat_results"
RESULT, POOLED, SAMPLED = Column(NAT, "result"), Column(NAT, "pooled"), Column(NAT, "sampled_at")
POSITIVE = Compare("=", RESULT, Lit("positive"))
AFTER_FACT = Compare(">", SAMPLED, FactRef("positive_at"))


def push(node, feed=NAT):
    return translate(node, feed, CUTOFF)


def test_a_comparison_with_a_literal_is_pushed_exactly():
    assert push(POSITIVE) == Pushed('"result" = ?', ("positive",), True)
    assert push(Compare("!=", Lit("MO"), Column("entries", "origin")), "entries") == Pushed(
        '"origin" <> ?', ("MO",), True)


def test_a_conjunct_reading_another_fact_is_dropped_and_the_rest_kept_inexact():
    p = push(And((Compare("=", RESULT, Lit("negative")), Not(POOLED), AFTER_FACT)))
    assert p == Pushed('("result" = ?) AND (NOT ("pooled"))', ("negative",), False)


@pytest.mark.parametrize("node", [
    AFTER_FACT,
    Or((POSITIVE, AFTER_FACT)),  # dropping a branch of `or` would lose rows
    Not(And((POSITIVE, AFTER_FACT))),  # `not` of a weakened filter would lose rows
    Compare("=", RESULT, Column(NAT, "sampled_at")),
    None,
])
def test_what_cannot_be_pushed_reads_every_row(node):
    assert push(node) is None


def test_time_windows_nulls_lists_and_risk_areas():
    assert push(Within(SAMPLED, Duration(14, "days"))) == Pushed(
        '"sampled_at" >= ? AND "sampled_at" < ?', (CUTOFF - dt.timedelta(days=14), CUTOFF), True)
    assert push(Compare(">=", SAMPLED, Arith("-", Cutoff(), Duration(2, "days")))) == Pushed(
        '"sampled_at" >= ?', (CUTOFF - dt.timedelta(days=2),), True)
    assert push(IsNull(Column("isolation", "ended_at"), negated=True), "isolation") == Pushed(
        '"ended_at" IS NOT NULL', (), True)
    assert push(InList(Column("entries", "origin"), (Lit("HK"), Lit("MO")), negated=True), "entries") == Pushed(
        '"origin" NOT IN (?, ?)', ("HK", "MO"), True)
    trip = RiskArea(Column("trips", "region_code"), Column("trips", "visited_at"), ("high",))
    p = push(trip, "trips")
    assert p.sql == '"region_code" IN (SELECT region_code FROM feed_risk_areas WHERE level IN (?))'
    assert p.params == ("high",) and not p.exact  # the validity interval is the engine's to test


def test_facts_sharing_a_read_need_the_union_of_their_rows():
    neg = push(And((Compare("=", RESULT, Lit("negative")), Not(POOLED))))
    both = any_of([push(POSITIVE), neg])
    assert both.sql == '("result" = ?) OR (("result" = ?) AND (NOT ("pooled")))'
    assert both.params == ("positive", "negative") and both.exact
    assert any_of([push(POSITIVE), None]) is None
    assert any_of([push(POSITIVE), push(POSITIVE)]) == push(POSITIVE)


RULESETS = {f"{s.province}@{s.version}": find_ruleset(f"{s.province}@{s.version}") for s in shipped()}


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=population(), name=st.sampled_from(sorted(RULESETS)))
def test_reading_through_the_warehouse_gives_the_codes_of_reading_every_row(frames, name):
    rs = RULESETS[name]
    con = warehouse_of(frames)
    try:
        via_sql = evaluate(rs, WarehouseSource(con, CUTOFF, 1), AS_OF).codes
    finally:
        con.close()
    assert via_sql.to_dicts() == evaluate(rs, frames, AS_OF).codes.to_dicts()
