"""`hcode rules diff` on a terminal: two ruleset versions side by side."""

from __future__ import annotations

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from hcode.report.escape import terminal as esc
from hcode.rules.diff import FIELDS, RulesDiff

KIND_STYLE = {"added": "bold green", "removed": "bold red", "changed": "bold yellow", "unchanged": "dim"}
SHOWN = ("color", "window", "trigger", "release", "when", "condition")


def _cell(desc: dict[str, str] | None, fields: tuple[str, ...]) -> str:
    if desc is None:
        return "—"
    return "\n".join(f"{f}: {esc(desc[f])}" for f in fields if desc.get(f))


def renderable(rd: RulesDiff, show_unchanged: bool = False) -> Group:
    head = Text.assemble(("rules diff ", "bold"), rd.before, " → ", rd.after)
    if rd.palette_changed:
        palette = Text(f"palette: {' < '.join(rd.palette_before)}  →  {' < '.join(rd.palette_after)}",
                       style="bold yellow")
    else:
        palette = Text(f"palette unchanged: {' < '.join(rd.palette_after)}", style="dim")
    counts = Text(", ".join(f"{len(rd.of_kind(k))} {k}" for k in ("added", "removed", "changed", "unchanged")))
    table = Table(box=box.SIMPLE_HEAVY, show_lines=True)
    table.add_column("rule", no_wrap=True, style="bold")
    table.add_column("change", no_wrap=True)
    table.add_column(rd.before, overflow="fold")
    table.add_column(rd.after, overflow="fold")
    for r in rd.rules:
        if r.kind == "unchanged" and not show_unchanged:
            continue
        if r.kind == "changed":
            fields = tuple(f for f in FIELDS if f in r.changed)
            what = Text(r.kind + "\n" + "\n".join(r.changed), style=KIND_STYLE[r.kind])
        else:
            fields = SHOWN + ("title",)
            what = Text(r.kind, style=KIND_STYLE[r.kind])
        table.add_row(esc(r.id), what, _cell(r.before, fields), _cell(r.after, fields))
    parts: list[RenderableType] = [head, palette, counts, table]
    if rd.facts:
        facts = Table(title="facts read by these rules, redefined", box=box.SIMPLE, title_justify="left")
        facts.add_column("fact", style="bold", no_wrap=True)
        facts.add_column(rd.before, overflow="fold")
        facts.add_column(rd.after, overflow="fold")
        for name, (b, a) in rd.facts.items():
            facts.add_row(esc(name), esc(b or "—"), esc(a or "—"))
        parts.append(facts)
    return Group(*parts)


def print_rules_diff(rd: RulesDiff, console: Console, show_unchanged: bool = False) -> None:
    console.print(renderable(rd, show_unchanged))
