"""Taking back one load: a department sent the wrong file, so its rows must stop counting.

Retracting removes the load's rows from its feed table and its quarantine rows, marks the
load retracted (when, why, by whom) and appends a `retract` entry to the audit log, all in
one transaction (the entry holds the new digests of the rows it changed and of the `loads`
row). The load's record stays in `loads` (the history keeps what happened),
and its content hash no longer counts as a duplicate, so the corrected file — or the same
file, once the department confirms it — loads normally.

Runs already stored are not touched: their codes were computed from what was there, and
they keep verifying. A later run simply no longer sees the retracted rows.

One subtlety: a row identical to one loaded earlier is stored once, under the first load
that brought it; each later load that sent it again has a `repeats` row for it (its
`row_sha`). Retracting the later load therefore removes only the rows that load brought
first, and its `repeats`; rows it merely repeated stay (the earlier load sent them, and was
not retracted). Retracting the earlier load keeps every row that a live later load sent
too: the row moves to the earliest such load (its `load_id` becomes that load's, whose
`repeats` row for it goes: the row is now its own), as if that load had brought it first;
only the rows no live load sent again are removed. The audit entry records the new
digests of the moved-to loads' rows and repeats as well. (A warehouse made before `repeats`
existed has none for its older loads: their repeated rows go with the load that stored
them, as they did then.)
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass
from typing import Any

import duckdb

from hcode.errors import HcodeError
from hcode.feeds import FEEDS
from hcode.store import audit, digest
from hcode.store.lake import keep_lake
from hcode.store.schema import row_sha_sql
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
    rows_kept: int = 0  # rows a live later load sent too: they stay, under that load's id
    kept_by: tuple[int, ...] = ()  # those loads

    def as_json(self) -> dict[str, Any]:
        return {"load_id": self.load_id, "feed": self.feed, "file": self.file_name,
                "rows_removed": self.rows_removed, "rows_kept": self.rows_kept, "kept_by": list(self.kept_by),
                "quarantine_removed": self.quarantine_removed,
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
        kept, kept_by = _keep_repeated(con, feed, load_id)
        rows = scalar(con, f"SELECT count(*) FROM {table} WHERE load_id = ?", [load_id])
        quarantined = scalar(con, "SELECT count(*) FROM quarantine WHERE load_id = ?", [load_id])
        con.execute(f"DELETE FROM {table} WHERE load_id = ?", [load_id])
        con.execute("DELETE FROM quarantine WHERE load_id = ?", [load_id])
        con.execute("DELETE FROM repeats WHERE load_id = ?", [load_id])
        con.execute("UPDATE loads SET retracted_at = ?, retract_reason = ? WHERE load_id = ?",
                    [now, reason, load_id])
        changed = (load_id, *kept_by)
        seq = audit.record(con, "retract", operator, {
            "load_id": load_id, "feed": feed, "file": file_name, "sha256": sha, "reason": reason,
            "rows_removed": rows, "rows_kept": kept, "kept_by": list(kept_by), "quarantine_removed": quarantined,
        }, {t: {str(i): digest.digest(con, t, "load_id", i) for i in changed}
            for t in (table, "repeats", "quarantine", "loads")})
    keep_lake(wh.con, wh.path, [feed])  # (the lake, if kept: the load's rows go, kept ones move)
    return Retraction(load_id, feed, file_name, rows, quarantined, now, reason, operator, seq, kept, kept_by)


def _keep_repeated(con: duckdb.DuckDBPyConnection, feed: str, load_id: int) -> tuple[int, tuple[int, ...]]:
    """Move the rows of `load_id` that a live later load repeated to the earliest such load,
    and drop that load's `repeats` rows for them: (rows moved, the loads they moved to)."""
    table = FEEDS[feed].table
    if not one(con, "SELECT 1 FROM repeats WHERE feed = ? AND load_id <> ? LIMIT 1", [feed, load_id]):
        return 0, ()  # (no load of the feed repeated anything: nothing to compare)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _hcode_moves AS
        SELECT r.row_sha, min(r.load_id) AS moved_to FROM repeats r JOIN loads l USING (load_id)
        WHERE r.feed = ? AND r.load_id <> ? AND l.retracted_at IS NULL
          AND r.row_sha IN (SELECT {row_sha_sql(FEEDS[feed])} FROM {table} WHERE load_id = ?)
        GROUP BY r.row_sha""", [feed, load_id, load_id])
    kept = scalar(con, f"UPDATE {table} AS f SET load_id = m.moved_to FROM _hcode_moves m "
                       f"WHERE f.load_id = ? AND {row_sha_sql(FEEDS[feed], 'f.')} = m.row_sha", [load_id])
    con.execute("DELETE FROM repeats AS r USING _hcode_moves m "
                "WHERE r.feed = ? AND r.load_id = m.moved_to AND r.row_sha = m.row_sha", [feed])
    to = tuple(i for (i,) in con.execute("SELECT DISTINCT moved_to FROM _hcode_moves ORDER BY 1").fetchall())
    con.execute("DROP TABLE _hcode_moves")  # (a failure rolls the transaction back: the table with it)
    return int(kept), to
