"""The expression language: tokens, precedence, every node, and no way out to Python."""

from __future__ import annotations

import datetime as dt

import pytest

from hcode.engine.compile import Ctx, UnsupportedNode, compile_expr
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
    RiskArea,
    Within,
)
from hcode.rules.parse import parse_duration, parse_expr, parse_fact


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


# Syntax errors, type errors and the values of conditions are data: tests/vectors/*.yaml,
# run by tests/test_vectors.py against every engine.


def test_unknown_node_is_a_named_error():
    ctx = Ctx(dt.datetime(2022, 6, 15))
    with pytest.raises(UnsupportedNode, match="Name"):
        compile_expr(Name("x"), ctx)


def test_children_lists_every_sub_expression_of_every_node():
    """`children` is the one definition of the tree's shape: every Node-valued field of every
    node type is among its children, so `walk` cannot miss a sub-expression."""
    import dataclasses

    from hcode.rules import lang

    leaf = Name("x")
    samples = [Lit(1), Duration(1, "days"), leaf, lang.Column("contacts", "x"), lang.FactRef("f"), Cutoff(),
               Compare("=", leaf, Lit(1)), Arith("+", leaf, Duration(1, "days")), And((leaf, Name("y"))),
               Or((leaf, Name("y"))), Not(leaf), IsNull(leaf), InList(leaf, (Lit("a"),)), lang.IsTrue(leaf),
               Within(leaf, Duration(1, "days")), RiskArea(leaf, Name("t"), ("high",)),
               RiskArea(leaf, Name("t"), ("high",), "risk_place"),
               lang.Companion(Duration(30, "minutes"), "cases", "reported_at", Duration(-4, "days"),
                              Duration(1, "days"), where=leaf),
               lang.Companion(Duration(30, "minutes"), "cases", "reported_at", Duration(-4, "days"),
                              Duration(1, "days")),
               Aggregate("exists", "contacts", where=leaf)]
    node_types = {c for c in vars(lang).values() if isinstance(c, type) and issubclass(c, lang.Node)}
    assert {type(n) for n in samples} == node_types - {lang.Node}
    for n in samples:
        subs = []
        for f in dataclasses.fields(n):
            v = getattr(n, f.name)
            # a Within's span, an InList's values and a companion's window and interval are constants
            if (type(n).__name__, f.name) in {("Within", "span"), ("InList", "values"), ("Companion", "window"),
                                              ("Companion", "lo"), ("Companion", "hi")}:
                continue
            if isinstance(v, lang.Node):
                subs.append(v)
            elif isinstance(v, tuple):
                subs.extend(x for x in v if isinstance(x, lang.Node))
        assert list(lang.children(n)) == subs, type(n).__name__
        assert list(lang.walk(n))[0] is n


def test_operators_and_kinds_are_enums_even_from_plain_strings():
    from hcode.rules.lang import AggKind, ArithOp, CmpOp, Unit

    e = parse_expr("a <> 1 and b - 2 days > c")
    assert e.items[0].op is CmpOp.NE and e.items[1].left.op is ArithOp.SUB
    assert e.items[1].left.right.unit is Unit.DAYS
    assert Compare("<=", Name("a"), Lit(1)).op is CmpOp.LE  # hand-built trees are coerced
    assert parse_fact("count nat_results").kind is AggKind.COUNT
    assert e.src() == "a != 1 and b - 2 days > c"
