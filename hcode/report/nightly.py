"""The nightly batch's own report sections (loads, freshness, quarantine, overrides),
appended to the diff report's `report.md` and inserted into its `report.html`.

The night shift reads these first: a late discharge list keeps people red, and a manual
override that no rule supports needs a name and a reason next to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hcode.report import escape
from hcode.textsafe import mask_ids_in

TITLES = {
    "en": {"batch": "Nightly batch", "loads": "Files loaded", "fresh": "Feed freshness", "late": "Late feeds",
           "none_late": "Every feed arrived on time.", "quarantine": "Quarantined rows",
           "none_q": "No row was quarantined tonight.", "overrides": "Manual overrides",
           "unsupported": "Overrides unsupported by any rule", "expiring": "Overrides expiring in the next 3 days",
           "applied": "Overrides applied", "not_applied": "Overrides not applied (colour outside the palette)",
           "unregistered": "Overrides for persons not registered (not applied)",
           "none": "none", "companions": "Companions test: flagged gatherings",
           "none_flagged": "No gathering flagged.", "svp": "Shown vs published (scans)",
           "svp_district": "Shown vs published per district (of the place)",
           "svp_pair": "Shown vs published per colour pair (compared scans)"},
    "zh": {"batch": "夜间批处理", "loads": "已加载文件", "fresh": "数据时效", "late": "迟到的数据",
           "none_late": "所有数据均按时到达。", "quarantine": "隔离的数据行", "none_q": "今晚没有被隔离的数据行。",
           "overrides": "人工转码", "unsupported": "无任何规则支持的人工转码", "expiring": "三天内到期的人工转码",
           "applied": "已生效的人工转码", "not_applied": "未生效的人工转码（颜色不在色板中）",
           "unregistered": "对象未登记的人工转码（未生效）", "none": "无",
           "companions": "同行者检验：被标记的聚集", "none_flagged": "没有被标记的聚集。",
           "svp": "扫码显示与发布结果对比（扫码次数）", "svp_district": "按场所所在区县对比",
           "svp_pair": "按颜色组合对比（可比的扫码）"},
}


def _t(lang: str) -> dict[str, str]:
    return TITLES.get(lang, TITLES["en"])


def _rows(sections: dict[str, Any], lang: str) -> list[tuple[str, list[str], list[list[str]], str | None]]:
    """(title, header, rows, note-when-empty) for each table of the nightly sections."""
    t = _t(lang)
    loads = [[Path(r["file"]).name, r["feed"] or "?", f"{r['rows_read']:,}", f"{r['rows_loaded']:,}",
              f"{r['rows_quarantined']:,}",
              "rejected: " + (r["error"] or "") if r["rejected"] else "duplicate" if r["duplicate"] else "loaded"]
             for r in sections["loads"]]
    late = [[f["feed"], f["last_loaded"] or "never", str(f["days_late"] if f["days_late"] is not None else "-"),
             f["impact"] or ""] for f in sections["freshness"] if f["late"]]
    quarantine = [[q["file"], q["column"], q["reason"], f"{q['rows']:,}"] for q in sections["quarantine"]]
    ov = sections["overrides"]

    def ov_rows(key: str) -> list[list[str]]:
        return [[e["person_key"][:12] + "…", e["color"], e["rules_color"], e["authority"], e["basis"], e["operator"],
                 e["reason"], e["expires_at"] or "-", e["note"] or ""] for e in ov.get(key, [])]

    ov_head = ["person", "override", "rules give", "authority", "basis", "operator", "reason", "expires", "note"]
    return [*_companion_rows(sections, t),
        (t["loads"], ["file", "feed", "read", "loaded", "quarantined", "status"], loads, None),
        (t["late"], ["feed", "last file", "days late", "impact"], late, t["none_late"]),
        (t["quarantine"], ["file", "column", "reason", "rows"], quarantine, t["none_q"]),
        (t["unsupported"], ov_head, ov_rows("unsupported"), t["none"]),
        (t["expiring"], ov_head, ov_rows("expiring_soon"), t["none"]),
        (t["applied"], ov_head, ov_rows("applied"), t["none"]),
        (t["not_applied"], ov_head, ov_rows("not_applied"), t["none"]),
        (t["unregistered"], ov_head, ov_rows("unregistered"), t["none"]),
    ]


SVP_HEAD = ["scans", "compared", "more severe", "less severe", "not compared", "not comparable"]
SVP_KEYS = ["scans", "compared", "more_severe", "less_severe", "not_compared", "not_comparable"]


def _companion_rows(sections: dict[str, Any], t: dict[str, str]
                    ) -> list[tuple[str, list[str], list[list[str]], str | None]]:
    """The companions test (flagged gatherings, counts only) and shown vs published. Place
    names come from data: the renderers escape every cell for their target."""
    comp = sections.get("companions")
    if comp is None:
        return []
    groups = [[g["place_name"], g["place_code"], g["district_code"] or "-", g["from"], g["to"], str(g["persons"]),
               str(g["unexplained"]), str(g["first_color_companions"]),
               ", ".join(f"{c} {n}" for c, n in g["shown"].items()), "; ".join(g["authorities"]) or "-",
               "; ".join(g["operators"]) or "-"] for g in comp["groups"]]
    empty = comp["note"] or t["none_flagged"]
    if comp["note"] is None:
        empty += f" ({comp['gatherings']:,} gatherings, window {comp['window_minutes']:g} minutes)"
    svp = comp["shown_vs_published"]
    totals = [[f"{svp[k]:,}" for k in SVP_KEYS]] if svp["scans"] else []
    district = [[d["district_code"], *(f"{d[k]:,}" for k in SVP_KEYS)] for d in svp["by_district"]]
    pairs = [[p["published"], p["shown"], f"{p['scans']:,}"] for p in svp["by_pair"]]
    return [
        (t["companions"], ["place", "code", "district", "from", "to", "persons", "unexplained",
                           f"{comp.get('first_color', 'first colour')} companions", "shown", "authorities",
                           "operators"], groups, empty),
        (t["svp"], SVP_HEAD, totals, comp["note"] or t["none"]),
        (t["svp_district"], ["district", *SVP_HEAD], district, t["none"]),
        (t["svp_pair"], ["published", "shown", "scans"], pairs, t["none"]),
    ]


def render_markdown(sections: dict[str, Any], lang: str = "en") -> str:
    m = escape.markdown
    out = [f"\n## {_t(lang)['batch']} {m(sections['date'])} (run {m(sections['run_id'])})\n"]
    for title, head, rows, empty in _rows(sections, lang):
        out.append(f"\n### {title}\n")
        if not rows:
            out.append(f"\n{empty or '-'}\n")
            continue
        out.append("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
        out += ["| " + " | ".join(m(c) for c in row) + " |\n" for row in rows]
    return "".join(out)


def render_html(sections: dict[str, Any], lang: str = "en") -> str:
    e = escape.html
    out = [f'<section id="nightly"><h2>{e(_t(lang)["batch"])} {e(sections["date"])} '
           f'(run {e(str(sections["run_id"]))})</h2>']
    for title, head, rows, empty in _rows(sections, lang):
        late_or_flag = title in (_t(lang)["late"], _t(lang)["unsupported"], _t(lang)["unregistered"],
                                 _t(lang)["companions"]) and rows
        cls = ' class="alarm"' if late_or_flag else ""
        out.append(f"<h3{cls}>{e(title)}</h3>")
        if not rows:
            out.append(f"<p>{e(empty or '-')}</p>")
            continue
        out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>")
        out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
        out.append("</tbody></table>")
    out.append("</section>")
    return "".join(out)


def write_json(report_dir: Path, sections: dict[str, Any]) -> None:
    """`nightly.json`: the sections as data, id-shaped values masked."""
    (report_dir / "nightly.json").write_text(
        json.dumps(mask_ids_in(sections), ensure_ascii=False, indent=2, default=str), "utf-8")


def append_sections(report_dir: Path, sections: dict[str, Any], lang: str = "en") -> None:
    md = report_dir / "report.md"
    if md.exists():
        md.write_text(md.read_text(encoding="utf-8") + render_markdown(sections, lang), encoding="utf-8")
    page = report_dir / "report.html"
    if page.exists():
        text = page.read_text(encoding="utf-8")
        marker = "</body>"
        block = render_html(sections, lang)
        text = text.replace(marker, block + marker, 1) if marker in text else text + block
        page.write_text(text, encoding="utf-8")
