"""No raw id number outside the HMAC: whatever the file's shape, nothing hcode writes for
people (reports, JSON, quarantine, error messages) holds an 18-character id-shaped value."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
from conftest import ID_A, ID_B, NOW
from hypothesis import given
from hypothesis import strategies as st

from hcode.ingest.load import ingest
from hcode.ops.nightly import run_nightly
from hcode.store import warehouse
from hcode.textsafe import csv_safe, mask_ids, mask_ids_expr

ID_RE = re.compile(r"[0-9]{17}[0-9Xx]")
# a SHA-256 or HMAC in hex (file digests, the audit chain's head, person keys): about 1 in 100
# holds 18 decimal digits in a row, and these change from run to run (the audit entries carry
# the time of the load); a hash is not an id (textsafe.KEY_FIELDS)
HEX_HASH_RE = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{64}(?![0-9A-Za-z])")
DATE = dt.date(2022, 6, 14)


def raw_ids(text: str) -> list[str]:
    return ID_RE.findall(HEX_HASH_RE.sub("", text))


def test_raw_ids_finds_ids_but_not_hashes():
    digest = "ab" + "985396135352922194" + "c" * 44  # a hex hash with 18 digits in a row
    assert raw_ids(f"head {digest} tail") == []
    assert raw_ids(f"same household as {ID_B}; {digest}") == [ID_B]
    assert raw_ids(f"x{ID_B}y") == [ID_B]


def written_text(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*")
                     if p.is_file() and p.suffix in (".md", ".html", ".json", ".csv"))


def night(tmp_path: Path, files: dict[str, str]):
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "registrations.csv").write_text(f"id_number,registered_at,district_code\n{ID_A},2022-01-01,310101\n",
                                             encoding="utf-8")
    for name, text in files.items():
        (inbox / name).write_text(text, encoding="utf-8")
    res = run_nightly(db, inbox, "shanghai", DATE, operator="t", now=NOW, reports=tmp_path / "reports")
    return db, res


def test_a_csv_without_header_puts_no_raw_id_in_report_or_json(tmp_path):
    db, res = night(tmp_path, {"cases.csv": f"{ID_B},confirmed,2022-06-10 10:00:00\n"})
    assert res.published and any(r.rejected for r in res.loads)
    text = written_text(tmp_path / "reports")
    assert "cases.csv" in text  # the rejection is reported ...
    assert raw_ids(text) == []  # ... without the id of the row taken for a header
    assert raw_ids(json.dumps(res.as_json(), ensure_ascii=False)) == []
    assert raw_ids(" ".join(res.warnings)) == []


def test_an_id_in_the_wrong_column_is_masked_in_quarantine(tmp_path, wh):
    p = tmp_path / "cases.csv"
    p.write_text(f"id_number,case_type,reported_at\n{ID_A},{ID_B},2022-06-10 10:00:00\n"
                 f"x{ID_B}y,confirmed,{ID_A}\n", encoding="utf-8")
    [r] = ingest(wh, [p], now=NOW)
    assert r.rows_quarantined == 2
    stored = wh.con.execute("SELECT CAST(errors AS VARCHAR), raw FROM quarantine").fetchall()
    assert raw_ids(repr(stored)) == []


def test_an_id_in_free_text_is_masked_in_the_nightly_report(tmp_path):
    head = "id_number,color,authority,basis,operator,reason,issued_at,expires_at\n"
    _, res = night(tmp_path, {"overrides.csv": head + f"{ID_A},red,office,notice,op1,same household as {ID_B},"
                                                     "2022-06-13 09:00:00,\n"})
    assert res.published
    text = written_text(tmp_path / "reports")
    assert "same household as" in text and raw_ids(text) == []


def test_error_messages_mask_ids(tmp_path, wh):
    p = tmp_path / "cases.csv"
    p.write_text(f"{ID_A},case_type\n", encoding="utf-8")
    [r] = ingest(wh, [p], now=NOW)
    assert r.rejected and "missing required column" in (r.error or "")
    assert raw_ids(r.error or "") == []


ids = st.from_regex(r"\A[0-9]{17}[0-9X]\Z")


@given(st.text(max_size=20), ids, st.text(max_size=20))
def test_mask_ids_masks_any_embedded_id_and_expr_agrees(before, an_id, after):
    text = before + an_id + after
    masked = mask_ids(text)
    assert an_id not in masked
    assert pl.DataFrame({"t": [text]}).select(mask_ids_expr(pl.col("t"))).item() == masked


@given(st.text(max_size=30))
def test_csv_safe_never_starts_with_a_formula(cell):
    assert not csv_safe(cell).startswith(("=", "+", "-", "@", "\t", "\r"))


def test_an_id_in_a_file_name_is_masked_where_it_is_stored(tmp_path, wh):
    p = tmp_path / f"cases_{ID_A}.csv"
    p.write_text("id_number,case_type,reported_at\nbad,confirmed,2022-06-10 10:00:00\n", encoding="utf-8")
    [r] = ingest(wh, [p], feed="cases", now=NOW)
    assert r.rows_quarantined == 1
    stored = wh.con.execute("SELECT (SELECT list(file_name) FROM loads), (SELECT list(file_name) FROM quarantine), "
                            "(SELECT list(detail) FROM audit)").fetchall()
    assert "cases_110101" in repr(stored) and ID_A not in repr(stored)
