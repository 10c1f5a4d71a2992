"""Fuzzing ingest with CSV bytes: it never crashes, every row read is loaded or
quarantined (never lost), and no message or quarantined value holds a raw id number."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import NOW
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcode.idnumber import make_ids
from hcode.ingest.load import ingest
from hcode.store import warehouse
from hcode.store.warehouse import Warehouse

IDS = make_ids(6, np.random.default_rng(14)).to_list()
ID_RE = re.compile(r"[0-9]{17}[0-9Xx]")
HEADERS = ["id_number,case_type,reported_at", "ID_NUMBER , Case_Type,reported_at,extra", "case_type,reported_at",
           "id_number,case_type,case_type,reported_at", "", "id_number;case_type;reported_at"]
CELLS = [*IDS, "", " ", "confirmed", "Suspected ", "bogus", "2022-06-10 10:00:00", "2022-06-10", "2099-01-01",
         "not a time", '"a,b"', '"line\nbreak"', '"', "=1+1", "\x00", "中文", "x" * 40, IDS[0] + IDS[1]]


def _row(cells: list[str]) -> str:
    return ",".join(cells)


text_csv = st.builds(
    lambda head, rows, eol, bom: (("\ufeff" if bom else "") + head + eol + eol.join(_row(r) for r in rows)
                                  + eol).encode("utf-8"),
    st.sampled_from(HEADERS), st.lists(st.lists(st.sampled_from(CELLS), min_size=0, max_size=5), max_size=12),
    st.sampled_from(["\n", "\r\n", "\r"]), st.booleans())
gbk_csv = text_csv.map(lambda b: b.decode("utf-8").encode("gb18030", errors="replace"))
any_bytes = st.one_of(text_csv, gbk_csv, st.binary(max_size=300),
                      st.tuples(text_csv, st.binary(max_size=40)).map(lambda t: t[0] + t[1]))


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=any_bytes)
def test_ingest_never_crashes_and_never_loses_a_row(tmp_path_factory, data):
    base = tmp_path_factory.mktemp("fuzz")
    warehouse.init(base / "w.duckdb")
    (base / "cases.csv").write_bytes(data)
    with Warehouse.open(base / "w.duckdb") as wh:
        [r] = ingest(wh, [base / "cases.csv"], now=NOW)
        if r.rejected:
            assert r.error and r.rows_read == r.rows_loaded == r.rows_quarantined == 0
            assert wh.con.execute("SELECT count(*) FROM loads").fetchall() == [(0,)]
        else:
            assert r.rows_read == r.rows_loaded + r.rows_quarantined
            [(read, loaded, bad)] = wh.con.execute(
                "SELECT rows_read, rows_loaded, rows_quarantined FROM loads WHERE load_id = ?", [r.load_id]).fetchall()
            assert (read, loaded, bad) == (r.rows_read, r.rows_loaded, r.rows_quarantined)
            assert wh.con.execute("SELECT count(*) FROM quarantine WHERE load_id = ?",
                                  [r.load_id]).fetchall() == [(bad,)]
            stored = wh.con.execute("SELECT count(*) FROM feed_cases WHERE load_id = ?", [r.load_id]).fetchall()[0][0]
            assert stored <= loaded  # identical rows are stored once
        kept = repr(wh.con.execute("SELECT errors, raw FROM quarantine").fetchall())
        assert not ID_RE.search(kept) and not ID_RE.search(r.error or "")
