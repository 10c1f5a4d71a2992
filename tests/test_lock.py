"""The warehouse lock: a second writer is refused with the holder named; a dead holder's lock
is taken over; a DuckDB file held open by another process gives a plain 'busy' message."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.errors import WarehouseBusy
from hcode.store.lock import acquire, lock_path, release, warehouse_lock
from hcode.store.warehouse import Warehouse


def _holder_process(code: str) -> subprocess.Popen:
    """A child that runs `code`, prints 'ready' and then waits for stdin to close."""
    script = textwrap.dedent(code) + "\nprint('ready', flush=True)\nimport sys\nsys.stdin.read()\n"
    p = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def _stop(p: subprocess.Popen) -> None:
    p.stdin.close()
    p.wait(timeout=30)


def test_lock_held_by_another_process_is_refused_naming_the_holder(db):
    p = _holder_process(f"""
        from hcode.store.lock import acquire
        held = acquire({str(db)!r}, "hcode nightly --inbox /in --ruleset shanghai")
    """)
    try:
        with pytest.raises(WarehouseBusy) as exc:
            acquire(db, "hcode retract 3")
        msg = str(exc.value)
        assert f"pid {p.pid}" in msg
        assert "hcode nightly --inbox /in --ruleset shanghai" in msg
        assert socket.gethostname() in msg
        assert WarehouseBusy.exit_code == 1
    finally:
        _stop(p)
    # the holder exited without releasing: its lock is now stale and is taken over
    with warehouse_lock(db, "hcode retract 3") as held:
        assert held.took_over is not None and held.took_over.pid == p.pid
        assert "stale" in held.message and str(p.pid) in held.message
    assert not lock_path(db).exists()


def test_stale_lock_of_a_dead_pid_is_taken_over(db):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(db).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "user": "cron",
                                         "command": "hcode nightly", "started_at": "2022-06-15 02:00:00"}))
    notes = []
    with warehouse_lock(db, "hcode nightly", notify=notes.append) as held:
        on_disk = json.loads(lock_path(db).read_text())
        assert on_disk["pid"] == os.getpid() and on_disk["command"] == "hcode nightly"
        assert held.took_over.pid == dead.pid
        assert len(notes) == 1 and f"pid {dead.pid}" in notes[0] and "no longer running" in notes[0]
    assert not lock_path(db).exists()


def test_a_lock_from_another_host_is_never_taken_over(db):
    lock_path(db).write_text(json.dumps({"pid": 1, "host": "batch-02.example", "user": "cron",
                                         "command": "hcode nightly", "started_at": "2022-06-15 02:00:00"}))
    with pytest.raises(WarehouseBusy, match="another host.*remove .*lock by hand"):
        acquire(db, "hcode nightly")
    assert lock_path(db).exists()


def test_second_acquire_in_the_same_process_is_busy_and_release_keeps_foreign_locks(db):
    held = acquire(db, "first")
    try:
        with pytest.raises(WarehouseBusy, match="first"):
            acquire(db, "second")
    finally:
        release(held)
    assert not lock_path(db).exists()
    held = acquire(db, "again")
    lock_path(db).write_text(json.dumps({"pid": 1, "host": "elsewhere", "token": "not-ours"}))
    release(held)  # not ours any more: left alone
    assert lock_path(db).exists()


def test_duckdb_file_held_by_another_process_says_busy(db):
    p = _holder_process(f"""
        import duckdb
        con = duckdb.connect({str(db)!r})
    """)
    try:
        with pytest.raises(WarehouseBusy, match="busy"):
            Warehouse.open(db)
        res = CliRunner().invoke(app, ["audit", "verify", "--db", str(db)])
        assert res.exit_code == 1
        assert "busy" in res.output and "another hcode process" in res.output
    finally:
        _stop(p)
    with Warehouse.open(db) as wh:
        assert wh.con.execute("SELECT count(*) FROM audit").fetchall() == [(0,)]
