"""Operations commands: take back a load, push file, overrides, a person's history, the audit
log, purge, freshness and the publish guard. Thin: each calls one library function."""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hcode.cli.common import (
    DbOption,
    IdArgument,
    IdFileOption,
    JsonOption,
    err,
    handle_errors,
    out,
    parse_date,
    print_json,
    read_id,
    t_,
)
from hcode.errors import HcodeError
from hcode.store.lock import warehouse_lock

OperatorOption = Annotated[str | None, typer.Option("--operator", help="Who does it (default: the login name).")]



def _command() -> str:
    return "hcode " + " ".join(sys.argv[1:])


def _d(v: object) -> str:
    return "" if v is None else (v.isoformat(sep=" ") if isinstance(v, dt.datetime) else str(v))


def register(app: typer.Typer) -> None:
    @app.command("retract")
    @handle_errors
    def retract_cmd(
        load_id: Annotated[int, typer.Argument(help="The load to take back (see `hcode loads`).")],
        reason: Annotated[str, typer.Option("--reason", help="Why (kept in the load history and audit log).")],
        db: DbOption = None,
        operator: OperatorOption = None,
        json_out: JsonOption = False,
    ) -> None:
        """Take back one load: remove its rows and quarantine rows, mark it retracted, audit it.

        A row that a later load sent too is kept, under that load. Published runs are
        untouched and keep verifying; the same file can be loaded again.

        Example:

            hcode retract 7 --reason "lab sent yesterday's file twice under a new name"
        """
        from hcode.ops.retract import retract
        from hcode.store.warehouse import Warehouse, db_path

        if not reason.strip():
            raise HcodeError("a retraction needs a reason (--reason): it is kept in the load history and audit log")
        with warehouse_lock(db_path(db), _command(), notify=err.print), Warehouse.open(db) as wh:
            res = retract(wh, load_id, reason, operator or getpass.getuser())
        if json_out:
            print_json(res.as_json())
            return
        kept = ""
        if res.rows_kept:
            by = ", ".join(map(str, res.kept_by))
            kept = (f", {res.rows_kept:,} rows kept (load{'s' if len(res.kept_by) > 1 else ''} {by} sent them "
                    "too)")
        out.print(f"load {res.load_id} ({res.feed}, {t_(res.file_name)}) retracted: {res.rows_removed:,} rows and "
                  f"{res.quarantine_removed:,} quarantine rows removed{kept} (audit entry {res.audit_seq})",
                  highlight=False)

    @app.command("export")
    @handle_errors
    def export_cmd(
        run: Annotated[int, typer.Option("--run", help="The run to push.")],
        out_file: Annotated[Path, typer.Option("--out", help="The push file: .csv or .parquet.")],
        db: DbOption = None,
        json_out: JsonOption = False,
    ) -> None:
        """Write the push file for the health-code platform: person_key, color, since, rule.

        `since` is the as-of date of the earliest published run in the person's current
        unbroken streak of that colour.

        Example:

            hcode export --run 1 --out push_20220614.parquet
        """
        from hcode.runs.export import export
        from hcode.store.warehouse import Warehouse

        with Warehouse.open(db, read_only=True) as wh:
            res = export(wh.con, run, out_file)
        if json_out:
            print_json(res.as_json())
            return
        err.print(f"run {res.run_id}: {res.rows:,} codes written to {res.path} (since looked back over "
                  f"{len(res.runs_considered)} run(s))")

    @app.command("overrides")
    @handle_errors
    def overrides_cmd(
        as_of: Annotated[str | None, typer.Option("--as-of", help="Active at this date's cut-off (default: today).")] = None,
        run: Annotated[int | None, typer.Option("--run", help="Instead: the overrides a stored run applied, "
                                                "flagging unsupported and expiring ones.")] = None,
        db: DbOption = None,
        json_out: JsonOption = False,
    ) -> None:
        """Active manual overrides with authority, basis, operator, reason, issued and expiry.

        Example:

            hcode overrides --as-of 2022-06-14
            hcode overrides --run 1 --json
        """
        from hcode.ops import overrides as ov
        from hcode.store.warehouse import Warehouse

        with Warehouse.open(db, read_only=True) as wh:
            if run is not None:
                rep = ov.overrides_report(wh.con, run)
            else:
                day = parse_date(as_of, "--as-of") or dt.date.today()
                frame = ov.active(wh.con, day)
        if run is not None:
            if json_out:
                print_json(rep.as_json())
                return
            out.print(f"run {rep.run_id} ({rep.ruleset}, as of {rep.as_of}): {len(rep.applied)} override(s) "
                      f"applied, {len(rep.not_applied)} not applied")
            for title, items in (("unsupported by the rules", rep.unsupported),
                                 ("expiring within 3 days", rep.expiring_soon), ("not applied", rep.not_applied)):
                for e in items:
                    out.print(t_(f"  {title}: {e.person_key[:16]}… {e.color} by {e.authority}, basis {e.basis}, "
                                 f"operator {e.operator}, reason {e.reason}, expires {_d(e.expires_at) or 'never'}"
                                 f"{' — ' + e.note if e.note else ''}"), highlight=False)
            return
        if json_out:
            print_json(ov.active_json(day, frame))
            return
        table = Table(title=f"overrides active at the cut-off of {day}", title_justify="left")
        for c in ("person", "color", "authority", "basis", "operator", "reason", "issued", "expires", "applies"):
            table.add_column(c)
        for r in frame.iter_rows(named=True):
            table.add_row(r["person_key"][:16] + "…", *(t_(r[c]) for c in ("color", "authority", "basis", "operator",
                                                                          "reason")),
                          _d(r["issued_at"]), _d(r["expires_at"]) or "never",
                          "yes" if r["current"] else "superseded")
        out.print(table if frame.height else f"no override active at the cut-off of {day}")

    @app.command("history")
    @handle_errors
    def history_cmd(
        id_number: IdArgument = None,
        id_file: IdFileOption = None,
        db: DbOption = None,
        json_out: JsonOption = False,
    ) -> None:
        """The person's code in every published run, the deciding rule, and when it changed.

        The id number is an argument, or read with --id-file from a file or (with '-') from
        standard input, so that it need not appear in the shell history.

        Example:

            hcode history 310101198008080019
            hcode history --id-file - < id.txt
        """
        from hcode.runs.history import person_history
        from hcode.store.warehouse import Warehouse

        id_number = read_id(id_number, id_file)
        with Warehouse.open(db, read_only=True) as wh:
            h = person_history(wh, id_number)
        if json_out:
            print_json(h.as_json())
            return
        table = Table(title=f"person {h.person_key[:16]}… in published runs", title_justify="left")
        for c in ("run", "ruleset", "as of", "color", "rule", "since", "changed"):
            table.add_column(c)
        for e in h.entries:
            table.add_row(str(e.run_id), t_(e.ruleset), str(e.as_of), t_(e.color or "(no code)"), t_(e.rule or ""),
                          _d(e.since), "changed" if e.changed else "")
        out.print(table if h.entries else "no published run yet")
        if h.entries and all(e.color is None for e in h.entries):
            err.print("this id number has no code in any published run (not registered, or a typo)")

    audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
    app.add_typer(audit_app, name="audit")

    @audit_app.command("verify")
    @handle_errors
    def audit_verify_cmd(
        db: DbOption = None,
        head: Annotated[Path | None, typer.Option(
            "--head", help="An audit-head.json written by a publish: fail unless the chain still holds "
                           "that entry intact (catches deleted entries and a rewritten chain).")] = None,
        json_out: JsonOption = False,
    ) -> None:
        """Recompute the audit hash chain and every digest it records.

        Covers each load's rows in every feed table, its quarantine rows, its metadata and the
        persons it created; each run's row (published flag included), codes, population and
        ruleset text; retractions and purges. Exits 1 naming the first entry (seq and action)
        and the table that no longer match.

        Example:

            hcode audit verify --db /data/hcode.duckdb --head reports/2022-06-14/audit-head.json
        """
        from hcode.store import audit as audit_mod
        from hcode.store.warehouse import Warehouse

        anchor = audit_mod.Head.read(head) if head is not None else None
        with Warehouse.open(db, read_only=True) as wh:
            v = audit_mod.verify(wh.con, anchor)
        if json_out:
            print_json(v.as_json())
        elif v.ok:
            held = f"; it holds head entry {anchor.seq}" if anchor else ""
            out.print(f"audit log verified: {v.entries:,} entries, chain and content digests match{held}",
                      highlight=False)
        else:
            err.print(f"[bold red]audit verification failed:[/] {t_(v.problem)}", highlight=False)
            for p in v.problems[1:6]:
                err.print(f"  also: {t_(p.message)}", highlight=False)
        if not v.ok:
            raise typer.Exit(1)

    @audit_app.command("log")
    @handle_errors
    def audit_log_cmd(
        db: DbOption = None,
        action: Annotated[str | None, typer.Option("--action", help="Only this action (load, retract, run, ...).")] = None,
        limit: Annotated[int, typer.Option("--limit", help="The last N entries (0: all).")] = 50,
        json_out: JsonOption = False,
    ) -> None:
        """List audit entries: sequence, time (UTC), action, operator, detail.

        Example:

            hcode audit log --action retract --limit 10
        """
        from hcode.store.audit_log import audit_log
        from hcode.store.warehouse import Warehouse

        with Warehouse.open(db, read_only=True) as wh:
            log = audit_log(wh.con, action, limit)
        if json_out:
            print_json(log.as_json())
            return
        table = Table(title="audit log", title_justify="left")
        for c in ("seq", "at (UTC)", "action", "operator", "detail"):
            table.add_column(c)
        for e in log.entries:
            table.add_row(str(e.seq), _d(e.happened_at), t_(e.action), t_(e.operator or ""), t_(e.brief()))
        out.print(table if log.entries else "the audit log is empty")

    @app.command("purge")
    @handle_errors
    def purge_cmd(
        before: Annotated[str, typer.Option("--before", help="Remove person events dated before this day.")],
        db: DbOption = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Count and list; delete nothing.")] = False,
        operator: OperatorOption = None,
        json_out: JsonOption = False,
    ) -> None:
        """Data minimisation: remove old events, never silently changing a code.

        The latest published run of each province is re-evaluated with and without the old
        events; persons whose code would change keep theirs, and are listed.

        Example:

            hcode purge --before 2022-05-01 --dry-run
        """
        from hcode.ops.purge import purge
        from hcode.store.warehouse import Warehouse, db_path

        day = parse_date(before, "--before")
        with warehouse_lock(db_path(db), _command(), notify=err.print), Warehouse.open(db) as wh:
            res = purge(wh, day, operator or getpass.getuser(), dry_run=dry_run)
        if json_out:
            print_json(res.as_json())
            return
        verb = "would remove" if dry_run else "removed"
        out.print(f"events before {day}: {verb} {sum(res.removed.values()):,} rows "
                  f"({', '.join(f'{k} {v:,}' for k, v in res.removed.items() if v) or 'none'}), checked against "
                  f"run(s) {', '.join(map(str, res.reference_runs))}", highlight=False)
        if res.kept_persons:
            out.print(f"kept {sum(res.kept.values()):,} old rows of {len(res.kept_persons):,} person(s) whose code "
                      "would otherwise change:", highlight=False)
            for k in res.kept_persons[:20]:
                out.print(f"  {k}")
            if len(res.kept_persons) > 20:
                out.print(f"  … and {len(res.kept_persons) - 20:,} more (--json lists all)")

    @app.command("freshness")
    @handle_errors
    def freshness_cmd(
        date: Annotated[str | None, typer.Option("--date", help="The batch date D (default: today).")] = None,
        run: Annotated[int | None, typer.Option("--run", help="Count affected persons in this run's codes.")] = None,
        db: DbOption = None,
        json_out: JsonOption = False,
    ) -> None:
        """Which feeds are late for batch date D, by how many days, and what that affects.

        Cadences come from hcode.toml [freshness] beside the warehouse (docs/configuration.md).

        Example:

            hcode freshness --date 2022-06-14 --run 1
        """
        from hcode.config import load_config
        from hcode.ops.freshness import check, late_feeds, report_json
        from hcode.store.warehouse import Warehouse, db_path

        day = parse_date(date, "--date") or dt.date.today()
        cfg = load_config(db_path(db))
        with Warehouse.open(db, read_only=True) as wh:
            rs = codes = None
            if run is not None:
                from hcode.runs.store import get_run, run_codes, stored_ruleset

                rs = stored_ruleset(wh.con, get_run(wh.con, run))
                codes = run_codes(wh.con, run)
            report = check(wh.con, day, cfg, ruleset=rs, codes=codes)
        if json_out:
            print_json(report_json(day, report))
            return
        late = late_feeds(report)
        for f in late:
            out.print(f"[bold yellow]late[/] {t_(f.impact)}", highlight=False)
        if not late:
            out.print(f"every feed is on time for {day}")

    @app.command("guard")
    @handle_errors
    def guard_cmd(
        run: Annotated[int, typer.Argument(help="A stored run.")],
        db: DbOption = None,
        json_out: JsonOption = False,
    ) -> None:
        """Would the publish guard let this run out? Compares with the previous published run.

        Held back: a shrunk population, a jump in any colour but the palette's first, or too
        many persons changing colour; each reason names the figures and the deciding rules that
        moved most. Thresholds come from hcode.toml [guard] (docs/configuration.md). Exit 1
        when refused.

        Example:

            hcode guard 2
        """
        from hcode.config import load_config
        from hcode.ops.guard import check_run
        from hcode.store.warehouse import Warehouse, db_path

        cfg = load_config(db_path(db))
        with Warehouse.open(db, read_only=True) as wh:
            verdict = check_run(wh.con, run, cfg.guard)
        if json_out:
            print_json(verdict.as_json())
        elif verdict.ok:
            out.print(f"run {run} passes the publish guard")
        else:
            for r in verdict.reasons:
                err.print(f"[bold red]refused:[/] {t_(r)}", highlight=False)
        if not verdict.ok:
            raise typer.Exit(1)
