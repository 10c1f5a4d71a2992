"""The Polars engine's output contract: schema, population, evidence, overrides, explanations."""

from __future__ import annotations

import datetime as dt
import textwrap

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcode.engine.compile import TS
from hcode.engine.evaluate import CODES_SCHEMA, evaluate, population, registered, widen
from hcode.engine.sources import feed_schema
from hcode.rules.load import find_ruleset, load_ruleset

T = dt.datetime
AS_OF = dt.date(2022, 6, 14)
SH = find_ruleset("shanghai@2022.05.23")


def frame(feed: str, rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=feed_schema(feed), orient="row")


def regs(*pids: int, at: dt.datetime = T(2022, 1, 1), district: str = "310101") -> pl.DataFrame:
    return frame("registrations", [{"pid": p, "registered_at": at, "district_code": district} for p in pids])


def ov(pid: int, color: str, issued: dt.datetime, expires: dt.datetime | None = None, authority: str = "office"):
    return {"pid": pid, "color": color, "authority": authority, "basis": "notice 7", "operator": "op1",
            "reason": "review", "issued_at": issued, "expires_at": expires}


def test_schema_population_and_counts():
    frames = {
        "registrations": pl.concat([regs(3, 1, 2), regs(1, at=T(2022, 6, 14, 23), district="310104"),
                                    regs(4, at=T(2022, 6, 15))]),  # pid 4 registers at the cut-off: not yet
        "contacts": frame("contacts", [{"pid": 2, "contact_level": "close", "identified_at": T(2022, 6, 10, 14)},
                                       {"pid": 9, "contact_level": "close", "identified_at": T(2022, 6, 10)}]),
    }
    ev = evaluate(SH, {k: v.lazy() for k, v in frames.items()}, AS_OF)
    assert dict(ev.codes.schema) == CODES_SCHEMA
    assert ev.codes["pid"].to_list() == [1, 2, 3]  # sorted; 9 never registered; 4 registers at C
    assert ev.codes["district_code"].to_list() == ["310104", "310101", "310101"]  # latest registration
    assert ev.persons == 3 and ev.colors == {"green": 2, "yellow": 0, "red": 1}
    assert ev.cutoff == T(2022, 6, 15) and ev.as_of == AS_OF and ev.ruleset is SH
    red = ev.codes.filter(pl.col("pid") == 2).row(0, named=True)
    assert red["rule"] == "SH-R-03" and red["matched_rules"] == ["SH-R-03"]
    assert red["evidence"] == [{"rule": "SH-R-03", "feed": "contacts", "time": T(2022, 6, 10, 14),
                                "detail": "close contact identified"}]
    assert red["explanation"] == "red: SH-R-03 Close contact (contacts, close contact identified 2022-06-10 14:00)"
    assert red["override"] is None


def test_district_tie_is_deterministic():
    r = pl.concat([regs(1, district="310104"), regs(1, district="310101")])
    a = evaluate(SH, {"registrations": r}, AS_OF).codes["district_code"][0]
    b = evaluate(SH, {"registrations": r.reverse()}, AS_OF).codes["district_code"][0]
    assert a == b == "310104"


def test_override_applied_explains_authority_and_overridden_rules():
    frames = {"registrations": regs(1, 2),
              "contacts": frame("contacts", [{"pid": 1, "contact_level": "close", "identified_at": T(2022, 6, 10, 14)}]),
              "overrides": frame("overrides", [ov(1, "green", T(2022, 6, 12)), ov(2, "yellow", T(2022, 6, 1),
                                                                                  expires=T(2022, 6, 14))])}
    ev = evaluate(SH, frames, AS_OF)
    one = ev.codes.row(0, named=True)
    assert one["color"] == "green" and one["rule"] == "override" and one["matched_rules"] == ["SH-R-03"]
    assert one["override"]["applied"] is True and one["override"]["authority"] == "office"
    assert one["explanation"] == ("green: override by office, basis notice 7, operator op1, reason review; "
                                  "overrides red: SH-R-03 Close contact (contacts, close contact identified "
                                  "2022-06-10 14:00)")
    two = ev.codes.row(1, named=True)  # expired before the cut-off
    assert two["color"] == "green" and two["override"] is None
    assert ev.overrides_applied == 1 and ev.overrides_not_applied == 0


def test_override_outside_palette_is_not_applied_and_no_older_one_takes_over():
    frames = {"registrations": regs(1),
              "overrides": frame("overrides", [ov(1, "red", T(2022, 6, 1)), ov(1, "purple", T(2022, 6, 2))])}
    ev = evaluate(SH, frames, AS_OF)
    row = ev.codes.row(0, named=True)
    assert row["color"] == "green" and row["rule"] is None
    assert row["override"]["color"] == "purple" and row["override"]["applied"] is False
    assert "override to purple by office (issued 2022-06-02 00:00) not applied: purple is not in the palette" \
        in row["explanation"]
    assert ev.overrides_applied == 0 and ev.overrides_not_applied == 1


def test_override_tie_more_severe_wins_whatever_the_order():
    rows = [ov(1, "yellow", T(2022, 6, 2)), ov(1, "red", T(2022, 6, 2)), ov(1, "green", T(2022, 6, 2))]
    for order in (rows, rows[::-1]):
        ev = evaluate(SH, {"registrations": regs(1), "overrides": frame("overrides", order)}, AS_OF)
        assert ev.codes["color"][0] == "red"


def test_override_issued_at_cutoff_is_not_active_yet():
    ev = evaluate(SH, {"registrations": regs(1), "overrides": frame("overrides", [ov(1, "red", T(2022, 6, 15))])},
                  AS_OF)
    assert ev.codes["color"][0] == "green" and ev.codes["override"][0] is None


def test_chinese_explanations():
    frames = {"registrations": regs(1, 2),
              "contacts": frame("contacts", [{"pid": 1, "contact_level": "close", "identified_at": T(2022, 6, 10, 14)}])}
    codes = evaluate(SH, frames, AS_OF, lang="zh").codes
    assert codes["explanation"].to_list() == ["红码：SH-R-03 密切接触者（contacts，判定为密切接触者 2022-06-10 14:00）",
                                              "绿码：未命中任何规则"]
    assert codes["evidence"][0][0]["detail"] == "判定为密切接触者"


def test_evidence_lists_every_matched_rule_with_row_details():
    zj = find_ruleset("zhejiang@2022.03.01")
    frames = {"registrations": regs(1),
              "inbound_codes": frame("inbound_codes", [{"pid": 1, "province": "31", "color": "yellow",
                                                        "since": T(2022, 6, 12, 8)}]),
              "cases": frame("cases", [{"pid": 1, "case_type": "suspected", "reported_at": T(2022, 6, 13)}])}
    row = evaluate(zj, frames, AS_OF).codes.row(0, named=True)
    assert row["matched_rules"] == ["ZJ-R-01", "NR-Y-01"]
    assert [(e["rule"], e["feed"], e["detail"]) for e in row["evidence"]] == [
        ("ZJ-R-01", "cases", "suspected case reported"), ("NR-Y-01", "inbound_codes", "province 31 sent a yellow code")]
    assert row["explanation"].startswith("red: ZJ-R-01 ") and "; also matched NR-Y-01 " in row["explanation"]


def test_extra_columns_and_missing_feeds_are_fine():
    r = regs(1).with_columns(pl.lit("x").alias("unused"), pl.col("pid").cast(pl.Int64))
    ev = evaluate(SH, {"registrations": r}, AS_OF)
    assert ev.codes["color"].to_list() == ["green"]


def test_empty_population():
    ev = evaluate(SH, {}, AS_OF)
    assert ev.persons == 0 and ev.codes.height == 0 and ev.colors == {"green": 0, "yellow": 0, "red": 0}


def test_registered_keeps_exactly_the_pids_in_the_sorted_population():
    pop = pl.DataFrame({"pid": [2, 5, 9]}, schema={"pid": pl.Int32})
    pids = pl.Series("pid", [1, 3, 5, 9, 12], dtype=pl.Int32)
    assert registered(pop, pids).to_list() == [5, 9]
    assert registered(pop.clear(), pids).len() == 0 and registered(pop, pids.clear()).len() == 0


def test_widen_is_a_left_join_of_each_frame_on_the_sorted_keys():
    keys = pl.Series("pid", [2, 4, 6, 8], dtype=pl.Int32)
    a = pl.DataFrame({"pid": [8, 1, 4, 9], "x": [80, 10, 40, 90]}, schema={"pid": pl.Int32, "x": pl.Int64})
    b = pl.DataFrame({"pid": [6], "s": [{"c": "red"}]}, schema={"pid": pl.Int32, "s": pl.Struct({"c": pl.String})})
    c = pl.DataFrame({"pid": [], "t": []}, schema={"pid": pl.Int32, "t": pl.String})
    joined = keys.to_frame().join(a, on="pid", how="left").join(b, on="pid", how="left").join(c, on="pid",
                                                                                             how="left")
    assert widen(keys, [a, b, c]).equals(joined)
    assert widen(keys.clear(), [a, b, c]).equals(joined.clear())


def test_population_takes_the_latest_registration_of_each_person_in_pid_order():
    regs = pl.DataFrame({"pid": [3, 1, 3, 2, 3, 1], "district": [1, 2, 3, 4, 5, 6],
                         "registered_at": [dt.datetime(2022, 1, d) for d in (5, 1, 9, 1, 9, 2)]})
    pop = population(regs.lazy())
    assert pop.rows() == [(1, 6), (2, 4), (3, 5)]  # pid 3: two at the latest time, the greatest code


@given(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 4), st.integers(1, 3)), max_size=60))
def test_population_is_the_latest_registration_of_each_pid(rows):
    regs = pl.DataFrame([(p, d, dt.datetime(2022, 1, day)) for p, d, day in rows],
                        schema={"pid": pl.Int32, "district": pl.Int32, "registered_at": TS}, orient="row")
    latest: dict[int, tuple] = {}
    for p, d, day in rows:  # the latest time, then the greatest district
        latest[p] = max(latest.get(p, (day, d)), (day, d))
    assert population(regs.lazy()).rows() == sorted((p, d) for p, (_, d) in latest.items())


@given(st.lists(st.integers(0, 40), unique=True).map(sorted),
       st.lists(st.dictionaries(st.integers(0, 50), st.integers(0, 9)), min_size=1, max_size=3))
def test_widen_equals_left_joins(keys, frames):
    key = pl.Series("pid", keys, dtype=pl.Int32)
    dfs = [pl.DataFrame({"pid": list(f), f"v{i}": list(f.values())}, schema={"pid": pl.Int32, f"v{i}": pl.Int64})
           for i, f in enumerate(frames)]
    joined = key.to_frame()
    for df in dfs:
        joined = joined.join(df, on="pid", how="left")
    assert widen(key, dfs).equals(joined)


def test_districts_are_numbers_in_the_population_and_six_digits_in_the_codes():
    r = pl.concat([regs(1, district="010101"), regs(2, district="310104")])
    ev = evaluate(SH, {"registrations": r}, AS_OF)
    assert ev.population["district"].to_list() == [10101, 310104]
    assert ev.codes["district_code"].to_list() == ["010101", "310104"]


@pytest.fixture
def odd_ruleset(tmp_path):
    """A ruleset whose rule matches people *without* events (no negative test at all), and a
    wider palette: the engine cannot give untouched persons the constant default then."""
    p = tmp_path / "odd" / "1.yaml"
    p.parent.mkdir()
    p.write_text(textwrap.dedent("""\
        province: odd
        version: '1'
        effective_from: 2022-01-01
        title: {zh: 怪, en: Odd}
        basis: test
        palette: [green, yellow, orange, red]
        facts:
          tested: exists nat_results where result = 'negative' and sampled_at within 3 days
          tests: count nat_results
        rules:
          - {id: O-1, color: orange, title: {zh: 未检测, en: Not tested}, when: not tested}
          - {id: O-2, color: yellow, title: {zh: 多, en: Many tests}, when: tests >= 2}
        """), encoding="utf-8")
    return load_ruleset(p)


def test_rules_matching_people_without_events(odd_ruleset):
    nat = frame("nat_results", [
        {"pid": 1, "sampled_at": T(2022, 6, 13), "result": "negative", "pooled": False},
        {"pid": 1, "sampled_at": T(2022, 6, 13), "result": "negative", "pooled": False},  # same event twice
        {"pid": 2, "sampled_at": T(2022, 6, 1), "result": "negative", "pooled": False},
        {"pid": 2, "sampled_at": T(2022, 6, 2), "result": "negative", "pooled": False}])
    ev = evaluate(odd_ruleset, {"registrations": regs(1, 2, 3), "nat_results": nat}, AS_OF)
    assert ev.codes["color"].to_list() == ["green", "orange", "orange"]
    assert ev.codes["matched_rules"].to_list() == [[], ["O-1", "O-2"], ["O-1"]]
    assert ev.colors == {"green": 1, "yellow": 0, "orange": 2, "red": 0}
    assert ev.codes["explanation"][2] == "orange: O-1 Not tested"


@pytest.mark.parametrize("kind", ["count", "latest", "exists"])
def test_a_trip_matching_two_overlapping_risk_rows_is_one_event(kind):
    from hcode.engine.compile import Ctx, compile_fact
    from hcode.rules.check import resolve_fact
    from hcode.rules.parse import parse_fact

    text = {"count": "count trips", "latest": "latest trips.visited_at", "exists": "exists trips"}[kind]
    agg = resolve_fact(parse_fact(text + " where risk_area(region_code, visited_at, 'high')"), {}, SH.palette)
    trips = frame("trips", [{"pid": 1, "region_code": "310101", "visited_at": T(2022, 6, 10), "source": "telecom"},
                            {"pid": 1, "region_code": "310101", "visited_at": T(2022, 6, 11), "source": "railway"}])
    risk = frame("risk_areas", [{"region_code": "310101", "level": "high", "valid_from": T(2022, 6, 1),
                                 "valid_to": None}] * 2 + [
        {"region_code": "310101", "level": "high", "valid_from": T(2022, 6, 11), "valid_to": T(2022, 6, 12)}])
    out = compile_fact("f", agg, trips.lazy(), None, False, risk.lazy(), "area {region_code} by {source}",
                       Ctx(T(2022, 6, 15), SH.palette)).collect()
    assert out.height == 1
    value = {"count": 2, "latest": T(2022, 6, 11), "exists": True}[kind]
    assert out["f"][0] == value  # the 11 June trip matches three risk rows, the 10th two: still two trips
    assert out["__t_f"][0] == T(2022, 6, 11) and out["__d_f"][0] == "area 310101 by railway"
