"""The nightly batch command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from hcode.cli.common import (
    DbOption,
    EngineOption,
    JsonOption,
    LangOption,
    SparkMasterOption,
    err,
    handle_errors,
    out,
    parse_date,
    parse_timestamp,
    print_json,
    t_,
)
from hcode.colors import check_lang
from hcode.errors import UsageError

if TYPE_CHECKING:
    from hcode.ops.nightly import NightlyResult

# The next step the batch suggests, in this command's flags.
ADVICE = {"recompute": " (use --rerun to compute it again)",
          "override_guard": " (rerun with --accept-jump to publish anyway; it is recorded)"}


def register(app: typer.Typer) -> None:
    @app.command("report")
    @handle_errors
    def report_cmd(
        run: Annotated[int, typer.Argument(help="A stored run (usually a published one).")],
        db: DbOption = None,
        reports: Annotated[Path, typer.Option("--reports", help="Where report folders go: <reports>/<date>/.")] = Path(
            "reports"),
        lang: LangOption = "en",
        json_out: JsonOption = False,
    ) -> None:
        """Write a run's nightly report again, from stored state, into <reports>/<as-of date>/.

        The same report the nightly batch writes: the diff against the previous published
        run, files loaded and rejected, late feeds, quarantine, overrides, and the audit
        chain's head as it stands now (audit-head.json, for `hcode audit verify --head`).
        Use it when the batch published but its report step failed (it says so), or to
        rebuild a report.

        Example:

            hcode report 12 --reports /data/reports
        """
        from hcode.ops.nightly import report_run

        check_lang(lang)
        folder, state = report_run(db, run, reports, lang)
        if json_out:
            print_json({"run_id": run, "report_dir": str(folder), "warnings": list(state.warnings)})
            return
        out.print(t_(f"report written to {folder}"), highlight=False)
        for w in state.warnings:
            out.print(f"  warning: {t_(w)}", highlight=False)

    @app.command("nightly")
    @handle_errors
    def nightly_cmd(
        inbox: Annotated[Path, typer.Option("--inbox", help="The folder the departments drop their files into.")],
        ruleset: Annotated[str, typer.Option("--ruleset", help="province@version, or a province (the version "
                                             "in force on the date).")],
        date: Annotated[str | None, typer.Option("--date", help="The batch date D (default: yesterday, CST).")] = None,
        db: DbOption = None,
        reports: Annotated[Path, typer.Option("--reports", help="Where report folders go: <reports>/<date>/.")] = Path(
            "reports"),
        operator: Annotated[str | None, typer.Option(help="Who runs it (default: the login name).")] = None,
        rerun: Annotated[bool, typer.Option("--rerun", help="Compute and publish again a date already published.")] = False,
        accept_jump: Annotated[bool, typer.Option("--accept-jump", help="Publish even when the guard refuses "
                                                  "(recorded in the audit log).")] = False,
        now: Annotated[str | None, typer.Option(help="The moment of loading (default: now, CST).")] = None,
        lang: LangOption = "en",
        json_out: JsonOption = False,
        engine: EngineOption = "embedded",
        spark_master: SparkMasterOption = "local[*]",
    ) -> None:
        """The whole nightly batch: load the inbox, check freshness, evaluate, guard, publish, report.

        Loaded files move to INBOX/archive/<date>/, rejected ones to INBOX/rejected/<date>/.
        Exit 0 published; 3 published with warnings (late feeds, quarantined rows, rejected
        files, overrides no rule supports or for persons not registered, a report that could
        not be written: `hcode report RUN` writes it); 1 nothing published (guard refused,
        lock held, bad ruleset). A date already published is a no-op (exit 0) unless --rerun;
        a rerun that finds the date published but its report missing (a crash after
        publishing) writes the report, with the night's warnings, from stored state.
        A publish writes the audit chain's head into REPORTS/<date>/audit-head.json and prints
        it: keep a copy away from the warehouse, for `hcode audit verify --head`.

        Example:

            hcode nightly --db /data/hcode.duckdb --inbox /data/inbox --ruleset shanghai --date 2022-06-14
            hcode nightly --inbox /data/inbox --ruleset shanghai --engine spark --spark-master yarn
        """
        from hcode.ops.nightly import run_nightly

        check_lang(lang)
        if not inbox.is_dir():
            raise UsageError(f"--inbox {inbox}: not a folder")
        day = parse_date(date, "--date") if date else None
        clock = parse_timestamp(now)
        res = run_nightly(db, inbox, ruleset, day, operator=operator, recompute=rerun, override_guard=accept_jump,
                          reports=reports, now=clock, lang=lang, notify=lambda m: err.print(t_(m)), engine=engine,
                          spark_master=spark_master)
        if json_out:
            print_json(res.as_json(ADVICE))
        else:
            _summary(res)
        raise typer.Exit(res.exit_code)


def _summary(res: NightlyResult) -> None:
    style = {0: "green", 3: "yellow", 1: "red"}[res.exit_code]
    lines = [f"[bold]{t_(res.full_message(ADVICE))}[/]"]
    if res.loads:
        night = res.ingested
        lines.append(f"{len(night.files)} file(s): {night.rows_read:,} rows read, {night.rows_quarantined:,} "
                     f"quarantined, {len(night.duplicates)} duplicate, {len(night.rejected)} rejected")
    if res.summary:
        lines.append(f"changes against run {res.previous_run or '-'}: {res.summary.get('changes', 0):,} persons")
    if res.report_dir:
        lines.append(t_(f"report: {res.report_dir}/report.html"))
    if res.audit_head:
        lines.append(t_(f"audit head: entry {res.audit_head.seq}, {res.audit_head.digest}"
                        + (f" (in {res.report_dir}/audit-head.json)" if res.report_dir else "")))
    out.print(Panel("\n".join(lines), title=f"nightly {res.date} — {res.ruleset}", border_style=style))
    if res.late_feeds or res.warnings:
        table = Table(title="warnings", title_justify="left", show_header=False)
        table.add_column("warning")
        for w in res.warnings:
            table.add_row(t_(w))
        out.print(table)
    if res.guard and not res.guard.ok:
        for reason in res.guard.reasons:
            err.print(f"[bold red]guard:[/] {t_(reason)}", highlight=False)
