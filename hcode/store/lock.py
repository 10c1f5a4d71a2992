"""One writer at a time: the lock file that keeps two nightly batches off one warehouse.

DuckDB already refuses a second process while one has the file open, but a nightly batch
opens and closes the warehouse several times (load, evaluate, publish), and a second batch
slipping in between would interleave loads and runs. So a batch first takes `<db>.lock`:
created atomically (O_CREAT | O_EXCL), holding who holds it (pid, host, user, command,
start time), removed when the batch ends.

When the holder's process is gone (a crash, a killed cron job) on this host, the lock is
stale and is taken over, and the takeover is reported so nobody wonders why. A lock held
from another host cannot be checked and is never taken over: the message says how to
remove it by hand.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hcode.errors import WarehouseBusy

UNREADABLE_GRACE_S = 10.0  # an empty/garbled lock file younger than this is being written


@dataclass(frozen=True)
class LockHolder:
    pid: int | None
    host: str | None
    user: str | None
    command: str | None
    started_at: str | None
    token: str | None = None

    def describe(self) -> str:
        return (f"pid {self.pid} on {self.host} (user {self.user}), running `{self.command}` "
                f"since {self.started_at}")


@dataclass(frozen=True)
class HeldLock:
    path: Path
    holder: LockHolder
    took_over: LockHolder | None  # the stale holder replaced, if any

    @property
    def message(self) -> str | None:
        if self.took_over is None:
            return None
        return (f"took over a stale lock {self.path}: its holder, {self.took_over.describe()}, "
                "is no longer running")


def lock_path(db_path: str | os.PathLike[str]) -> Path:
    return Path(str(db_path) + ".lock")


def _read(path: Path) -> LockHolder | None:
    """The holder named in the file; None when the file is gone. Raises ValueError when it
    cannot be read as a lock."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    d = json.loads(text)  # ValueError on empty or garbled
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    return LockHolder(d.get("pid"), d.get("host"), d.get("user"), d.get("command"), d.get("started_at"),
                      d.get("token"))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(holder: LockHolder) -> bool:
    return (holder.host == socket.gethostname() and isinstance(holder.pid, int)
            and holder.pid != os.getpid() and not pid_alive(holder.pid))


def _create(path: Path, holder: LockHolder) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"pid": holder.pid, "host": holder.host, "user": holder.user, "command": holder.command,
                   "started_at": holder.started_at, "token": holder.token}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _set_aside(path: Path, expected: LockHolder | None) -> bool:
    """Move a stale lock out of the way; True when what was moved is the stale lock we read.
    (Another process may have taken it over between our read and the rename: then its new
    lock is put back and we report busy.)"""
    aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    try:
        moved = _read(aside)
    except ValueError:
        moved = None
    if expected is not None and moved != expected:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        aside.unlink(missing_ok=True)
        return False
    aside.unlink(missing_ok=True)
    return True


def acquire(db_path: str | os.PathLike[str], command: str) -> HeldLock:
    """Take the warehouse's lock or raise `WarehouseBusy` naming the holder."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = LockHolder(os.getpid(), socket.gethostname(), getpass.getuser(), command,
                    dt.datetime.now().replace(microsecond=0).isoformat(sep=" "), uuid.uuid4().hex)
    took_over = None
    deadline = time.monotonic() + 2 * UNREADABLE_GRACE_S
    while True:
        if _create(path, me):
            return HeldLock(path, me, took_over)
        try:
            holder = _read(path)
        except ValueError:
            age = time.time() - path.stat().st_mtime if path.exists() else 0.0
            if age < UNREADABLE_GRACE_S and time.monotonic() < deadline:
                time.sleep(0.05)  # the holder is still writing it
                continue
            if _set_aside(path, None):
                took_over = LockHolder(None, None, None, "(unreadable lock file)", None)
            continue
        if holder is None:
            continue  # released meanwhile: try again
        if _is_stale(holder):
            if _set_aside(path, holder):
                took_over = holder
            continue
        where = ("" if holder.host == socket.gethostname() else
                 f"; it was taken on another host, so hcode cannot check it: if you are sure that batch is "
                 f"not running, remove {path} by hand")
        raise WarehouseBusy(f"the warehouse {db_path} is busy: locked by {holder.describe()}{where}")


def release(held: HeldLock) -> None:
    """Remove the lock, but only if it is still ours."""
    try:
        current = _read(held.path)
    except ValueError:
        return
    if current is not None and current.token == held.holder.token:
        held.path.unlink(missing_ok=True)


@contextmanager
def warehouse_lock(db_path: str | os.PathLike[str], command: str,
                   notify: Callable[[str], None] | None = None) -> Iterator[HeldLock]:
    """Hold `<db>.lock` for the block. `notify` receives the stale-takeover message, if any."""
    held = acquire(db_path, command)
    if held.message and notify:
        notify(held.message)
    try:
        yield held
    finally:
        release(held)
