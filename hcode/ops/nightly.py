"""The nightly batch: one command that loads the inbox, checks freshness, evaluates,
guards, publishes and reports — and that can be killed at any moment and run again.

Why each step is safe to repeat:
- a file is loaded in one transaction and moved to the archive afterwards; killed in
  between, the rerun meets the same bytes as a duplicate and just archives them;
- evaluation stores nothing; the run, its codes and its audit entries are published in one
  transaction; a date that already has a published run of the ruleset is a no-op;
- the report is built from stored runs into a temporary folder and renamed into place, and
  a rerun that finds the run published but the report missing builds it again.

`HCODE_CRASH_AT=<point>` kills the process at a named point (tests use it to prove the
above): `after-load-<n>`, `after-loads`, `before-publish`, `after-publish`, `mid-report`.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from hcode.config import load_config
from hcode.diff.changes import CODES_SCHEMA, Side, diff
from hcode.diff.sides import load_side
from hcode.errors import HcodeError
from hcode.ingest import load as ingest
from hcode.ops import freshness, guard
from hcode.ops.companions import CompanionsResult, companions
from hcode.ops.overrides import overrides_report
from hcode.ops.purge import purge
from hcode.report.files import summary_dict, write_diff
from hcode.report.nightly import append_sections
from hcode.rules.ruleset import Ruleset, find_ruleset
from hcode.runs import store as runs
from hcode.store.lock import warehouse_lock
from hcode.store.warehouse import Warehouse, db_path, one

MEMBERS_FILE = "companions-members.parquet"  # person keys of flagged gatherings: files only, never reports
QUARANTINE_WARN_SHARE = 0.001  # warn when more than 0.1 % of the night's rows were quarantined


def crash_point(name: str) -> None:
    """Testing hook: die here, as `kill -9` would, when HCODE_CRASH_AT names this point."""
    if os.environ.get("HCODE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class NightlyResult:
    date: dt.date
    ruleset: str
    run_id: int | None
    published: bool
    exit_code: int
    message: str
    loads: tuple[ingest.LoadResult, ...] = ()
    freshness: tuple[freshness.FeedFreshness, ...] = ()
    guard: guard.GuardVerdict | None = None
    warnings: tuple[str, ...] = ()
    report_dir: Path | None = None
    previous_run: int | None = None
    summary: dict | None = field(default=None, repr=False)
    stages: dict = field(default_factory=dict)  # seconds per stage: load, evaluate, guard, publish, report
    companions: dict | None = None  # {"flagged_groups", "unexplained", "note", "shown_vs_published"}
    # what the caller may do next: "recompute" (the date was already published) or
    # "override_guard" (the guard refused); `as_json` words it with the caller's `advice`
    next_step: str | None = None

    @property
    def ingested(self) -> ingest.IngestResult:
        """The night's loads with their totals."""
        return ingest.IngestResult(self.loads)

    @property
    def late_feeds(self) -> tuple[freshness.FeedFreshness, ...]:
        return freshness.late_feeds(self.freshness)

    def full_message(self, advice: Mapping[str, str] | None = None) -> str:
        """The message, followed by `advice[next_step]` when the caller words the next step."""
        return self.message + ((advice or {}).get(self.next_step or "", ""))

    def as_json(self, advice: Mapping[str, str] | None = None) -> dict:
        """What `hcode nightly --json` prints (with its `advice`, naming its flags)."""
        return {
            "date": self.date.isoformat(), "ruleset": self.ruleset, "run_id": self.run_id,
            "published": self.published, "exit_code": self.exit_code, "message": self.full_message(advice),
            "loads": [r.as_json() for r in self.loads],
            "late_feeds": [{"feed": f.feed, "last_loaded": f.last_loaded.isoformat() if f.last_loaded else None,
                            "days_late": f.days_late, "impact": f.impact} for f in self.late_feeds],
            "warnings": list(self.warnings),
            "guard": self.guard.as_json() if self.guard else None,
            "previous_run": self.previous_run,
            "report_dir": str(self.report_dir) if self.report_dir else None,
            "changes": (self.summary or {}).get("changes"),
            "stages": {k: round(v, 3) for k, v in self.stages.items()},
            "companions": self.companions,
        }


def yesterday() -> dt.date:
    return ingest.now_cst().date() - dt.timedelta(days=1)


def _move(path: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    shutil.move(str(path), target)


def published_run(con, rs: Ruleset, date: dt.date) -> int | None:
    row = one(con, "SELECT max(run_id) FROM runs WHERE published AND province = ? AND version = ? AND as_of = ?",
              [rs.province, rs.version, date])
    return row[0] if row else None


def _empty_side(rs: Ruleset, date: dt.date) -> Side:
    codes = pl.DataFrame(schema=CODES_SCHEMA)
    return Side("no previous run", None, rs.province, rs.version, date, tuple(rs.palette),
                {r.id: dict(r.title) for r in rs.rules}, codes)


def write_report(wh: Warehouse, run_id: int, previous: int | None, out_dir: Path, lang: str,
                 sections: dict, files: dict[str, pl.DataFrame] | None = None) -> dict:
    """Diff the run against the previous published one and write the report folder atomically."""
    after = load_side(wh, run_id)
    run = runs.get_run(wh.con, run_id)
    before = load_side(wh, previous) if previous is not None else _empty_side(runs.stored_ruleset(wh.con, run),
                                                                               run.as_of)
    d = diff(before, after, lang=lang)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write_diff(d, tmp, lang)
    crash_point("mid-report")
    append_sections(tmp, sections, lang)
    for name, frame in (files or {}).items():
        frame.write_parquet(tmp / name)
    (tmp / "nightly.json").write_text(json.dumps(sections, ensure_ascii=False, indent=2, default=str), "utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return summary_dict(d)


def run_nightly(db: str | Path | None, inbox: Path, ruleset: str, date: dt.date | None = None, *,
                operator: str | None = None, recompute: bool = False, override_guard: bool = False,
                reports: Path = Path("reports"), now: dt.datetime | None = None, lang: str = "en",
                notify=lambda msg: None) -> NightlyResult:
    date = date or yesterday()
    operator = operator or getpass.getuser()
    path = db_path(db)
    with warehouse_lock(path, f"hcode nightly --date {date}", notify=notify), Warehouse.open(path) as wh:
        rs = find_ruleset(ruleset, as_of=date)
        config = load_config(path)
        report_dir = reports / date.isoformat()
        done = published_run(wh.con, rs, date)
        if done is not None and not recompute:
            if not (report_dir / "summary.json").exists():
                prev = guard.previous_published(wh.con, rs.province, date, exclude_run=done)
                comp = companions(wh, done)
                write_report(wh, done, prev[0] if prev else None, report_dir, lang,
                             _sections(wh, done, (), (), date, comp), {MEMBERS_FILE: comp.members})
            return NightlyResult(date, rs.name, done, True, 0,
                                 f"{date} already has published run {done} of {rs.name}: nothing to do",
                                 report_dir=report_dir, next_step="recompute")
        stages: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now_ = time.perf_counter()
            stages[stage] = stages.get(stage, 0.0) + now_ - clock
            clock = now_

        def archive(n: int, path: Path, result: ingest.LoadResult) -> None:
            crash_point(f"after-load-{n}")
            _move(path, inbox / ("rejected" if result.rejected else "archive") / date.isoformat())

        loads = ingest.ingest_paths(wh, [inbox], now=now, batch_date=date, operator=operator,
                                    on_loaded=archive).files
        crash_point("after-loads")
        lap("load")
        ev, max_load, seen = runs.evaluate_warehouse(wh, rs, date, lang=lang)
        lap("evaluate")
        # every person with a matched rule is in ev.results (the others have none)
        fresh = freshness.check(wh.con, date, config, ruleset=rs, codes=ev.results.select("pid", "matched_rules"))
        lap("freshness")
        verdict = guard.check(wh.con, rs.province, date, ev.persons, ev.colors, config.guard)
        prev = guard.previous_published(wh.con, rs.province, date)
        previous = prev[0] if prev else None
        if not verdict.ok and not override_guard:
            lap("guard")
            return NightlyResult(date, rs.name, None, False, 1,
                                 "not published: " + " ".join(verdict.reasons),
                                 tuple(loads), fresh, verdict, previous_run=previous, stages=stages,
                                 next_step="override_guard")
        lap("guard")
        crash_point("before-publish")
        batch = {"batch_date": date.isoformat(), "accept_jump": bool(override_guard and not verdict.ok),
                 "guard": verdict.as_json(), "late_feeds": [f.feed for f in freshness.late_feeds(fresh)],
                 "supersedes": [done] if done is not None else []}
        run_id = runs.store_run(wh, ev, max_load, seen, operator, publish=True, batch=batch)
        del ev  # the report reads the stored run back; free the evaluation's frames first
        crash_point("after-publish")
        lap("publish")
        retention = retain_scans(wh, date, config.retention.place_scans_days, operator)
        lap("retention")
        comp = companions(wh, run_id)
        lap("companions")
        warnings = _warnings(loads, fresh, verdict, override_guard) + retention.warnings + tuple(
            f"companions test: {g.unexplained} unexplained person(s) among {g.persons} at {g.place_name} "
            f"({g.place_code}) {g.start:%H:%M}-{g.end:%H:%M}, with {g.first_color_companions} companion(s) "
            f"showing {comp.first_color}" for g in comp.groups)
        sections = _sections(wh, run_id, loads, fresh, date, comp)
        sections["retention"] = retention.as_json()
        warnings += tuple(f"override unsupported by any rule: {e.person_key[:12]}… {e.color} by {e.authority} "
                          f"({e.operator})" for e in overrides_report(wh.con, run_id).unsupported)
        summary = write_report(wh, run_id, previous, report_dir, lang, sections, {MEMBERS_FILE: comp.members})
        lap("report")
    msg = f"published run {run_id} of {rs.name} for {date}" + (f" with {len(warnings)} warning(s)" if warnings else "")
    return NightlyResult(date, rs.name, run_id, True, 3 if warnings else 0, msg, tuple(loads), fresh, verdict,
                         warnings, report_dir, previous, summary, stages,
                         {"flagged_groups": len(comp.groups), "unexplained": comp.unexplained,
                          "note": comp.note, "shown_vs_published": comp.shown_vs_published.as_json()})


@dataclass(frozen=True)
class Retention:
    """What the night's retention purge of place scans did."""

    before: dt.date
    removed: int
    kept: int
    warnings: tuple[str, ...] = ()

    def as_json(self) -> dict:
        return {"before": self.before.isoformat(), "removed": self.removed, "kept": self.kept}


def retain_scans(wh: Warehouse, date: dt.date, days: int, operator: str) -> Retention:
    """Purge the scans dated before the night's cut-off minus `days` (the batch date, not the
    clock: a back-fill keeps its scans), through `purge`, which never changes a published code
    or its explanation (published runs are stored and never touched)."""
    before = date + dt.timedelta(days=1) - dt.timedelta(days=days)
    old = one(wh.con, "SELECT count(*) FROM feed_place_scans WHERE scanned_at < ?",
              [dt.datetime.combine(before, dt.time())])[0]
    if not old:
        return Retention(before, 0, 0)
    try:
        res = purge(wh, before, operator, feeds=("place_scans",))
    except HcodeError as exc:
        return Retention(before, 0, old, (f"place scans older than {days} days not purged: {exc}",))
    return Retention(before, res.removed.get("place_scans", 0), res.kept.get("place_scans", 0))


def _warnings(loads, fresh, verdict, override_guard) -> tuple[str, ...]:
    out = [f.impact or f"{f.feed} is late" for f in freshness.late_feeds(fresh)]
    read = sum(r.rows_read for r in loads)
    bad = sum(r.rows_quarantined for r in loads)
    if read and bad / read > QUARANTINE_WARN_SHARE:
        out.append(f"{bad:,} of {read:,} rows quarantined ({bad / read:.2%}): see `hcode quarantine`")
    out += [f"file rejected: {Path(r.file).name}: {r.error}" for r in loads if r.rejected]
    if override_guard and not verdict.ok:
        out.append("published despite the guard (--accept-jump): " + " ".join(verdict.reasons))
    return tuple(out)


def _sections(wh: Warehouse, run_id: int, loads, fresh, date: dt.date, comp: CompanionsResult) -> dict:
    """The nightly-only parts of the report: loads, freshness, quarantine, overrides, the
    companions test and shown vs published."""
    q = wh.con.execute(
        "SELECT file_name, e.column, e.reason, count(*) FROM (SELECT file_name, unnest(errors) AS e FROM quarantine "
        "WHERE load_id IN (SELECT load_id FROM loads WHERE batch_date = ?)) GROUP BY ALL ORDER BY ALL", [date]
    ).fetchall()
    ov = overrides_report(wh.con, run_id)
    return {
        "date": date.isoformat(), "run_id": run_id,
        "loads": [r.as_json() for r in loads],
        "freshness": [f.as_json() for f in fresh],
        "quarantine": [{"file": f, "column": c, "reason": r, "rows": n} for f, c, r, n in q],
        "overrides": ov.as_json(),
        "companions": comp.as_json(),
    }

