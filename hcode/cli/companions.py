"""`hcode companions`: the companions test (rules.md) for a run's as-of date. Thin: the
library computes (hcode.ops.companions), this module parses flags and renders."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from hcode.cli.common import DbOption, JsonOption, handle_errors, out, print_json, t_
from hcode.errors import UsageError

if TYPE_CHECKING:
    from hcode.ops.companions import CompanionsResult

FLAGGED_EXIT = 3


def parse_window(text: str) -> dt.timedelta:
    """``10m``, ``90s``, ``1h`` or a bare number of minutes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"--window {text!r}: give a duration such as 10m, 90s or 1h")
    unit = {"s": "seconds", "m": "minutes", "": "minutes", "h": "hours"}[m.group(2)]
    return dt.timedelta(**{unit: float(m.group(1))})


def register(app: typer.Typer) -> None:
    @app.command("companions")
    @handle_errors
    def companions_cmd(
        run: Annotated[int | None, typer.Option("--run", help="The run to check (default: the latest "
                                                              "published run).")] = None,
        window: Annotated[str, typer.Option("--window", help="Scans of one place at most this far apart "
                                                             "belong to one gathering (10m, 90s, 1h).")] = "10m",
        db: DbOption = None,
        json_out: JsonOption = False,
    ) -> None:
        """The companions test: gatherings at one place on the run's as-of date where some
        persons' scans showed a colour more severe than the code hcode had published for them
        (or whose code an override no rule supports decides) while companions showed the first
        colour. Exit 3 when a gathering is flagged. Counts only: person keys never printed.

        Example:

            hcode companions --run 2 --window 10m --json
        """
        from hcode.ops.companions import companions
        from hcode.store.warehouse import Warehouse

        with Warehouse.open(db, read_only=True) as wh:
            res = companions(wh, run, parse_window(window))
        if json_out:
            print_json(res.as_json())
        else:
            render_companions(res)
        if res.flagged:
            raise typer.Exit(FLAGGED_EXIT)


def render_companions(res: CompanionsResult) -> None:
    """The companions test on the terminal: its counts, then the flagged gatherings."""
    svp = res.shown_vs_published
    head = (f"companions test, run {res.run_id} ({res.date}), window {res.window_minutes:g} min, compared with "
            + (f"published run {res.published_run}" if res.published_run is not None else "no published run"))
    out.print(head, highlight=False, markup=False)
    if res.note:
        out.print(res.note, highlight=False, markup=False)
    out.print(f"scans {svp.scans:,}: compared {svp.compared:,}, more severe {svp.more_severe:,}, "
              f"less severe {svp.less_severe:,}, not compared {svp.not_compared:,}, "
              f"not comparable {svp.not_comparable:,}; {res.gatherings:,} gatherings, "
              f"{res.unlisted_places:,} places not in the registry", highlight=False, markup=False)
    if not res.groups:
        out.print("no gathering flagged", highlight=False, markup=False)
        return
    t = Table(title=f"{len(res.groups)} flagged gathering(s)")
    for c in ("place", "time", "persons", "unexplained", f"{res.first_color} companions", "overrides by"):
        t.add_column(t_(c), no_wrap=c == "time", overflow="fold")
    for g in res.groups:  # place names, authorities and operators come from data: escaped
        by = "; ".join(g.authorities) + (f" ({'; '.join(g.operators)})" if g.operators else "")
        t.add_row(t_(g.place_name) + "\n" + t_(f"{g.place_code}, {g.district_code or '-'}"), f"{g.start:%H:%M}–{g.end:%H:%M}",
                  str(g.persons), str(g.unexplained), str(g.first_color_companions), t_(by or "-"))
    out.print(t)
