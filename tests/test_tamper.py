"""The tamper suite: an administrator with write access to the warehouse edits what decides a
published code; `hcode audit verify` catches every edit and names the entry (seq, action)
and the table. Each tamper runs on its own copy of one warehouse, built once from the sample
night with a published run."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.feeds import FEEDS, PLACE_FEEDS
from hcode.paths import sample_data_dir
from hcode.sample.night import generate, write_feed
from hcode.store import warehouse
from hcode.store.warehouse import Warehouse

KEY = "tamper-test-key-0123456789abcdef0123456789"
DATE = dt.date(2022, 6, 14)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A warehouse with the sample night loaded and published by the nightly batch."""
    from hcode.ops.nightly import run_nightly

    tmp = tmp_path_factory.mktemp("tamper")
    inbox = tmp / "inbox"
    inbox.mkdir()
    for f in sample_data_dir().glob("*.csv"):
        shutil.copy(f, inbox / f.name)
    scans = generate(300, 1, DATE)  # the checked-in night has no place feeds: add a small one's
    for feed in PLACE_FEEDS:
        write_feed(scans.feeds[feed], inbox, feed, "csv")
    os.environ["HCODE_KEY"] = KEY
    try:
        warehouse.init(tmp / "w.duckdb")
        res = run_nightly(tmp / "w.duckdb", inbox, "shanghai@2022.05.23", DATE, operator="night",
                          reports=tmp / "reports", now=dt.datetime(2022, 6, 15, 6))
    finally:
        os.environ.pop("HCODE_KEY", None)
    assert res.published and res.run_id is not None
    return tmp


@pytest.fixture
def db(built, tmp_path, monkeypatch) -> Path:
    """This test's own copy of the warehouse."""
    monkeypatch.setenv("HCODE_KEY", KEY)
    shutil.copy(built / "w.duckdb", tmp_path / "w.duckdb")
    return tmp_path / "w.duckdb"


def head_file(built: Path) -> Path:
    return built / "reports" / DATE.isoformat() / "audit-head.json"


def verify(db: Path, *extra: str) -> tuple[int, dict]:
    res = CliRunner().invoke(app, ["audit", "verify", "--db", str(db), "--json", *extra])
    return res.exit_code, (json.loads(res.stdout) if res.stdout.strip().startswith("{") else {"out": res.output})


def sql(db: Path, *statements: str) -> list:
    rows: list = []
    with Warehouse.open(db) as wh:
        for s in statements:
            rows = wh.con.execute(s).fetchall()
    return rows


def entry(db: Path, action: str, key: str, value) -> int:
    for seq, detail in sql(db, f"SELECT seq, detail FROM audit WHERE action = '{action}' ORDER BY seq"):
        if json.loads(detail).get(key) == value:
            return seq
    raise AssertionError(f"no {action} entry with {key}={value}")


def published_run(db: Path) -> int:
    return sql(db, "SELECT max(run_id) FROM runs WHERE published")[0][0]


def load_of(db: Path, feed: str) -> int:
    return sql(db, f"SELECT min(load_id) FROM loads WHERE feed = '{feed}'")[0][0]


def caught(db: Path, seq: int, action: str, table: str, *extra: str) -> dict:
    """verify exits 1 naming entry `seq` (`action`) and `table`, in JSON and in words."""
    code, v = verify(db, *extra)
    assert code == 1, v
    assert (v["first_bad_seq"], v["action"], v["table"]) == (seq, action, table), v
    assert v["problem"].startswith(f"entry {seq} ({action})") and table in v["problem"], v
    return v


def test_the_untouched_warehouse_verifies_with_its_head(built, db):
    head = json.loads(head_file(built).read_text(encoding="utf-8"))
    assert set(head) == {"seq", "digest", "run_id"} and head["run_id"] == published_run(db)
    code, v = verify(db, "--head", str(head_file(built)))
    assert code == 0 and v["ok"] and v["entries"] == head["seq"], v


def _delete_last_run(db: Path) -> tuple[int, int]:
    """Delete the published run, everything it stored, and its audit entries, cleanly."""
    run_id = published_run(db)
    first = entry(db, "run", "run_id", run_id)
    pop = sql(db, f"SELECT population_id FROM runs WHERE run_id = {run_id}")[0][0]
    sql(db, f"DELETE FROM code_details WHERE run_id = {run_id}", f"DELETE FROM code_defaults WHERE run_id = {run_id}",
        f"DELETE FROM ruleset_texts WHERE ruleset_hash IN (SELECT ruleset_hash FROM runs WHERE run_id = {run_id})",
        f"DELETE FROM runs WHERE run_id = {run_id}", f"DELETE FROM population_rows WHERE population_id = {pop}",
        f"DELETE FROM populations WHERE population_id = {pop}", f"DELETE FROM audit WHERE seq >= {first}")
    return run_id, first


def test_deleting_the_last_run_with_its_audit_entries_is_caught_by_the_head(built, db):
    head = json.loads(head_file(built).read_text(encoding="utf-8"))
    run_id, first = _delete_last_run(db)
    code, v = verify(db)
    assert code == 0, v  # a clean deletion leaves a consistent chain: only the head kept outside catches it
    code, v = verify(db, "--head", str(head_file(built)))
    assert code == 1 and (v["first_bad_seq"], v["action"], v["table"]) == (head["seq"], "publish", "audit"), v
    assert f"entry {head['seq']} (publish of run {run_id}, the head) is missing" in v["problem"]
    assert f"the chain ends at entry {first - 1}" in v["problem"]


def test_a_chain_rewritten_to_the_heads_length_is_caught_by_the_head(built, db):
    from hcode.store import audit

    head = json.loads(head_file(built).read_text(encoding="utf-8"))
    _, first = _delete_last_run(db)
    with Warehouse.open(db) as wh, wh.transaction() as con:
        for _ in range(first, head["seq"] + 1):
            audit.record(con, "retract", "intruder", {"load_id": 0})
    caught(db, head["seq"], "retract", "audit", "--head", str(head_file(built)))


def test_swapping_two_persons_keys_is_caught(db):
    (load_id, a, b), = sql(db, "SELECT load_id, min(pid), max(pid) FROM persons GROUP BY load_id "
                               "ORDER BY count(*) DESC LIMIT 1")
    sql(db, f"UPDATE persons SET person_key = CASE WHEN pid = {a} THEN (SELECT person_key FROM persons WHERE pid = {b}) "
            f"ELSE (SELECT person_key FROM persons WHERE pid = {a}) END WHERE pid IN ({a}, {b})")
    caught(db, entry(db, "load", "load_id", load_id), "load", "persons")


def test_flipping_a_runs_published_flag_is_caught(db):
    run_id = published_run(db)
    sql(db, f"UPDATE runs SET published = false WHERE run_id = {run_id}")
    seq = entry(db, "run", "run_id", run_id)
    caught(db, seq, "run", "runs")
    words = CliRunner().invoke(app, ["audit", "verify", "--db", str(db)])
    said = " ".join(words.output.split())  # as the terminal wrapped it
    assert words.exit_code == 1 and "audit verification failed" in said
    assert f"entry {seq} (run): the rows of run {run_id} in table runs no longer match" in said


def test_editing_the_stored_ruleset_text_is_caught(db):
    run_id = published_run(db)
    sql(db, "UPDATE ruleset_texts SET text = replace(text, 'red', 'green')")
    caught(db, entry(db, "run", "run_id", run_id), "run", "ruleset_texts")


@pytest.mark.parametrize("edit", ["file_name = 'other.csv'", "batch_date = DATE '2022-06-01'",
                                  "operator = 'someone else'", "rows_quarantined = rows_quarantined + 1",
                                  "retracted_at = TIMESTAMP '2022-06-15 07:00:00'"])
def test_editing_a_loads_metadata_is_caught(db, edit):
    load_id = load_of(db, "cases")
    sql(db, f"UPDATE loads SET {edit} WHERE load_id = {load_id}")
    caught(db, entry(db, "load", "load_id", load_id), "load", "loads")


@pytest.mark.slow
@pytest.mark.parametrize("feed", list(FEEDS))
def test_inserting_an_event_row_in_any_feed_is_caught(db, feed):
    table, load_id = FEEDS[feed].table, load_of(db, feed)
    sql(db, f"INSERT INTO {table} SELECT * FROM {table} WHERE load_id = {load_id} LIMIT 1")
    caught(db, entry(db, "load", "load_id", load_id), "load", table)


@pytest.mark.slow
@pytest.mark.parametrize("feed", list(FEEDS))
def test_deleting_an_event_row_in_any_feed_is_caught(db, feed):
    table, load_id = FEEDS[feed].table, load_of(db, feed)
    sql(db, f"DELETE FROM {table} WHERE rowid = (SELECT min(rowid) FROM {table} WHERE load_id = {load_id})")
    caught(db, entry(db, "load", "load_id", load_id), "load", table)


def test_a_row_slipped_into_another_feed_under_an_existing_load_is_caught(db):
    load_id = load_of(db, "cases")
    sql(db, f"INSERT INTO feed_contacts SELECT pid, 'close', reported_at, load_id FROM feed_cases "
            f"WHERE load_id = {load_id} LIMIT 1")
    caught(db, entry(db, "load", "load_id", load_id), "load", "feed_contacts")


def test_editing_an_overrides_operator_is_caught(db):
    load_id = load_of(db, "overrides")
    sql(db, "UPDATE feed_overrides SET operator = 'nobody' WHERE rowid = (SELECT min(rowid) FROM feed_overrides)")
    caught(db, entry(db, "load", "load_id", load_id), "load", "feed_overrides")


def test_planting_a_red_code_in_code_details_is_caught(db):
    run_id = published_run(db)
    sql(db, f"INSERT INTO code_details SELECT run_id, pid, 'red', 'SH-R-01', ['SH-R-01'], [], NULL, 'planted' "
            f"FROM codes WHERE run_id = {run_id} AND color = 'green' AND cardinality(matched_rules) = 0 LIMIT 1")
    caught(db, entry(db, "run", "run_id", run_id), "run", "code_details")


def test_planting_a_red_code_by_editing_a_green_detail_is_caught(db):
    run_id = published_run(db)
    sql(db, f"UPDATE code_details SET color = 'red' WHERE run_id = {run_id} AND pid = "
            f"(SELECT min(pid) FROM code_details WHERE run_id = {run_id} AND color = 'green')")
    caught(db, entry(db, "run", "run_id", run_id), "run", "code_details")


def test_planting_red_codes_by_editing_code_defaults_is_caught(db):
    run_id = published_run(db)
    sql(db, f"UPDATE code_defaults SET color = 'red' WHERE run_id = {run_id}")
    caught(db, entry(db, "run", "run_id", run_id), "run", "code_defaults")


def test_hiding_a_red_code_is_caught(db):
    run_id = published_run(db)
    sql(db, f"DELETE FROM code_details WHERE run_id = {run_id} AND pid = "
            f"(SELECT min(pid) FROM code_details WHERE run_id = {run_id} AND color = 'red')")
    caught(db, entry(db, "run", "run_id", run_id), "run", "code_details")


def test_replacing_the_codes_view_is_caught(db):
    run_id = published_run(db)
    sql(db, "ALTER VIEW codes RENAME TO codes_kept",
        "CREATE VIEW codes AS SELECT * REPLACE (CASE WHEN pid = (SELECT min(pid) FROM persons) THEN 'red' "
        "ELSE color END AS color) FROM codes_kept")
    assert sql(db, f"SELECT color FROM codes WHERE run_id = {run_id} ORDER BY pid LIMIT 1") == [("red",)]
    code, v = verify(db)
    assert code == 1 and v["table"] == "codes" and "view codes" in v["problem"], v


def _resend_nat_rows(db: Path, n: int) -> int:
    """Load a new file repeating the first `n` rows of the night's NAT file (other bytes):
    its rows are stored under the night's load, the new load holds `n` repeats rows."""
    from hcode.ingest.load import ingest

    lines = (sample_data_dir() / "nat_results.csv").read_text(encoding="utf-8").splitlines()
    resent = db.parent / "resent" / "nat_results.csv"
    resent.parent.mkdir()
    resent.write_text("\n".join(lines[:n + 1]) + "\n", encoding="utf-8")
    with Warehouse.open(db) as wh:
        [r] = ingest(wh, [resent], now=dt.datetime(2022, 6, 15, 7), batch_date=DATE, operator="night")
    assert not r.rejected and r.rows_new == 0, r
    assert sql(db, f"SELECT count(*) FROM repeats WHERE load_id = {r.load_id}") == [(n,)]
    return r.load_id


def test_deleting_a_repeats_row_is_caught(db):
    resent = _resend_nat_rows(db, 3)
    assert verify(db)[0] == 0
    sql(db, f"DELETE FROM repeats WHERE rowid = (SELECT min(rowid) FROM repeats WHERE load_id = {resent})")
    caught(db, entry(db, "load", "load_id", resent), "load", "repeats")


@pytest.mark.parametrize("whose", ["resent", "night"])
def test_inserting_a_repeats_row_is_caught(db, whose):
    """A planted repeats row would keep a row alive through the retraction of its load."""
    resent = _resend_nat_rows(db, 3)
    load_id = resent if whose == "resent" else load_of(db, "nat_results")
    sql(db, f"INSERT INTO repeats SELECT {load_id}, feed, sha256('planted') FROM repeats LIMIT 1")
    caught(db, entry(db, "load", "load_id", load_id), "load", "repeats")


def test_after_a_retraction_that_keeps_rows_verify_passes_and_a_repeats_edit_names_it(db):
    from hcode.ops.retract import retract

    resent = _resend_nat_rows(db, 3)
    night = load_of(db, "nat_results")
    table = FEEDS["nat_results"].table
    rows = sql(db, f"SELECT count(*) FROM {table} WHERE load_id = {night}")[0][0]
    with Warehouse.open(db) as wh:
        res = retract(wh, night, "the lab's file was wrong", "op")
    assert (res.rows_kept, res.rows_removed, res.kept_by) == (3, rows - 3, (resent,))
    assert sql(db, f"SELECT count(*) FROM {table} WHERE load_id = {resent}") == [(3,)]
    assert sql(db, "SELECT count(*) FROM repeats") == [(0,)]
    code, v = verify(db)
    assert code == 0, v
    sql(db, f"INSERT INTO repeats SELECT {resent}, 'nat_results', sha256('planted')")
    caught(db, res.audit_seq, "retract", "repeats")
