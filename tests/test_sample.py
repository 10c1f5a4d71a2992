"""`hcode sample`: contract columns, determinism, rates, planted persons, bad rows, sample_data/."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.feeds import FEEDS, Kind
from hcode.paths import sample_data_dir
from hcode.sample import night as sample
from hcode.sample.defects import GUARANTEED, KINDS, insert
from hcode.sample.places import place_ids
from hcode.sample.planted import RULESETS, SCENARIOS, planted_ids, planted_rows, rule_color

D = dt.date(2022, 6, 14)
C = dt.datetime(2022, 6, 15)
LOADED = C + dt.timedelta(hours=6)
SEVERITY = {"green": 0, "yellow": 1, "red": 2}
# The checked-in night: see sample_data/README.md.
# the checked-in sample_data/ predates place codes: it is the night without scans
SAMPLE_ARGS = {"residents": 3000, "seed": 1, "as_of": D, "scans_per_day": 0}
SAMPLE_ENCODINGS = {"overrides": "gbk", "registrations": "utf-8-sig"}


@pytest.fixture(scope="module")
def small() -> sample.SampleNight:
    return sample.generate(residents=2000, seed=7, as_of=D)


@pytest.fixture(scope="module")
def medium() -> sample.SampleNight:
    return sample.generate(residents=20_000, seed=3, as_of=D)


# --- a reference validator, straight from the feeds contract (stdnum for ids) ---

def _valid_id(raw: str | None, loaded: dt.datetime = LOADED) -> bool:
    v = (raw or "").strip(" \t\n\r\x0b\x0c").upper()
    if not re.fullmatch(r"[0-9]{17}[0-9X]", v):
        return False
    try:
        return bool(ric.is_valid(v)) and ric.get_birth_date(v) <= loaded.date()
    except KeyError:  # stdnum: unknown county under a known province
        return False


def _ts(s: pl.Series) -> pl.Series:
    """The contract's three timestamp forms, strictly (anything else is null)."""
    return pl.select(pl.coalesce(
        s.str.to_datetime(fmt, strict=False, exact=True)
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"))).to_series()


def _value_ok(col, v: str, loaded: dt.datetime) -> bool:
    if col.kind is Kind.ID_NUMBER:
        return _valid_id(v, loaded)
    if col.kind is Kind.ENUM:
        return v.lower() in col.values
    if col.kind is Kind.BOOL:
        return v.lower() in ("true", "false", "1", "0")
    if col.kind is Kind.CODE6:
        return re.fullmatch(r"[0-9]{6}", v) is not None
    if col.kind is Kind.CODE2:
        return re.fullmatch(r"[0-9]{2}", v) is not None
    if col.kind is Kind.ORIGIN:
        return re.fullmatch(r"[A-Za-z]{2}", v) is not None
    return True


def _bad_cells(feed: str, df: pl.DataFrame, loaded: dt.datetime = LOADED) -> set[tuple[int, str]]:
    """(row, column) of every value the contract refuses."""
    bad: set[tuple[int, str]] = set()
    for col in FEEDS[feed].required_columns:  # the sample leaves optional columns out
        s = df[col.name].fill_null("").str.strip_chars()
        empty = (s == "").to_numpy()
        if col.kind is Kind.TIMESTAMP:
            t = _ts(s)
            ok = t.is_not_null()
            if not col.future_ok:
                ok = ok & (t <= loaded + dt.timedelta(days=1))
            ok = ok.fill_null(False).to_numpy()
        else:
            verdict = {v: _value_ok(col, v, loaded) for v in s.unique().to_list()}
            ok = np.array([verdict[v] for v in s.to_list()], dtype=bool)
        refused = (empty & (not col.nullable)) | (~empty & ~ok)
        bad.update((int(i), col.name) for i in np.flatnonzero(refused))
    return bad


def _read_csv(path: Path) -> pl.DataFrame:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gbk")
    return pl.read_csv(io.StringIO(text), infer_schema=False)


# --- shape and determinism ---

@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_files_for_every_feed_with_contract_columns(tmp_path, small, fmt):
    paths = sample.write(small, tmp_path, fmt=fmt)
    assert sorted(p.name for p in paths) == sorted([f"{f}.{fmt}" for f in FEEDS] + ["planted.json"])
    for feed, spec in FEEDS.items():
        path = tmp_path / f"{feed}.{fmt}"
        df = _read_csv(path) if fmt == "csv" else pl.read_parquet(path)
        assert df.columns == [c.name for c in spec.required_columns], feed  # optional columns are left out
        assert df.height == small.feeds[feed].height
    manifest = json.loads((tmp_path / "planted.json").read_text("utf-8"))
    assert all(("line" in b) == (fmt == "csv") for b in manifest["bad_rows"])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_inputs_give_byte_identical_files(tmp_path, fmt):
    a = sample.generate_and_write(tmp_path / "a", residents=500, seed=5, as_of=D, fmt=fmt)
    sample.generate_and_write(tmp_path / "b", residents=500, seed=5, as_of=D, fmt=fmt)
    sample.write(sample.generate(residents=500, seed=5, as_of=D), tmp_path / "c", fmt=fmt)
    for f in [*a.files, sample.WrittenFile("", a.manifest, 0)]:
        raw = f.path.read_bytes()
        assert raw == (tmp_path / "b" / f.path.name).read_bytes(), f.path.name
        assert raw == (tmp_path / "c" / f.path.name).read_bytes(), f.path.name
    other = sample.generate(residents=500, seed=6, as_of=D)
    assert not other.feeds["nat_results"].equals(sample.generate(residents=500, seed=5, as_of=D).feeds["nat_results"])


# --- rates ---

def _random_rows(night: sample.SampleNight, feed: str) -> pl.DataFrame:
    """The feed without planted persons' rows and without bad rows."""
    bad = {b.row for b in night.bad_rows if b.feed == feed}
    df = night.feeds[feed].with_row_index("_i").filter(~pl.col("_i").is_in(list(bad))).drop("_i")
    if "id_number" in df.columns:
        df = df.filter(~pl.col("id_number").is_in(planted_ids() + place_ids()))
    return df


def _times(df: pl.DataFrame, col: str) -> pl.Series:
    return df[col].str.replace("T", " ").str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).fill_null(
        df[col].str.to_datetime("%Y-%m-%d", strict=False))


def test_rates_roughly_as_the_contract_says(medium):
    n = medium.residents
    nat = _random_rows(medium, "nat_results")
    assert 4.5 * n < nat.height < 5.5 * n
    result = nat["result"].str.strip_chars().str.to_lowercase()
    pos_persons = nat.filter(result == "positive")["id_number"].n_unique()
    assert 0.001 * n < pos_persons < 0.0035 * n
    pooled = (nat["pooled"] == "true").mean()
    assert 0.08 < pooled < 0.12
    window = C - dt.timedelta(days=14)
    in_window = _times(nat, "sampled_at").is_between(window, C, closed="left").mean()
    assert in_window > 0.999  # all but a few rows just after the cut-off

    trips = _random_rows(medium, "trips")
    assert 0.9 * n < trips.height < 1.1 * n
    risk = medium.feeds["risk_areas"].filter(pl.col("level").is_in(["medium", "high"]))
    assert 150 < medium.feeds["risk_areas"].height < 600
    risky = (
        trips.with_columns(_times(trips, "visited_at").alias("t"))
        .join(risk.with_columns(_times(risk, "valid_from").alias("f"),
                                _times(risk, "valid_to").fill_null(dt.datetime(9999, 1, 1)).alias("u")),
              on="region_code")
        .filter((pl.col("t") >= pl.col("f")) & (pl.col("t") < pl.col("u")))
        .select("id_number", "t").unique().height
    )
    assert 0.035 < risky / trips.height < 0.065

    def persons(feed, **eq):
        df = _random_rows(medium, feed)
        for k, v in eq.items():
            df = df.filter(pl.col(k).str.strip_chars().str.to_lowercase() == v)
        return df["id_number"].n_unique()

    cases = _random_rows(medium, "cases")
    assert 3 <= cases.height <= 25
    assert _times(cases, "reported_at").min() < C - dt.timedelta(days=14)  # some older than 14 days
    assert 0.2 * cases.height <= _random_rows(medium, "discharges").height <= 0.8 * cases.height
    contacts = _random_rows(medium, "contacts")
    recent = contacts.filter(_times(contacts, "identified_at") >= window)
    for level in ("close", "secondary"):
        k = recent.filter(pl.col("contact_level").str.strip_chars().str.to_lowercase() == level).height
        assert 0.007 * n < k < 0.013 * n
    assert 3 <= _random_rows(medium, "entries").height <= 30
    assert 0.003 * n < persons("symptoms") < 0.007 * n
    assert 0.0005 * n < persons("inbound_codes") < 0.0016 * n
    assert 0.015 * n < persons("isolation", kind="home_health_observation") < 0.025 * n
    regs = _random_rows(medium, "registrations")
    assert regs["id_number"].str.strip_chars().str.to_uppercase().n_unique() == n
    assert n < regs.height < 1.02 * n  # a few moved
    assert (_times(regs, "registered_at") >= C).sum() > 0  # a few registered after the cut-off


def test_entry_origins_a_third_hk_a_tenth_mo():
    from hcode.sample.random_events import Context, entries

    ctx = Context(400_000, 1, D)
    origins = entries(ctx, ctx.rng(99))["origin"]
    assert 200 < origins.len() < 400
    assert 0.25 < (origins == "HK").mean() < 0.42
    assert 0.05 < (origins == "MO").mean() < 0.16


def test_ids_valid_under_stdnum(medium):
    regs = _random_rows(medium, "registrations")["id_number"]
    rng = np.random.default_rng(0)
    for raw in regs.gather(rng.integers(0, regs.len(), 500)).to_list():
        v = raw.strip().upper()
        assert ric.is_valid(v), raw
    assert all(ric.is_valid(i) for i in planted_ids())


def test_districts_are_shanghai_or_zhejiang_counties(small):
    codes = small.feeds["registrations"]["district_code"].str.strip_chars().drop_nulls().unique()
    codes = codes.filter(codes.str.len_chars() == 6)
    assert codes.str.slice(0, 2).is_in(["31", "33"]).all()


# --- planted persons ---

def test_every_planted_scenario_is_in_the_night(small):
    persons = small.persons
    assert [p["key"] for p in persons] == [s.key for s in SCENARIOS]
    assert len({p["id_number"] for p in persons}) == len(persons)
    for feed in FEEDS:
        expected = planted_rows(feed, C)
        got = small.feeds[feed].join(expected, on=expected.columns, how="semi", nulls_equal=True)
        assert got.height == expected.height, feed
        if "id_number" in expected.columns:  # no random or bad rows for planted persons
            planted = small.feeds[feed].filter(pl.col("id_number").str.strip_chars().str.to_uppercase()
                                               .is_in(planted_ids()))
            assert planted.height == expected.height, feed


def test_expectations_are_consistent_and_cover_every_rule(small):
    matched: dict[str, set[str]] = {rs: set() for rs in RULESETS}
    moves = set()
    for p in small.persons:
        exp = p["expected"]
        assert set(exp) == set(RULESETS)
        for rs, e in exp.items():
            order = RULESETS[rs]
            assert all(r in order for r in e["rules"]), (p["key"], rs)
            assert e["rules"] == sorted(e["rules"], key=order.index), (p["key"], rs)
            matched[rs].update(e["rules"])
            if e["color"] == "absent":
                assert e["rules"] == [] and e["rule"] is None
            elif e["rule"] == "override":
                assert e["color"] in SEVERITY
            else:
                worst = max((rule_color(r) for r in e["rules"]), key=SEVERITY.get, default="green")
                assert e["color"] == worst, (p["key"], rs)
                assert e["rule"] == next((r for r in e["rules"] if rule_color(r) == worst), None)
        moves.add((exp["shanghai@2022.05.23"]["color"], exp["shanghai@2022.06.28"]["color"]))
    for rs, order in RULESETS.items():
        assert matched[rs] == set(order), rs
    assert {("red", "yellow"), ("red", "green"), ("red", "red"), ("green", "green")} <= moves


def test_worked_examples_of_the_rules_page(small):
    by_key = {p["key"]: p["expected"] for p in small.persons}
    assert by_key["entry_mo_recent"]["shanghai@2022.05.23"]["color"] == "green"
    assert by_key["entry_mo_recent"]["zhejiang@2022.03.01"]["color"] == "red"
    assert by_key["self_fever_negatives_25h"]["zhejiang@2022.03.01"]["color"] == "green"
    assert by_key["self_fever_negatives_23h"]["zhejiang@2022.03.01"]["color"] == "yellow"
    assert by_key["case_old_no_discharge"]["shanghai@2022.05.23"]["rules"] == ["SH-R-02"]
    rows = planted_rows("symptoms", C).join(planted_rows("nat_results", C), on="id_number")
    assert "2022-06-12 09:00:00" in rows["reported_at"].to_list()
    assert {"2022-06-13 21:00:00", "2022-06-13 19:00:00"} <= set(rows["sampled_at"].to_list())


# --- bad rows and messiness ---

def test_exactly_the_planted_bad_rows_are_bad(small, medium):
    for night in (small, medium):
        kinds = {b.kind for b in night.bad_rows}
        assert kinds == set(KINDS)
        for feed in FEEDS:
            listed = {(b.row, b.column) for b in night.bad_rows if b.feed == feed}
            assert _bad_cells(feed, night.feeds[feed]) == listed, feed
            for b in night.bad_rows:
                if b.feed == feed:
                    assert night.feeds[feed][b.column][b.row] == b.value


def test_another_as_of_date_shifts_everything():
    night = sample.generate(residents=300, seed=4, as_of=dt.date(2022, 4, 10))
    loaded = dt.datetime(2022, 4, 11, 6)
    for feed in FEEDS:
        listed = {(b.row, b.column) for b in night.bad_rows if b.feed == feed}
        assert _bad_cells(feed, night.feeds[feed], loaded) == listed, feed
    contacts = planted_rows("contacts", dt.datetime(2022, 4, 11))
    assert "2022-03-28" in contacts["identified_at"].to_list()  # C - 14 days, as a bare date


def test_guaranteed_kinds_even_for_a_tiny_night():
    night = sample.generate(residents=0, seed=1, as_of=D)
    placed = {(b.kind, b.feed, b.column) for b in night.bad_rows}
    for kind, (feed, col) in GUARANTEED.items():
        assert (kind, feed, col) in placed
    assert night.feeds["nat_results"]["pooled"].to_list().count("yes") == 1


def test_bad_rows_are_about_one_in_ten_thousand(medium):
    rows = sum(df.height for df in medium.feeds.values())
    assert len(KINDS) <= len(medium.bad_rows) <= len(KINDS) + 0.0003 * rows


def test_harmless_messiness_is_present(medium):
    nat = medium.feeds["nat_results"]["result"]
    assert (nat != nat.str.strip_chars().str.to_lowercase()).sum() > 0
    ids = pl.concat([df["id_number"] for df in medium.feeds.values() if "id_number" in df.columns])
    assert ids.str.ends_with("x").sum() > 0
    assert (ids != ids.str.strip_chars()).sum() > 0
    regs = medium.feeds["registrations"]["registered_at"]
    assert regs.str.contains("T").sum() > 0 and (regs.str.len_chars() == 10).sum() > 0


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 40), st.integers(0, 10), st.integers(0, 2**32 - 1))
def test_insert_puts_rows_where_it_says(n, m, seed):
    body = pl.DataFrame({"v": [f"b{i}" for i in range(n)]})
    extra = pl.DataFrame({"v": [f"e{i}" for i in range(m)]})
    out, where = insert(body, extra, np.random.default_rng(seed))
    assert out.height == n + m
    assert [out["v"][int(w)] for w in where] == extra["v"].to_list()
    assert [v for v in out["v"].to_list() if v.startswith("b")] == body["v"].to_list()


# --- the checked-in night ---

def test_checked_in_sample_data_is_what_the_generator_writes(tmp_path):
    sample.generate_and_write(tmp_path, **SAMPLE_ARGS, encodings=SAMPLE_ENCODINGS)
    checked_in = sample_data_dir()
    for path in sorted(tmp_path.iterdir()):
        assert path.read_bytes() == (checked_in / path.name).read_bytes(), path.name
    assert sum(p.stat().st_size for p in checked_in.iterdir()) < 2_000_000


def test_checked_in_encodings_and_readme():
    d = sample_data_dir()
    assert (d / "registrations.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    raw = (d / "overrides.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert "健康码" in raw.decode("gbk")
    readme = (d / "README.md").read_text("utf-8")
    manifest = json.loads((d / "planted.json").read_text("utf-8"))
    for b in manifest["bad_rows"]:
        assert f"| {b['feed']}.csv | {b['line']} | {b['column']} |" in readme, b
    for p in manifest["persons"]:
        assert f"| {p['id_number']} | {p['key']} |" in readme, p["key"]
    assert "hcode sample --out sample_data --residents 3000 --seed 1 --as-of 2022-06-14" in readme


# --- the command ---

def test_cli_json(tmp_path):
    res = CliRunner().invoke(app, ["sample", "--out", str(tmp_path), "--residents", "100", "--seed", "2",
                                   "--format", "parquet", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {k: out[k] for k in ("residents", "seed", "as_of", "format")} == {
        "residents": 100, "seed": 2, "as_of": "2022-06-14", "format": "parquet"}
    assert [f["feed"] for f in out["files"]] == list(FEEDS)
    for f in out["files"]:
        assert pl.read_parquet(f["file"]).height == f["rows"]


def test_cli_rejects_bad_usage(tmp_path):
    res = CliRunner().invoke(app, ["sample", "--out", str(tmp_path), "--format", "xml"])
    assert res.exit_code == 2
    res = CliRunner().invoke(app, ["sample", "--out", str(tmp_path), "--encoding", "overrides=latin-1"])
    assert res.exit_code == 2
