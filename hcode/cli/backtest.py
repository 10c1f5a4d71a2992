"""`hcode backtest`: a ruleset's colours on every day of a date range, and its cost in person-days."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from hcode.cli.common import DbOption, JsonOption, LangOption, err, handle_errors, out, parse_date, print_json

if TYPE_CHECKING:
    from hcode.runs.backtest import Backtest


@contextlib.contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[dt.date], None] | None]:
    """A progress bar over days on a terminal's stderr; nothing under --json or off a terminal."""
    if quiet or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("backtest {task.fields[day]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("days", total=total, day="")
        yield lambda day: bar.update(task, advance=1, day=day.isoformat())


def register(app: typer.Typer) -> None:
    @app.command("backtest")
    @handle_errors
    def backtest_cmd(
        ruleset: Annotated[str, typer.Option("--ruleset", help="province@version, a path to a ruleset file, or a "
                                             "bare province (the version in force on the --to date).")],
        start: Annotated[str, typer.Option("--from", help="The first as-of date D1 (YYYY-MM-DD).")],
        end: Annotated[str, typer.Option("--to", help="The last as-of date D2, included.")],
        against: Annotated[str | None, typer.Option(
            "--against", help="A reference ruleset (such as the version in force) on the same days: what each "
                              "rule adds or removes in restricted person-days.")] = None,
        out_dir: Annotated[Path | None, typer.Option(
            "--out", help="Write backtest.json and backtest.html (charts and the per-rule table) here.")] = None,
        db: DbOption = None,
        lang: LangOption = "en",
        json_out: JsonOption = False,
    ) -> None:
        """What a ruleset would have done on every day from D1 to D2: colours per day,
        person-days per colour and per deciding rule; nothing is stored.

        The colours of day D are exactly those of `hcode evaluate --as-of D --dry-run` on the
        same warehouse. With --against, the reference's figures too, and per rule the
        restricted person-days (any colour but the palette's first) the ruleset adds or
        removes against it.

        Example:

            hcode backtest --ruleset shanghai@2022.06.28 --against shanghai@2022.05.23 --from 2022-06-01 --to 2022-06-14 --out backtest/
            hcode backtest --ruleset my-rules/shanghai/2022.07.01.yaml --from 2022-05-16 --to 2022-06-14 --json
        """
        from hcode.cli.runs import pick_ruleset
        from hcode.colors import check_lang
        from hcode.runs.backtest import backtest, date_range
        from hcode.store.warehouse import Warehouse

        check_lang(lang)
        first, last = parse_date(start, "--from"), parse_date(end, "--to")
        assert first is not None and last is not None
        days = date_range(first, last)
        rs = pick_ruleset(ruleset, last, quiet=json_out)
        ref = pick_ruleset(against, last, quiet=json_out) if against is not None else None
        with Warehouse.open(db, read_only=True) as wh, _progress(len(days), json_out) as tick:
            result = backtest(wh, rs, first, last, ref, progress=tick)
        if out_dir is not None:
            from hcode.report.backtest import write_backtest

            write_backtest(result, out_dir, lang)
            err.print(f"backtest written to {out_dir}/backtest.html", highlight=False)
        if json_out:
            print_json(result.as_json())
            return
        _print(result)


def _print(bt: Backtest) -> None:
    colors = list(dict.fromkeys([*bt.palette, *(bt.against_palette or ())]))
    table = Table(title=Text(f"{bt.ruleset}" + (f" (against {bt.against})" if bt.against else "")
                             + f", {bt.start} to {bt.end}"), title_justify="left")
    table.add_column("day")
    for c in colors:
        table.add_column(Text(c), justify="right")
    for d in bt.days:
        cells = []
        for c in colors:
            a = f"{d.colors[c]:,}" if c in d.colors else "-"
            b = d.against_colors.get(c) if d.against_colors is not None else None
            cells.append(a if d.against_colors is None else f"{a} / {b:,}" if b is not None else f"{a} / -")
        table.add_row(d.date.isoformat(), *cells)
    out.print(table)
    rules = Table(title="person-days by deciding rule", title_justify="left")
    for name in ("rule", "colour", "decided") + (("reference decided", "restricted +", "restricted -")
                                                 if bt.against else ()):
        rules.add_column(name, justify="left" if name in ("rule", "colour") else "right")
    for r in bt.rules:
        cells = [r.id, r.color or "", "-" if r.person_days_decided is None else f"{r.person_days_decided:,}"]
        if bt.against:
            cells += ["-" if r.against_person_days_decided is None else f"{r.against_person_days_decided:,}",
                      f"{r.restricted_added or 0:,}", f"{r.restricted_removed or 0:,}"]
        rules.add_row(*(Text(c) for c in cells))
    out.print(rules)
    line = f"restricted person-days: {bt.restricted_person_days:,} under {bt.ruleset}"
    if bt.against is not None:
        ref = bt.against_restricted_person_days or 0
        line += f", {ref:,} under {bt.against} ({bt.restricted_person_days - ref:+,})"
    out.print(line, highlight=False, markup=False)
