"""Ingest streams files: it never reads one whole (hash, encoding check, transcoding and parsing
go chunk by chunk), and the outcome (rows, quarantine lines, idempotence) is the batches'."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ID_A, NOW
from hypothesis import given, settings
from hypothesis import strategies as st

import hcode.ingest.read as read_mod
from hcode.ingest.load import ingest_file

ID_B = "310101198001010026"

HEADER = "id_number,contact_level,identified_at\n"


@pytest.fixture
def no_whole_reads(monkeypatch):
    def refuse(self, *a, **k):
        raise AssertionError(f"{self} read whole")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    monkeypatch.setattr(Path, "read_text", refuse)
    monkeypatch.setattr(read_mod, "BATCH_ROWS", 2)
    monkeypatch.setattr(read_mod, "CHUNK", 16)  # hash, check and transcode in 16-byte pieces


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_files_are_streamed_with_the_same_lines_and_idempotence(wh, tmp_path, no_whole_reads, encoding):
    rows = [f"{ID_A},close,2022-06-10", f"{ID_B},密切,2022-06-11", f"{ID_A},close,2022-06-12",
            f"{ID_B},close,2022-06-11", "bad,close,2022-06-11"]
    path = tmp_path / "contacts.csv"
    path.write_bytes((HEADER + "\n".join(rows) + "\n").encode(encoding))
    r = ingest_file(wh, path, now=NOW)
    assert not r.rejected, r.error
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (5, 3, 2)
    lines = sorted(x for (x,) in wh.con.execute("SELECT line FROM quarantine").fetchall())
    assert lines == [3, 6]  # CSV lines, header = 1, across batches of 2 rows
    assert ingest_file(wh, path, now=NOW).duplicate  # the streamed hash is the file's


def test_bytes_neither_utf8_nor_gbk_reject_the_file(wh, tmp_path, no_whole_reads):
    path = tmp_path / "contacts.csv"
    path.write_bytes(HEADER.encode() + b"\xff\xff\xff,close,2022-06-10\n")
    r = ingest_file(wh, path, now=NOW)
    assert r.rejected and "not UTF-8 or GBK" in r.error
    assert wh.con.execute("SELECT count(*) FROM loads").fetchall() == [(0,)]


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 60).map(lambda v: v << 58 | v) | st.integers(2**64 - 4, 2**64 - 1),
                                 max_size=30), max_size=12),
       cap=st.sampled_from([8, 1 << 26]), filter_bits=st.sampled_from([2, 6]), filter_min=st.sampled_from([0, 10, 1 << 22]))
def test_a_files_written_hashes_find_exactly_the_earlier_batches_rows(batches, cap, filter_bits, filter_min):
    """The row hashes of a file's earlier batches, kept as a few merged runs, answer exactly
    what one set of every earlier hash would (the cross-batch duplicate check of ingest),
    whether runs reach the merge cap (and go to files) or not, and with a filter of the
    hashes' leading bits from the start, from 10 hashes on, or never (2 bits: soon too full
    for the filter, which is dropped)."""
    import numpy as np

    from hcode.ingest.write import WrittenHashes

    written, seen, added = WrittenHashes("k" * 32), set(), 0
    written.MERGE_CAP, written.FILTER_BITS, written.FILTER_MIN = cap, filter_bits, filter_min
    for values in batches:
        h = np.sort(np.array(values, dtype=np.uint64))
        assert written.found(h).tolist() == [v in seen for v in h.tolist()]
        written.add(h)
        seen |= set(values)
        if cap > 1000:
            assert len(written.runs) <= max(1, len(batches)).bit_length() + 1 and not written.spilled
        assert all(2 * r.size <= cap for r in written.runs)  # (a bigger run is in a file)
        on_disk = [np.load(p) for p in written.spilled]
        assert all(2 * r.size > cap and np.all(r[1:] >= r[:-1]) for r in on_disk)
        assert all(np.all(r[1:] >= r[:-1]) for r in written.runs)
        added += len(values)
        assert sum(r.size for r in written.runs) + sum(r.size for r in on_disk) == added  # every hash kept once
    folder = written.spilled[0].parent if written.spilled else None
    del written
    assert folder is None or not folder.exists()  # the folder goes with the object


def test_row_hashes_are_keyed():
    """A spilled row hash cannot be recomputed from a guessed row without the key."""
    import polars as pl

    from hcode.ingest.write import WrittenHashes

    rows = pl.DataFrame({"id_number": [ID_A, ID_B], "identified_at": ["2022-06-10", "2022-06-11"]})
    one, again, other = WrittenHashes("a" * 32), WrittenHashes("a" * 32), WrittenHashes("b" * 32)
    assert one.hash(rows).equals(again.hash(rows))
    assert not one.hash(rows).equals(other.hash(rows)) and not one.hash(rows).equals(rows.hash_rows())


def test_a_file_unreadable_in_a_later_batch_is_rejected_whole(wh, tmp_path, no_whole_reads):
    """Batches are read and validated on a thread one ahead of the writing: a parse error
    there rejects the file as one in the first batch would, nothing of it is kept (rows,
    persons, the session's map), and the thread does not outlive the file."""
    import threading

    from hcode.store.persons import PersonIndex

    threads = threading.active_count()
    people = PersonIndex(wh.key)
    rows = [f"{ID_A},close,2022-06-10", f"{ID_B},close,2022-06-11", f"{ID_A},close,2022-06-12",
            f"{ID_B},close,2022-06-11", f"{ID_B},close,2022-06-13,one,too,many"]
    path = tmp_path / "contacts.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    r = ingest_file(wh, path, now=NOW, people=people)
    assert r.rejected and "cannot read CSV" in r.error, r.error
    assert threading.active_count() == threads
    assert people.map.height == 0  # rolled back with the file
    for table in ("feed_contacts", "persons", "loads", "quarantine"):
        assert wh.con.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], table
    path.write_text(HEADER + "\n".join(rows[:4]) + "\n", encoding="utf-8")
    r = ingest_file(wh, path, now=NOW, people=people)
    assert (r.rows_read, r.rows_loaded, r.rejected) == (4, 4, False)
    assert sorted(p for (p,) in wh.con.execute("SELECT pid FROM persons").fetchall()) == [1, 2]
