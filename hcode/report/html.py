"""`report.html`: one self-contained page for the audit file (inline CSS, inline SVG charts).

Nothing is fetched: no fonts, images or scripts from anywhere (a Content-Security-Policy
says so to the browser too), so the page opens from a USB stick on an offline machine. The
only script is a few lines that filter the changes table as you type. Every text that comes
from data (labels, titles, explanations, keys) goes through `hcode.report.escape` (escaped, ids masked).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hcode import __version__
from hcode.colors import color_hex, color_label
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

STARTED_HEX, STOPPED_HEX, NEUTRAL_HEX = "#1f5fa8", "#9aa5b1", "#5b6b7f"
FONT = ('-apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "PingFang SC", '
        '"Microsoft YaHei", "Helvetica Neue", Arial, sans-serif')


e = escape.html


CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f5f8;color:#1d2733;font:14px/1.5 @FONT@}
.masthead{background:#14314f;color:#fff;padding:22px 0 18px;border-bottom:4px solid #c0262d}
.wrap{max-width:1180px;margin:0 auto;padding:0 28px}
.org{font-size:12px;letter-spacing:.08em;text-transform:uppercase;opacity:.75}
h1{font-size:26px;margin:4px 0 10px;font-weight:600}
.sides{display:grid;grid-template-columns:auto 1fr;gap:2px 14px;font-size:14px}
.sides b{opacity:.8;font-weight:600}
main.wrap{padding:22px 28px 40px}
.kpis{display:grid;grid-template-columns:repeat(5,1fr);gap:12px;margin-bottom:18px}
.kpi{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:12px 14px}
.kpi .n{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}
.kpi .l{font-size:12px;color:#5b6b7f;text-transform:uppercase;letter-spacing:.04em}
.kpi.accent{border-top:3px solid #c0262d}
section.card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:16px 20px;margin-bottom:18px}
h2{font-size:16px;margin:0 0 4px;color:#14314f}
.note{color:#5b6b7f;font-size:12px;margin:0 0 10px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.grid2 section.card{margin-bottom:0}
.row{margin-bottom:18px}
svg text{font-family:@FONT@}
svg.bars{width:100%;height:auto;max-width:640px;display:block}
svg.heatmap{max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th{position:sticky;top:0;background:#eef2f6;text-align:left;font-weight:600;color:#34465a;
   border-bottom:2px solid #cfd8e2;padding:7px 8px}
td{border-bottom:1px solid #e8edf2;padding:6px 8px;vertical-align:top}
tbody tr:nth-child(even){background:#fafbfc}
td.key{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px;color:#34465a;white-space:nowrap}
.pill{display:inline-block;min-width:54px;text-align:center;padding:1px 8px;border-radius:10px;
      color:#fff;background:var(--c);font-size:12px;font-weight:600}
.pill.absent{background:#fff;color:#5b6b7f;border:1px dashed #8a94a3}
.tools{display:flex;gap:12px;align-items:center;margin:6px 0 10px}
input[type=search]{flex:0 1 420px;padding:7px 10px;border:1px solid #b8c4d0;border-radius:4px;font:inherit}
.count{color:#5b6b7f;font-size:12px}
.scroll{max-height:640px;overflow:auto;border:1px solid #e8edf2;border-radius:4px}
footer{color:#5b6b7f;font-size:12px;padding:10px 0 30px}
.empty{color:#5b6b7f;font-style:italic}
""".replace("@FONT@", FONT)

SCRIPT = """
document.querySelectorAll('input[data-table]').forEach(function (box) {
  var table = document.getElementById(box.getAttribute('data-table'));
  var count = document.getElementById(box.getAttribute('data-count'));
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  box.addEventListener('input', function () {
    var q = box.value.trim().toLowerCase(), shown = 0;
    rows.forEach(function (r) {
      var hit = !q || r.getAttribute('data-search').indexOf(q) >= 0;
      r.style.display = hit ? '' : 'none';
      if (hit) { shown += 1; }
    });
    count.textContent = shown + ' / ' + rows.length;
  });
});
"""


def _heatmap(diff: Diff, lang: str) -> str:
    t = labels(lang)
    axis = list(diff.matrix)
    cw, ch, left, top = 112, 46, 124, 52
    width, height = left + cw * len(axis) + 2, top + ch * len(axis) + 2
    off = [n for b in axis for a, n in diff.matrix[b].items() if a != b]
    diag = [diff.matrix[c][c] for c in axis]
    max_off, max_diag = max(off + [1]), max(diag + [1])
    parts = [f'<svg id="matrix" class="heatmap" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="{e(t["matrix"])}">']
    parts.append(f'<text x="{left - 10}" y="{top - 30}" text-anchor="end" font-size="11" fill="#5b6b7f">'
                 f'{e(t["before"])} ↓ · {e(t["after"])} →</text>')
    for i, c in enumerate(axis):
        x = left + i * cw + cw / 2
        parts.append(f'<circle cx="{x - 30}" cy="{top - 14}" r="5" fill="{color_hex(c)}"/>'
                     f'<text x="{x - 20}" y="{top - 10}" font-size="13" font-weight="600" fill="#1d2733">'
                     f'{e(color_label(c, lang))}</text>')
        y = top + i * ch + ch / 2
        parts.append(f'<circle cx="{left - 98}" cy="{y}" r="5" fill="{color_hex(c)}"/>'
                     f'<text x="{left - 88}" y="{y + 4}" font-size="13" font-weight="600" fill="#1d2733">'
                     f'{e(color_label(c, lang))}</text>')
    for i, b in enumerate(axis):
        for j, a in enumerate(axis):
            n = diff.matrix[b][a]
            if a == b:
                level = math.log1p(n) / math.log1p(max_diag)
                fill, opacity = "#14314f", 0.06 + 0.30 * level if n else 0.0
            else:
                level = math.log1p(n) / math.log1p(max_off)
                fill, opacity = color_hex(a), (0.18 + 0.82 * level) if n else 0.0
            ink = "#ffffff" if opacity > 0.55 else "#1d2733"
            x, y = left + j * cw, top + i * ch
            parts.append(
                f'<g><rect class="heat-cell" data-before="{e(b)}" data-after="{e(a)}" x="{x + 1}" y="{y + 1}" '
                f'width="{cw - 2}" height="{ch - 2}" rx="3" fill="{fill}" fill-opacity="{opacity:.3f}" '
                f'stroke="#dde3ea"><title>{e(color_label(b, lang))} → {e(color_label(a, lang))}: {n:,}</title></rect>'
                f'<text x="{x + cw / 2}" y="{y + ch / 2 + 5}" text-anchor="middle" font-size="14" '
                f'font-weight="{600 if a != b and n else 400}" fill="{ink}">{n:,}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _text_width(text: str, size: int = 11) -> float:
    """Rough rendered width, enough to lay out a legend (CJK glyphs are about square)."""
    return sum(size if ord(ch) > 0x2E80 else size * 0.6 for ch in text)


def _bars(rows: list[dict[str, Any]], series: list[tuple[str, str, str]],
          label: Callable[[dict[str, Any]], tuple[str, str, str]], css: str, svg_id: str,
          stacked: bool, empty: str) -> str:
    """Horizontal bars, one group per row; `series` = (field, legend, colour); `label(row)` gives
    the row's name, a second smaller line (or "") and a hover hint."""
    if not rows:
        return f'<svg id="{svg_id}" width="10" height="10"></svg><p class="empty">{e(empty)}</p>'
    width, left, right, legend_h = 560, 200, 50, 30
    band = 30 if stacked else max(12 * len(series) + 14, 38)
    height = legend_h + band * len(rows) + 4
    scale_max = max((sum(r[f] for f, _, _ in series) if stacked else max(r[f] for f, _, _ in series))
                    for r in rows) or 1
    span = width - left - right
    parts = [f'<svg id="{svg_id}" class="bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    lx: float = 8
    for _, name, colour in series:
        parts.append(f'<rect x="{lx}" y="6" width="10" height="10" rx="2" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="15" font-size="11" fill="#34465a">{e(name)}</text>')
        lx += 30 + _text_width(name)
    for i, r in enumerate(rows):
        y = legend_h + i * band
        text, sub, hint = label(r)
        if sub:
            while _text_width(sub, 10) > left - 24:
                sub = sub[:-2] + "…"
            parts.append(f'<text x="{left - 10}" y="{y + 14}" text-anchor="end" font-size="12" font-weight="600" '
                         f'fill="#1d2733">{e(text)}<title>{e(hint)}</title></text>'
                         f'<text x="{left - 10}" y="{y + 27}" text-anchor="end" font-size="10" fill="#5b6b7f">'
                         f'{e(sub)}<title>{e(hint)}</title></text>')
        else:
            parts.append(f'<text x="{left - 10}" y="{y + band / 2 + 4}" text-anchor="end" font-size="12" '
                         f'font-weight="600" fill="#1d2733">{e(text)}<title>{e(hint)}</title></text>')
        x = left
        for k, (field, name, colour) in enumerate(series):
            n = r[field]
            w = span * n / scale_max
            by = y + 4 if stacked else y + 5 + 13 * k
            bh = band - 10 if stacked else 10
            parts.append(f'<rect class="{css} {e(field)}" x="{x:.1f}" y="{by}" width="{max(w, 0.5 if n else 0):.1f}" '
                         f'height="{bh}" rx="2" fill="{colour}"><title>{e(text)} · {e(name)}: {n:,}</title></rect>')
            if not stacked:
                parts.append(f'<text x="{x + w + 4:.1f}" y="{by + 9}" font-size="10" fill="#34465a">{n:,}</text>')
            else:
                x += w
        if stacked:
            total = sum(r[f] for f, _, _ in series)
            parts.append(f'<text x="{x + 4:.1f}" y="{y + band / 2 + 3}" font-size="11" fill="#34465a">{total:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _pill(color: str | None, lang: str) -> str:
    if color is None:
        return f'<span class="pill absent">{e(color_label(None, lang))}</span>'
    return f'<span class="pill" style="--c:{color_hex(color)}">{e(color_label(color, lang))}</span>'


def _table(frame: Listed, lang: str, limit: int, table_id: str, title: str) -> str:
    t = labels(lang)
    total = frame.height
    head = f'<section class="card"><h2>{e(title)}</h2>'
    if total == 0:
        return head + f'<p class="empty">{e(t["none"])}</p><table id="{table_id}"><tbody></tbody></table></section>'
    shown = frame.head(limit)
    note = (f'<p class="note">{e(t["first_n"].format(n=f"{shown.height:,}", total=f"{total:,}"))}</p>'
            if total > limit else "")
    rows = []
    for r in shown.iter_rows(named=True):
        search = " ".join(str(v) for v in (r["district_code"], r["before"] or "absent",
                                             r["after"] or "absent", r["explanation"])).lower()
        k = escape.key(r["person_key"])
        rows.append(
            f'<tr data-search="{k} {e(search)}"><td class="key" title="{k}">{e(short_key(r["person_key"]))}'
            f'</td><td>{e(r["district_code"])}</td><td>{_pill(r["before"], lang)}</td>'
            f'<td>{_pill(r["after"], lang)}</td><td>{e(r["explanation"])}</td></tr>')
    cols = "".join(f"<th>{e(t[c])}</th>" for c in ("person", "district", "before", "after", "explanation"))
    return (head + f'{note}<div class="tools"><input type="search" '
            f'data-table="{table_id}" data-count="{table_id}-count" placeholder="{e(t["search"])}" '
            f'aria-label="{e(t["search"])}"><span class="count" id="{table_id}-count">{shown.height:,} / '
            f'{shown.height:,}</span></div><div class="scroll"><table id="{table_id}"><thead><tr>{cols}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div></section>')


def render_html(diff: Diff, lang: str | None = None, limit: int = 500, top: int = 15) -> str:
    lang = lang or diff.lang
    t = labels(lang)
    kpis = "".join(f'<div class="kpi{" accent" if i == 1 else ""}"><div class="n">{n:,}</div>'
                   f'<div class="l">{e(name)}</div></div>' for i, (name, n) in enumerate(headline(diff, lang)))
    rule_svg = _bars(
        active_rules(diff, top),
        [("started", t["started"], STARTED_HEX), ("stopped", t["stopped"], STOPPED_HEX)],
        lambda r: (r["rule"], r["title"] or "", f'{r["rule"]} {r["title"] or ""}'), "rule-bar", "rule-bars", False,
        t["no_rules"])
    district_svg = _bars(
        top_districts(diff, top),
        [("more_severe", t["more_severe"], color_hex("red")), ("less_severe", t["less_severe"], color_hex("green")),
         ("appeared", t["appeared"], STARTED_HEX), ("disappeared", t["disappeared"], STOPPED_HEX)],
        lambda r: (r["district_code"], "", r["district_code"]), "district-bar", "district-bars", True, t["none"])
    title = f'{t["title"]}: {diff.before.label} → {diff.after.label}'
    csp = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
    return f"""<!DOCTYPE html>
<html lang="{"zh-CN" if lang == "zh" else "en"}">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header class="masthead"><div class="wrap">
<div class="org">hcode · {e(t["title"])}</div>
<h1>{e(diff.before.label)} → {e(diff.after.label)}</h1>
<div class="sides"><b>{e(t["before"])}</b><span>{e(side_line(diff.before, lang))}</span>
<b>{e(t["after"])}</b><span>{e(side_line(diff.after, lang))}</span></div>
</div></header>
<main class="wrap">
<div class="kpis">{kpis}</div>
<section class="card row"><h2>{e(t["matrix"])}</h2><p class="note">{e(t["matrix_note"])}</p>{_heatmap(diff, lang)}</section>
<div class="grid2 row">
<section class="card"><h2>{e(t["rules"])}</h2>{rule_svg}</section>
<section class="card"><h2>{e(t["districts"])}</h2>{district_svg}</section>
</div>
{_table(diff.changes, lang, limit, "changes-table", t["changes_table"])}
{_table(diff.rule_changes, lang, limit, "rule-changes-table", t["rule_changes_table"])}
<footer>{e(t["generated"].format(v=__version__))}</footer>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
