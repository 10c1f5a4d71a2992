"""Explanation sentences, in English or Chinese, built as Polars expressions.

One sentence per person says the colour, the deciding rule first (id, title, and each
evidence event: feed, what happened, when), then the other matched rules; or which
override decided, by which authority, on which basis, by which operator and why, and what
the rules alone gave; or which override was *not* applied and why. Only evaluated for
persons with a match or an override; everyone else gets the constant default sentence.
"""

from __future__ import annotations

import polars as pl

from hcode.colors import COLOR_ZH, color_label
from hcode.engine.compile import TS
from hcode.rules.ruleset import Rule, Ruleset

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
           "not_applied": "；改为{}的人工赋码（{}，{}签发）未生效：{}不在本规则集的颜色序列（{}）中"},
}
TIME_FMT = "%Y-%m-%d %H:%M"


def _label(expr: pl.Expr, rs: Ruleset, lang: str) -> pl.Expr:
    if lang != "zh":
        return expr
    colors = sorted(set(rs.palette) | set(COLOR_ZH))
    return expr.replace_strict(colors, [color_label(c, "zh") for c in colors], default=expr)


def default_sentence(rs: Ruleset, lang: str = "en") -> str:
    w = WORDS["zh" if lang == "zh" else "en"]
    return color_label(rs.palette[0], lang) + w["sep"] + w["none"]


def rule_head(rs: Ruleset, rule_id: str, lang: str) -> str:
    """"SH-R-03 Close contact" (the title in the wanted language)."""
    r = rs.rule(rule_id)
    return f"{r.id} {r.title.get(lang, r.title['en'])}"


def nonempty(text: pl.Expr) -> pl.Expr:
    return pl.when(text == "").then(pl.lit(None, pl.String)).otherwise(text)


def evidence_detail(rs: Ruleset, fact: str, names: set[str], lang: str) -> pl.Expr:
    """The evidence text: built per person from the evidence row, or the fact's fixed text."""
    if f"__d_{fact}" in names:
        return pl.col(f"__d_{fact}").cast(pl.String)
    ev = rs.facts[fact].evidence
    return pl.lit(ev.get(lang, ev["en"]), pl.String)


def evidence_text(rs: Ruleset, fact: str, names: set[str], lang: str) -> pl.Expr:
    """"contacts, close contact identified 2022-06-10 14:00": the fact's feed, evidence text
    and event time; null for persons without the event. Built once per fact and shared by
    the rules citing it (column `__x_<fact>`, see `rule_fragment`)."""
    w = WORDS["zh" if lang == "zh" else "en"]
    return pl.format("{}" + w["comma"] + "{} {}", pl.lit(rs.facts[fact].feed), evidence_detail(rs, fact, names, lang),
                     pl.col(f"__t_{fact}").cast(TS).dt.strftime(TIME_FMT))


def rule_fragment(rs: Ruleset, r: Rule, lang: str) -> pl.Expr:
    """"SH-R-03 Close contact (contacts, close contact identified 2022-06-10 14:00)": the rule's
    head and the evidence texts (columns `__x_<fact>`, `evidence_text`) of its facts that have
    an event; the head alone when none has."""
    w = WORDS["zh" if lang == "zh" else "en"]
    head = pl.lit(rule_head(rs, r.id, lang))
    parts = [pl.col(f"__x_{fact}") for fact in r.evidence_facts]
    if not parts:
        return head
    joined = parts[0] if len(parts) == 1 else pl.concat_str(parts, separator=w["join"], ignore_nulls=True)
    # a null part (no event) drops out; no event at all leaves the head alone
    return pl.coalesce(pl.format("{}" + w["open"] + "{}" + w["close"], head, nonempty(joined)), head)


def explanation_expr(rs: Ruleset, lang: str) -> pl.Expr:
    """The sentence, over columns __decider, __rule_color, override, and the fragments
    __first (the deciding rule's), __others (the other matched rules', joined) and __all."""
    lang = "zh" if lang == "zh" else "en"
    w = WORDS[lang]
    decider = pl.col("__decider")
    also = pl.when(pl.col("__others").fill_null("") != "").then(pl.lit(w["also"]) + pl.col("__others")).otherwise(pl.lit(""))
    rules_text = pl.when(decider.is_null()).then(pl.lit(default_sentence(rs, lang))).otherwise(
        pl.format("{}" + w["sep"] + "{}{}", _label(pl.col("__rule_color"), rs, lang), pl.col("__first"), also))
    ov = pl.col("override")
    f = ov.struct.field
    overridden = pl.when(decider.is_null()).then(
        pl.format(w["nothing"], _label(pl.lit(rs.palette[0]), rs, lang))).otherwise(
        pl.format("{}" + w["sep"] + "{}", _label(pl.col("__rule_color"), rs, lang), pl.col("__all")))
    applied_text = pl.format(w["override"], _label(f("color"), rs, lang), f("authority"), f("basis"),
                             f("operator"), f("reason"), overridden)
    palette = " < ".join(rs.palette)
    not_applied = rules_text + pl.format(w["not_applied"], f("color"), f("authority"),
                                         f("issued_at").dt.strftime(TIME_FMT), f("color"), pl.lit(palette))
    return (pl.when(ov.is_null()).then(rules_text)
            .when(f("applied")).then(applied_text)
            .otherwise(not_applied))
