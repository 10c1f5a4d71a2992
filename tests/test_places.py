"""Place codes: the three feeds, risk_place(...) and companion(...), and the Henan ruleset in
both engines."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from conftest import ID_A, NOW
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from populations import AS_OF, CUTOFF

from hcode.engine.compile import Ctx, companion_seeds, join_companion
from hcode.engine.evaluate import evaluate
from hcode.engine.examples import example_frames, run_example
from hcode.engine.reference import reference_codes
from hcode.engine.sources import feed_schema
from hcode.ingest.load import ingest
from hcode.rules.check import CheckError, resolve_fact
from hcode.rules.lang import Companion
from hcode.rules.load import find_ruleset
from hcode.rules.parse import parse_expr, parse_fact
from hcode.runs.store import evaluate_warehouse

ID_B = "310101198001010026"
HENAN = find_ruleset("henan@2022.06.01")
T = dt.datetime


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------- feeds


def test_place_feeds_quarantine_bad_rows_with_line_and_reason(wh, tmp_path):
    places = _write(tmp_path, "places.csv", "place_code,name,district_code,registered_at,owner\n"
                    " zz-station-sw ,郑州站西南出口,410102,2022-05-01,someone\n"
                    "ZZ STATION,Market,410102,2022-05-01,x\n"
                    "ZZ-1,  ,410102,2022-05-01,x\n"
                    f"{'A' * 33},Long,410102,2022-05-01,x\n")
    risk = _write(tmp_path, "risk_places.csv", "place_code,level,valid_from,valid_to\n"
                  "ZZ-STATION-SW,high,2022-06-10,2022-06-09 23:59\n"
                  "ZZ-STATION-SW,high,2022-06-10,\n"
                  "ZZ-STATION-SW,high,2022-06-10,2022-06-10\n")
    r1, r2 = ingest(wh, [places, risk], now=NOW)
    assert (r1.rows_read, r1.rows_loaded, r1.rows_quarantined) == (4, 1, 3)
    assert (r2.rows_read, r2.rows_loaded, r2.rows_quarantined) == (3, 2, 1)
    rows = {(f, line): {e["column"]: e["reason"] for e in errs} for f, line, errs in
            wh.con.execute("SELECT file_name, line, errors FROM quarantine").fetchall()}
    bad_code = "not a place code (1-32 of A-Z, 0-9 and '-')"
    assert rows == {("places.csv", 3): {"place_code": bad_code}, ("places.csv", 4): {"name": "empty"},
                    ("places.csv", 5): {"place_code": bad_code},
                    ("risk_places.csv", 2): {"valid_to": "before valid_from"}}
    stored = wh.con.sql("SELECT * FROM feed_places").pl()
    assert stored.columns == ["place_code", "name", "district_code", "registered_at", "load_id"]  # minimum columns
    assert stored["place_code"].to_list() == ["ZZ-STATION-SW"]


def test_scans_are_pseudonymised_idempotent_and_unlisted_places_kept(wh, tmp_path):
    text = ("id_number,place_code,scanned_at,shown_color\n"
            f"{ID_A},ZZ-STATION-SW,2022-06-13 10:00,Red\n"
            f"{ID_B},NOT-IN-REGISTRY,2022-06-13 10:05,green\n")
    [r] = ingest(wh, [_write(tmp_path, "place_scans.csv", text)], now=NOW)
    assert (r.rows_loaded, r.rows_quarantined) == (2, 0)
    [again] = ingest(wh, [_write(tmp_path, "place_scans_2.csv", text + "\n")], now=NOW)
    assert again.rows_new == 0  # the same events, stored once
    rows = wh.con.sql("SELECT * FROM feed_place_scans ORDER BY scanned_at").pl()
    assert rows["shown_color"].to_list() == ["red", "green"]
    assert rows["place_code"].to_list() == ["ZZ-STATION-SW", "NOT-IN-REGISTRY"]
    assert "id_number" not in rows.columns and rows["pid"].null_count() == 0


# ---------------------------------------------------------------- language


def test_risk_place_and_companion_parse_print_and_check():
    text = ("latest place_scans.scanned_at where scanned_at within 14 days and "
            "companion(30 minutes, cases.reported_at where case_type != 'suspected', -4 days, 1 day) and "
            "risk_place(place_code, scanned_at, 'high')")
    agg = resolve_fact(parse_fact(text), {}, HENAN.palette)
    assert parse_fact(agg.src()).src() == agg.src()
    comp = next(t for t in agg.where.items if isinstance(t, Companion))
    assert (comp.window.src(), comp.lo.src(), comp.hi.src()) == ("30 minutes", "-4 days", "1 days")
    assert parse_expr("risk_area(region_code, visited_at, 'high')").src() == \
        "risk_area(region_code, visited_at, 'high')"  # the existing spelling is unchanged (hashes)


@pytest.mark.parametrize("text, message", [
    ("exists trips where companion(30 minutes, cases.reported_at, -4 days, 1 day)", "where of a place_scans fact"),
    ("exists place_scans where not companion(30 minutes, cases.reported_at, -4 days, 1 day)", "'and' term"),
    ("exists place_scans where companion(30 minutes, cases.case_type, -4 days, 1 day)", "timestamp column"),
    ("exists place_scans where companion(30 minutes, cases.reported_at, 1 day, -4 days)", "interval is empty"),
    ("exists place_scans where companion(30 minutes, cases.reported_at where x = 1, -4 days, 1 day)",
     "unknown name 'x'"),
    ("exists place_scans where risk_place(shown_color, scanned_at, 'high')", "place code column"),
    ("exists trips where risk_place(region_code, visited_at, 'high')", "place code column"),
    ("exists place_scans where risk_place(place_code, scanned_at, 'extreme')", "not a risk level"),
])
def test_misuse_is_a_check_error(text, message):
    with pytest.raises(CheckError, match=message):
        resolve_fact(parse_fact(text), {}, HENAN.palette)


# ---------------------------------------------------------------- Henan in both engines


@pytest.mark.parametrize("ex", HENAN.examples, ids=lambda e: e.name)
def test_henan_examples_pass_in_the_embedded_and_the_reference_engine(ex):
    outcome = run_example(HENAN, ex)
    assert outcome.passed, outcome.problems
    ref = reference_codes(HENAN, example_frames(ex), ex.as_of).filter(pl.col("pid") == 1).row(0, named=True)
    assert ref["color"] == ex.color
    if ex.rules is not None:
        assert set(ref["matched_rules"]) == set(ex.rules)


def test_companion_evidence_names_the_place_and_own_scan_never_the_case():
    ex = next(e for e in HENAN.examples if e.name.startswith("the registry names the place"))
    row = evaluate(HENAN, example_frames(ex), ex.as_of).codes.filter(pl.col("pid") == 1).row(0, named=True)
    [ev] = row["evidence"]
    assert ev["rule"] == "HA-Y-02" and ev["feed"] == "place_scans"
    assert ev["time"] == T(2022, 6, 13, 10, 29)  # the person's own scan, not the case's (10:00)
    assert "郑州站西南出口" in ev["detail"] and "ZZ-STATION-SW" not in ev["detail"]
    assert "10:00" not in row["explanation"] and "2022-06-13 10:29" in row["explanation"]


SCAN_T = st.sampled_from([CUTOFF - dt.timedelta(days=1, minutes=m) for m in (0, 10, 29, 30, 31, 45, 60)]
                         + [CUTOFF - dt.timedelta(days=3, minutes=m) for m in (0, 30, 31)])
CASE_T = st.sampled_from([CUTOFF - dt.timedelta(days=d, hours=h) for d in (0, 1, 2, 4, 5) for h in (0, 1, 23)])


@st.composite
def gatherings(draw) -> dict[str, pl.DataFrame]:
    """Persons scanning two places around the same times, some of them cases: companions,
    near misses and cases' own scans are frequent."""
    n = draw(st.integers(2, 6))
    scans, cases, regs, nats = [], [], [], []
    for pid in range(1, n + 1):
        for _ in range(draw(st.integers(0, 3))):
            scans.append({"pid": pid, "place_code": draw(st.sampled_from(["P1", "P2"])), "scanned_at": draw(SCAN_T),
                          "shown_color": "green"})
        for _ in range(draw(st.integers(0, 2)) if draw(st.booleans()) else 0):
            cases.append({"pid": pid, "case_type": draw(st.sampled_from(["confirmed", "suspected"])),
                          "reported_at": draw(CASE_T)})
        for _ in range(draw(st.integers(0, 2))):
            nats.append({"pid": pid, "sampled_at": draw(SCAN_T) + dt.timedelta(hours=draw(st.sampled_from([1, 30]))),
                         "result": "negative", "pooled": False})
        if pid < n:  # the last person is a visitor, never registered
            regs.append({"pid": pid, "registered_at": T(2022, 1, 1), "district_code": "410102"})
    data = {"place_scans": scans, "cases": cases, "registrations": regs, "nat_results": nats}
    return {f: pl.DataFrame(rows, schema=feed_schema(f), orient="row") if rows else pl.DataFrame(schema=feed_schema(f))
            for f, rows in data.items()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=gatherings())
def test_companions_polars_equals_reference(frames):
    got = evaluate(HENAN, frames, AS_OF).codes.select("pid", "color", "rule", "matched_rules")
    want = reference_codes(HENAN, frames, AS_OF).select("pid", "color", "rule", "matched_rules")
    assert got.to_dicts() == want.to_dicts()


@settings(max_examples=40, deadline=None)
@given(frames=gatherings(), window=st.sampled_from([1, 10, 30, 61]))
def test_slot_join_equals_the_pairwise_definition(frames, window):
    """join_companion (slots of the window's width, neighbours included) keeps exactly the
    scans a brute-force comparison of every pair keeps, whatever the window."""
    node = parse_fact(f"exists place_scans where companion({window} minutes, cases.reported_at, -4 days, 1 day)"
                      ).where
    ctx = Ctx(CUTOFF, HENAN.palette)
    scans, cases = frames["place_scans"], frames["cases"]
    seeds = companion_seeds(node, cases.lazy(), scans.lazy(), ctx).collect()
    got = join_companion(scans.lazy(), node, seeds.lazy()).collect().sort(pl.all())
    w = dt.timedelta(minutes=window)
    keep = [r for r in scans.iter_rows(named=True) if any(
        s["__q"] != r["pid"] and s["place_code"] == r["place_code"] and abs(s["__ts"] - r["scanned_at"]) <= w
        for s in seeds.iter_rows(named=True))]
    want = pl.DataFrame(keep, schema=scans.schema).sort(pl.all())
    assert got.to_dicts() == want.to_dicts()


def test_explain_one_person_still_sees_the_other_persons_scans(wh, tmp_path):
    """The warehouse source narrowed to one person (explain) reads companions' seeds from everyone."""
    ingest(wh, [
        _write(tmp_path, "registrations.csv", f"id_number,registered_at,district_code\n{ID_A},2022-01-01,410102\n"),
        _write(tmp_path, "cases.csv", f"id_number,case_type,reported_at\n{ID_B},confirmed,2022-06-14 08:00\n"),
        _write(tmp_path, "place_scans.csv", "id_number,place_code,scanned_at,shown_color\n"
               f"{ID_A},ZZ-STATION-SW,2022-06-13 10:29,green\n{ID_B},ZZ-STATION-SW,2022-06-13 10:00,green\n"),
    ], now=NOW)
    a = wh.con.execute("SELECT pid FROM feed_registrations").fetchone()[0]
    whole, _, _ = evaluate_warehouse(wh, HENAN, AS_OF)
    one, _, _ = evaluate_warehouse(wh, HENAN, AS_OF, pids=[a])
    assert whole.codes["matched_rules"].to_list() == [["HA-Y-02"]]
    assert one.codes["matched_rules"].to_list() == [["HA-Y-02"]]
