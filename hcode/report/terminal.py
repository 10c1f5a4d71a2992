"""The diff on a terminal (rich): both sides, the transition matrix, top rules and districts.

`terminal_text(diff, width)` renders without colour at a fixed width: that is what the
golden test compares, so the layout must depend on nothing but the diff and the width.
"""

from __future__ import annotations

from typing import IO, cast

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hcode.colors import TERMINAL_STYLE, color_label
from hcode.diff.changes import Diff
from hcode.report.escape import terminal as esc
from hcode.report.labels import active_rules, headline, labels, side_line, top_districts

STYLE = TERMINAL_STYLE


def _header(diff: Diff, lang: str) -> Panel:
    t = labels(lang)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row(t["before"], esc(side_line(diff.before, lang)))
    grid.add_row(t["after"], esc(side_line(diff.after, lang)))
    for name, n in headline(diff, lang):
        grid.add_row(name, f"{n:,}")
    return Panel(grid, title=t["title"], title_align="left", box=box.ROUNDED)


def _matrix(diff: Diff, lang: str) -> Table:
    t = labels(lang)
    table = Table(title=t["matrix"], caption=t["matrix_note"], box=box.SIMPLE_HEAVY, title_justify="left",
                  caption_justify="left")
    table.add_column(f"{t['before']} \\ {t['after']}", style="bold")
    axis = list(diff.matrix)
    for c in axis:
        table.add_column(Text(color_label(c, lang), style=STYLE.get(c, "bold")), justify="right")
    for b in axis:
        cells = [Text(f"{n:,}", style="dim" if a == b or not n else "bold") for a, n in diff.matrix[b].items()]
        table.add_row(Text(color_label(b, lang), style=STYLE.get(b, "bold")), *cells)
    return table


def _rules(diff: Diff, lang: str, top: int) -> Table | Text:
    t = labels(lang)
    rows = active_rules(diff, top)
    if not rows:
        return Text(t["no_rules"])
    table = Table(title=t["rules"], box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column(t["rule"], style="bold", no_wrap=True)
    table.add_column(t["title_col"])
    table.add_column(t["started"], justify="right")
    table.add_column(t["stopped"], justify="right")
    for r in rows:
        table.add_row(esc(r["rule"]), esc(r["title"] or ""), f"{r['started']:,}", f"{r['stopped']:,}")
    return table


def _districts(diff: Diff, lang: str, top: int) -> Table | Text:
    t = labels(lang)
    rows = top_districts(diff, top)
    if not rows:
        return Text(t["none"])
    table = Table(title=t["districts"], box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column(t["district"], style="bold", no_wrap=True)
    for name in ("changes", "more_severe", "less_severe", "appeared", "disappeared"):
        table.add_column(t[name], justify="right")
    for r in rows:
        table.add_row(esc(r["district_code"]), *(f"{r[c]:,}" for c in
                                             ("changes", "more_severe", "less_severe", "appeared", "disappeared")))
    return table


def renderable(diff: Diff, lang: str | None = None, top: int = 10) -> Group:
    lang = lang or diff.lang
    gap = Text("")
    return Group(_header(diff, lang), gap, _matrix(diff, lang), gap, _rules(diff, lang, top), gap,
                 _districts(diff, lang, top))


def print_diff(diff: Diff, console: Console, lang: str | None = None, top: int = 10) -> None:
    console.print(renderable(diff, lang, top))


def terminal_text(diff: Diff, width: int = 100, lang: str | None = None, top: int = 10) -> str:
    """Plain text (no ANSI) at a fixed width, for golden tests and logs."""
    console = Console(width=width, record=True, color_system=None, force_terminal=False,
                      legacy_windows=False, file=cast(IO[str], _Null()))  # output is only recorded
    console.print(renderable(diff, lang, top))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


class _Null:
    def write(self, _s: str) -> int:
        return 0

    def flush(self) -> None:
        pass
