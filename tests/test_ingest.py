"""Ingest: every kind of bad input in docs/feeds.md has an exact outcome."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from conftest import ID_A, NOW

from hcode.ingest.load import ingest
from hcode.store.pseudonym import person_key

ID_C = "310101198001010026"
ID_X = "31010119800101107X"


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def load(wh, path, **kw):
    [r] = ingest(wh, [path], now=NOW, **kw)
    return r


def quarantined(wh):
    rows = wh.con.execute("SELECT line, errors, raw FROM quarantine ORDER BY line").fetchall()
    return {line: ({e["column"]: e["reason"] for e in errors}, json.loads(raw)) for line, errors, raw in rows}


def table(wh, feed, cols="*"):
    return wh.con.sql(f"SELECT {cols} FROM feed_{feed}").pl()


NAT_HEADER = "id_number,sampled_at,result,pooled\n"


@pytest.mark.parametrize(
    "row, column, reason",
    [
        (f"{ID_A[:-1]}7,2022-06-10 08:00:00,negative,false", "id_number", "bad check character"),
        ("１10101199003077758,2022-06-10 08:00:00,negative,false", "id_number", "bad format"),
        ("319999199001011231,2022-06-10 08:00:00,negative,false", "id_number", "unknown region"),  # KeyError in stdnum
        ("31999919900101123X,2022-06-10 08:00:00,negative,false", "id_number", "bad check character"),
        ("11010119900307775,2022-06-10 08:00:00,negative,false", "id_number", "bad format"),
        ("110101202307077751,2022-06-10 08:00:00,negative,false", "id_number", "birth date in the future"),
        ("110101199002307777,2022-06-10 08:00:00,negative,false", "id_number", "bad birth date"),  # 30 February
        (f"{ID_A},2022-06-10 08:00:00,maybe,false", "result", "not one of positive, negative"),
        (f"{ID_A},2022-06-10 08:00:00,negative,yes", "pooled", "not a boolean (true/false/1/0)"),
        (f"{ID_A},2022-06-10 08:00:00,negative,2", "pooled", "not a boolean (true/false/1/0)"),
        (f"{ID_A},2022/06/10,negative,false", "sampled_at", "not a timestamp (expected YYYY-MM-DD[ HH:MM:SS])"),
        (f"{ID_A},2022-06-16 06:00:01,negative,false", "sampled_at", "more than a day after the moment of loading"),
        (f"{ID_A}, ,negative,false", "sampled_at", "empty"),
        (",2022-06-10 08:00:00,negative,false", "id_number", "empty"),
        ("  ,2022-06-10 08:00:00,negative,false", "id_number", "empty"),  # blank: empty once trimmed
        (f"{ID_A.lower()}x,2022-06-10 08:00:00,negative,false", "id_number", "bad format"),  # 19 characters
        (f" {ID_X.lower()} ,2022-06-10 08:00:00,negative,false", "result", None),  # a clean id once trimmed
    ],
)
def test_bad_nat_rows_are_quarantined_with_column_and_reason(wh, tmp_path, row, column, reason):
    p = write(tmp_path, "nat_results.csv", NAT_HEADER + f"{ID_C},2022-06-10 08:00:00,negative,false\n" + row + "\n")
    r = load(wh, p)
    if reason is None:  # not an error at all
        assert (r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_new) == (2, 2, 0, 2)
        return
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (2, 1, 1)
    q = quarantined(wh)
    assert list(q) == [3]  # header is line 1, the good row line 2, the bad row line 3
    errors, raw = q[3]
    assert column in errors
    assert errors[column] == reason
    assert set(raw) == {"id_number", "sampled_at", "result", "pooled"}


def test_quarantine_masks_the_id_and_keeps_only_contract_columns(wh, tmp_path):
    p = write(tmp_path, "nat_results.csv", "id_number,sampled_at,result,pooled,phone\n"
              f"{ID_A},2022-06-10 08:00:00,maybe,false,13800000000\n")
    load(wh, p)
    errors, raw = quarantined(wh)[2]
    assert raw == {"id_number": "110101**********58", "sampled_at": "2022-06-10 08:00:00", "result": "maybe",
                   "pooled": "false"}


def test_normalisation_is_not_an_error(wh, tmp_path):
    p = write(tmp_path, "nat_results_20220614.csv", NAT_HEADER +
              f" {ID_X.lower()} ,2022-06-10T08:00:00, Negative ,TRUE\n{ID_A},2022-06-11,POSITIVE,0\n")
    r = load(wh, p)
    assert (r.feed, r.rows_loaded, r.rows_quarantined) == ("nat_results", 2, 0)
    t = table(wh, "nat_results", "sampled_at, result, pooled").sort("sampled_at")
    assert t.rows() == [(dt.datetime(2022, 6, 10, 8), "negative", True), (dt.datetime(2022, 6, 11), "positive", False)]
    keys = wh.con.execute("SELECT person_key FROM persons ORDER BY pid").fetchall()
    assert {k for (k,) in keys} == {person_key(ID_X, wh.key), person_key(ID_A, wh.key)}


def test_missing_columns_reject_the_whole_file(wh, tmp_path):
    p = write(tmp_path, "cases.csv", f"id_number,reported\n{ID_A},2022-06-01\n")
    r = load(wh, p)
    assert r.rejected and not r.rows_loaded
    assert "missing required columns case_type, reported_at" in r.error
    assert wh.con.execute("SELECT count(*) FROM loads").fetchall() == [(0,)]
    assert wh.con.execute("SELECT count(*) FROM feed_cases").fetchall() == [(0,)]


def test_unknown_feed_is_rejected_naming_the_file(wh, tmp_path):
    r = load(wh, write(tmp_path, "vaccinations.csv", "id_number\n"))
    assert r.rejected and "vaccinations.csv" in r.error


def test_empty_file_with_header_is_a_valid_empty_load(wh, tmp_path):
    r = load(wh, write(tmp_path, "discharges.csv", "id_number,discharged_at\n"))
    assert not r.rejected and (r.rows_read, r.rows_loaded, r.rows_quarantined) == (0, 0, 0)
    assert r.load_id == 1


def test_gbk_and_bom_files_load(wh, tmp_path):
    text = ("id_number,color,authority,basis,operator,reason,issued_at,expires_at\n"
            f"{ID_A},Green,上海市卫健委,复核通知,张三,核酸阴性复核,2022-06-10 09:00:00,\n")
    gbk = load(wh, write(tmp_path, "overrides.csv", text, "gbk"))
    bom = load(wh, write(tmp_path, "overrides_2.csv", "\ufeff" + text.replace("张三", "李四")))
    assert gbk.rows_loaded == 1 and bom.rows_loaded == 1
    t = table(wh, "overrides", "color, authority, operator, expires_at").sort("operator")
    assert t.rows() == [("green", "上海市卫健委", "张三", None), ("green", "上海市卫健委", "李四", None)]


def test_same_bytes_twice_is_a_duplicate_no_op(wh, tmp_path):
    p = write(tmp_path, "contacts.csv", f"id_number,contact_level,identified_at\n{ID_A},close,2022-06-10\n")
    first = load(wh, p)
    renamed = write(tmp_path, "contacts_20220615.csv", p.read_text())
    again = load(wh, renamed)
    assert again.duplicate and again.load_id == first.load_id and again.rows_loaded == 0
    assert wh.con.execute("SELECT count(*) FROM loads").fetchall() == [(1,)]
    assert wh.con.execute("SELECT count(*) FROM feed_contacts").fetchall() == [(1,)]


def test_identical_rows_are_one_event_across_files(wh, tmp_path):
    row = f"{ID_A},close,2022-06-10 10:00:00\n"
    load(wh, write(tmp_path, "contacts_1.csv", "id_number,contact_level,identified_at\n" + row))
    r = load(wh, write(tmp_path, "contacts_2.csv", "id_number,contact_level,identified_at\n" + row + row))
    assert (r.rows_read, r.rows_loaded, r.rows_new) == (2, 2, 0)
    assert wh.con.execute("SELECT count(*) FROM feed_contacts").fetchall() == [(1,)]


def test_nullable_columns_and_future_expiry(wh, tmp_path):
    p = write(tmp_path, "risk_areas.csv", "region_code,level,valid_from,valid_to\n"
              "310115,high,2022-06-01,\n310104,Medium,2022-06-01,2099-01-01\n310104,high,,\n")
    r = load(wh, p)
    assert (r.rows_loaded, r.rows_quarantined) == (2, 1)
    assert quarantined(wh)[4][0] == {"valid_from": "empty"}


def test_overrides_need_authority_basis_operator_reason(wh, tmp_path):
    p = write(tmp_path, "overrides.csv", "id_number,color,authority,basis,operator,reason,issued_at,expires_at\n"
              f"{ID_A},red,CDC,,  ,reason,2022-06-10,\n")
    load(wh, p)
    assert quarantined(wh)[2][0] == {"basis": "empty", "operator": "empty"}


def test_parquet_typed_columns_convert(wh, tmp_path):
    frame = pl.DataFrame({
        "id_number": [int(ID_A), int(ID_C)],
        "sampled_at": pl.Series([dt.datetime(2022, 6, 10, 0, 30), dt.datetime(2022, 6, 11)]).dt.replace_time_zone("UTC"),
        "result": ["negative", "positive"],
        "pooled": [1, 0],
        "lab": ["x", "y"],
    })
    p = tmp_path / "nat_results.parquet"
    frame.write_parquet(p)
    r = load(wh, p)
    assert (r.rows_loaded, r.rows_quarantined) == (2, 0)
    t = table(wh, "nat_results", "sampled_at, pooled").sort("sampled_at")
    assert t.rows() == [(dt.datetime(2022, 6, 10, 8, 30), True), (dt.datetime(2022, 6, 11, 8), False)]
    assert "lab" not in table(wh, "nat_results").columns


def test_parquet_with_a_type_that_cannot_hold_the_values_is_rejected(wh, tmp_path):
    p = tmp_path / "nat_results.parquet"
    pl.DataFrame({"id_number": [ID_A], "sampled_at": [True], "result": ["negative"], "pooled": [False]}).write_parquet(p)
    r = load(wh, p)
    assert r.rejected and "sampled_at (Boolean)" in r.error


def test_parquet_rows_are_numbered_from_zero(wh, tmp_path):
    p = tmp_path / "nat_results.parquet"
    pl.DataFrame({"id_number": [ID_A, "bad"], "sampled_at": ["2022-06-10", "2022-06-10"],
                  "result": ["negative", "negative"], "pooled": ["0", "0"]}).write_parquet(p)
    load(wh, p)
    assert list(quarantined(wh)) == [1]


def test_reconciliation_holds_for_every_load(wh, tmp_path):
    p = write(tmp_path, "symptoms.csv", "id_number,symptom,reported_at,reporter\n"
              f"{ID_A},fever,2022-06-10,self\n{ID_A},cough,2022-06-10,self\n{ID_C},fever,2022-06-10,doctor\n")
    load(wh, p)
    for read, loaded, quarantined_ in wh.con.execute("SELECT rows_read, rows_loaded, rows_quarantined FROM loads").fetchall():
        assert read == loaded + quarantined_
    assert wh.con.execute("SELECT count(*) FROM quarantine").fetchall() == [(2,)]


def test_codes_and_colours_are_normalised(wh, tmp_path):
    load(wh, write(tmp_path, "entries.csv", f"id_number,entered_at,origin\n{ID_A},2022-06-10, hk \n{ID_C},2022-06-10,HKG\n"))
    load(wh, write(tmp_path, "inbound_codes.csv", f"id_number,province,color,since\n{ID_A},44,Red,2022-06-10\n"
                   f"{ID_C},4,red,2022-06-10\n"))
    assert table(wh, "entries", "origin").rows() == [("HK",)]
    assert table(wh, "inbound_codes", "province, color").rows() == [("44", "red")]
    rows = wh.con.execute("SELECT feed, line, errors FROM quarantine ORDER BY feed").fetchall()
    assert rows == [("entries", 3, [{"column": "origin", "reason": "not a two-letter country code"}]),
                    ("inbound_codes", 3, [{"column": "province", "reason": "not a 2-digit province code"}])]


def test_large_files_are_processed_in_batches_with_the_same_outcome(wh, tmp_path, monkeypatch):
    import hcode.ingest.read

    monkeypatch.setattr(hcode.ingest.read, "BATCH_ROWS", 2)
    rows = [f"{ID_A},close,2022-06-10 10:00:00", f"{ID_C},close,2022-06-11", f"{ID_A},close,2022-06-10 10:00:00",
            f"{ID_A},maybe,2022-06-12", f"{ID_C},close,2022-06-11"]
    r = load(wh, write(tmp_path, "contacts.csv", "id_number,contact_level,identified_at\n" + "\n".join(rows) + "\n"))
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_new) == (5, 4, 1, 2)
    assert list(quarantined(wh)) == [5]  # the bad row is in the second batch, at CSV line 5
    assert wh.con.execute("SELECT count(*) FROM feed_contacts").fetchall() == [(2,)]
    p = tmp_path / "contacts.parquet"
    pl.DataFrame({"id_number": [ID_A, "x", ID_X], "contact_level": ["close"] * 3,
                  "identified_at": ["2022-06-13"] * 3}).write_parquet(p)
    r = load(wh, p)
    assert (r.rows_read, r.rows_quarantined) == (3, 1)
    assert 1 in {line for (line,) in wh.con.execute("SELECT line FROM quarantine WHERE file_name = 'contacts.parquet'").fetchall()}


def test_registrations_are_stored_in_pid_order(wh, tmp_path):
    import numpy as np

    from hcode.idnumber import make_ids

    ids = list(make_ids(30, np.random.default_rng(7)))
    text = "id_number,registered_at,district_code\n" + "".join(f"{i},2022-01-01,310101\n" for i in ids)
    assert load(wh, write(tmp_path, "registrations.csv", text)).rows_loaded == 30
    more = "id_number,registered_at,district_code\n" + "".join(f"{i},2022-02-01,310104\n" for i in ids[::-3])
    (tmp_path / "night2").mkdir()
    assert load(wh, write(tmp_path / "night2", "registrations.csv", more)).rows_loaded == 10
    # a third file repeats rows of the first and adds new districts at the same time: the
    # insert goes through the comparison with stored rows (EXCEPT), still in pid order
    again = "id_number,registered_at,district_code\n" + "".join(
        f"{i},2022-01-01,{'310101' if n % 2 else '310105'}\n" for n, i in enumerate(ids))
    (tmp_path / "night3").mkdir()
    assert load(wh, write(tmp_path / "night3", "registrations.csv", again)).rows_new == 15
    stored = table(wh, "registrations", "pid, load_id")  # storage order: no ORDER BY
    first, second, third = (stored.filter(pl.col("load_id") == n)["pid"] for n in stored["load_id"].unique().sort())
    assert first.is_sorted() and second.is_sorted() and third.is_sorted() and first.n_unique() == 30
    pids = dict(wh.con.execute("SELECT person_key, pid FROM persons").fetchall())
    in_file_order = pl.Series([pids[person_key(i, wh.key)] for i in ids])
    assert not in_file_order.is_sorted()  # the order is the warehouse's doing, not the file's


def test_new_persons_are_stored_in_pid_order_and_digested_as_stored(wh, tmp_path, monkeypatch):
    """A load's new persons are numbered in person-key order and written in pid order, batch
    after batch, so the load's audit digest of `persons` reads them as stored (no sort)."""
    import numpy as np

    import hcode.ingest.read
    from hcode.idnumber import make_ids
    from hcode.store import audit
    from hcode.store import digest as dg

    monkeypatch.setattr(hcode.ingest.read, "BATCH_ROWS", 7)
    monkeypatch.setattr(dg, "SORT_MIN", 0)  # (the shortcuts start at 65,536 rows)
    ids = list(make_ids(40, np.random.default_rng(3)))
    text = "id_number,contact_level,identified_at\n" + "".join(f"{i},close,2022-06-10\n" for i in ids)
    sqls: list[str] = []
    real = dg._batches
    monkeypatch.setattr(dg, "_batches", lambda c, sql, p: (sqls.append(sql), real(c, sql, p))[1])
    assert load(wh, write(tmp_path, "contacts.csv", text)).rows_new == 40
    stored = wh.con.execute("SELECT pid FROM persons").fetchnumpy()["pid"]  # storage order: no ORDER BY
    assert len(stored) == 40 and (np.diff(stored) > 0).all()
    persons = [s for s in sqls if " FROM persons " in s]
    assert persons and "ORDER BY" not in persons[-1]
    sqls.clear()
    assert audit.verify(wh.con).ok  # (verify digests every load's persons in one pass, as stored too)
    assert any(" FROM persons" in s and "ORDER BY" not in s for s in sqls)
