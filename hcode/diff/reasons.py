"""The sentence behind every listed change, built column-wise (no per-row Python).

A 12345 hotline operator reads these out, so each one starts with the transition
("green → red:") and names the rules that stopped and started matching with their titles
and the evidence that triggered them (feed, detail, event time), or the override that
decided (authority, basis, operator, reason). Which verb fits depends on what differs
between the two sides: another ruleset version on the same date ("no longer matches under
2022.06.28"), the same ruleset on a later date ("no longer matches as of 2022-06-15:
released or window passed"), or neither (the data changed). The explanation is never empty:
when no clause applies, it names the deciding rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from hcode.colors import COLOR_ZH
from hcode.engine.sentences import TIME_FMT
from hcode.feeds import TIMESTAMP

if TYPE_CHECKING:
    from hcode.diff.changes import SideMeta


TEXT = {
    "en": {
        "sep": "; ", "colon": ": ", "open": " (", "close": ")", "comma": ", ",
        "newly": "newly registered", "gone": "no longer registered",
        "started": "started matching", "matches": "matches",
        "matches_under": "matches under {v}", "stopped_under": "no longer matches under {v}",
        "stopped_asof": "no longer matches as of {d}: released or window passed",
        "stopped_under_asof": "no longer matches under {v} as of {d}",
        "stopped_data": "no longer matches (the data changed)",
        "days_before": "{n} days before",
        "override": "override by ", "basis": "basis ", "operator": "operator ", "reason": "reason: ",
        "override_ended": "override by {a} no longer active",
        "override_expired": "override by {a} expired {t}",
        "not_applied": "override by {a} to {c} not applied (colour not in the palette)",
        "still": "still matches", "decides": "decides", "no_rule": "no rule matches (default colour)",
        "rule_change": "{c}, deciding rule {rb} → {ra}",
        "nobody": "none",
    },
    "zh": {
        "sep": "；", "colon": "：", "open": "（", "close": "）", "comma": "，",
        "newly": "新登记", "gone": "已不在登记名单中",
        "started": "开始匹配", "matches": "匹配",
        "matches_under": "在 {v} 下匹配", "stopped_under": "在 {v} 下不再匹配",
        "stopped_asof": "截至 {d} 不再匹配：已解除或已过时限",
        "stopped_under_asof": "截至 {d} 在 {v} 下不再匹配",
        "stopped_data": "不再匹配（数据已变更）",
        "days_before": "{n} 天前",
        "override": "人工转码：", "basis": "依据 ", "operator": "操作员 ", "reason": "理由：",
        "override_ended": "{a} 的人工转码已失效",
        "override_expired": "{a} 的人工转码已于 {t} 到期",
        "not_applied": "{a} 的人工转码（{c}）未生效：颜色不在本规则集中",
        "still": "仍匹配", "decides": "决定颜色", "no_rule": "无规则匹配（默认颜色）",
        "rule_change": "{c}不变，决定规则 {rb} → {ra}",
        "nobody": "无",
    },
}


def color_name(expr: pl.Expr, lang: str) -> pl.Expr:
    """A colour as read out: the palette name in English, 绿码/黄码/红码 in Chinese."""
    if lang == "zh":
        return expr.replace(COLOR_ZH)
    return expr


def _latest_evidence(listed: pl.DataFrame, column: str) -> pl.LazyFrame:
    """Per (person, rule), the latest evidence row: the trigger the rule counts."""
    return (
        listed.lazy()
        .select("_i", evidence=column)
        .explode("evidence")
        .filter(pl.col("evidence").is_not_null())
        .unnest("evidence")
        .filter(pl.col("rule").is_not_null())
        .sort("_i", "rule", "time", "feed", "detail", nulls_last=False)
        .group_by("_i", "rule")
        .agg(pl.all().last())
    )


def _titles(before: SideMeta, after: SideMeta, lang: str) -> pl.LazyFrame:
    rules = list(dict.fromkeys([*before.rule_titles, *after.rule_titles]))
    return pl.LazyFrame(
        {"rule": rules, "title": [after.title(r, lang) or before.title(r, lang) for r in rules]},
        schema={"rule": pl.String, "title": pl.String},
    )


def _evidence_text(t: dict[str, Any], lang: str, days_to: pl.Expr | None) -> pl.Expr:
    """" (contacts, identified 2022-06-10 14:00)" from the joined evidence columns, or ""."""
    feed = pl.col("feed")  # the feed's name (hcode.feeds), as in explain and in rule texts
    detail = pl.when(pl.col("detail").fill_null("") != "").then(pl.col("detail") + " ").otherwise(pl.lit(""))
    parts = [pl.lit(t["open"]), feed, pl.lit(t["comma"]), detail,
             pl.col("time").dt.strftime(TIME_FMT)]
    if days_to is not None:
        days = (days_to - pl.col("time")).dt.total_days().cast(pl.String)
        before_txt = t["days_before"].split("{n}")
        parts += [pl.lit(t["comma"] + before_txt[0]), days, pl.lit(before_txt[1])]
    parts.append(pl.lit(t["close"]))
    return pl.when(pl.col("feed").is_not_null()).then(pl.concat_str(parts)).otherwise(pl.lit(""))


def _rule_clauses(listed: pl.DataFrame, column: str, order: int, evidence: pl.LazyFrame,
                  titles: pl.LazyFrame, verb: pl.Expr, ev: pl.Expr) -> pl.LazyFrame:
    return (
        listed.lazy()
        .select("_i", "before", "after", rule=pl.col(column))
        .filter(pl.col("after").is_not_null())
        .with_columns(pos=pl.int_ranges(pl.col("rule").list.len(), dtype=pl.Int32))
        .explode("rule", "pos")
        .filter(pl.col("rule").is_not_null())
        .join(titles, on="rule", how="left")
        .join(evidence, on=["_i", "rule"], how="left")
        .select(
            "_i",
            order=pl.lit(order, pl.Int32),
            pos="pos",
            text=pl.concat_str([pl.col("rule"), pl.lit(" "), pl.col("title").fill_null(""),
                                pl.lit(" "), verb, ev]).str.replace_all("  ", " "),
        )
    )


def _override_clause(listed: pl.DataFrame, t: dict[str, Any], lang: str) -> pl.LazyFrame:
    o_after, o_before = pl.col("override_after"), pl.col("override_before")
    unknown = "?"
    decided = pl.concat_str([
        pl.lit(t["override"]), o_after.struct.field("authority").fill_null(unknown),
        pl.lit(t["comma"] + t["basis"]), o_after.struct.field("basis").fill_null(unknown),
        pl.lit(t["comma"] + t["operator"]), o_after.struct.field("operator").fill_null(unknown),
        pl.when(o_after.struct.field("reason").fill_null("") != "")
        .then(pl.lit(t["comma"] + t["reason"]) + o_after.struct.field("reason")).otherwise(pl.lit("")),
    ])
    a_b = o_before.struct.field("authority").fill_null(unknown)
    exp_b = o_before.struct.field("expires_at")
    ended = pl.when(exp_b.is_not_null()).then(
        pl.format(t["override_expired"].replace("{a}", "{}").replace("{t}", "{}"), a_b, exp_b.dt.strftime(TIME_FMT))
    ).otherwise(pl.format(t["override_ended"].replace("{a}", "{}"), a_b))
    not_applied = pl.format(
        t["not_applied"].replace("{a}", "{}").replace("{c}", "{}"),
        o_after.struct.field("authority").fill_null(unknown),
        color_name(o_after.struct.field("color").fill_null(unknown), lang),
    )
    present = pl.col("after").is_not_null()
    text = (
        pl.when(present & (pl.col("rule_after") == "override")).then(decided)
        .when(present & (pl.col("rule_before") == "override")).then(ended)
        .when(present & (o_after.struct.field("applied") == False)).then(not_applied)  # noqa: E712
    )
    return (
        listed.lazy()
        .select("_i", order=pl.lit(0, pl.Int32), pos=pl.lit(0, pl.Int32), text=text)
        .filter(pl.col("text").is_not_null())
    )


def explain(listed: pl.DataFrame, before: SideMeta, after: SideMeta, lang: str) -> pl.DataFrame:
    """Add `explanation` to the listed rows (colour changes and rule-only changes); the rows
    carry both sides' `evidence_before` / `evidence_after`, dropped here once used."""
    t = TEXT[lang]
    listed = listed.with_row_index("_i")  # the person inside this function: cheaper than the key
    titles = _titles(before, after, lang)
    same_rules = (before.ruleset, before.version) == (after.ruleset, after.version)
    same_date = before.as_of == after.as_of
    version = after.version if before.ruleset == after.ruleset else f"{after.ruleset}@{after.version}"
    cutoff_after = pl.lit(after.as_of).cast(TIMESTAMP) + pl.duration(days=1)

    appeared = pl.col("before").is_null()
    if same_rules or not same_date:
        started_verb = pl.when(appeared).then(pl.lit(t["matches"])).otherwise(pl.lit(t["started"]))
    else:
        started_verb = pl.lit(t["matches_under"].format(v=version))
    days_to = None
    if same_rules and same_date:
        stopped_verb = t["stopped_data"]
    elif same_rules:
        stopped_verb = t["stopped_asof"].format(d=after.as_of.isoformat())
        days_to = cutoff_after
    elif same_date:
        stopped_verb = t["stopped_under"].format(v=version)
    else:
        stopped_verb = t["stopped_under_asof"].format(v=version, d=after.as_of.isoformat())

    ev_b, ev_a = _latest_evidence(listed, "evidence_before"), _latest_evidence(listed, "evidence_after")
    still = (
        listed.lazy()
        .filter(pl.col("after").is_not_null() & pl.col("rule_after").is_not_null()
                & (pl.col("rule_after") != "override")
                & ~pl.col("rules_started").list.contains(pl.col("rule_after")))
        .select("_i", rule="rule_after")
        .join(titles, on="rule", how="left")
        .join(ev_a, on=["_i", "rule"], how="left")
        .select("_i", order=pl.lit(3, pl.Int32), pos=pl.lit(0, pl.Int32),
                text=pl.concat_str([pl.col("rule"), pl.lit(" "), pl.col("title").fill_null(""),
                                    pl.lit(" " + t["still"]), _evidence_text(t, lang, None)]))
    )
    clauses = pl.concat([
        _override_clause(listed, t, lang),
        _rule_clauses(listed, "rules_stopped", 1, ev_b, titles, pl.lit(stopped_verb),
                      _evidence_text(t, lang, days_to)),
        _rule_clauses(listed, "rules_started", 2, ev_a, titles, started_verb,
                      _evidence_text(t, lang, None)),
        still,
    ])
    joined_clauses = (
        clauses.sort("_i", "order", "pos")
        .group_by("_i", maintain_order=True)
        .agg(clauses=pl.col("text").str.join(t["sep"]))
    )
    deciding_title = titles.select(rule_after="rule", deciding_title="title")

    arrow = pl.concat_str([color_name(pl.col("before").fill_null("absent"), lang), pl.lit(" → "),
                           color_name(pl.col("after").fill_null("absent"), lang)])
    rule_change = pl.format(
        t["rule_change"].replace("{c}", "{}").replace("{rb}", "{}").replace("{ra}", "{}"),
        color_name(pl.col("after"), lang), pl.col("rule_before").fill_null(t["nobody"]),
        pl.col("rule_after").fill_null(t["nobody"]),
    )
    fallback = (
        pl.when(pl.col("rule_after").is_null()).then(pl.lit(t["no_rule"]))
        .otherwise(pl.concat_str([pl.col("rule_after"), pl.lit(" "), pl.col("deciding_title").fill_null(""),
                                  pl.lit(" " + t["decides"])]))
    )
    body = (
        pl.when(pl.col("after").is_null()).then(pl.lit(t["gone"]))
        .when(pl.col("before").is_null()).then(
            pl.when(pl.col("clauses").is_not_null())
            .then(pl.lit(t["newly"] + t["sep"]) + pl.col("clauses")).otherwise(pl.lit(t["newly"])))
        .otherwise(pl.coalesce(pl.col("clauses"), fallback))
    )
    head = pl.when(pl.col("is_change")).then(arrow).otherwise(rule_change)
    explanation = (
        listed.lazy()
        .select("_i", "before", "after", "rule_before", "rule_after", "is_change")
        .join(joined_clauses, on="_i", how="left")
        .join(deciding_title, on="rule_after", how="left")
        .sort("_i")  # align with `listed` whatever order the joins kept
        .select(explanation=pl.concat_str([head, pl.lit(t["colon"]), body]).str.replace_all("  +", " "))
        .collect()
        .to_series()
    )
    return listed.drop("_i", "evidence_before", "evidence_after").with_columns(explanation)
