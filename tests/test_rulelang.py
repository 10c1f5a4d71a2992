"""The expression language: tokens, precedence, every node, and no way out to Python."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from hcode.engine.compile import Ctx, UnsupportedNode, compile_expr
from hcode.rules.check import CheckError, Scope, resolve, resolve_fact
from hcode.rules.lang import (
    Aggregate,
    And,
    Arith,
    Compare,
    Cutoff,
    Duration,
    InList,
    IsNull,
    Lit,
    Name,
    Not,
    Or,
    ParseError,
    RiskArea,
    Within,
    parse_duration,
    parse_expr,
    parse_fact,
)


def test_precedence_or_and_not_comparison():
    e = parse_expr("not a = 1 or b and c")
    assert e == Or((Not(Compare("=", Name("a"), Lit(1))), And((Name("b"), Name("c")))))
    assert parse_expr("a or b or c") == Or((Name("a"), Name("b"), Name("c")))
    assert parse_expr("(a or b) and c") == And((Or((Name("a"), Name("b"))), Name("c")))


def test_arithmetic_binds_tighter_than_comparison():
    e = parse_expr("sampled_at >= close_contact_at + 12 days")
    assert e == Compare(">=", Name("sampled_at"), Arith("+", Name("close_contact_at"), Duration(12, "days")))
    assert parse_expr("a - b > 24 hours") == Compare(">", Arith("-", Name("a"), Name("b")), Duration(24, "hours"))


def test_every_predicate_form():
    assert parse_expr("x is null") == IsNull(Name("x"))
    assert parse_expr("x is not null") == IsNull(Name("x"), negated=True)
    assert parse_expr("x in ('a', 'b')") == InList(Name("x"), (Lit("a"), Lit("b")))
    assert parse_expr("x not in ('a')") == InList(Name("x"), (Lit("a"),), negated=True)
    assert parse_expr("x within 14 days") == Within(Name("x"), Duration(14, "days"))
    assert parse_expr("x within 1 day") == Within(Name("x"), Duration(1, "days"))
    assert parse_expr("x <> 'it''s'") == Compare("!=", Name("x"), Lit("it's"))
    assert parse_expr("cutoff") == Cutoff()
    assert parse_expr("true") == Lit(True)
    assert parse_expr("risk_area(region_code, visited_at, 'high', 'medium')") == \
        RiskArea(Name("region_code"), Name("visited_at"), ("high", "medium"))
    assert parse_duration("90 minutes").delta == dt.timedelta(minutes=90)


def test_fact_forms():
    f = parse_fact("latest contacts.identified_at where contact_level = 'close'")
    assert f == Aggregate("latest", "contacts", "identified_at", None, Compare("=", Name("contact_level"), Lit("close")))
    assert parse_fact("exists inbound_codes current per province where color = 'red'").per == "province"
    assert parse_fact("count nat_results").kind == "count"
    assert parse_fact("earliest nat_results.sampled_at").column == "sampled_at"


def test_canonical_source_round_trips():
    for text in ["a = 1 or (b and not c)", "x >= y + 12 days", "x not in ('a', 'b')",
                 "risk_area(region_code, visited_at, 'high')", "x is not null and cutoff > x"]:
        e = parse_expr(text)
        assert parse_expr(e.src()) == e
    f = parse_fact("exists nat_results where result = 'negative' and not pooled and sampled_at > positive_at")
    assert parse_fact(f.src()) == f


@pytest.mark.parametrize("text, msg", [
    ("__import__('os')", "invalid name '__import__'"),
    ("eval('1')", "unknown function 'eval'"),
    ("os.system('x')", "unexpected text"),
    ("a = ", "expected a value"),
    ("a = 1 b", "unexpected text after the expression"),
    ("x within 14", "expected a unit"),
    ("X = 1", "invalid name 'X'"),
    ("a ; b", "unexpected character ';'"),
    ("lambda: 1", "unexpected character ':'"),
    ("risk_area(a, b)", "at least one level"),
])
def test_syntax_errors(text, msg):
    with pytest.raises(ParseError, match=msg.replace("(", r"\(")):
        parse_expr(text)


def test_fact_syntax_errors():
    with pytest.raises(ParseError, match="latest, earliest, count or exists"):
        parse_fact("max nat_results.sampled_at")
    with pytest.raises(ParseError, match="expected '.'"):
        parse_fact("latest nat_results")


FACTS = {"contact_at": "timestamp", "flag": "bool", "n": "number"}
RULE_SCOPE = Scope(None, FACTS, ("green", "yellow", "red"))


@pytest.mark.parametrize("text, msg", [
    ("contact_at > 3", "cannot compare timestamp with number"),
    ("flag and contact_at", "'and' needs conditions"),
    ("contact_at + contact_at > contact_at", r"cannot compute timestamp \+ timestamp"),
    ("n within 3 days", "'within' needs a timestamp"),
    ("nope", "unknown name 'nope'"),
    ("flag < flag", "does not order bool"),
    ("risk_area(contact_at, contact_at, 'high')", "only be used in a fact's where"),
])
def test_type_errors_in_rules(text, msg):
    with pytest.raises(CheckError, match=msg):
        resolve(parse_expr(text), RULE_SCOPE)


@pytest.mark.parametrize("text, msg", [
    ("latest nowhere.at", "unknown feed 'nowhere'"),
    ("latest overrides.issued_at", "unknown feed 'overrides'"),
    ("latest contacts.when", "unknown column contacts.when"),
    ("latest contacts.contact_level", "needs a timestamp column"),
    ("exists contacts where contact_level = 'closee'", "'closee' is not a value of contacts.contact_level"),
    ("exists inbound_codes where color = 'blue'", "unknown colour 'blue'"),
    ("exists contacts where identified_at", "'where' must be a condition"),
    ("exists trips where not risk_area(region_code, visited_at, 'high')", "only be used as an 'and' term"),
    ("exists trips where risk_area(region_code, visited_at, 'extreme')", "'extreme' is not a risk level"),
    ("exists contacts current per nothing", "unknown column contacts.nothing"),
])
def test_fact_check_errors(text, msg):
    with pytest.raises(CheckError, match=msg):
        resolve_fact(parse_fact(text), FACTS, ("green", "yellow", "red"))


def _eval(text: str, data: dict) -> list:
    ctx = Ctx(dt.datetime(2022, 6, 15), ("green", "yellow", "red"))
    node, _ = resolve(parse_expr(text), RULE_SCOPE)
    return pl.DataFrame(data, schema={"contact_at": pl.Datetime("us"), "flag": pl.Boolean, "n": pl.Int64}) \
        .select(compile_expr(node, ctx).alias("x"))["x"].to_list()


def test_compiled_three_valued_logic_and_within():
    t = dt.datetime
    data = {"contact_at": [t(2022, 6, 1), t(2022, 5, 31, 23, 59), None, t(2022, 6, 15)],
            "flag": [True, False, None, True], "n": [1, 2, None, 3]}
    assert _eval("contact_at within 14 days", data) == [True, False, None, False]
    assert _eval("flag or contact_at within 14 days", data) == [True, False, None, True]
    assert _eval("contact_at is null", data) == [False, False, True, False]
    assert _eval("n in (1, 3)", data) == [True, False, None, True]
    assert _eval("contact_at + 12 days >= cutoff - 2 days", data) == [True, False, None, True]


def test_unknown_node_is_a_named_error():
    ctx = Ctx(dt.datetime(2022, 6, 15))
    with pytest.raises(UnsupportedNode, match="Name"):
        compile_expr(Name("x"), ctx)
