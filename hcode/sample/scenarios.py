"""Planted persons' scenarios: named residents whose codes are known in advance.

Every scenario sits inside or just outside a window or a release of a rule of a shipped
ruleset, relative to the cut-off C = D+1 00:00, so that even a small sample night exercises
every rule and every movement between `shanghai@2022.05.23` and `shanghai@2022.06.28`.

The expected codes are written out by hand from the text of the spec's rules page (not
computed by any engine code): they are an independent oracle for the engine. Each
expectation reads ``"<color>: <rules in ruleset order>"``, or ``"<color> by override:
<rules the override overrode>"``, or ``"absent"`` (not registered before C, so no code).
Times are offsets from C; `d(-9, 10)` is C - 9 days + 10 h (for D = 2022-06-14: 2022-06-06
10:00). A time may carry a format: ``T(...)`` is written ``YYYY-MM-DDTHH:MM:SS`` and
``DATE(...)`` as a bare date (the offset must then be a midnight).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DAY = 86_400
HOUR = 3_600

# Rule order of each shipped ruleset, from the spec's tables (a ruleset that extends another
# keeps its parent's order; replaced rules keep their place; new rules come after).
RULESETS: dict[str, tuple[str, ...]] = {
    "shanghai@2022.05.23": ("SH-R-01", "SH-R-02", "SH-R-03", "SH-R-04", "SH-R-05", "NR-R-01", "NR-Y-01"),
    "shanghai@2022.06.28": ("SH-R-01", "SH-R-02", "SH-R-03", "SH-R-04", "SH-R-05", "NR-R-01", "NR-Y-01",
                            "SH-Y-03", "SH-Y-04"),
    "zhejiang@2022.03.01": ("ZJ-R-01", "ZJ-R-02", "ZJ-R-03", "ZJ-R-04", "ZJ-R-05", "ZJ-Y-01", "ZJ-Y-02",
                            "NR-R-01", "NR-Y-01"),
}
PALETTE = ("green", "yellow", "red")

# Regions with planted risk-area rows (Wuhan districts); random rows never use them.
R_HIGH, R_LATE, R_MED, R_SWITCH, R_LOW = "420102", "420103", "420104", "420105", "420106"
PLANTED_REGIONS = (R_HIGH, R_LATE, R_MED, R_SWITCH, R_LOW)
HOME_DISTRICT = "310101"


def d(days: int, hours: int = 0, minutes: int = 0, seconds: int = 0) -> int:
    """Seconds relative to the cut-off C."""
    return days * DAY + hours * HOUR + minutes * 60 + seconds


def T(t: int) -> tuple[int, str]:
    return (t, "T")


def DATE(t: int) -> tuple[int, str]:
    assert t % DAY == 0, "a bare date is a midnight"
    return (t, "date")


Ts = int | tuple[int, str]
Event = tuple[str, dict[str, Any]]  # (feed, {column: value}); timestamps are `Ts`


def nat(t: Ts, result: str = "negative", pooled: bool = False) -> Event:
    return ("nat_results", {"sampled_at": t, "result": result, "pooled": "true" if pooled else "false"})


def case(t: Ts, kind: str = "confirmed") -> Event:
    return ("cases", {"case_type": kind, "reported_at": t})


def discharge(t: Ts) -> Event:
    return ("discharges", {"discharged_at": t})


def contact(t: Ts, level: str = "close") -> Event:
    return ("contacts", {"contact_level": level, "identified_at": t})


def entry(t: Ts, origin: str) -> Event:
    return ("entries", {"entered_at": t, "origin": origin})


def trip(t: Ts, region: str, source: str = "telecom") -> Event:
    return ("trips", {"region_code": region, "visited_at": t, "source": source})


def symptom(t: Ts, kind: str, reporter: str) -> Event:
    return ("symptoms", {"symptom": kind, "reported_at": t, "reporter": reporter})


def isolation(start: Ts, end: Ts | None, kind: str = "home_health_observation") -> Event:
    return ("isolation", {"kind": kind, "started_at": start, "ended_at": end})


def inbound(t: Ts, province: str, color: str) -> Event:
    return ("inbound_codes", {"province": province, "color": color, "since": t})


def override(issued: Ts, color: str, expires: Ts | None = None, why: int = 0) -> Event:
    authority, basis, operator, reason = OVERRIDE_TEXTS[why % len(OVERRIDE_TEXTS)]
    return ("overrides", {"color": color, "authority": authority, "basis": basis, "operator": operator,
                          "reason": reason, "issued_at": issued, "expires_at": expires})


def reg(t: Ts, district: str = HOME_DISTRICT) -> Event:
    return ("registrations", {"registered_at": t, "district_code": district})


OVERRIDE_TEXTS = (
    ("上海市疫情防控工作领导小组办公室", "沪防控办〔2022〕45号 健康码管理规定第十二条", "王芳",
     "出院满七天且复检阴性，经区疾控中心核实予以转码"),
    ("浙江省新型冠状病毒肺炎疫情防控工作领导小组办公室", "浙防指办〔2022〕17号 健康码赋码管理机制通知",
     "李建国", "经流调核实非密切接触者，申请转为绿码"),
    ("徐汇区卫生健康委员会", "健康码异常申诉处理规程第五条", "工号 XH0231",
     "社区排查发现漏报行程，依规人工赋红码"),
)

# Risk-area rows for the planted regions: (region_code, level, valid_from, valid_to).
PLANTED_RISK_AREAS: tuple[tuple[str, str, Ts, Ts | None], ...] = (
    (R_HIGH, "high", d(-30), None),
    (R_LATE, "low", d(-30), d(-3)),
    (R_LATE, "high", d(-3), None),
    (R_MED, "medium", d(-20), None),
    (R_SWITCH, "high", d(-20), d(-10)),
    (R_SWITCH, "medium", d(-10), None),
    (R_LOW, "low", d(-30), None),
)


@dataclass(frozen=True)
class Scenario:
    key: str
    text: str
    events: tuple[Event, ...]
    sh0523: str
    sh0628: str
    zj: str
    registrations: tuple[Event, ...] = field(default=(reg(d(-400, 9)),))

    def expectations(self) -> dict[str, str]:
        return dict(zip(RULESETS, (self.sh0523, self.sh0628, self.zj), strict=True))


def _s(key: str, text: str, events: list[Event], sh0523: str, sh0628: str | None = None,
       zj: str = "green", registrations: list[Event] | None = None) -> Scenario:
    return Scenario(key, text, tuple(events), sh0523, sh0628 if sh0628 is not None else sh0523, zj,
                    tuple(registrations) if registrations is not None else (reg(d(-400, 9)),))


SCENARIOS: tuple[Scenario, ...] = (
    # --- NAT results (SH-R-01; Zhejiang has no rule for a positive NAT alone) ---
    _s("nat_positive_recent", "Single-tube positive 3 days before C, nothing after it.",
       [nat(d(-3, 10), "positive")], "red: SH-R-01"),
    _s("nat_pooled_positive", "Pooled (10-in-1) positive 2 days before C.",
       [nat(d(-2, 9), "positive", pooled=True)], "red: SH-R-01"),
    _s("nat_positive_then_single_negative", "Pooled positive, then a single-tube negative a day later.",
       [nat(d(-5, 8), "positive", pooled=True), nat(d(-4, 8))], "green"),
    _s("nat_positive_then_pooled_negative", "Positive, then only a pooled negative: not released.",
       [nat(d(-5, 8), "positive"), nat(d(-4, 8), pooled=True)], "red: SH-R-01"),
    _s("nat_positive_at_window_start", "Positive sampled exactly 14 days before C (inside the window).",
       [nat(T(d(-14)), "positive")], "red: SH-R-01"),
    _s("nat_positive_1s_outside_window", "Positive sampled 14 days + 1 second before C (outside).",
       [nat(d(-14) - 1, "positive")], "green"),
    _s("nat_negative_same_second", "Single-tube negative at the same second as the positive: not after it.",
       [nat(d(-3, 10), "positive"), nat(d(-3, 10))], "red: SH-R-01"),
    _s("nat_positive_after_cutoff", "Positive sampled 2 h after the cut-off: ignored.",
       [nat(d(0, 2), "positive")], "green"),
    _s("nat_negative_before_positive", "A single-tube negative before the positive does not release it.",
       [nat(d(-6, 9)), nat(d(-3, 9), "positive")], "red: SH-R-01"),
    _s("nat_negative_after_cutoff", "Positive; the releasing negative was sampled after the cut-off.",
       [nat(d(-2, 9), "positive"), nat(d(0, 1))], "red: SH-R-01"),
    # --- cases and discharges (SH-R-02, ZJ-R-01) ---
    _s("case_old_no_discharge", "Confirmed 45 days before C, no discharge row: red however old.",
       [case(d(-45, 10))], "red: SH-R-02", zj="red: ZJ-R-01"),
    _s("case_discharged", "Asymptomatic case 30 days before C, discharged 10 days later.",
       [case(d(-30, 10), "asymptomatic"), discharge(d(-20, 15))], "green"),
    _s("case_discharge_before_latest_case", "Case, discharge, then a new case: the discharge is older.",
       [case(d(-40, 10)), discharge(d(-30, 10)), case(d(-10, 10), "asymptomatic")],
       "red: SH-R-02", zj="red: ZJ-R-01"),
    _s("case_discharge_same_second", "Discharge at the same second as the case report ('at or after').",
       [case(d(-20, 10)), discharge(d(-20, 10))], "green"),
    _s("case_discharge_after_cutoff", "Case 20 days before C; the discharge is dated after the cut-off.",
       [case(d(-20, 10)), discharge(d(0, 3))], "red: SH-R-02", zj="red: ZJ-R-01"),
    _s("case_suspected_recent", "Suspected case reported the day before C.",
       [case(d(-1, 16), "suspected")], "red: SH-R-02", zj="red: ZJ-R-01"),
    # --- close contacts (SH-R-03, ZJ-R-02; 2022.06.28: SH-R-03 7 d/+6, SH-Y-03 days 8-10) ---
    _s("contact_exactly_14d_exit_test", "Close contact exactly 14 days before C (bare date), exit test at +12 d.",
       [contact(DATE(d(-14))), nat(d(-2))], "red: SH-R-03", "green", zj="red: ZJ-R-02"),
    _s("contact_14d_plus_1s_exit_test", "Close contact 14 days + 1 s before C, exit test exactly at +12 d.",
       [contact(d(-14) - 1), nat(d(-2) - 1)], "green"),
    _s("contact_exit_test_1s_early", "Close contact 20 days before C, exit test 1 s before +12 d.",
       [contact(d(-20, 10)), nat(d(-8, 10) - 1)], "red: SH-R-03", "green", zj="red: ZJ-R-02"),
    _s("contact_exit_test_on_time", "Close contact 20 days before C, exit test exactly at +12 d.",
       [contact(d(-20, 10)), nat(d(-8, 10))], "green"),
    _s("contact_exit_test_pooled", "Close contact 20 days before C; the only later negative is pooled.",
       [contact(d(-20, 10)), nat(d(-6, 10), pooled=True)], "red: SH-R-03", zj="red: ZJ-R-02"),
    _s("contact_later_restarts_clock", "Close contacts 30 and 20 days before C; the negative 15 days before C "
       "releases the first but not the second.",
       [contact(d(-30, 10)), contact(d(-20, 10)), nat(d(-15, 10))], "red: SH-R-03", zj="red: ZJ-R-02"),
    _s("contact_day9_exit_test", "Close contact on day 9 before C, single-tube negative 7 days later.",
       [contact(d(-9, 10)), nat(d(-2, 9))], "red: SH-R-03", "yellow: SH-Y-03", zj="red: ZJ-R-02"),
    _s("contact_day9_no_test", "Close contact on day 9 before C, no test since.",
       [contact(d(-9, 10))], "red: SH-R-03", "red: SH-R-03 SH-Y-03", zj="red: ZJ-R-02"),
    _s("contact_day12_exit_test", "Close contact on day 12 before C, single-tube negative 7 days later.",
       [contact(d(-12, 10)), nat(d(-5, 10))], "red: SH-R-03", "green", zj="red: ZJ-R-02"),
    _s("contact_exactly_7d_exit_test", "Close contact exactly 7 days before C, exit test at +6 d.",
       [contact(d(-7)), nat(d(-1))], "red: SH-R-03", zj="red: ZJ-R-02"),
    _s("contact_7d_plus_1s_exit_test", "Close contact 7 days + 1 s before C, exit test at +6 d + 1 s.",
       [contact(d(-7) - 1), nat(d(-1))], "red: SH-R-03", "yellow: SH-Y-03", zj="red: ZJ-R-02"),
    _s("contact_exactly_10d_exit_test", "Close contact exactly 10 days before C, exit test at +7 d.",
       [contact(d(-10)), nat(d(-3))], "red: SH-R-03", "yellow: SH-Y-03", zj="red: ZJ-R-02"),
    _s("contact_10d_plus_1s_exit_test", "Close contact 10 days + 1 s before C, exit test at +7 d.",
       [contact(d(-10) - 1), nat(d(-3))], "red: SH-R-03", "green", zj="red: ZJ-R-02"),
    _s("contact_secondary_only", "Secondary contact 2 days before C: no rule for it.",
       [contact(d(-2, 11), "secondary")], "green"),
    _s("contact_secondary_does_not_restart", "Close contact released by an exit test, then a secondary contact.",
       [contact(d(-20, 10)), nat(d(-7, 10)), contact(d(-2, 10), "secondary")], "green"),
    _s("contact_after_cutoff", "Close contact identified 1 h after the cut-off: ignored.",
       [contact(d(0, 1))], "green"),
    # --- entries (SH-R-04 excludes MO; ZJ-R-03 all origins; 2022.06.28: SH-R-04 7 d/+6, SH-Y-04) ---
    _s("entry_mo_recent", "Entered from MO 5 days before C: green in Shanghai, red in Zhejiang.",
       [entry(d(-5, 10), "MO")], "green", zj="red: ZJ-R-03"),
    _s("entry_hk_recent", "Entered from HK 3 days before C.",
       [entry(d(-3, 16), "HK")], "red: SH-R-04", zj="red: ZJ-R-03"),
    _s("entry_old_not_released", "Entered from TW 20 days before C, never tested since.",
       [entry(d(-20, 10), "TW")], "red: SH-R-04", zj="red: ZJ-R-03"),
    _s("entry_old_released", "Entered from US 20 days before C, exit test exactly at +12 d.",
       [entry(d(-20, 10), "US"), nat(d(-8, 10))], "green"),
    _s("entry_hk_then_mo", "HK entry 20 days before C released by an exit test, then an MO entry 3 days "
       "before C (neither fires nor restarts Shanghai's rule).",
       [entry(d(-20, 10), "HK"), nat(d(-7, 10)), entry(d(-3, 10), "MO")], "green", zj="red: ZJ-R-03"),
    _s("entry_later_restarts_clock", "Entries 30 and 18 days before C; negative 8 days before C.",
       [entry(d(-30, 10), "JP"), entry(d(-18, 10), "KR"), nat(d(-8, 10))],
       "red: SH-R-04", "green", zj="red: ZJ-R-03"),
    _s("entry_day9_exit_test", "Entered from SG on day 9 before C, single-tube negative 7 days later.",
       [entry(d(-9, 8), "SG"), nat(d(-2, 8))], "red: SH-R-04", "yellow: SH-Y-04", zj="red: ZJ-R-03"),
    _s("entry_day9_no_test", "Entered from GB on day 9 before C, no test since.",
       [entry(d(-9, 8), "GB")], "red: SH-R-04", "red: SH-R-04 SH-Y-04", zj="red: ZJ-R-03"),
    _s("entry_day12_exit_test", "Entered from JP on day 12 before C, single-tube negative 7 days later.",
       [entry(d(-12, 8), "JP"), nat(d(-5, 9))], "red: SH-R-04", "green", zj="red: ZJ-R-03"),
    _s("entry_day9_mo", "Entered from MO on day 9 before C.",
       [entry(d(-9, 8), "MO")], "green", zj="red: ZJ-R-03"),
    _s("entry_old_mo_not_released", "Entered from MO 20 days before C, never tested since.",
       [entry(d(-20, 10), "MO")], "green", zj="red: ZJ-R-03"),
    # --- trips and risk areas (SH-R-05 high; ZJ-R-04 medium or high) ---
    _s("trip_high_at_visit", "Trip to a region high-risk at the visit, 5 days before C.",
       [trip(d(-5, 12), R_HIGH, "railway")], "red: SH-R-05", zj="red: ZJ-R-04"),
    _s("trip_high_started_after_visit", "Trip to a region that became high-risk 2 days after the visit.",
       [trip(d(-5, 12), R_LATE)], "green"),
    _s("trip_medium", "Trip to a medium-risk region 4 days before C.",
       [trip(d(-4, 15), R_MED)], "green", zj="red: ZJ-R-04"),
    _s("trip_high_at_window_start", "Trip to a high-risk region exactly 14 days before C.",
       [trip(d(-14), R_HIGH, "aviation")], "red: SH-R-05", zj="red: ZJ-R-04"),
    _s("trip_high_1s_outside_window", "Trip to a high-risk region 14 days + 1 s before C.",
       [trip(d(-14) - 1, R_HIGH)], "green"),
    _s("trip_at_valid_to", "Trip at the very second a high period ended and a medium one began.",
       [trip(d(-10), R_SWITCH)], "green", zj="red: ZJ-R-04"),
    _s("trip_1s_before_valid_to", "Trip 1 s before the region's high period ended.",
       [trip(d(-10) - 1, R_SWITCH)], "red: SH-R-05", zj="red: ZJ-R-04"),
    _s("trip_low", "Trip to a low-risk region.", [trip(d(-2, 10), R_LOW, "aviation")], "green"),
    _s("trip_after_cutoff", "Trip to a high-risk region 30 min after the cut-off: ignored.",
       [trip(d(0, 0, 30), R_HIGH)], "green"),
    # --- symptoms (ZJ-R-05 clinic fever, ZJ-Y-01 self reports; released by two negatives > 24 h apart) ---
    _s("self_fever_negatives_25h", "Self-reported fever, then negatives 25 h apart (one pooled).",
       [symptom(d(-3, 9), "fever", "self"), nat(d(-3, 20), pooled=True), nat(d(-2, 21))], "green"),
    _s("self_fever_negatives_23h", "Self-reported fever, then negatives only 23 h apart.",
       [symptom(d(-3, 9), "fever", "self"), nat(d(-3, 20)), nat(d(-2, 19))], "green", zj="yellow: ZJ-Y-01"),
    _s("self_fever_negatives_24h", "Self-reported fever, then negatives exactly 24 h apart (not more).",
       [symptom(d(-3, 9), "fever", "self"), nat(d(-3, 20)), nat(d(-2, 20))], "green", zj="yellow: ZJ-Y-01"),
    _s("clinic_fever_old_no_tests", "Fever recorded by a clinic 30 days before C, no negatives since.",
       [symptom(d(-30, 10), "fever", "clinic")], "green", zj="red: ZJ-R-05"),
    _s("clinic_fever_released", "Clinic fever, then two pooled negatives 48 h apart.",
       [symptom(d(-6, 10), "fever", "clinic"), nat(d(-5, 9), pooled=True), nat(d(-3, 9), pooled=True)],
       "green"),
    _s("clinic_respiratory", "A clinic recorded a respiratory symptom (no rule for it).",
       [symptom(d(-2, 10), "respiratory", "clinic")], "green"),
    _s("self_symptom_negatives_before", "Self-reported shortness of breath; two negatives before it, one after.",
       [nat(d(-4, 9)), nat(d(-3, 9)), symptom(d(-2, 10), "shortness_of_breath", "self"), nat(d(-1, 9))],
       "green", zj="yellow: ZJ-Y-01"),
    _s("self_symptom_negative_same_second", "Self report; a negative at the same second and one 30 h later.",
       [symptom(d(-3, 10), "respiratory", "self"), nat(d(-3, 10)), nat(d(-1, 16))],
       "green", zj="yellow: ZJ-Y-01"),
    _s("self_symptom_later_report_restarts", "Self fever released by two negatives, then a new self report.",
       [symptom(d(-10, 10), "fever", "self"), nat(d(-9, 10)), nat(d(-7, 10)),
        symptom(d(-2, 10), "respiratory", "self")], "green", zj="yellow: ZJ-Y-01"),
    _s("clinic_and_self_fever", "Clinic fever and a self-reported fever on the same day.",
       [symptom(d(-2, 8), "fever", "self"), symptom(d(-2, 10), "fever", "clinic")],
       "green", zj="red: ZJ-R-05 ZJ-Y-01"),
    _s("self_fever_negative_after_cutoff", "Self fever; negatives 1 day before and 2 h after the cut-off.",
       [symptom(d(-2, 10), "fever", "self"), nat(d(-1, 9)), nat(d(0, 2))], "green", zj="yellow: ZJ-Y-01"),
    # --- isolation (ZJ-Y-02 home health observation) ---
    _s("hho_ongoing", "Home health observation started 3 days before C, no end.",
       [isolation(d(-3, 10), None)], "green", zj="yellow: ZJ-Y-02"),
    _s("hho_ends_at_cutoff", "Home health observation ending exactly at C: still running at C.",
       [isolation(d(-7, 10), d(0))], "green", zj="yellow: ZJ-Y-02"),
    _s("hho_ended", "Home health observation that ended 3 days before C.",
       [isolation(d(-10, 10), d(-3, 10))], "green"),
    _s("hho_ends_in_future", "Home health observation with a planned end 5 days after C.",
       [isolation(d(-2, 10), d(5, 10))], "green", zj="yellow: ZJ-Y-02"),
    _s("hho_starts_after_cutoff", "Home health observation starting 1 h after the cut-off.",
       [isolation(d(0, 1), None)], "green"),
    _s("centralized_only", "Ongoing centralized isolation (no rule for it).",
       [isolation(d(-3, 10), None, "centralized")], "green"),
    # --- inbound codes (NR-R-01, NR-Y-01) ---
    _s("inbound_red", "Guangdong (44) set the code red 2 days before C.",
       [inbound(d(-2, 8), "44", "red")], "red: NR-R-01", zj="red: NR-R-01"),
    _s("inbound_yellow", "Jiangsu (32) set the code yellow the day before C.",
       [inbound(d(-1, 8), "32", "yellow")], "yellow: NR-Y-01", zj="yellow: NR-Y-01"),
    _s("inbound_red_then_green", "Beijing (11) red, then green: the latest row counts.",
       [inbound(d(-5, 8), "11", "red"), inbound(d(-2, 8), "11", "green")], "green"),
    _s("inbound_tie_same_since", "Hubei (42) sent red and yellow with the same `since`: red wins.",
       [inbound(d(-3, 8), "42", "red"), inbound(d(-3, 8), "42", "yellow")],
       "red: NR-R-01", zj="red: NR-R-01"),
    _s("inbound_green_after_cutoff", "Liaoning (21) red; its green came 1 h after the cut-off.",
       [inbound(d(-4, 8), "21", "red"), inbound(d(0, 1), "21", "green")], "red: NR-R-01", zj="red: NR-R-01"),
    _s("inbound_two_provinces", "Guangdong red and Jiangsu yellow at the same time.",
       [inbound(d(-3, 8), "44", "red"), inbound(d(-2, 8), "32", "yellow")],
       "red: NR-R-01 NR-Y-01", zj="red: NR-R-01 NR-Y-01"),
    _s("inbound_orange", "Guangxi (45) sent orange, a color no rule maps.",
       [inbound(d(-2, 8), "45", "orange")], "green"),
    _s("inbound_color_case", "Fujian (35) sent 'Yellow' (colors are lower-cased).",
       [inbound(d(-2, 8), "35", "Yellow")], "yellow: NR-Y-01", zj="yellow: NR-Y-01"),
    # --- overrides (manual transcoding) ---
    _s("override_red_to_green", "Old case without discharge (red), override to green 2 days before C.",
       [case(d(-40, 10)), override(d(-2, 15), "green")],
       "green by override: SH-R-02", zj="green by override: ZJ-R-01"),
    _s("override_green_to_red_no_rule", "No events; override to red: unsupported by any rule.",
       [override(d(-1, 11), "red", why=2)], "red by override:", zj="red by override:"),
    _s("override_expired", "Old case (red); its green override expired the day before C.",
       [case(d(-40, 10)), override(d(-10, 9), "green", d(-1, 9))], "red: SH-R-02", zj="red: ZJ-R-01"),
    _s("override_expires_at_cutoff", "Old case (red); green override expiring exactly at C: still active.",
       [case(d(-40, 10)), override(d(-10, 9), "green", d(0), why=1)],
       "green by override: SH-R-02", zj="green by override: ZJ-R-01"),
    _s("override_purple_not_applied", "Close contact (red); older green override, latest override 'purple' "
       "(outside the palette: not applied, and the older one does not take its place).",
       [contact(d(-3, 10)), override(d(-5, 9), "green"), override(d(-1, 9), "purple")],
       "red: SH-R-03", zj="red: ZJ-R-02"),
    _s("override_latest_wins", "Override to red, then a later override to green.",
       [override(d(-5, 9), "red", why=2), override(d(-2, 9), "green")],
       "green by override:", zj="green by override:"),
    _s("override_tie_more_severe", "Two overrides issued at the same second, green and yellow: yellow wins.",
       [override(d(-2, 9), "green"), override(d(-2, 9), "yellow", why=1)],
       "yellow by override:", zj="yellow by override:"),
    _s("override_issued_after_cutoff", "Inbound red; green override issued 2 h after the cut-off.",
       [inbound(d(-2, 8), "44", "red"), override(d(0, 2), "green")], "red: NR-R-01", zj="red: NR-R-01"),
    # --- registrations (the population) ---
    _s("registered_after_cutoff", "Registered 3 h after the cut-off (positive NAT): not in the population.",
       [nat(d(-2, 9), "positive")], "absent", zj="absent", registrations=[reg(d(0, 3))]),
    _s("registered_exactly_at_cutoff", "Registered exactly at C (bare date D+1): not in the population.",
       [], "absent", zj="absent", registrations=[reg(DATE(d(0)))]),
    _s("registered_1s_before_cutoff", "Registered 1 s before C: in the population.",
       [], "green", registrations=[reg(d(0) - 1)]),
    _s("two_registrations_moved", "Registered in Huangpu, moved to Hangzhou Xihu; pooled positive 2 days "
       "before C. One code; district is the latest registration's.",
       [nat(d(-2, 9), "positive", pooled=True)], "red: SH-R-01",
       registrations=[reg(d(-400, 9), "310101"), reg(T(d(-100, 9)), "330106")]),
    # --- several rules at once ---
    _s("case_and_inbound_yellow", "Suspected case and an inbound yellow from Jiangsu.",
       [case(d(-5, 10), "suspected"), inbound(d(-2, 8), "32", "yellow")],
       "red: SH-R-02 NR-Y-01", zj="red: ZJ-R-01 NR-Y-01"),
    _s("many_reds", "Positive NAT, recent close contact and a trip to a high-risk region.",
       [nat(d(-3, 10), "positive"), contact(d(-4, 10)), trip(d(-6, 10), R_HIGH)],
       "red: SH-R-01 SH-R-03 SH-R-05", zj="red: ZJ-R-02 ZJ-R-04"),
    _s("contact_and_entry_day8_9_exit_test", "Close contact on day 8 and HK entry on day 9, one exit test "
       "the day before C.",
       [contact(d(-8, 10)), entry(d(-9, 10), "HK"), nat(d(-1, 10))],
       "red: SH-R-03 SH-R-04", "yellow: SH-Y-03 SH-Y-04", zj="red: ZJ-R-02 ZJ-R-03"),
    _s("no_events", "Registered, no events at all.", [], "green"),
)
