"""Explanation sentences, in English or Chinese, built as Polars expressions.

One sentence per person says the colour, the deciding rule first (id, title, and each
evidence event: feed, what happened, when), then the other matched rules; or which
override decided, by which authority, on which basis, by which operator and why, and what
the rules alone gave; or which override was *not* applied and why. Only evaluated for
persons with a match or an override; everyone else gets the constant default sentence.
"""

from __future__ import annotations

import polars as pl

from .ruleset import Ruleset

ZH_COLORS = {"green": "绿码", "yellow": "黄码", "orange": "橙码", "red": "红码", "blue": "蓝码",
             "purple": "紫码", "gray": "灰码", "grey": "灰码"}
WORDS = {
    "en": {"sep": ": ", "also": "; also matched ", "none": "no rule matched", "join": "; ", "comma": ", ",
           "open": " (", "close": ")",
           "override": "{}: override by {}, basis {}, operator {}, reason {}; overrides {}",
           "nothing": "{} (no rule matched)",
           "not_applied": "; override to {} by {} (issued {}) not applied: {} is not in the palette ({})"},
    "zh": {"sep": "：", "also": "；另命中 ", "none": "未命中任何规则", "join": "；", "comma": "，",
           "open": "（", "close": "）",
           "override": "{}：{}人工赋码，依据：{}，操作员：{}，原因：{}；覆盖规则结果：{}",
           "nothing": "{}（未命中任何规则）",
           "not_applied": "；{}（{}，{}签发）的人工赋码未生效：{}不在本规则集的颜色序列（{}）中"},
}
TIME_FMT = "%Y-%m-%d %H:%M"


def color_label(color: str, lang: str = "en") -> str:
    return ZH_COLORS.get(color, color) if lang == "zh" else color


def _label(expr: pl.Expr, rs: Ruleset, lang: str) -> pl.Expr:
    if lang != "zh":
        return expr
    colors = sorted(set(rs.palette) | set(ZH_COLORS))
    return expr.replace_strict(colors, [color_label(c, "zh") for c in colors], default=expr)


def default_sentence(rs: Ruleset, lang: str = "en") -> str:
    w = WORDS["zh" if lang == "zh" else "en"]
    return color_label(rs.palette[0], lang) + w["sep"] + w["none"]


def rule_fragments(rs: Ruleset, lang: str, schema) -> list[pl.Expr]:
    """Per rule: "SH-R-03 Close contact (contacts, close contact identified 2022-06-10 14:00)"."""
    w = WORDS["zh" if lang == "zh" else "en"]
    out = []
    for r in rs.rules:
        head = f"{r.id} {r.title.get(lang, r.title['en'])}"
        parts = []
        for fname in r.evidence_facts:
            f = rs.facts[fname]
            t = pl.col(f"__t_{fname}")
            detail = pl.col(f"__d_{fname}") if f"__d_{fname}" in schema else pl.lit(f.evidence.get(lang, f.evidence["en"]))
            parts.append(pl.when(t.is_not_null()).then(
                pl.format("{}" + w["comma"] + "{} {}", pl.lit(f.feed), detail, t.dt.strftime(TIME_FMT))))
        if not parts:
            out.append(pl.lit(head))
            continue
        joined = pl.concat_list(parts).list.drop_nulls()
        out.append(pl.when(joined.list.len() > 0)
                   .then(pl.format("{}" + w["open"] + "{}" + w["close"], pl.lit(head), joined.list.join(w["join"])))
                   .otherwise(pl.lit(head)))
    return out


def explanation_exprs(rs: Ruleset, matched: list[pl.Expr], lang: str, columns: set[str]) -> pl.Expr:
    """The explanation column over a frame holding __decider, __rule_color, override and the facts."""
    lang = "zh" if lang == "zh" else "en"
    w = WORDS[lang]
    if not rs.rules:
        rules_text = pl.lit(default_sentence(rs, lang))
        all_frags = pl.lit(None, pl.String)
    else:
        frags = rule_fragments(rs, lang, columns)
        decider = pl.col("__decider")
        first = pl.coalesce([pl.when(decider == r.id).then(f) for r, f in zip(rs.rules, frags, strict=True)])
        others = pl.concat_list([pl.when(m & (decider != r.id)).then(f)
                                 for m, r, f in zip(matched, rs.rules, frags, strict=True)]).list.drop_nulls()
        also = pl.when(others.list.len() > 0).then(pl.lit(w["also"]) + others.list.join(w["join"])).otherwise(pl.lit(""))
        rules_text = pl.when(decider.is_null()).then(pl.lit(default_sentence(rs, lang))).otherwise(
            pl.format("{}" + w["sep"] + "{}{}", _label(pl.col("__rule_color"), rs, lang), first, also))
        all_frags = pl.concat_list([pl.when(m).then(f) for m, f in zip(matched, frags, strict=True)]
                                   ).list.drop_nulls().list.join(w["join"])
    ov = pl.col("override")
    f = ov.struct.field
    overridden = pl.when(pl.col("__decider").is_null()).then(
        pl.format(w["nothing"], _label(pl.lit(rs.palette[0]), rs, lang))).otherwise(
        pl.format("{}" + w["sep"] + "{}", _label(pl.col("__rule_color"), rs, lang), all_frags))
    applied_text = pl.format(w["override"], _label(f("color"), rs, lang), f("authority"), f("basis"),
                             f("operator"), f("reason"), overridden)
    palette = " < ".join(rs.palette)
    not_applied = rules_text + pl.format(w["not_applied"], f("color"), f("authority"),
                                         f("issued_at").dt.strftime(TIME_FMT), f("color"), pl.lit(palette))
    return (pl.when(ov.is_null()).then(rules_text)
            .when(f("applied")).then(applied_text)
            .otherwise(not_applied))
