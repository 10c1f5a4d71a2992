"""`hcode sample` in blocks of residents: a night larger than a block is generated and written
a block at a time (issue 13), and still has valid distinct ids, the documented rates, a true
manifest and planted persons whose codes hold."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from planted_checks import planted_mismatches
from stdnum.cn import ric

from hcode.feeds import FEEDS
from hcode.idnumber import lasting_counties
from hcode.ingest.load import ingest
from hcode.sample import night as sample
from hcode.sample.places import PLANTED_PLACES, place_count, place_ids
from hcode.sample.planted import planted_ids
from hcode.store import warehouse
from hcode.store.warehouse import Warehouse

D = dt.date(2022, 6, 14)
LOADED = dt.datetime(2022, 6, 15, 6)
RESIDENTS, BLOCK, SEED = 2000, 700, 11
ENCODINGS = {"overrides": "gbk", "registrations": "utf-8-sig"}


def _night(out: Path, fmt: str, **kw: Any) -> sample.WrittenNight:
    enc = ENCODINGS if fmt == "csv" else None
    return sample.generate_and_write(out, residents=RESIDENTS, seed=SEED, as_of=D, fmt=fmt, encodings=enc,
                                     block=BLOCK, **kw)


def _read(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    raw = path.read_bytes()
    text = raw.decode("gbk") if path.stem in ENCODINGS and ENCODINGS[path.stem] == "gbk" else raw.decode("utf-8-sig")
    return pl.read_csv(text.encode("utf-8"), infer_schema=False)


@pytest.fixture(scope="module", params=["csv", "parquet"])
def blocked(request, tmp_path_factory) -> tuple[str, Path, dict[str, Any], dict[str, pl.DataFrame]]:
    fmt = request.param
    out = tmp_path_factory.mktemp(f"blocks-{fmt}")
    _night(out, fmt)
    manifest = json.loads((out / "planted.json").read_text("utf-8"))
    frames = {f: _read(out / f"{f}.{fmt}") for f in FEEDS}
    return fmt, out, manifest, frames


def test_three_blocks_and_files_as_the_manifest_says(blocked):
    fmt, out, manifest, frames = blocked
    assert sample.block_sizes(RESIDENTS, BLOCK) == [700, 700, 600]
    assert manifest["block"] == BLOCK and manifest["residents"] == RESIDENTS
    assert {f: df.height for f, df in frames.items()} == manifest["rows"]
    for feed, df in frames.items():
        assert df.columns == [c.name for c in FEEDS[feed].required_columns], feed
    if fmt == "csv":  # one header, one BOM, the whole file in its encoding
        for feed in FEEDS:
            raw = (out / f"{feed}.csv").read_bytes()
            header = ",".join(frames[feed].columns).encode()
            assert raw.count(header) == 1 and raw.count(b"\xef\xbb\xbf") == (feed == "registrations"), feed
            assert raw.startswith(b"\xef\xbb\xbf" + header if feed == "registrations" else header), feed
        with pytest.raises(UnicodeDecodeError):
            (out / "overrides.csv").read_bytes().decode("utf-8")
    else:
        import pyarrow.parquet as pq

        assert pq.ParquetFile(out / "place_scans.parquet").metadata.num_row_groups >= 3  # a block or more each


def _random_ids(manifest: dict[str, Any], df: pl.DataFrame, feed: str) -> pl.Series:
    """The feed's ids, normalised, without bad rows and planted persons."""
    key = "line" if manifest["format"] == "csv" else "row"
    bad = [b[key] - (2 if key == "line" else 0) for b in manifest["bad_rows"] if b["feed"] == feed]
    ids = df.with_row_index("_i").filter(~pl.col("_i").is_in(bad))["id_number"].str.strip_chars().str.to_uppercase()
    return ids.filter(~ids.is_in(planted_ids() + place_ids()))


def test_ids_distinct_and_valid_across_blocks(blocked):
    _, _, manifest, frames = blocked
    regs = _random_ids(manifest, frames["registrations"], "registrations")
    residents = regs.unique()
    assert residents.len() == RESIDENTS  # every resident registered, no two share an id
    assert all(ric.is_valid(i) for i in residents.to_list())
    first_block = residents.str.slice(0, 6).is_in(lasting_counties())  # block 0's ids come from make_ids
    assert first_block.sum() == BLOCK
    for feed in FEEDS:  # every row's id is a resident's
        if "id_number" in frames[feed].columns:
            assert _random_ids(manifest, frames[feed], feed).is_in(residents.implode()).all(), feed


def test_rates_per_resident_hold_in_every_block(blocked):
    _, _, manifest, frames = blocked
    lasting = lasting_counties()

    def per_resident(feed: str) -> tuple[float, float]:
        ids = _random_ids(manifest, frames[feed], feed)
        first = ids.str.slice(0, 6).is_in(lasting)
        return first.sum() / BLOCK, (~first).sum() / (RESIDENTS - BLOCK)

    for feed, lo, hi in [("nat_results", 4.5, 5.5), ("trips", 0.85, 1.15), ("place_scans", 38, 46),
                         ("registrations", 1.0, 1.02), ("contacts", 0.015, 0.06), ("isolation", 0.01, 0.06)]:
        for rate in per_resident(feed):
            assert lo <= rate <= hi, (feed, rate)
    assert sum(manifest["messy_values"].values()) > 0


def test_block_0_is_the_night_of_its_residents(blocked):
    """Block 0 uses the one-block night's streams: its rows of every per-person feed are that
    night's (the scans' places aside: the registry is the whole night's); later blocks add
    rows with their own messiness and random bad rows."""
    fmt, _, manifest, frames = blocked
    first = sample.generate(BLOCK, SEED, D)
    later_bad = 0
    for feed in FEEDS:
        if not sample.per_person(feed):
            continue
        h0 = first.feeds[feed].height
        drop = ["place_code"] if feed == "place_scans" else []
        assert frames[feed].head(h0).drop(drop).equals(first.feeds[feed].drop(drop)), feed
        if feed in ("registrations", "nat_results", "trips", "contacts"):
            assert frames[feed].height > h0 + (RESIDENTS - BLOCK) * 0.02, feed
        later_bad += sum(b["line" if fmt == "csv" else "row"] - (2 if fmt == "csv" else 0) >= h0
                         for b in manifest["bad_rows"] if b["feed"] == feed)
    assert later_bad > 0


def test_night_wide_tables_are_the_one_block_nights(blocked):
    _, _, manifest, frames = blocked
    whole = sample.generate(RESIDENTS, SEED, D)
    for feed in ("risk_areas", "places", "risk_places"):
        assert frames[feed].equals(whole.feeds[feed]), feed
    assert frames["places"].height >= place_count(RESIDENTS) + len(PLANTED_PLACES)
    codes = frames["places"]["place_code"].str.strip_chars()
    assert frames["place_scans"]["place_code"].str.strip_chars().is_in(codes.implode()).all()


def test_bad_rows_are_where_the_manifest_says(blocked):
    fmt, out, manifest, frames = blocked
    for b in manifest["bad_rows"]:
        row = b["line"] - 2 if fmt == "csv" else b["row"]
        assert frames[b["feed"]][b["column"]][row] == b["value"], b
    if fmt == "csv":  # the line of the file itself
        lines = (out / "nat_results.csv").read_text("utf-8").splitlines()
        for b in manifest["bad_rows"]:
            if b["feed"] == "nat_results":
                assert b["value"] in lines[b["line"] - 1].split(","), b


@pytest.mark.slow
def test_ingest_quarantines_exactly_the_bad_rows_and_planted_codes_hold(blocked, tmp_path):
    _, out, manifest, _ = blocked
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    with Warehouse.open(db) as wh:
        results = ingest(wh, [out], now=LOADED)
        assert not any(r.rejected for r in results)
        assert {r.feed: r.rows_read for r in results} == manifest["rows"]
        for r in results:
            assert r.rows_read == r.rows_loaded + r.rows_quarantined
        got = set(wh.con.execute("SELECT DISTINCT feed, line FROM quarantine").fetchall())
        key = "line" if manifest["format"] == "csv" else "row"
        assert got == {(b["feed"], b[key]) for b in manifest["bad_rows"]}
        assert sum(r.rows_quarantined for r in results) == len(manifest["bad_rows"])
        for name in manifest["place_persons"][0]["expected"]:
            persons = [p for p in manifest["persons"] + manifest["place_persons"] if name in p["expected"]]
            assert not planted_mismatches(wh, persons, name, D), name


def test_same_parameters_same_bytes(tmp_path):
    for fmt in ("csv", "parquet"):
        a = _night(tmp_path / f"a-{fmt}", fmt)
        _night(tmp_path / f"b-{fmt}", fmt)
        for f in [*a.files, sample.WrittenFile("", a.manifest, 0)]:
            assert f.path.read_bytes() == (tmp_path / f"b-{fmt}" / f.path.name).read_bytes(), f.path.name
    sample.generate_and_write(tmp_path / "c", residents=RESIDENTS, seed=SEED, as_of=D, block=1000)
    assert (tmp_path / "c" / "nat_results.csv").read_bytes() != (tmp_path / "a-csv" / "nat_results.csv").read_bytes()


def test_a_night_of_one_block_is_the_whole_night(tmp_path):
    whole = sample.generate(residents=BLOCK, seed=SEED, as_of=D)
    sample.write(whole, tmp_path / "w", fmt="parquet")
    sample.generate_and_write(tmp_path / "b", residents=BLOCK, seed=SEED, as_of=D, fmt="parquet", block=BLOCK)
    for path in sorted((tmp_path / "w").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    assert "block" not in json.loads((tmp_path / "b" / "planted.json").read_text("utf-8"))
    with pytest.raises(Exception, match="block"):
        sample.generate_and_write(tmp_path / "x", residents=10, block=0)
