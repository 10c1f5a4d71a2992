"""Reading ahead (`hcode.ingest.ahead`): the next file is opened on the session's reading
thread while the current one is moved and digested. Outcomes are those of loading the files
one after the other: the same duplicates, the same persons after a file is rolled back, and
no thread or open file left behind."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from conftest import ID_A, NOW

from hcode.errors import FileRejected
from hcode.ingest import ahead, load
from hcode.paths import sample_data_dir
from hcode.store.warehouse import Warehouse

ID_B = "310101198001010026"  # (valid: stdnum.cn.ric accepts them)
ID_C = "31010119800101107X"
CONTACTS = "id_number,contact_level,identified_at\n"


def _write(folder: Path, name: str, rows: list[str]) -> Path:
    path = folder / name
    path.write_text(CONTACTS + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    return path


def _count(wh: Warehouse, table: str) -> int:
    return int(wh.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def test_the_same_bytes_twice_in_one_session_are_a_duplicate(wh: Warehouse, tmp_path: Path) -> None:
    first = _write(tmp_path, "contacts_1.csv", [f"{ID_A},close,2022-06-10"])
    again = tmp_path / "contacts_2.csv"
    shutil.copy(first, again)  # (opened ahead before the first one's load was committed)
    session = load.ingest_paths(wh, [first, again], now=NOW)
    assert [(r.duplicate, r.rows_loaded) for r in session.files] == [(False, 1), (True, 0)]
    assert session.files[1].load_id == session.files[0].load_id
    assert _count(wh, "loads") == 1


def test_a_night_loaded_again_is_not_read(wh: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    night = tmp_path / "night"
    shutil.copytree(sample_data_dir(), night, ignore=shutil.ignore_patterns("*.md"))
    first = load.ingest_paths(wh, [night], now=NOW)
    assert not first.duplicates and first.rows_loaded > 0

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file already loaded was read")

    monkeypatch.setattr(ahead, "read_export", refuse)
    rerun = load.ingest_paths(wh, [night], now=NOW)
    assert len(rerun.duplicates) == len(rerun.files) == len(first.files)
    assert [r.load_id for r in rerun.files] == [r.load_id for r in first.files]


def test_a_file_rolled_back_after_the_next_was_read_ahead_leaves_its_persons_to_it(
        wh: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next file is opened (its first batch validated) while this one is moved: its ids
    seen in this file count as known then. When this file is rolled back after all, those
    ids are new again, and the next file makes their persons."""
    a = _write(tmp_path, "contacts_1.csv", [f"{ID_A},close,2022-06-10", f"{ID_B},close,2022-06-10"])
    b = _write(tmp_path, "contacts_2.csv", [f"{ID_A},secondary,2022-06-11", f"{ID_C},close,2022-06-11"])
    move = load.Stage.move
    moves: list[str] = []

    def move_or_fail(self: load.Stage, con: object) -> dict[str, int]:
        moves.append(self.feed.name)
        if len(moves) == 1:
            raise FileRejected("disk trouble while moving")
        return move(self, con)  # type: ignore[arg-type]

    read_ahead: list[tuple[int, int]] = []  # (the map's generation, new ids) of each first batch as read
    open_file = ahead.open_file

    def recording(*args: object, **kwargs: object) -> ahead.Opening:
        got = open_file(*args, **kwargs)  # type: ignore[arg-type]
        assert got.first is not None and got.first.checked.ids is not None
        read_ahead.append((got.first.generation, got.first.checked.ids.len()))
        return got

    monkeypatch.setattr(load.Stage, "move", move_or_fail)
    monkeypatch.setattr(ahead, "open_file", recording)
    session = load.ingest_paths(wh, [a, b], now=NOW)
    assert session.files[0].rejected and "disk trouble" in (session.files[0].error or "")
    assert read_ahead == [(0, 2), (0, 1)]  # the second read ahead, when ID_A was known
    second = session.files[1]
    assert (second.rejected, second.rows_read, second.rows_loaded) == (False, 2, 2)
    assert _count(wh, "feed_contacts") == 2  # both rows stored: ID_A's person made by this file
    assert _count(wh, "persons") == 2


def test_the_reading_thread_stops_with_the_session(wh: Warehouse, tmp_path: Path) -> None:
    files = [_write(tmp_path, f"contacts_{n}.csv", [f"{i},close,2022-06-1{n}"]) for n, i in
             enumerate((ID_A, ID_B, ID_C), start=1)]
    threads = threading.active_count()

    def crash(n: int, path: Path, result: load.LoadResult) -> None:
        raise KeyboardInterrupt  # (after the first file: the second was opened ahead)

    with pytest.raises(KeyboardInterrupt):
        load.ingest_paths(wh, files, now=NOW, on_loaded=crash)
    assert threading.active_count() == threads
    assert _count(wh, "loads") == 1
    assert [n for n, in wh.con.execute("SELECT file_name FROM loads").fetchall()] == ["contacts_1.csv"]
