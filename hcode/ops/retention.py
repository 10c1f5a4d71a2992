"""The nightly retention of place scans ([retention] place_scans_days): the purge of the scans
dated before the night's cut-off minus the limit, and what a night reports of it, derived from
stored state (the `purge` audit entries and the scans still stored), so that a rerun after a
crash reports the same.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from hcode.errors import HcodeError
from hcode.ops.purge import purge
from hcode.store.warehouse import Warehouse, scalar

FEED = "place_scans"


@dataclass(frozen=True)
class Retention:
    """The retention purge of place scans for one night: scans removed before `before` (by
    every purge with that limit) and old scans still kept (a published code needs them)."""

    before: dt.date
    removed: int
    kept: int

    def as_json(self) -> dict[str, Any]:
        return {"before": self.before.isoformat(), "removed": self.removed, "kept": self.kept}


def retention_limit(date: dt.date, days: int) -> dt.date:
    """Scans before this date are past the limit on the night of batch date `date` (the batch
    date, not the clock: a back-fill keeps its scans)."""
    return date + dt.timedelta(days=1) - dt.timedelta(days=days)


def retain_scans(wh: Warehouse, date: dt.date, days: int, operator: str) -> str | None:
    """Purge the scans past the limit through `purge`, which never changes a published code or
    its explanation; the warning when they could not be purged, else None."""
    before = retention_limit(date, days)
    if not _old(wh, before):
        return None
    try:
        purge(wh, before, operator, feeds=(FEED,))
    except HcodeError as exc:
        return f"place scans older than {days} days not purged: {exc}"
    return None


def retention_state(wh: Warehouse, date: dt.date, days: int) -> Retention:
    """What the night's retention did, from stored state."""
    before = retention_limit(date, days)
    removed = 0
    for (detail,) in wh.con.execute("SELECT detail FROM audit WHERE action = 'purge' ORDER BY seq").fetchall():
        d = json.loads(detail)
        if d.get("before") == before.isoformat():
            removed += int((d.get("removed") or {}).get(FEED, 0))
    return Retention(before, removed, _old(wh, before))


def _old(wh: Warehouse, before: dt.date) -> int:
    return int(scalar(wh.con, "SELECT count(*) FROM feed_place_scans WHERE scanned_at < ?",
                      [dt.datetime.combine(before, dt.time())]))
