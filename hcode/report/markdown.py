"""`report.md`: the diff for people who read it in a merge request, a wiki or an e-mail.

Tables only (GitHub-flavoured Markdown), every cell escaped, the changes table cut at
`limit` rows (the full list is in changes.parquet / changes.csv).
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from hcode import __version__
from hcode.colors import color_label
from hcode.diff.changes import Diff
from hcode.diff.listed import Listed
from hcode.report import escape
from hcode.report.labels import (
    active_rules,
    headline,
    labels,
    short_key,
    side_line,
    top_districts,
)

_cell = escape.markdown  # text made inert in a Markdown table cell (pipes, emphasis, code, links, HTML, ids)


def _table(header: list[str], rows: Sequence[Sequence[object]], right: AbstractSet[int] = frozenset()) -> list[str]:
    """Cells must already be escaped (with `_cell`) or deliberate Markdown."""
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---:" if i in right else "---" for i in range(len(header))) + " |"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return lines


def _changes(frame: Listed, lang: str, limit: int, title: str) -> list[str]:
    t = labels(lang)
    total = frame.height
    shown = frame.head(limit)
    out = [f"## {title}", ""]
    if total == 0:
        return [*out, t["none"], ""]
    if total > limit:
        out += [f"_{t['first_n'].format(n=limit, total=f'{total:,}')}_", ""]
    rows = [[f"`{escape.key(short_key(r['person_key']))}`", _cell(r["district_code"]), _cell(color_label(r["before"], lang)),
             _cell(color_label(r["after"], lang)), _cell(r["explanation"])] for r in shown.iter_rows(named=True)]
    out += _table([_cell(t[c]) for c in ("person", "district", "before", "after", "explanation")], rows)
    return [*out, ""]


def render_markdown(diff: Diff, lang: str | None = None, limit: int = 500) -> str:
    lang = lang or diff.lang
    t = labels(lang)
    out = [f"# {t['title']}: {_cell(diff.before.label)} → {_cell(diff.after.label)}", ""]
    out += [f"- **{t['before']}**: {_cell(side_line(diff.before, lang))}",
            f"- **{t['after']}**: {_cell(side_line(diff.after, lang))}", ""]
    out += _table(["", ""], [[_cell(name), f"{n:,}"] for name, n in headline(diff, lang)], right={1})
    out += ["", f"## {t['matrix']}", "", f"_{t['matrix_note']}_", ""]
    axis = list(diff.matrix)
    out += _table([f"{t['before']} → {t['after']}", *(_cell(color_label(c, lang)) for c in axis)],
                  [[f"**{_cell(color_label(b, lang))}**", *(f"{n:,}" for n in diff.matrix[b].values())] for b in axis],
                  right=set(range(1, len(axis) + 1)))
    out += ["", f"## {t['rules']}", ""]
    rules = active_rules(diff)
    out += _table([t["rule"], t["title_col"], t["started"], t["stopped"]],
                  [[_cell(r["rule"]), _cell(r["title"]), f"{r['started']:,}", f"{r['stopped']:,}"] for r in rules],
                  right={2, 3}) if rules else [t["no_rules"]]
    out += ["", f"## {t['districts']}", ""]
    cols = ["changes", "more_severe", "less_severe", "appeared", "disappeared"]
    districts = top_districts(diff)
    out += _table([t["district"], *(t[c] for c in cols)],
                  [[_cell(d["district_code"]), *(f"{d[c]:,}" for c in cols)] for d in districts],
                  right=set(range(1, 6))) if districts else [t["none"]]
    out += [""]
    out += _changes(diff.changes, lang, limit, t["changes_table"])
    out += _changes(diff.rule_changes, lang, limit, t["rule_changes_table"])
    out += [f"_hcode {__version__}_", ""]
    return "\n".join(out)
