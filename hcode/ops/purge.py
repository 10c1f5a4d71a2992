"""Data minimisation: remove old events, but never silently change anybody's code.

The Measures (article 24) and Shanghai's "minimum enough" principle say personal data
collected for epidemic control must not be kept beyond need. `purge(before=D)` deletes the
events dated before D from the person event feeds (everything but `registrations`, which
define who has a code, and `risk_areas`, which hold no personal data).

Old events can still decide a code: a case from April with no discharge keeps a person red;
a close contact from 20 days ago not yet released by an exit test, too. So, before deleting,
the latest published run of each province is re-evaluated as of its as-of date with its own
stored ruleset, once on the data as it is and once without the events to be purged. Every
person whose code (colour, deciding rule or matched rules) would differ keeps all their
events; they are listed and counted. A person's code depends only on their own events (and
on registrations and risk areas, which are never purged), so one pass is exact.

The deletion, and a `purge` audit entry carrying the counts and the recomputed content
digest of the rows of every load it touched (its `content`), are one transaction: `audit verify` keeps
passing, and published runs are not touched. The `repeats` rows of the purged events (a later
load sent them again) go with them, and the entry records the new digest of those loads'
repeats. Quarantine rows are not purged here.
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from hcode.engine.evaluate import cutoff_of, evaluate
from hcode.errors import HcodeError
from hcode.feeds import FEEDS
from hcode.rules.lang import Companion, walk
from hcode.runs.store import get_run, load_frames, stored_ruleset
from hcode.store import audit, digest
from hcode.store.lake import keep_lake
from hcode.store.schema import row_sha_sql
from hcode.store.warehouse import Warehouse, one, scalar, view

PURGEABLE = tuple(n for n, f in FEEDS.items() if f.has_person and f.event_time and n != "registrations")


@dataclass(frozen=True)
class PurgeResult:
    before: dt.date
    reference_runs: tuple[int, ...]  # the latest published run of each province
    removed: dict[str, int]  # rows deleted per feed
    kept: dict[str, int]  # old rows kept per feed because a code needs them
    kept_persons: tuple[str, ...]  # person_keys whose code would have changed
    loads_touched: tuple[int, ...]
    audit_seq: int | None  # None for a dry run
    dry_run: bool

    def as_json(self) -> dict[str, Any]:
        return {"before": self.before.isoformat(), "reference_runs": list(self.reference_runs),
                "removed": self.removed, "kept": self.kept, "kept_persons": list(self.kept_persons),
                "loads_touched": list(self.loads_touched), "audit_seq": self.audit_seq, "dry_run": self.dry_run}


def reference_runs(con: duckdb.DuckDBPyConnection) -> list[int]:
    """The latest published run of each province."""
    return [r for (r,) in con.execute(
        "SELECT run_id FROM (SELECT run_id, row_number() OVER (PARTITION BY province ORDER BY as_of DESC, "
        "run_id DESC) AS n FROM runs WHERE published) WHERE n = 1 ORDER BY run_id").fetchall()]


def _signature(codes: pl.DataFrame) -> pl.DataFrame:
    return codes.select("pid", pl.concat_str([pl.col("color"), pl.col("rule").fill_null(""),
                                              pl.col("matched_rules").list.join(";")], separator="|").alias("sig"))


def needed_persons(wh: Warehouse, run_id: int, before: dt.datetime, feeds: tuple[str, ...]) -> pl.Series:
    """pids whose code in a re-evaluation of run `run_id` changes without the events before `before`."""
    con = wh.con
    run = get_run(con, run_id)
    rs = stored_ruleset(con, run)
    top = scalar(con, "SELECT coalesce(max(load_id), 0) FROM loads")
    frames = load_frames(con, rs.reads().keys(), cutoff_of(run.as_of), top)
    without = {n: (df.filter(pl.col(FEEDS[n].event_time) >= before) if n in feeds else df)
               for n, df in frames.items()}
    a = _signature(evaluate(rs, frames, run.as_of).codes)
    b = _signature(evaluate(rs, without, run.as_of).codes)
    diff = a.join(b, on="pid", how="full", coalesce=True, suffix="_b").filter(
        pl.col("sig").ne_missing(pl.col("sig_b")))
    return diff["pid"]


def _content(con: duckdb.DuckDBPyConnection, touched: set[tuple[str, int]], repeated: set[int]
             ) -> dict[str, dict[str, str]]:
    """The new digests of the rows of every load the purge touched, per feed table, and of
    the `repeats` of the loads whose repeats went with the rows."""
    out: dict[str, dict[str, str]] = {}
    for feed, lid in sorted(touched):
        table = FEEDS[feed].table
        out.setdefault(table, {})[str(lid)] = digest.digest(con, table, "load_id", lid)
    for lid in sorted(repeated):
        out.setdefault("repeats", {})[str(lid)] = digest.digest(con, "repeats", "load_id", lid)
    return out


def _forget_repeats(con: duckdb.DuckDBPyConnection, feed: str, where: str, ts: dt.datetime) -> set[int]:
    """Delete the `repeats` rows of the feed's rows `where` (about to be purged: no trace of
    a purged event stays); the loads whose repeats went."""
    if not one(con, "SELECT 1 FROM repeats WHERE feed = ? LIMIT 1", [feed]):
        return set()
    f = FEEDS[feed]
    gone = f"feed = ? AND row_sha IN (SELECT {row_sha_sql(f)} FROM {f.table} WHERE {where})"
    loads = {lid for (lid,) in con.execute(f"SELECT DISTINCT load_id FROM repeats WHERE {gone}", [feed, ts]).fetchall()}
    if loads:
        con.execute(f"DELETE FROM repeats WHERE {gone}", [feed, ts])
    return loads


def purge(wh: Warehouse, before: dt.date, operator: str | None = None, *, dry_run: bool = False,
          feeds: tuple[str, ...] = PURGEABLE) -> PurgeResult:
    """Delete person events dated before `before` except those a published code needs."""
    unknown = [f for f in feeds if f not in PURGEABLE]
    if unknown:
        raise HcodeError(f"cannot purge {', '.join(unknown)} (purgeable feeds: {', '.join(PURGEABLE)})")
    con = wh.con
    refs = reference_runs(con)
    if not refs:
        raise HcodeError("no published run: purge checks every code of the latest published run before "
                         "deleting anything; publish a run first")
    for r in refs:
        run = get_run(con, r)
        if before > run.as_of + dt.timedelta(days=1):
            raise HcodeError(f"{before} is after the cut-off of run {r} ({run.ruleset}, as of "
                             f"{run.as_of}), the latest published run of {run.province}: events after it were "
                             "never checked against a published code; purge before "
                             f"{run.as_of + dt.timedelta(days=1)} at the latest", option="before")
    ts = dt.datetime.combine(before, dt.time())
    # a run whose ruleset reads none of the feeds cannot change: it is not re-evaluated
    rulesets = {r: stored_ruleset(con, get_run(con, r)) for r in refs}
    reading = [r for r in refs if set(rulesets[r].reads()) & set(feeds)]
    keep = pl.concat([needed_persons(wh, r, ts, feeds) for r in reading]
                     + [pl.Series("pid", [], pl.Int32)]).unique().sort()
    keep_df = pl.DataFrame({"pid": keep.cast(pl.Int32)})
    # a companion makes one person's code depend on others' scans: keeping the scans of the
    # persons whose code would change is then not enough, so every old scan is kept
    shared = {feed for r in reading for f in rulesets[r].facts.values() for n in walk(f.expr)
              if isinstance(n, Companion) for feed in ("place_scans", n.feed)} if keep.len() else set()
    operator = operator or getpass.getuser()
    with view(con, "_hcode_keep", keep_df), wh.transaction() as tx:
        removed, kept, touched, repeated = {}, {}, set(), set()
        for name in feeds:
            f = FEEDS[name]
            old = f"{f.event_time} < ?"
            mine = "TRUE" if name in shared else "pid IN (SELECT pid FROM _hcode_keep)"
            kept[name] = scalar(tx, f"SELECT count(*) FROM {f.table} WHERE {old} AND {mine}", [ts])
            rows = tx.execute(f"SELECT load_id, count(*) FROM {f.table} WHERE {old} AND NOT {mine} "
                              "GROUP BY load_id", [ts]).fetchall()
            removed[name] = sum(n for _, n in rows)
            touched |= {(name, lid) for lid, _ in rows}
            if not dry_run and rows:
                repeated |= _forget_repeats(tx, name, f"{old} AND NOT {mine}", ts)
                tx.execute(f"DELETE FROM {f.table} WHERE {old} AND NOT {mine}", [ts])
        keys = tuple(k for (k,) in tx.execute(
            "SELECT person_key FROM persons WHERE pid IN (SELECT pid FROM _hcode_keep) ORDER BY person_key"
        ).fetchall())
        seq = None
        if not dry_run:
            seq = audit.record(tx, "purge", operator, {
                "before": before.isoformat(), "reference_runs": refs, "removed": removed, "kept": kept,
                "kept_persons": len(keys), "loads_touched": sorted(lid for _, lid in touched),
            }, _content(tx, touched, repeated))
    if not dry_run:
        keep_lake(wh.con, wh.path, list(feeds))  # (the lake, if kept, loses the same rows)
    return PurgeResult(before, tuple(refs), removed, kept, keys, tuple(sorted(lid for _, lid in touched)), seq,
                       dry_run)
