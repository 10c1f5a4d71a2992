"""Commands that load exports and show what happened to them: ingest, quarantine, loads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hcode.cli.common import (
    DbOption,
    JsonOption,
    command_line,
    err,
    handle_errors,
    out,
    parse_timestamp,
    print_json,
    t_,
)
from hcode.errors import UsageError


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    @handle_errors
    def ingest_cmd(
        paths: Annotated[list[Path], typer.Argument(help="Export files or folders of them (CSV or Parquet).")],
        db: DbOption = None,
        feed: Annotated[str | None, typer.Option(help="The feed of every given file (default: from each file name).")] = None,
        now: Annotated[str | None, typer.Option(help="The moment of loading, China Standard Time (default: now).")] = None,
        json_out: JsonOption = False,
    ) -> None:
        """Load department exports: validate, pseudonymise, quarantine bad rows, record the load.

        The feed is the file name's prefix up to the first '.' or '_<digits>'
        (nat_results_20220614.csv is nat_results), or --feed. Each file is loaded in one
        transaction; a file missing required columns, naming a column twice, larger than
        [ingest] max_file_bytes (hcode.toml), a symbolic link or not a regular file is
        rejected whole (exit 1) while the other files still load. The same bytes loaded twice are a no-op reported as duplicate.

        Example:

            hcode ingest --db hcode.duckdb sample_data/ --now 2022-06-15T06:00:00
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from hcode.config import load_config
        from hcode.feeds import FEEDS
        from hcode.ingest import load as ingest_mod
        from hcode.store.lock import warehouse_lock
        from hcode.store.warehouse import Warehouse, db_path

        if feed is not None and feed not in FEEDS:
            raise UsageError(f"--feed {feed!r} is not a feed; feeds: {', '.join(FEEDS)}")
        files = ingest_mod.expand(paths)
        ingest_mod.require_paths(paths)
        max_bytes = load_config(db_path(db)).ingest.max_file_bytes
        with warehouse_lock(db_path(db), command_line(), notify=err.print), Warehouse.open(db) as wh:
            show = err.is_terminal and not json_out
            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=err, transient=True, disable=not show)
            with progress:
                task = progress.add_task("loading", total=len(files))
                session = ingest_mod.ingest_paths(
                    wh, files, feed=feed, now=parse_timestamp(now),
                    on_file=lambda path: progress.update(task, description=f"loading {path.name}"),
                    on_loaded=lambda n, path, result: progress.advance(task), max_bytes=max_bytes)
        if json_out:
            print_json(session.as_json())
        else:
            table = Table(title="load summary", title_justify="left")
            for c in ("file", "feed", "read", "loaded", "quarantined", "status"):
                table.add_column(c, justify="right" if c in ("read", "loaded", "quarantined") else "left")
            for r in session.files:
                status = ("[red]rejected: " + t_(r.error or "") + "[/]" if r.rejected
                          else f"duplicate of load {r.load_id}" if r.duplicate else f"load {r.load_id}")
                table.add_row(t_(Path(r.file).name), t_(r.feed or "?"), f"{r.rows_read:,}", f"{r.rows_loaded:,}",
                              f"{r.rows_quarantined:,}", status)
            out.print(table)
        for r in session.rejected:
            err.print(f"[bold red]rejected:[/] {t_(r.file)}: {t_(r.error)}", highlight=False)
        if session.rejected:
            raise typer.Exit(1)

    @app.command("quarantine")
    @handle_errors
    def quarantine_cmd(
        db: DbOption = None,
        file: Annotated[str | None, typer.Option("--file", help="Only this file name.")] = None,
        json_out: JsonOption = False,
    ) -> None:
        """What was rejected and why, grouped by file and reason, with example lines.

        Example:

            hcode quarantine --file nat_results.csv
        """
        from hcode.ingest import quarantine as quarantine_mod
        from hcode.store.warehouse import Warehouse

        with Warehouse.open(db, read_only=True) as wh:
            groups = quarantine_mod.summary(wh.con, file)
        if json_out:
            print_json(quarantine_mod.summary_json(groups))
            return
        table = Table(title="quarantine", title_justify="left")
        for c in ("file", "feed", "column", "reason", "rows", "example lines"):
            table.add_column(c, justify="right" if c == "rows" else "left")
        for g in groups:
            table.add_row(t_(g.file_name), g.feed, g.column, t_(g.reason), f"{g.rows:,}", ", ".join(map(str, g.lines)))
        out.print(table if groups else "no quarantined rows")

    @app.command("loads")
    @handle_errors
    def loads_cmd(db: DbOption = None, json_out: JsonOption = False) -> None:
        """The load history: every file loaded, its counts, clock, batch date and retraction.

        Example:

            hcode loads --json
        """
        from hcode.ingest import quarantine as quarantine_mod
        from hcode.store.warehouse import Warehouse

        with Warehouse.open(db, read_only=True) as wh:
            rows = quarantine_mod.loads(wh.con)
        if json_out:
            print_json(quarantine_mod.loads_json(rows))
            return
        table = Table(title="loads", title_justify="left")
        for c in ("load", "feed", "file", "read", "loaded", "new", "quarantined", "loaded at", "batch", "retracted"):
            table.add_column(c)
        for r in rows:
            table.add_row(str(r["load_id"]), r["feed"], t_(r["file_name"]), f"{r['rows_read']:,}", f"{r['rows_loaded']:,}",
                          f"{r['rows_new']:,}", f"{r['rows_quarantined']:,}", str(r["loaded_at"]),
                          str(r["batch_date"] or ""), t_(r["retract_reason"] or "") if r["retracted_at"] else "")
        out.print(table)
