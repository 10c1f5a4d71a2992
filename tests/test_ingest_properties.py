"""Ingest is order-independent and never keeps a raw id number."""

from __future__ import annotations

import numpy as np
import polars as pl
from conftest import NOW
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcode.idnumber import make_ids
from hcode.ingest.load import ingest
from hcode.store import warehouse
from hcode.store.warehouse import Warehouse

IDS = make_ids(12, np.random.default_rng(3)).to_list()


def contacts_csv(rows, part=""):
    """A contacts export; `part` fills a column outside the contract (not loaded), so that
    two parts holding the same rows are still different files, not a duplicate upload."""
    return "id_number,contact_level,identified_at,part\n" + "".join(f"{i},{lvl},{t},{part}\n" for i, lvl, t in rows)


def stored(db):
    with Warehouse.open(db) as wh:
        return wh.con.sql(
            "SELECT person_key, contact_level, identified_at FROM feed_contacts JOIN persons USING (pid) "
            "ORDER BY ALL").pl()


row_st = st.tuples(st.sampled_from(IDS), st.sampled_from(["close", "secondary", "bogus"]),
                   st.sampled_from(["2022-06-01 10:00:00", "2022-06-02", "2022-06-03T08:00:00", "not a time"]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row_st, min_size=1, max_size=25), cuts=st.lists(st.integers(0, 25), max_size=3),
       order=st.randoms(use_true_random=False))
def test_split_files_in_any_order_give_the_same_table(tmp_path_factory, monkeypatch, rows, cuts, order):
    monkeypatch.setenv("HCODE_KEY", "one key for both warehouses, long enough")
    base = tmp_path_factory.mktemp("split")
    whole_db, split_db = base / "whole.duckdb", base / "split.duckdb"
    for d in (whole_db, split_db):
        warehouse.init(d)
    (base / "contacts.csv").write_text(contacts_csv(rows))
    with Warehouse.open(whole_db) as wh:
        [whole] = ingest(wh, [base / "contacts.csv"], now=NOW)
    bounds = sorted({0, len(rows), *[min(c, len(rows)) for c in cuts]})
    parts = [rows[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    order.shuffle(parts)
    files = []
    for n, part in enumerate(parts):
        f = base / f"contacts_{n}.csv"
        f.write_text(contacts_csv(part, n))
        files.append(f)
    with Warehouse.open(split_db) as wh:
        results = ingest(wh, files, now=NOW)
    assert sum(r.rows_read for r in results) == whole.rows_read
    assert sum(r.rows_quarantined for r in results) == whole.rows_quarantined
    assert stored(whole_db).equals(stored(split_db))


def test_no_raw_id_number_anywhere_in_the_warehouse(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    ids = make_ids(50, np.random.default_rng(11)).to_list()
    bad = [i[:-1] + ("0" if i[-1] != "0" else "1") for i in ids[:5]]  # wrong check characters
    (tmp_path / "registrations.csv").write_text(
        "id_number,registered_at,district_code\n" + "".join(f"{i},2022-06-01,310115\n" for i in ids + bad))
    pl.DataFrame({"id_number": ids, "sampled_at": ["2022-06-10"] * 50, "result": ["negative"] * 50,
                  "pooled": [False] * 50}).write_parquet(tmp_path / "nat_results.parquet")
    with Warehouse.open(db) as wh:
        results = ingest(wh, [tmp_path], now=NOW)
        assert [r.rows_quarantined for r in results] == [0, 5]
        wh.con.execute("CHECKPOINT")
        texts = []
        for (table,) in wh.con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            frame = wh.con.sql(f"SELECT * FROM {table}").pl()
            texts.append(str(frame.rows()))
    blob = "\n".join(texts) + db.read_bytes().decode("latin-1")
    for i in ids + bad:
        assert i not in blob
        assert i[:17] not in blob
