"""The `hcode sample` command: write a synthetic night of department exports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hcode.cli.common import JsonOption, err, handle_errors, parse_date, print_json
from hcode.errors import UsageError
from hcode.sample import DEFAULT_AS_OF, DEFAULT_SCANS


def _encodings(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        feed, sep, enc = item.partition("=")
        if not sep:
            raise UsageError(f"--encoding: {item!r} is not FEED=ENCODING")
        out[feed.strip()] = enc.strip().lower()
    return out


def register(app: typer.Typer) -> None:
    @app.command("sample")
    @handle_errors
    def sample_cmd(
        out: Annotated[Path, typer.Option("--out", help="Folder to write the files into (created if missing).")],
        residents: Annotated[int, typer.Option("--residents", help="Random residents (planted persons come on top).")]
        = 10_000,
        seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same bytes.")] = 1,
        as_of: Annotated[str, typer.Option("--as-of", help="The date D the night is for (YYYY-MM-DD).")]
        = DEFAULT_AS_OF.isoformat(),
        fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
        encoding: Annotated[list[str] | None, typer.Option(
            "--encoding", help="FEED=ENCODING for a CSV file: utf-8 (default), utf-8-sig (with BOM) or gbk; "
                               "repeatable.")] = None,
        scans_per_day: Annotated[float, typer.Option(
            "--scans-per-day", help="Place-code scans per resident per day (0: no place feeds at all).")]
        = DEFAULT_SCANS,
        json_out: JsonOption = False,
    ) -> None:
        """Write a synthetic night of department exports: one file per feed plus planted.json.

        Realistic rates for N random residents over the 14 days before D, plus planted persons
        with known expected codes for every rule of every shipped ruleset and a few deliberately
        bad rows; planted.json lists both. Place codes: a registry of a few places per hundred
        residents, about --scans-per-day scans a resident a day, a few risk places, planted
        persons for the Henan rules, and the article's station scene (planted.json "scene").
        Deterministic for (residents, seed, as-of, scans-per-day). Written a million residents
        at a time, so memory does not grow with --residents.

        Example:

            hcode sample --out night/ --residents 100000 --seed 1 --as-of 2022-06-14
            hcode sample --out night/ --format parquet --json
            hcode sample --out night/ --scans-per-day 0
        """
        from rich.progress import Progress

        from hcode.feeds import FEEDS
        from hcode.sample import night as sample

        day = parse_date(as_of)
        encodings = _encodings(encoding or [])
        if err.is_terminal and not json_out:
            with Progress(console=err, transient=True) as bar:
                task = bar.add_task("generating", total=len(FEEDS) * len(sample.block_sizes(residents)))
                res = sample.generate_and_write(out, residents, seed, day, fmt, encodings,
                                                progress=lambda feed: bar.advance(task),
                                                scans_per_day=scans_per_day)
        else:
            res = sample.generate_and_write(out, residents, seed, day, fmt, encodings, scans_per_day=scans_per_day)
        if json_out:
            print_json(res.as_json())
            return
        table = Table(title=f"sample night for {day} in {res.out}")
        table.add_column("feed")
        table.add_column("file")
        table.add_column("rows", justify="right")
        for f in res.files:
            table.add_row(f.feed, f.path.name, f"{f.rows:,}")
        table.add_row("total", "", f"{res.rows:,}", style="bold")
        err.print(table)
        err.print(f"planted persons and bad rows: {res.manifest}")
