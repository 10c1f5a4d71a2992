"""Small deterministic sides for the diff and report tests (no engine, no warehouse).

The pair mirrors the auditor's question: Shanghai 2022.05.23 against the 2022.06.28
candidate on the same data, with a person for every kind of movement (released, moved to
yellow, override, newly registered, gone, rule-only change, mutual recognition), and a
background of unchanged persons spread over three districts.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import polars as pl

from hcode.diff.changes import CODES_SCHEMA, Side

TITLES = {
    "SH-R-01": {"en": "Initial screening or pooled positive", "zh": "初筛阳性或混管阳性"},
    "SH-R-02": {"en": "Confirmed, asymptomatic or suspected case", "zh": "确诊、无症状或疑似病例"},
    "SH-R-03": {"en": "Close contact", "zh": "密切接触者"},
    "SH-R-04": {"en": "Entry personnel (Macau excluded)", "zh": "入境人员（澳门除外）"},
    "SH-R-05": {"en": "Came from a high-risk area", "zh": "来自高风险地区"},
    "NR-R-01": {"en": "Another province's code is red", "zh": "外省健康码为红码"},
    "NR-Y-01": {"en": "Another province's code is yellow", "zh": "外省健康码为黄码"},
}
TITLES_0628 = {
    **{k: v for k, v in TITLES.items() if not k.startswith("NR")},
    "NR-R-01": TITLES["NR-R-01"],
    "NR-Y-01": TITLES["NR-Y-01"],
    "SH-Y-03": {"en": "Close contact, home health monitoring", "zh": "密接居家健康监测"},
    "SH-Y-04": {"en": "Entry personnel, home health monitoring", "zh": "入境人员居家健康监测"},
}
PALETTE = ("green", "yellow", "red")
DISTRICTS = ("310101", "310104", "310115")


def key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def ts(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s)


def ev(rule, feed, time, detail):
    return {"rule": rule, "feed": feed, "time": ts(time), "detail": detail}


def row(name, district, color, rule=None, matched=(), evidence=(), override=None):
    return {
        "person_key": key(name), "district_code": district, "color": color, "rule": rule,
        "matched_rules": list(matched), "evidence": list(evidence), "override": override,
        "explanation": "",
    }


OVERRIDE = {
    "color": "green", "authority": "Shanghai Health Commission", "basis": "Notice 2022-47",
    "operator": "op-0193", "reason": "recovered, discharge list late",
    "issued_at": ts("2022-06-20 09:00"), "expires_at": None, "applied": True,
}
CONTACT = ev("SH-R-03", "contacts", "2022-06-18 10:00", "identified")
ENTRY = ev("SH-R-04", "entries", "2022-06-24 08:30", "entered from HK")


def background(n: int = 24) -> list[dict]:
    return [row(f"bg{i}", DISTRICTS[i % 3], "green") for i in range(n)]


def side(label, version, as_of, rows, titles=TITLES, run_id=None) -> Side:
    codes = pl.DataFrame(rows, schema=CODES_SCHEMA)
    return Side(label=label, run_id=run_id, ruleset="shanghai", version=version, as_of=as_of,
                palette=PALETTE, rule_titles=titles, codes=codes)


def ruleset_pair() -> tuple[Side, Side]:
    """shanghai@2022.05.23 (before) against shanghai@2022.06.28 (after), as of 2022-06-26."""
    as_of = dt.date(2022, 6, 26)
    before = background() + [
        row("moved-yellow", "310101", "red", "SH-R-03", ["SH-R-03"], [CONTACT]),
        row("released", "310104", "red", "SH-R-03", ["SH-R-03"],
            [ev("SH-R-03", "contacts", "2022-06-15 16:20", "identified")]),
        row("override", "310115", "red", "SH-R-02", ["SH-R-02"],
            [ev("SH-R-02", "cases", "2022-05-02 11:00", "confirmed")]),
        row("rule-only", "310101", "red", "SH-R-03", ["SH-R-03", "SH-R-04"], [CONTACT, ENTRY]),
        row("gone", "310104", "yellow", "NR-Y-01", ["NR-Y-01"],
            [ev("NR-Y-01", "inbound_codes", "2022-06-25 07:00", "yellow from Zhejiang")]),
        row("inbound", "310115", "green"),
    ]
    after = background() + [
        row("moved-yellow", "310101", "yellow", "SH-Y-03", ["SH-Y-03"],
            [ev("SH-Y-03", "contacts", "2022-06-18 10:00", "identified")]),
        row("released", "310104", "green"),
        row("override", "310115", "green", "override", ["SH-R-02"],
            [ev("SH-R-02", "cases", "2022-05-02 11:00", "confirmed")], OVERRIDE),
        row("rule-only", "310101", "red", "SH-R-04", ["SH-R-04"], [ENTRY]),
        row("newcomer", "310115", "green"),
        row("inbound", "310115", "red", "NR-R-01", ["NR-R-01"],
            [ev("NR-R-01", "inbound_codes", "2022-06-26 08:00", "red from Jiangsu")]),
    ]
    return (side("shanghai@2022.05.23", "2022.05.23", as_of, before),
            side("shanghai@2022.06.28", "2022.06.28", as_of, after, TITLES_0628))


def nightly_pair() -> tuple[Side, Side]:
    """Run 7 (as of 2022-06-14) against run 8 (as of 2022-06-15), same ruleset."""
    before = background(6) + [
        row("released", "310104", "red", "SH-R-03", ["SH-R-03"],
            [ev("SH-R-03", "contacts", "2022-06-01 10:00", "identified")]),
        row("new-contact", "310101", "green"),
    ]
    after = background(6) + [
        row("released", "310104", "green"),
        row("new-contact", "310101", "red", "SH-R-03", ["SH-R-03"], [CONTACT]),
    ]
    return (side("run 7", "2022.05.23", dt.date(2022, 6, 14), before, run_id=7),
            side("run 8", "2022.05.23", dt.date(2022, 6, 15), after, run_id=8))
