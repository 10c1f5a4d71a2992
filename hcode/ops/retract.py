"""Taking back one load: a department sent the wrong file, so its rows must stop counting.

Retracting removes the load's rows from its feed table and its quarantine rows, marks the
load retracted (when, why, by whom) and appends a `retract` entry to the audit log, all in
one transaction (the entry holds the new digests of the load's rows and `loads` row). The
load's record stays in `loads` (the history keeps what happened),
and its content hash no longer counts as a duplicate, so the corrected file — or the same
file, once the department confirms it — loads normally.

Runs already stored are not touched: their codes were computed from what was there, and
they keep verifying. A later run simply no longer sees the retracted rows.

One subtlety: a row identical to one loaded earlier is stored once, under the first load
that brought it. Retracting the later load therefore removes only the rows that load
brought first; rows it merely repeated stay (they were sent, and not retracted, by the
earlier load).
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass
from typing import Any

from hcode.errors import HcodeError
from hcode.feeds import FEEDS
from hcode.store import audit, digest
from hcode.store.warehouse import Warehouse, one, scalar


class UnknownLoad(HcodeError):
    pass


@dataclass(frozen=True)
class Retraction:
    load_id: int
    feed: str
    file_name: str
    rows_removed: int
    quarantine_removed: int
    retracted_at: dt.datetime
    reason: str
    operator: str
    audit_seq: int

    def as_json(self) -> dict[str, Any]:
        return {"load_id": self.load_id, "feed": self.feed, "file": self.file_name,
                "rows_removed": self.rows_removed, "quarantine_removed": self.quarantine_removed,
                "retracted_at": self.retracted_at.isoformat(sep=" "), "reason": self.reason,
                "operator": self.operator, "audit_seq": self.audit_seq}


def retract(wh: Warehouse, load_id: int, reason: str, operator: str | None = None,
            now: dt.datetime | None = None) -> Retraction:
    """Take back load `load_id` (see the module docstring). Raises `UnknownLoad` for an
    unknown or already retracted load, `HcodeError` for an empty reason."""
    reason = (reason or "").strip()
    if not reason:
        raise HcodeError("a retraction needs a reason: it is kept in the load history and audit log")
    operator = operator or getpass.getuser()
    now = now or dt.datetime.now().replace(microsecond=0)
    with wh.transaction() as con:
        row = one(con, "SELECT feed, file_name, sha256, retracted_at, retract_reason FROM loads WHERE load_id = ?",
                  [load_id])
        if row is None:
            top = scalar(con, "SELECT max(load_id) FROM loads")
            raise UnknownLoad(f"no load {load_id} in this warehouse (loads: {'1..' + str(top) if top else 'none'}; "
                              "see `hcode loads`)")
        feed, file_name, sha, retracted_at, old_reason = row
        if retracted_at is not None:
            raise UnknownLoad(f"load {load_id} ({file_name}) was already retracted at {retracted_at}: {old_reason}")
        table = FEEDS[feed].table
        rows = scalar(con, f"SELECT count(*) FROM {table} WHERE load_id = ?", [load_id])
        quarantined = scalar(con, "SELECT count(*) FROM quarantine WHERE load_id = ?", [load_id])
        con.execute(f"DELETE FROM {table} WHERE load_id = ?", [load_id])
        con.execute("DELETE FROM quarantine WHERE load_id = ?", [load_id])
        con.execute("UPDATE loads SET retracted_at = ?, retract_reason = ? WHERE load_id = ?",
                    [now, reason, load_id])
        seq = audit.record(con, "retract", operator, {
            "load_id": load_id, "feed": feed, "file": file_name, "sha256": sha, "reason": reason,
            "rows_removed": rows, "quarantine_removed": quarantined,
        }, {t: {str(load_id): digest.digest(con, t, "load_id", load_id)} for t in (table, "quarantine", "loads")})
    return Retraction(load_id, feed, file_name, rows, quarantined, now, reason, operator, seq)
