"""Hypothesis strategies for small generated populations (feed frames keyed by feed name).

Times come from a coarse grid around the cut-off (every 6 hours over 20 days, a few minutes
on either side of the cut-off) so that the interesting coincidences — exactly N days, same
second as the trigger, exactly +K days, at the cut-off — happen often.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl
from hypothesis import strategies as st

from hcode.engine.sources import feed_schema
from hcode.store.warehouse import DDL

AS_OF = dt.date(2022, 6, 14)
CUTOFF = dt.datetime(2022, 6, 15)
GRID = sorted({CUTOFF - dt.timedelta(hours=6 * k) for k in range(-1, 4 * 22)}
              | {CUTOFF - dt.timedelta(minutes=m) for m in (-1, 1, 60)}
              | {CUTOFF - dt.timedelta(days=d) for d in (6, 7, 10, 12, 14, 15)}
              | {dt.datetime(2022, 5, 1)})
times = st.sampled_from(GRID)
REGIONS = ["310104", "330102"]
PLACES = ["ZZ-STATION-SW", "ZZ-MARKET-1"]
# scans land near grid times, a few minutes either side, so that companions at exactly the
# window (30 minutes), just inside and just outside it are frequent
SCAN_BASES = [CUTOFF - dt.timedelta(days=d) for d in (1, 3, 7, 14)] + [CUTOFF - dt.timedelta(hours=30)]
scan_times = st.builds(lambda t, m: t + dt.timedelta(minutes=m), st.sampled_from(SCAN_BASES) | times,
                       st.sampled_from([0, 10, 29, 30, 31, -30]))


def _rows(**cols):
    return st.lists(st.fixed_dictionaries(cols), max_size=3)


FEED_ROWS = {
    "cases": _rows(case_type=st.sampled_from(["confirmed", "asymptomatic", "suspected"]), reported_at=times),
    "discharges": _rows(discharged_at=times),
    "contacts": _rows(contact_level=st.sampled_from(["close", "secondary"]), identified_at=times),
    "nat_results": _rows(sampled_at=times, result=st.sampled_from(["positive", "negative"]), pooled=st.booleans()),
    "entries": _rows(entered_at=times, origin=st.sampled_from(["HK", "MO", "US"])),
    "trips": _rows(region_code=st.sampled_from(REGIONS), visited_at=times,
                   source=st.sampled_from(["telecom", "railway"])),
    "isolation": _rows(kind=st.sampled_from(["centralized", "home_health_observation"]), started_at=times,
                       ended_at=st.none() | times),
    "symptoms": _rows(symptom=st.sampled_from(["fever", "shortness_of_breath", "respiratory"]), reported_at=times,
                      reporter=st.sampled_from(["self", "clinic"])),
    "inbound_codes": _rows(province=st.sampled_from(["11", "44"]),
                           color=st.sampled_from(["red", "yellow", "green", "orange"]), since=times),
    "overrides": st.lists(st.fixed_dictionaries(dict(
        color=st.sampled_from(["green", "yellow", "red", "orange"]), authority=st.just("office"),
        basis=st.just("notice"), operator=st.just("op1"), reason=st.just("review"), issued_at=times,
        expires_at=st.none() | times)), max_size=2),
    "place_scans": _rows(place_code=st.sampled_from(PLACES), scanned_at=scan_times,
                         shown_color=st.sampled_from(["green", "yellow", "red", "blue"])),
    "registrations": st.lists(st.fixed_dictionaries(dict(
        registered_at=st.sampled_from([dt.datetime(2022, 1, 1), dt.datetime(2022, 6, 1), CUTOFF]),
        district_code=st.sampled_from(["310101", "310104"]))), min_size=1, max_size=2),
}
RISK_ROWS = st.lists(st.fixed_dictionaries(dict(
    region_code=st.sampled_from(REGIONS), level=st.sampled_from(["high", "medium", "low"]), valid_from=times,
    valid_to=st.none() | times)), max_size=3)
RISK_PLACE_ROWS = st.lists(st.fixed_dictionaries(dict(
    place_code=st.sampled_from(PLACES), level=st.sampled_from(["high", "medium", "low"]), valid_from=scan_times,
    valid_to=st.none() | scan_times)), max_size=3)


@st.composite
def population(draw, max_persons: int = 5) -> dict[str, pl.DataFrame]:
    """Persons 1..n with random events; person n+1 has events but is never registered."""
    n = draw(st.integers(1, max_persons))
    data: dict[str, list[dict]] = {f: [] for f in FEED_ROWS}
    for pid in range(1, n + 2):
        for feed, strat in FEED_ROWS.items():
            if feed == "registrations" and pid == n + 1:
                continue
            data[feed].extend({"pid": pid} | r for r in draw(strat))
    frames = {f: pl.DataFrame(rows, schema=feed_schema(f), orient="row") if rows else pl.DataFrame(schema=feed_schema(f))
              for f, rows in data.items()}
    risk = draw(RISK_ROWS)
    frames["risk_areas"] = (pl.DataFrame(risk, schema=feed_schema("risk_areas"), orient="row") if risk
                            else pl.DataFrame(schema=feed_schema("risk_areas")))
    listed = draw(RISK_PLACE_ROWS)
    frames["risk_places"] = (pl.DataFrame(listed, schema=feed_schema("risk_places"), orient="row") if listed
                             else pl.DataFrame(schema=feed_schema("risk_places")))
    frames["places"] = pl.DataFrame({"place_code": PLACES[:1], "name": ["郑州站西南出口"], "district_code": ["410102"],
                                     "registered_at": [dt.datetime(2022, 1, 1)]}, schema=feed_schema("places"))
    return frames


def warehouse_of(frames: dict[str, pl.DataFrame]) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse holding the frames as one load (load_id 1), to read them back
    through `WarehouseSource` with pushed filters."""
    con = duckdb.connect(":memory:")
    for stmt in DDL:
        con.execute(stmt)
    for feed, df in frames.items():
        if df.height:
            con.register("_f", df.with_columns(pl.lit(1, pl.Int32).alias("load_id")))
            con.execute(f"INSERT INTO feed_{feed} BY NAME SELECT * FROM _f")
            con.unregister("_f")
    return con
