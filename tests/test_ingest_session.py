"""An ingest session (`ingest_paths`): one PersonIndex for all its files, whoever calls it
(the library, `hcode ingest`, the nightly batch), and totals that are the files' sums."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import ID_A, ID_B, NOW
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hcode.cli import app
from hcode.idnumber import id_key as id_key_expr
from hcode.ingest import load
from hcode.paths import sample_data_dir
from hcode.store.persons import PersonIndex
from hcode.store.warehouse import Warehouse

FILES = ("registrations.csv", "cases.csv", "contacts.csv", "isolation.csv")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "night"
    out.mkdir()
    for name in FILES:
        shutil.copy(sample_data_dir() / name, out / name)
    return out


@pytest.fixture
def indexes(monkeypatch: pytest.MonkeyPatch) -> list[PersonIndex]:
    made: list[PersonIndex] = []

    class Counted(PersonIndex):
        def __init__(self, key: str, memory_limit: int | None = None) -> None:
            super().__init__(key, memory_limit)
            made.append(self)

    monkeypatch.setattr(load, "PersonIndex", Counted)
    return made


def test_a_session_validates_ids_once_across_its_files(wh: Warehouse, folder: Path, indexes: list[PersonIndex]) -> None:
    seen: list[tuple[int, str]] = []
    session = load.ingest_paths(wh, [folder], now=NOW, on_loaded=lambda n, path, r: seen.append((n, path.name)))
    assert len(indexes) == 1
    assert [r.file for r in session.files] == [str(folder / n) for n in sorted(FILES)]
    assert seen == list(enumerate(sorted(FILES), start=1))
    assert session.rows_read == sum(r.rows_read for r in session.files) > 0
    assert session.rows_read == session.rows_loaded + session.rows_quarantined
    assert not session.rejected and not session.duplicates
    # every id the files carry was mapped once, by the one index
    [(registered,)] = wh.con.execute("SELECT count(*) FROM persons").fetchall()
    assert indexes[0].map.height == registered > 0
    assert session.as_json() == {"files": [r.as_json() for r in session.files]}


def test_hcode_ingest_uses_one_session(db: Path, folder: Path, indexes: list[PersonIndex]) -> None:
    res = CliRunner().invoke(app, ["ingest", str(folder), "--db", str(db), "--now", NOW.isoformat(), "--json"])
    assert res.exit_code == 0, res.output
    assert len(indexes) == 1
    files = json.loads(res.stdout)["files"]
    assert [Path(f["file"]).name for f in files] == sorted(FILES)
    again = CliRunner().invoke(app, ["ingest", str(folder), "--db", str(db), "--now", NOW.isoformat(), "--json"])
    assert [f["duplicate"] for f in json.loads(again.stdout)["files"]] == [True] * len(FILES)


def test_missing_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no such file or folder: .*nope"):
        load.require_paths([tmp_path, tmp_path / "nope"])


def test_a_known_ids_misspelt_check_character_is_still_quarantined(wh: Warehouse, folder: Path) -> None:
    # The session's map holds ids by `idnumber.id_key`: the id with its last character
    # changed is another key, so a later file's misspelling is checked and refused.
    first = (folder / "registrations.csv").read_text(encoding="utf-8-sig").splitlines()[1].split(",")[0]
    wrong = first[:17] + ("0" if first[17] != "0" else "1")
    (folder / "symptoms.csv").write_text("id_number,symptom,reported_at,reporter\n"
                                         f"{first},fever,2022-06-13 08:00:00,self\n"
                                         f"{wrong},fever,2022-06-13 09:00:00,self\n")
    session = load.ingest_paths(wh, [folder], now=NOW)
    [symptoms] = [r for r in session.files if r.file.endswith("symptoms.csv")]
    assert (symptoms.rows_read, symptoms.rows_loaded, symptoms.rows_quarantined) == (2, 1, 1)
    assert wh.con.execute("SELECT line, errors FROM quarantine WHERE feed = 'symptoms'").fetchall() == [
        (3, [{"column": "id_number", "reason": "bad check character"}])]


def test_unknown_probes_only_the_mappings_made_since_a_batch_was_validated(wh: Warehouse) -> None:
    """A batch is validated one ahead of the writing, against the map as it was then
    (`since` ids long): `unknown` removes the ids mapped after that, and trusts the
    validation for the earlier ones rather than probing the whole session's map again."""
    id_c = "110101199003071235"
    people = PersonIndex(wh.key)
    people.add(wh.con, pl.Series([ID_A]), 1)
    validated_at = people.known_ids.size  # the next batch is validated now, and sees ID_A
    people.add(wh.con, pl.Series([ID_B]), 1)  # ... while this batch's new person is written
    batch = pl.Series("id_number", [ID_B, id_c])
    assert people.unknown(batch, since=validated_at).to_list() == [id_c]
    assert people.unknown(batch).to_list() == [id_c]
    # an id mapped before `since` is left to the validation that already removed it
    assert people.unknown(pl.Series("id_number", [ID_A, id_c]), since=validated_at).to_list() == [ID_A, id_c]
    assert people.unknown(pl.Series("id_number", [ID_A, id_c])).to_list() == [id_c]


@pytest.mark.parametrize("memory_limit", [None, 0], ids=["table of stored persons", "searched in DuckDB"])
def test_a_later_session_finds_the_persons_the_warehouse_holds(wh: Warehouse, memory_limit: int | None) -> None:
    """A new session's index finds a known person's pid by person key (no id reaches DuckDB),
    numbers only the new ones, after the stored pids and in person-key order: from its table
    of the persons stored before it, or (no room for that table) by DuckDB's search."""
    from hcode.store.pseudonym import person_key

    id_c, id_d = "110101199003071235", "110101199003070011"
    first = PersonIndex(wh.key)
    first.add(wh.con, pl.Series([ID_A, id_c]), 1)
    stored = dict(wh.con.execute("SELECT person_key, pid FROM persons").fetchall())
    assert set(stored) == {person_key(ID_A, wh.key), person_key(id_c, wh.key)}
    later = PersonIndex(wh.key, memory_limit)
    later.add(wh.con, pl.Series([id_d, id_c, ID_A]), 2)
    pids = dict(wh.con.execute("SELECT person_key, pid FROM persons").fetchall())
    assert {k: pids[k] for k in stored} == stored  # the known persons keep their pids
    assert pids[person_key(id_d, wh.key)] == 3
    assert later.map.sort("pid").get_column("pid").to_list() == [1, 2, 3]
    assert wh.con.execute("SELECT load_id FROM persons WHERE pid = 3").fetchall() == [(2,)]


def test_stored_persons_whose_key_hashes_collide_are_told_apart_by_their_keys(
        wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table of stored persons matches a batch's keys by a 64-bit hash; a hash that two
    keys share names both as candidates, and their keys decide. Here every key's hash is
    made 0 or 1, so each search meets many strangers."""
    from hcode.idnumber import check_char
    from hcode.store import persons
    from hcode.store.pseudonym import person_key

    ids = [b + check_char(b) for b in (f"11010119900307{i:03d}" for i in range(12))]
    PersonIndex(wh.key).add(wh.con, pl.Series(ids[:8]), 1)
    before = dict(wh.con.execute("SELECT person_key, pid FROM persons").fetchall())
    monkeypatch.setattr(persons, "KEY_HASH", "hash(person_key) % 2")
    later = PersonIndex(wh.key)
    later.add(wh.con, pl.Series(ids[5:]), 2)  # three stored, four new
    after = dict(wh.con.execute("SELECT person_key, pid FROM persons").fetchall())
    assert len(after) == 12 and {k: after[k] for k in before} == before
    assert sorted(later.map.get_column("pid")) == sorted([before[person_key(i, wh.key)] for i in ids[5:8]]
                                                          + [9, 10, 11, 12])


def test_a_row_whose_person_the_batch_map_lacks_fails_its_file_rather_than_vanishing(
        wh: Warehouse, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are joined with the part of the map their batch needs (`PersonIndex.for_batch`):
    were a person missing from it, the file's load fails whole, nothing of it is stored."""
    monkeypatch.setattr(PersonIndex, "for_batch", lambda self, known_at, since: self.map.clear())
    with pytest.raises(Exception, match="(?i)not null|null"):
        load.ingest_paths(wh, [folder / "registrations.csv"], now=NOW)
    assert wh.con.execute("SELECT count(*) FROM feed_registrations").fetchall() == [(0,)]
    assert wh.con.execute("SELECT count(*) FROM loads").fetchall() == [(0,)]


def id_key(id_number: str) -> int:
    return int(pl.select(id_key_expr(pl.lit(id_number))).item())


def test_a_batch_map_holds_the_known_persons_it_uses_and_those_mapped_since(wh: Warehouse) -> None:
    id_c, id_d = "110101199003071235", "110101199003070011"
    people = PersonIndex(wh.key)
    people.add(wh.con, pl.Series([ID_A, id_c, id_d]), 1)
    snapshot = people.known_ids  # the batch is validated against the map as it is now
    since = snapshot.size
    people.add(wh.con, pl.Series([ID_B]), 1)  # mapped after the batch was validated
    keys = pl.Series([id_key(id_d), id_key(ID_B)], dtype=pl.Int64)
    found = snapshot.find(keys)  # (ID_B is not in the snapshot)
    pid = dict(people.map.iter_rows())
    assert found.rows() == [(id_key(id_d), pid[id_key(id_d)])]
    part = people.for_batch(found, since)
    assert sorted(part.rows()) == sorted([(id_key(id_d), pid[id_key(id_d)]), (id_key(ID_B), pid[id_key(ID_B)])])
    assert people.for_batch(None, since).rows() == [(id_key(ID_B), pid[id_key(ID_B)])]


def test_a_session_searches_only_the_persons_stored_before_it(wh: Warehouse) -> None:
    """The persons a session creates are in its map, so `add` searches only those stored
    before it (pids up to `stored_before`): the bound does not move as the session creates
    persons, and every person stored before is still found, whatever file brings it."""
    from hcode.store.pseudonym import person_key

    id_c, id_d = "110101199003071235", "110101199003070011"
    PersonIndex(wh.key).add(wh.con, pl.Series([ID_A, ID_B]), 1)
    (pid_b,), = wh.con.execute("SELECT pid FROM persons WHERE person_key = ?", [person_key(ID_B, wh.key)]).fetchall()
    session = PersonIndex(wh.key)
    assert session.stored_before is None
    session.add(wh.con, pl.Series([id_c]), 2)
    assert session.stored_before == 2
    session.add(wh.con, pl.Series([id_d, ID_B]), 3)  # a later file: one new, one stored before
    assert session.stored_before == 2
    assert sorted(session.map.get_column("pid").to_list()) == sorted([3, 4, pid_b])  # ID_B keeps its pid
    assert wh.con.execute("SELECT count(*), count(DISTINCT person_key) FROM persons").fetchall() == [(4, 4)]


def test_a_rolled_back_file_gives_its_pids_back(wh):
    """A file whose transaction is rolled back leaves the map as it was, and the next new
    person takes the first pid the rolled-back file had taken (its stage is gone with it)."""
    id_c, id_d = "110101199003071235", "110101199003070011"
    session = PersonIndex(wh.key)
    session.begin()
    session.add(wh.con, pl.Series([ID_A, ID_B]), 1)  # file 1: pids 1 and 2
    session.begin()
    wh.con.execute("CREATE TEMP TABLE _stage AS SELECT * FROM persons LIMIT 0")
    session.add(wh.con, pl.Series([id_c]), 2, into="_stage")  # file 2 takes pid 3 ...
    assert session.map.get_column("pid").max() == 3
    session.rollback()  # ... and is rolled back
    wh.con.execute("DROP TABLE _stage")
    assert sorted(session.map.get_column("pid").to_list()) == [1, 2]
    session.begin()
    session.add(wh.con, pl.Series([id_d]), 3)
    assert sorted(session.map.get_column("pid").to_list()) == [1, 2, 3]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text("0123456789abcdef", min_size=1, max_size=4), min_size=1, max_size=20, unique=True),
       st.booleans())
def test_new_persons_are_put_in_person_key_order(parts, shared):
    """New persons are numbered in person-key order: the frame sorted by its keys' first 16
    hex digits as integers, or by the whole keys when two share them (`shared`: keys that
    differ only after the 16th digit)."""
    from hcode.store.persons import _in_key_order

    keys = list(dict.fromkeys(("f" * 16 + p if shared else p.ljust(16, "0")).ljust(64, "0") for p in parts))
    frame = pl.DataFrame({"id_number": [f"id{i}" for i in range(len(keys))], "person_key": keys})
    out = _in_key_order(frame.reverse())
    assert out.columns == frame.columns
    assert out.get_column("person_key").to_list() == sorted(keys)
    assert out.equals(frame.sort("person_key"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(1, 400), unique=True, max_size=30), max_size=14),
       st.sampled_from([3, 16, 1 << 24]))
def test_the_maps_runs_find_what_a_dictionary_finds(batches, cap):
    """The map kept as sorted runs (merged as a binary counter, capped at `RUN_CAP` entries)
    answers each batch's search as a dictionary of every id mapped before it would, and
    gives the entries mapped since a snapshot, whatever the batches' sizes and order."""
    from hcode.store import persons

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(persons, "RUN_CAP", cap)
        people = PersonIndex("key")
        mapped: dict[int, int] = {}
        largest = 0  # the largest batch of new entries: a run holds one batch, or merged ones within the cap
        for i, batch in enumerate(batches):
            snapshot = people.known_ids
            probe = pl.Series("id_key", sorted(set(batch) | {401, 402}), dtype=pl.Int64)
            found = snapshot.find(probe.sample(fraction=1.0, shuffle=True, seed=i))
            assert sorted(found.rows()) == sorted((k, mapped[k]) for k in probe.to_list() if k in mapped)
            new = [k for k in batch if k not in mapped]
            entries = pl.DataFrame({"id_key": new, "pid": range(len(mapped) + 1, len(mapped) + 1 + len(new))},
                                   schema={"id_key": pl.Int64, "pid": pl.Int32})
            people._append(entries)
            mapped.update(entries.iter_rows())
            largest = max(largest, entries.height)
            assert sorted(people.for_batch(found, snapshot.size).rows()) == sorted(
                [*found.rows(), *entries.rows()])
            assert people.known_ids.size == len(mapped) == people.map.height
            assert dict(people.map.iter_rows()) == mapped
            assert all(run.get_column("id_key").is_sorted() and 0 < run.height <= max(cap, largest)
                       for run in people.known_ids.runs)
