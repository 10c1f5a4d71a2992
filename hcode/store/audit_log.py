"""Reading the audit log back: its last entries, optionally of one action, as frozen
`AuditEntry`s. (Writing and verifying the chain is `hcode.store.audit`'s job.)"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import duckdb

ALL = 2**31  # a LIMIT that keeps every entry


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    happened_at: dt.datetime
    action: str
    operator: str | None
    detail: dict[str, Any]
    entry_hash: str

    def brief(self) -> str:
        """The detail as `key=value, ...`, without the content digests."""
        return ", ".join(f"{k}={self.detail[k]}" for k in self.detail if k not in ("content", "loads_after"))

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "happened_at": self.happened_at.isoformat(sep=" "), "action": self.action,
                "operator": self.operator, "detail": self.detail, "entry_hash": self.entry_hash}


@dataclass(frozen=True)
class AuditLog:
    entries: tuple[AuditEntry, ...]

    def as_json(self) -> dict[str, Any]:
        """What `hcode audit log --json` prints."""
        return {"entries": [e.as_json() for e in self.entries]}


def audit_log(con: duckdb.DuckDBPyConnection, action: str | None = None, last: int | None = 50) -> AuditLog:
    """The `last` entries (None or 0: all), of `action` only when given, oldest first."""
    rows = con.execute(
        "SELECT * FROM (SELECT seq, happened_at, action, operator, detail, entry_hash FROM audit "
        "WHERE ?::VARCHAR IS NULL OR action = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        [action, action, last if last else ALL]).fetchall()
    return AuditLog(tuple(AuditEntry(s, t, a, o, json.loads(d), h) for s, t, a, o, d, h in rows))
