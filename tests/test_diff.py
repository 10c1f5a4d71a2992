"""The diff as data: who changed, why, and the counts that reconcile with it."""

from __future__ import annotations

import datetime as dt

import polars as pl
from diff_fixtures import (
    OVERRIDE,
    PALETTE,
    TITLES,
    background,
    key,
    nightly_pair,
    row,
    ruleset_pair,
    side,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from hcode.diff.changes import ABSENT, Side, diff, district_counts, merged_palette


def explanation_of(d, name: str, frame: str = "changes") -> str:
    rows = getattr(d, frame).frame().filter(pl.col("person_key") == key(name))
    assert rows.height == 1, f"{name} listed {rows.height} times in {frame}"
    return rows["explanation"][0]


def test_every_colour_change_listed_once_with_explanation():
    before, after = ruleset_pair()
    d = diff(before, after)
    b = dict(zip(before.codes["person_key"], before.codes["color"], strict=True))
    a = dict(zip(after.codes["person_key"], after.codes["color"], strict=True))
    expected = {k for k in b.keys() | a.keys() if b.get(k) != a.get(k)}
    assert sorted(d.changes.frame()["person_key"]) == sorted(expected)
    assert d.changes.frame()["person_key"].is_unique().all()
    assert (d.changes.frame()["explanation"].str.len_chars() > 0).all()
    assert d.n_changes == 6


def test_explanations_name_rules_evidence_and_override():
    d = diff(*ruleset_pair())
    assert explanation_of(d, "moved-yellow") == (
        "red → yellow: SH-R-03 Close contact no longer matches under 2022.06.28 "
        "(contacts, identified 2022-06-18 10:00); SH-Y-03 Close contact, home health monitoring "
        "matches under 2022.06.28 (contacts, identified 2022-06-18 10:00)"
    )
    assert explanation_of(d, "override").startswith(
        "red → green: override by Shanghai Health Commission, basis Notice 2022-47, operator op-0193"
    )
    assert explanation_of(d, "newcomer") == "absent → green: newly registered"
    assert explanation_of(d, "gone") == "yellow → absent: no longer registered"


def test_matrix_sums_to_persons_compared_in_palette_order():
    before, after = ruleset_pair()
    d = diff(before, after)
    union = set(before.codes["person_key"]) | set(after.codes["person_key"])
    assert d.persons_compared == len(union)
    assert sum(sum(r.values()) for r in d.matrix.values()) == d.persons_compared
    assert list(d.matrix) == ["green", "yellow", "red", ABSENT]
    assert all(list(r) == ["green", "yellow", "red", ABSENT] for r in d.matrix.values())
    assert d.matrix["green"]["green"] == 24
    assert d.matrix["red"]["yellow"] == 1
    off_diagonal = sum(n for b, r in d.matrix.items() for a, n in r.items() if a != b)
    assert off_diagonal == d.n_changes


def test_diff_of_a_side_with_itself_is_empty():
    before, _ = ruleset_pair()
    d = diff(before, before)
    assert d.changes.frame().is_empty() and d.rule_changes.frame().is_empty()
    assert d.only_before == d.only_after == 0
    assert (d.rules["started"] == 0).all() and (d.rules["stopped"] == 0).all()
    assert d.districts.is_empty()
    assert sum(d.matrix[c][c] for c in d.matrix) == d.persons_compared == before.codes.height


def test_absent_on_either_side():
    d = diff(*ruleset_pair())
    assert (d.only_before, d.only_after) == (1, 1)
    gone = d.changes.frame().filter(pl.col("person_key") == key("gone"))
    assert gone["after"][0] is None and gone["rules_after"][0] is None
    assert gone["rules_before"][0].to_list() == ["NR-Y-01"]
    new = d.changes.frame().filter(pl.col("person_key") == key("newcomer"))
    assert new["before"][0] is None and new["rules_before"][0] is None
    assert new["district_code"][0] == "310115"


def test_rule_only_changes_are_listed_apart():
    d = diff(*ruleset_pair())
    assert key("rule-only") not in set(d.changes.frame()["person_key"])
    text = explanation_of(d, "rule-only", "rule_changes")
    assert text.startswith("red, deciding rule SH-R-03 → SH-R-04: SH-R-03 Close contact no longer matches")
    assert "SH-R-04 Entry personnel (Macau excluded) still matches (entries, entered from HK" in text


def test_rule_counts_and_districts():
    d = diff(*ruleset_pair())
    counts = {r["rule"]: (r["started"], r["stopped"]) for r in d.rules.iter_rows(named=True)}
    assert counts["SH-R-03"] == (0, 3)
    assert counts["SH-Y-03"] == (1, 0)
    assert counts["NR-Y-01"] == (0, 1)  # the person who left
    assert list(d.rules["rule"][:3]) == ["SH-R-01", "SH-R-02", "SH-R-03"]  # ruleset order
    districts = {r["district_code"]: r for r in d.districts.iter_rows(named=True)}
    assert districts["310115"]["changes"] == 3
    assert districts["310115"]["more_severe"] == 1
    assert districts["310104"]["disappeared"] == 1
    assert d.districts["changes"].sum() == d.n_changes


def test_later_date_same_ruleset_says_released_with_evidence():
    d = diff(*nightly_pair())
    assert explanation_of(d, "released") == (
        "red → green: SH-R-03 Close contact no longer matches as of 2022-06-15: released or window "
        "passed (contacts, identified 2022-06-01 10:00, 14 days before)"
    )
    assert explanation_of(d, "new-contact") == (
        "green → red: SH-R-03 Close contact started matching (contacts, identified 2022-06-18 10:00)"
    )


def test_chinese_explanations():
    d = diff(*ruleset_pair(), lang="zh")
    assert explanation_of(d, "moved-yellow").startswith("红码 → 黄码：SH-R-03 密切接触者 在 2022.06.28 下不再匹配（contacts，")
    assert explanation_of(d, "newcomer") == "无记录 → 绿码：新登记"
    assert "人工转码：Shanghai Health Commission" in explanation_of(d, "override")


def test_override_ended_and_not_applied():
    as_of = dt.date(2022, 6, 26)
    expired = {**OVERRIDE, "expires_at": dt.datetime(2022, 6, 25)}
    purple = {**OVERRIDE, "color": "purple", "applied": False}
    before = side("a", "2022.05.23", as_of, [
        row("ended", "310101", "green", "override", ["SH-R-02"], [], expired),
        row("purple", "310101", "green"),
    ])
    after = side("b", "2022.05.23", dt.date(2022, 6, 27), [
        row("ended", "310101", "red", "SH-R-02", ["SH-R-02"], []),
        row("purple", "310101", "red", "NR-R-01", ["NR-R-01"], [], purple),
    ])
    d = diff(before, after)
    assert explanation_of(d, "ended") == (
        "green → red: override by Shanghai Health Commission expired 2022-06-25 00:00; "
        "SH-R-02 Confirmed, asymptomatic or suspected case still matches"
    )
    assert explanation_of(d, "purple").startswith(
        "green → red: override by Shanghai Health Commission to purple not applied")


def test_missing_evidence_and_unknown_rules_still_explained():
    as_of = dt.date(2022, 6, 26)
    before = side("a", "1", as_of, [row("x", "310101", "green"), row("y", "310101", "yellow", "ZZ-9", ["ZZ-9"])])
    after = side("b", "2", as_of, [row("x", "310101", "red", "ZZ-1", ["ZZ-1"]), row("y", "310101", "red")])
    d = diff(before, after)
    assert explanation_of(d, "x") == "green → red: ZZ-1 matches under 2"
    assert explanation_of(d, "y") == "yellow → red: ZZ-9 no longer matches under 2"
    assert set(d.rules["rule"]) >= {"ZZ-1", "ZZ-9"}


def test_wider_palette_is_merged_in_severity_order():
    assert merged_palette(("green", "yellow", "red"), ("green", "yellow", "orange", "red")) == (
        "green", "yellow", "orange", "red")
    assert merged_palette(("green", "yellow", "orange", "red"), ("green", "red")) == (
        "green", "yellow", "orange", "red")


def test_empty_sides():
    empty = side("a", "1", dt.date(2022, 6, 1), [])
    d = diff(empty, empty)
    assert d.persons_compared == 0 and d.changes.frame().is_empty()
    d = diff(empty, side("b", "1", dt.date(2022, 6, 1), background(3)))
    assert d.only_after == 3 and d.n_changes == 3


RULES = ["SH-R-01", "SH-R-03", "SH-Y-03", "NR-Y-01"]
person = st.tuples(st.sampled_from(PALETTE), st.lists(st.sampled_from(RULES), unique=True, max_size=3))
side_strategy = st.dictionaries(st.sampled_from([f"p{i}" for i in range(25)]), person, max_size=25)


def district(name: str, moved: int) -> str:
    return f"31010{(len(name) + int(name[1:]) * moved) % 3}"  # `moved`: some persons change district


def build(persons: dict, as_of: dt.date, moved: int = 0) -> Side:
    rows = [row(n, district(n, moved), c, m[0] if m else None, sorted(m, key=RULES.index)) for n, (c, m) in
            persons.items()]
    return side("s", "2022.05.23", as_of, rows)


@settings(max_examples=60, deadline=None)
@given(side_strategy, side_strategy, st.sampled_from(["en", "zh"]))
def test_property_random_sides(b_persons, a_persons, lang):
    d = diff(build(b_persons, dt.date(2022, 6, 1)), build(a_persons, dt.date(2022, 6, 2), moved=1), lang=lang)
    b = {key(n): v for n, v in b_persons.items()}
    a = {key(n): v for n, v in a_persons.items()}
    color = {k: v[0] for k, v in b.items()}, {k: v[0] for k, v in a.items()}
    changed = {k for k in b.keys() | a.keys() if color[0].get(k) != color[1].get(k)}
    assert sorted(d.changes.frame()["person_key"]) == sorted(changed)
    assert d.persons_compared == len(b.keys() | a.keys())
    assert sum(sum(r.values()) for r in d.matrix.values()) == d.persons_compared
    assert (d.changes.frame()["explanation"].str.len_chars() > 0).all()
    assert (d.rule_changes.frame()["explanation"].str.len_chars() > 0).all()
    assert not set(d.rule_changes.frame()["person_key"]) & changed
    # listed by district (the after side's, else the before side's), then person key
    for listed in (d.changes.frame(), d.rule_changes.frame()):
        names = {key(n): n for n in b_persons.keys() | a_persons.keys()}
        want = [(district(names[k], 1 if k in a else 0), k) for k in listed["person_key"]]
        assert list(zip(listed["district_code"], listed["person_key"], strict=True)) == sorted(want)
    for r in d.rules.iter_rows(named=True):
        started = sum(1 for k in a if r["rule"] in a[k][1] and r["rule"] not in b.get(k, (None, []))[1])
        stopped = sum(1 for k in b if r["rule"] in b[k][1] and r["rule"] not in a.get(k, (None, []))[1])
        assert (r["started"], r["stopped"]) == (started, stopped)


def test_titles_fixture_covers_before_rules():
    assert set(TITLES) <= set(diff(*ruleset_pair()).rules["rule"])


def test_hash_collision_falls_back_to_string_join(monkeypatch):
    import hcode.diff.changes as module

    expected = diff(*ruleset_pair())
    real = module._identity

    def colliding(fast):
        ident, check = real(fast)
        return (pl.lit(7, pl.UInt64), check) if fast else (ident, check)

    monkeypatch.setattr(module, "_identity", colliding)
    got = diff(*ruleset_pair())
    assert got.changes.frame().equals(expected.changes.frame()) and got.matrix == expected.matrix


def test_duplicate_person_key_is_refused():
    as_of = dt.date(2022, 6, 26)
    dup = side("a", "1", as_of, [row("x", "310101", "green"), row("x", "310101", "red")])
    try:
        diff(dup, dup)
    except ValueError as exc:
        assert "twice" in str(exc)
    else:
        raise AssertionError("duplicate keys accepted")


def test_colour_outside_the_palette_gets_its_own_row_and_column():
    as_of = dt.date(2022, 6, 26)
    before = side("a", "1", as_of, [row("x", "310101", "green"), row("y", "310101", "green")])
    after = side("b", "1", as_of, [row("x", "310101", "purple", "XX-1", ["XX-1"]), row("y", "310101", "green")])
    d = diff(before, after)
    assert list(d.matrix) == ["green", "yellow", "red", "purple", ABSENT]
    assert d.matrix["green"]["purple"] == 1 and d.n_changes == 1


def test_newly_registered_red_person_names_the_rule():
    as_of = dt.date(2022, 6, 14)
    before = side("a", "2022.05.23", as_of, [])
    after = side("b", "2022.05.23", dt.date(2022, 6, 15), [
        row("new", "310101", "red", "NR-R-01", ["NR-R-01"],
            [{"rule": "NR-R-01", "feed": "inbound_codes", "time": dt.datetime(2022, 6, 15, 8), "detail": "red"}])])
    assert explanation_of(diff(before, after), "new") == (
        "absent → red: newly registered; NR-R-01 Another province's code is red matches "
        "(inbound_codes, red 2022-06-15 08:00)")


DISTRICTS = st.one_of(st.none(), st.sampled_from(["310101", "310104", "320102", "中", ""]))
HEX_KEYS = st.tuples(st.sampled_from(["0" * 16, "f" * 16, "0123456789abcdef", "00000000000000ff"]),
                     st.text("0123456789abcdef", max_size=4)).map("".join)  # prefixes shared, or not
ANY_KEYS = st.one_of(st.none(), st.text("0123456789abcdefX", max_size=20), HEX_KEYS)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.lists(st.tuples(DISTRICTS, ANY_KEYS), max_size=40, unique_by=lambda r: r[1]),
                 st.lists(st.tuples(DISTRICTS, HEX_KEYS), max_size=40, unique_by=lambda r: r[1])))
def test_listed_order_is_the_order_of_the_strings(rows):
    """The integer sort of district ranks and 16-hex-digit key prefixes gives exactly the
    strings' order (nulls last), falling back to the strings for keys that are not hex or
    share a prefix within a district."""
    from hcode.diff.listed import listed_order

    district = pl.Series([d for d, _ in rows], dtype=pl.String)
    person_key = pl.Series([k for _, k in rows], dtype=pl.String)
    got = listed_order(district, person_key).to_list()
    want = pl.DataFrame({"d": district, "k": person_key}).with_row_index().sort(
        "d", "k", nulls_last=True)["index"].to_list()
    assert got == want


def test_listed_order_of_sha256_keys_takes_the_integer_sort():
    from hcode.diff.listed import listed_order

    keys = [key(f"p{i}") for i in range(500)]
    district = pl.Series([["310101", "310104", None][i % 3] for i in range(500)])
    got = listed_order(district, pl.Series(keys)).to_list()
    assert got == sorted(range(500), key=lambda i: (district[i] is None, district[i] or "", keys[i]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["310101", "310115", None]),
                          st.sampled_from(["green", "yellow", "red", "purple", None]),
                          st.sampled_from(["green", "yellow", "red", "purple", None])), max_size=30))
def test_district_counts_agree_with_a_count_by_hand(rows):
    palette = ("green", "yellow", "red")  # "purple" is outside it: neither more nor less severe
    rank = {c: i for i, c in enumerate(palette)}
    expected: dict[str, list[int]] = {}
    for district, before, after in rows:
        c = expected.setdefault(district or "unknown", [0, 0, 0, 0, 0])
        rb, ra = rank.get(before or ""), rank.get(after or "")
        c[0] += 1
        c[1] += rb is not None and ra is not None and ra > rb
        c[2] += rb is not None and ra is not None and ra < rb
        c[3] += before is None
        c[4] += after is None
    changes = pl.DataFrame(rows, schema={"district_code": pl.String, "before": pl.String, "after": pl.String},
                           orient="row")
    got = district_counts(changes, palette)
    assert {r[0]: list(r[1:]) for r in got.iter_rows()} == expected
    assert got.get_column("district_code").to_list() == sorted(expected, key=lambda d: (-expected[d][0], d))
