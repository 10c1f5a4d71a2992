"""The nightly batch: one command that loads the inbox, checks freshness, evaluates,
guards, publishes and reports — and that can be killed at any moment and run again.

Why each step is safe to repeat:
- a file is loaded in one transaction and moved to the archive afterwards; killed in
  between, the rerun meets the same bytes as a duplicate and just archives them;
- evaluation stores nothing; the run, its codes and its audit entries are published in one
  transaction; a date that already has a published run of the ruleset is a no-op;
- the report is built from stored runs into a temporary folder and renamed into place, and
  a rerun that finds the run published but the report missing builds it again;
- the night's alarms (late feeds, rejected files, quarantine share, unsupported overrides,
  overrides for unregistered persons, a publish despite the guard) are derived from stored
  state (`loads`, the audit log's `reject` entries, the run), never from what this process
  happened to see: an interrupted-then-rerun night reports exactly what an uninterrupted
  one would;
- a report step that fails after publishing does not hide the publish: the night ends with
  exit 3 and a warning, and `hcode report RUN` writes the report again.

A publish writes the audit chain's head (`audit-head.json`: seq, digest, run id) into the
report folder: kept outside the warehouse, it lets `hcode audit verify --head` catch entries
deleted or a chain rewritten after it.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from hcode.config import Config, load_config
from hcode.diff.buckets import diff_runs
from hcode.diff.changes import CODES_SCHEMA, Side
from hcode.ingest import load as ingest
from hcode.ops import freshness, guard
from hcode.ops.companions import CompanionsResult, companions
from hcode.ops.freshness import FeedFreshness
from hcode.ops.overrides import overrides_report
from hcode.ops.retention import retain_scans, retention_state
from hcode.report.files import summary_dict, write_diff
from hcode.report.nightly import append_sections, write_json
from hcode.rules.load import find_ruleset
from hcode.rules.ruleset import Ruleset, not_in_force
from hcode.runs import bucketed
from hcode.runs import store as runs
from hcode.store import audit
from hcode.store.lock import warehouse_lock
from hcode.store.warehouse import Warehouse, db_path, one, scalar, to_polars
from hcode.textsafe import mask_ids, mask_ids_in

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
    freshness: tuple[FeedFreshness, ...] = ()
    guard: guard.GuardVerdict | None = None
    warnings: tuple[str, ...] = ()
    report_dir: Path | None = None
    previous_run: int | None = None
    summary: dict[str, Any] | None = field(default=None, repr=False)
    stages: dict[str, Any] = field(default_factory=dict)  # seconds per stage: load, evaluate, guard, publish, report
    # what the caller may do next: "recompute" (the date was already published) or
    # "override_guard" (the guard refused); `as_json` words it with the caller's `advice`
    next_step: str | None = None
    audit_head: audit.Head | None = None  # the chain's last entry after the publish (audit-head.json)
    companions: dict[str, Any] | None = None  # {"flagged_groups", "unexplained", "note", "shown_vs_published"}

    @property
    def ingested(self) -> ingest.IngestResult:
        """The night's loads with their totals."""
        return ingest.IngestResult(self.loads)

    @property
    def late_feeds(self) -> tuple[FeedFreshness, ...]:
        return freshness.late_feeds(self.freshness)

    def full_message(self, advice: Mapping[str, str] | None = None) -> str:
        """The message, followed by `advice[next_step]` when the caller words the next step."""
        return self.message + ((advice or {}).get(self.next_step or "", ""))

    def as_json(self, advice: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What `hcode nightly --json` prints (with its `advice`, naming its flags)."""
        out: dict[str, Any] = mask_ids_in({
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
            "audit_head": ({"seq": self.audit_head.seq, "digest": self.audit_head.digest}
                           if self.audit_head else None),
            "companions": self.companions,
        })
        return out


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


def published_run(con: duckdb.DuckDBPyConnection, rs: Ruleset, date: dt.date) -> int | None:
    row = one(con, "SELECT max(run_id) FROM runs WHERE published AND province = ? AND version = ? AND as_of = ?",
              [rs.province, rs.version, date])
    return row[0] if row else None


def _empty_side(rs: Ruleset, date: dt.date) -> Side:
    codes = pl.DataFrame(schema=CODES_SCHEMA)
    return Side("no previous run", None, rs.province, rs.version, date, tuple(rs.palette),
                {r.id: dict(r.title) for r in rs.rules}, codes)


@dataclass(frozen=True)
class NightState:
    """What a published night reports, derived from stored state only."""

    sections: dict[str, Any]
    freshness: tuple[freshness.FeedFreshness, ...]
    warnings: tuple[str, ...]
    companions: CompanionsResult

    @property
    def files(self) -> dict[str, pl.DataFrame]:
        """Files of the report folder besides the report: the flagged gatherings' members."""
        return {MEMBERS_FILE: self.companions.members}

    def companions_json(self) -> dict[str, Any]:
        comp = self.companions
        return {"flagged_groups": len(comp.groups), "unexplained": comp.unexplained, "note": comp.note,
                "shown_vs_published": comp.shown_vs_published.as_json()}


def stored_loads(con: duckdb.DuckDBPyConnection, date: dt.date) -> list[dict[str, Any]]:
    """The night's files as stored: its live loads, then the files it rejected (audit
    `reject` entries; one per file and content, however often a rerun met it)."""
    rows = con.execute(
        "SELECT load_id, feed, file_name, sha256, rows_read, rows_loaded, rows_quarantined FROM loads "
        "WHERE batch_date = ? AND retracted_at IS NULL ORDER BY load_id", [date]).fetchall()
    out = [{"feed": f, "file": n, "sha256": s, "rows_read": r, "rows_loaded": ld, "rows_quarantined": q,
            "duplicate": False, "rejected": False, "error": None, "load_id": i} for i, f, n, s, r, ld, q in rows]
    seen: set[tuple[Any, Any]] = set()
    for (detail,) in con.execute("SELECT detail FROM audit WHERE action = 'reject' ORDER BY seq").fetchall():
        d = json.loads(detail)
        if d.get("batch_date") != date.isoformat() or (d.get("file"), d.get("sha256")) in seen:
            continue
        seen.add((d.get("file"), d.get("sha256")))
        out.append({"feed": d.get("feed"), "file": d.get("file"), "sha256": d.get("sha256"), "rows_read": 0,
                    "rows_loaded": 0, "rows_quarantined": 0, "duplicate": False, "rejected": True,
                    "error": d.get("error"), "load_id": None})
    return out


def night_state(wh: Warehouse, rs: Ruleset, run_id: int, date: dt.date, config: Config) -> NightState:
    """The sections and warnings of the published run `run_id` for batch date `date`."""
    con = wh.con
    codes = to_polars(con.sql("SELECT pid, matched_rules FROM code_details WHERE run_id = ? "
                              "AND len(matched_rules) > 0", params=[run_id]))
    fresh = freshness.check(con, date, config, ruleset=rs, codes=codes)
    loads = stored_loads(con, date)
    info = json.loads(scalar(con, "SELECT coalesce(info, '{}') FROM runs WHERE run_id = ?", [run_id]))
    ov = overrides_report(con, run_id)
    q = con.execute(
        "SELECT file_name, e.column, e.reason, count(*) FROM (SELECT file_name, unnest(errors) AS e FROM quarantine "
        "WHERE load_id IN (SELECT load_id FROM loads WHERE batch_date = ?)) GROUP BY ALL ORDER BY ALL", [date]
    ).fetchall()
    sections = {
        "date": date.isoformat(), "run_id": run_id, "loads": loads,
        "freshness": [f.as_json() for f in fresh],
        "quarantine": [{"file": f, "column": c, "reason": r, "rows": n} for f, c, r, n in q],
        "overrides": ov.as_json(),
    }
    comp = companions(wh, run_id)
    sections["companions"] = comp.as_json()
    sections["retention"] = retention_state(wh, date, config.retention.place_scans_days).as_json()
    out = [f.impact or f"{f.feed} is late" for f in freshness.late_feeds(fresh)]
    read = sum(r["rows_read"] for r in loads)
    bad = sum(r["rows_quarantined"] for r in loads)
    if read and bad / read > QUARANTINE_WARN_SHARE:
        out.append(f"{bad:,} of {read:,} rows quarantined ({bad / read:.2%}): see `hcode quarantine`")
    out += [f"file rejected: {Path(r['file']).name}: {r['error']}" for r in loads if r["rejected"]]
    if info.get("accept_jump"):
        out.append("published despite the guard (--accept-jump): " + " ".join(info.get("guard", {}).get("reasons", [])))
    out += [f"override unsupported by any rule: {e.person_key[:12]}… {e.color} by {e.authority} ({e.operator})"
            for e in ov.unsupported]
    out += [f"override for a person who is not registered: {e.person_key[:12]}… {e.color} by {e.authority} "
            f"({e.operator}): not applied" for e in ov.unregistered]
    out += [w for w in [not_in_force(rs, date)] if w]
    out += [f"companions test: {g.unexplained} unexplained person(s) among {g.persons} at {g.place_name} "
            f"({g.place_code}) {g.start:%H:%M}-{g.end:%H:%M}, with {g.first_color_companions} companion(s) "
            f"showing {comp.first_color}" for g in comp.groups]
    return NightState(sections, fresh, tuple(mask_ids(w) for w in out), comp)


def publish_report(wh: Warehouse, rs: Ruleset, run_id: int, date: dt.date, report_dir: Path, lang: str,
                   config: Config, head: audit.Head | None) -> tuple[NightState, dict[str, Any] | None, str | None]:
    """Write the report of published run `run_id` (against the previous published run), with
    the audit chain's head `head` in `audit-head.json`; (state, summary or None, the error when
    the report could not be written)."""
    state = night_state(wh, rs, run_id, date, config)
    prev = guard.previous_published(wh.con, rs.province, date, exclude_run=run_id)
    try:
        summary = write_report(wh, run_id, prev[0] if prev else None, report_dir, lang, state.sections, head,
                               state.files)
    except Exception as exc:  # noqa: BLE001 - the run is published: say so, and how to write the report again
        return state, None, mask_ids(f"report not written ({type(exc).__name__}: {exc}); the run is published: "
                                     f"write it with `hcode report {run_id} --reports {report_dir.parent}`")
    return state, summary, None


def report_run(db: str | Path | None, run_id: int, reports: Path = Path("reports"), lang: str = "en"
               ) -> tuple[Path, NightState]:
    """Write the report of stored run `run_id` again, as its night would have: the diff
    against the previous published run and the night's sections, all from stored state,
    into `<reports>/<as-of date>/`. (After a report step that failed, or to rebuild one.)"""
    path = db_path(db)
    config = load_config(path)
    with Warehouse.open(path, read_only=True) as wh:
        run = runs.get_run(wh.con, run_id)
        rs = runs.stored_ruleset(wh.con, run)
        report_dir = reports / run.as_of.isoformat()
        state = night_state(wh, rs, run_id, run.as_of, config)
        prev = guard.previous_published(wh.con, rs.province, run.as_of, exclude_run=run_id)
        write_report(wh, run_id, prev[0] if prev else None, report_dir, lang, state.sections,
                     audit.head(wh.con, run_id), state.files)
    return report_dir, state


def write_report(wh: Warehouse, run_id: int, previous: int | None, out_dir: Path, lang: str,
                 sections: dict[str, Any], head: audit.Head | None,
                 files: Mapping[str, pl.DataFrame] | None = None) -> dict[str, Any]:
    """Diff the run against the previous published one and write the report folder atomically,
    with `audit-head.json` (the audit chain's head, `head`, when the chain has an entry) and
    the night's data `files` (Parquet, by name)."""
    run = runs.get_run(wh.con, run_id)
    d = diff_runs(wh, previous, run_id, lang,  # bucket by bucket: memory bounded by a bucket
                  empty_before=lambda: _empty_side(runs.stored_ruleset(wh.con, run), run.as_of))
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_diff(d, tmp, lang)
        crash_point("mid-report")
        append_sections(tmp, sections, lang)
        for name, frame in (files or {}).items():
            frame.write_parquet(tmp / name)
        write_json(tmp, sections)
        if head is not None:
            head.write(tmp / "audit-head.json")
    except BaseException:
        # A report that fails (a full disk: a province's report needs tens of GB while it is
        # written) gives its room back at once; a killed process leaves the folder to the next try.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return summary_dict(d)


def run_nightly(db: str | Path | None, inbox: Path, ruleset: str, date: dt.date | None = None, *,
                operator: str | None = None, recompute: bool = False, override_guard: bool = False,
                reports: Path = Path("reports"), now: dt.datetime | None = None, lang: str = "en",
                notify: Callable[[str], None] = lambda msg: None, engine: str = "embedded",
                spark_master: str = "local[*]") -> NightlyResult:
    date = date or yesterday()
    operator = operator or getpass.getuser()
    bucketed.check_engine(engine)  # before anything is loaded
    path = db_path(db)
    with warehouse_lock(path, f"hcode nightly --date {date}", notify=notify), Warehouse.open(path) as wh:
        rs = find_ruleset(ruleset, as_of=date)
        config = load_config(path)
        report_dir = reports / date.isoformat()
        done = published_run(wh.con, rs, date)
        if done is not None and not recompute:
            head = None
            if not (report_dir / "summary.json").exists():  # the night was interrupted after publishing
                head = audit.head(wh.con, done)
                state, summary, failed = publish_report(wh, rs, done, date, report_dir, lang, config, head)
                warnings = state.warnings + ((failed,) if failed else ())
                return NightlyResult(date, rs.name, done, True, 3 if warnings else 0,
                                     f"{date} already had published run {done} of {rs.name}; its report was "
                                     "missing and was written again" + (f" with {len(warnings)} warning(s)"
                                                                        if warnings else ""),
                                     freshness=state.freshness, warnings=warnings, report_dir=report_dir,
                                     summary=summary, audit_head=head, companions=state.companions_json())
            return NightlyResult(date, rs.name, done, True, 0,
                                 f"{date} already has published run {done} of {rs.name}: nothing to do",
                                 report_dir=report_dir, next_step="recompute", audit_head=head)
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
                                    on_loaded=archive, max_bytes=config.ingest.max_file_bytes).files
        crash_point("after-loads")
        lap("load")
        n, evaluations, max_load, seen = bucketed.evaluations_on(wh, rs, date, lang, engine, spark_master)
        # the run is written bucket by bucket in one transaction, committed only when published
        with bucketed.RunWriter(wh, n) as writer:
            matched = []  # every person with a matched rule is in an evaluation's results
            tally = guard.Tally(wh.con, rs.province, date)
            for ev in evaluations:
                writer.add(ev)
                tally.add(wh.con, ev)  # what the guard needs of this bucket
                matched.append(ev.results.select("pid", "matched_rules"))
            del ev  # the writer keeps what it needs
            totals = writer.totals
            assert totals is not None
            lap("evaluate")
            fresh = freshness.check(wh.con, date, config, ruleset=rs, codes=pl.concat(matched))
            del matched
            lap("freshness")
            verdict = tally.verdict(wh.con, totals.persons, totals.colors, config.guard)
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
            run_id = writer.finish(max_load, seen, operator, publish=True, batch=batch)
            head = audit.head(wh.con, run_id)
        crash_point("after-publish")
        lap("publish")
        not_purged = retain_scans(wh, date, config.retention.place_scans_days, operator)
        lap("retention")
        state, summary, failed = publish_report(wh, rs, run_id, date, report_dir, lang, config, head)
        warnings = state.warnings + tuple(w for w in (not_purged, failed) if w)
        fresh = state.freshness
        lap("report")
    msg = f"published run {run_id} of {rs.name} for {date}" + (f" with {len(warnings)} warning(s)" if warnings else "")
    return NightlyResult(date, rs.name, run_id, True, 3 if warnings else 0, msg, tuple(loads), fresh, verdict,
                         warnings, report_dir, previous, summary, stages, audit_head=head,
                         companions=state.companions_json())
