"""Place codes in a sample night: a site-code registry, about `scans_per_day` scans a resident
a day over 14 days, a few risk places, planted persons for every Henan rule, and the
article's scene.

The scene (day D, the as-of date): at the "Southwest Exit of Zhengzhou Station" (郑州站西南出口)
depositors' scans show red although no rule gives them red (two of them are given red by an
override no rule supports), while the family members who scanned with them show green; at a
market, a control gathering: a case (red by the rules) scanned with companions who show green.
The companions test must flag the first gathering and not the second.

Random residents' scans show green: the only colours more severe than a published code are
the scene's. Planted persons' expectations are written by hand for the four shipped rulesets
(`PLACE_SCENARIOS`), like `scenarios.SCENARIOS` (which predates Henan and has no Henan
expectations).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from hcode.feeds import FEEDS
from hcode.sample.random_events import Context
from hcode.sample.scenarios import DAY, HOUR, Event, Scenario, case, contact, d, inbound, nat, override, reg

HENAN = "henan@2022.06.01"
STATION, STATION_NAME, STATION_DISTRICT = "ZZ-STATION-SW", "郑州站西南出口", "410102"
MARKET, MARKET_NAME, MARKET_DISTRICT = "ZZ-MARKET-ERQI", "二七广场农贸市场", "410103"
HIGH, MEDIUM = "HA-HIGH-01", "HA-MEDIUM-01"
CLINIC1, CLINIC2, CLINIC3 = "HA-CLINIC-01", "HA-CLINIC-02", "HA-CLINIC-03"
PLANTED_PLACES = (  # place_code, name, district, registered (relative to C)
    (STATION, STATION_NAME, STATION_DISTRICT, d(-400)), (MARKET, MARKET_NAME, MARKET_DISTRICT, d(-400)),
    (HIGH, "金水区某KTV", "410105", d(-400)), (MEDIUM, "管城区某超市", "410104", d(-400)),
    (CLINIC1, "中原区某诊所", "410102", d(-400)), (CLINIC2, "惠济区某药店", "410108", d(-400)),
    (CLINIC3, "上街区某餐馆", "410106", d(-400)),
)
PLANTED_RISK_PLACES = ((HIGH, "high", d(-20), None), (MEDIUM, "medium", d(-20), None))
FIRST_PLANTED = 901  # planted ids 901... (scenarios.SCENARIOS use 1...)
KINDS = ("火车站出口", "地铁站", "农贸市场", "超市", "医院", "商场", "餐馆", "银行网点", "药店", "公交站")
BUSY_SHARE = 0.03  # stations and markets: 3 % of the places, 50 times as busy each
OPENING = (7 * HOUR, 22 * HOUR)  # scans happen between 07:00 and 22:00


def scan(place: str, t: int, shown: str = "green") -> Event:
    return ("place_scans", {"place_code": place, "scanned_at": t, "shown_color": shown})


def _p(key: str, text: str, events: list[Event], sh: str, zj: str, ha: str) -> tuple[Scenario, str]:
    return Scenario(key, text, tuple(events), sh, sh, zj, (reg(d(-400, 9)),)), ha


D_ = -DAY  # day D starts at C - 1 day
PLACE_SCENARIOS: tuple[tuple[Scenario, str], ...] = (
    # --- HA-R-03 high-risk places (7 days; released by two negatives > 24 h apart; within 14 days)
    _p("ha_high_recent", "Scanned a high-risk place 2 days before C.", [scan(HIGH, d(-2, 10))],
       "green", "green", "red: HA-R-03"),
    _p("ha_high_old_one_negative", "High-risk place 9 days before C, one negative since: not released.",
       [scan(HIGH, d(-9, 10)), nat(d(-8, 10))], "green", "green", "red: HA-R-03"),
    _p("ha_high_old_released", "High-risk place 9 days before C, negatives 25 hours apart: released.",
       [scan(HIGH, d(-9, 10)), nat(d(-8, 10)), nat(d(-7, 11))], "green", "green", "green"),
    _p("ha_high_15_days", "High-risk place 15 days before C: outside the 14 days.",
       [scan(HIGH, d(-15, 10))], "green", "green", "green"),
    # --- HA-Y-01 medium-risk places (3 days)
    _p("ha_medium_window_start", "Medium-risk place exactly 3 days before C.", [scan(MEDIUM, d(-3))],
       "green", "green", "yellow: HA-Y-01"),
    _p("ha_medium_released", "Medium-risk place 5 days before C, negatives 25 hours apart.",
       [scan(MEDIUM, d(-5, 10)), nat(d(-4, 10)), nat(d(-3, 11))], "green", "green", "green"),
    _p("ha_medium_24h_apart", "Medium-risk place 5 days before C, negatives exactly 24 hours apart.",
       [scan(MEDIUM, d(-5, 10)), nat(d(-4, 10)), nat(d(-3, 10))], "green", "green", "yellow: HA-Y-01"),
    # --- HA-Y-02 space-time companions (30 minutes; the case's scan in [reported - 4 d, reported + 1 d))
    _p("ha_case_a", "Case reported 1 day before C (08:00); scanned clinics 1 and 3.",
       [case(d(-1, 8)), scan(CLINIC1, d(-2, 10), "red"), scan(CLINIC3, d(-5, 8)),
        scan(CLINIC2, d(-5, 7, 59))], "red: SH-R-02", "red: ZJ-R-01", "red: HA-R-01"),
    _p("ha_companion_29", "Scanned clinic 1 29 minutes after the case.", [scan(CLINIC1, d(-2, 10, 29))],
       "green", "green", "yellow: HA-Y-02"),
    _p("ha_companion_31", "Scanned clinic 1 31 minutes after the case.", [scan(CLINIC1, d(-2, 10, 31))],
       "green", "green", "green"),
    _p("ha_companion_30_before", "Scanned clinic 1 exactly 30 minutes before the case.",
       [scan(CLINIC1, d(-2, 9, 30))], "green", "green", "yellow: HA-Y-02"),
    _p("ha_companion_inside_interval", "Companion of the case's scan exactly 4 days before its report "
       "(inside); 5 days before C, not released.", [scan(CLINIC3, d(-5, 8, 10))], "green", "green",
       "yellow: HA-Y-02"),
    _p("ha_companion_outside_interval", "Same time as the case's scan 1 minute before its interval.",
       [scan(CLINIC2, d(-5, 7, 59))], "green", "green", "green"),
    # --- HA-R-01, HA-R-02, NR-R-01 for place persons too
    _p("ha_close_contact", "Close contact identified 3 days before C.", [contact(d(-3, 10))],
       "red: SH-R-03", "red: ZJ-R-02", "red: HA-R-02"),
    _p("ha_inbound_red", "Another province sent a red code.", [inbound(d(-2, 8), "31", "red")],
       "red: NR-R-01", "red: NR-R-01", "red: NR-R-01"),
    # --- the scene at the station exit on D: no rule gives the depositors red
    *(_p(f"scene_depositor_{i}", "Depositor at the station exit: the scan shows red, no rule gives red.",
         [scan(STATION, D_ + 10 * HOUR + 60 * i, "red")], "green", "green", "green") for i in range(1, 5)),
    *(_p(f"scene_overridden_{i}", "Depositor given red by an override no rule supports.",
         [override(D_ + 9 * HOUR, "red", why=1), scan(STATION, D_ + 10 * HOUR + 60 * (4 + i), "red")],
         "red by override:", "red by override:", "red by override:") for i in range(1, 3)),
    *(_p(f"scene_family_{i}", "Family member who scanned with the depositors: green.",
         [scan(STATION, D_ + 10 * HOUR + 60 * i + 30)], "green", "green", "green") for i in range(1, 5)),
    # --- the control gathering at the market: the case is red by the rules
    _p("control_case", "Case reported 2 days before C, scanned the market on D (red, as published).",
       [case(d(-2, 8)), scan(MARKET, D_ + 15 * HOUR, "red")], "red: SH-R-02", "red: ZJ-R-01", "red: HA-R-01"),
    *(_p(f"control_companion_{i}", "Companion of the case at the market: green (the case's interval "
         "ended a day before).", [scan(MARKET, D_ + 15 * HOUR + 120 * i)], "green", "green", "green")
      for i in range(1, 4)),
)


def place_ids() -> list[str]:
    from hcode.sample.planted import planted_id

    return [planted_id(FIRST_PLANTED + i) for i in range(len(PLACE_SCENARIOS))]


def place_persons() -> list[dict[str, Any]]:
    """The planted place persons as listed in `planted.json` (`place_persons`)."""
    from hcode.sample.planted import _district, expectation
    from hcode.sample.scenarios import RULESETS

    out = []
    for pid, (sc, ha) in zip(place_ids(), PLACE_SCENARIOS, strict=True):
        texts = dict(zip(RULESETS, (sc.sh0523, sc.sh0628, sc.zj), strict=True)) | {HENAN: ha}
        out.append({"id_number": pid, "key": sc.key, "scenario": sc.text, "district": _district(sc),
                    "expected": {rs: expectation(t) for rs, t in texts.items()}})
    return out


def scene() -> dict[str, Any]:
    """What the companions test must find: the flagged gathering and the control."""
    keys = [sc.key for sc, _ in PLACE_SCENARIOS]
    ids = dict(zip(keys, place_ids(), strict=True))
    return {"flagged": {"place_code": STATION, "name": STATION_NAME,
                        "unexplained": [ids[k] for k in keys if k.startswith(("scene_depositor", "scene_overridden"))],
                        "companions": [ids[k] for k in keys if k.startswith("scene_family")]},
            "control": {"place_code": MARKET, "name": MARKET_NAME,
                        "persons": [ids[k] for k in keys if k.startswith("control_")]}}


# ---------------------------------------------------------------- random rows


def place_count(residents: int) -> int:
    """A few places per hundred residents (at least 20)."""
    return max(20, residents * 3 // 100)


def _codes(n: int) -> list[str]:
    return [f"P{i:07d}" for i in range(n)]


def random_places(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    n = place_count(ctx.night_residents)
    kind = rng.integers(0, len(KINDS), n)
    busy = np.arange(n) < max(1, int(n * BUSY_SHARE))
    kind[busy] = rng.integers(0, 3, int(busy.sum()))  # stations and markets
    names = pl.Series([f"{KINDS[k]}{i:05d}" for i, k in enumerate(kind)])
    districts = ctx.districts[rng.integers(0, len(ctx.districts), n)]
    reg_at = -(rng.integers(30, 700, n) * DAY)
    return _frame("places", place_code=pl.Series(_codes(n)), name=names, district_code=pl.Series(districts),
                  registered_at=ctx.text_times(reg_at))


def random_scans(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    """About `scans_per_day` scans a resident a day over the 14 days, between 07:00 and 22:00;
    busy places (the first 3 %) draw 50 times as many scans each; every scan shows green.
    In a night of several blocks, every block's residents scan the night's places."""
    n = place_count(ctx.night_residents)
    counts = rng.poisson(ctx.scans_per_day * 14, ctx.residents)
    person = np.repeat(np.arange(ctx.residents), counts)
    total = len(person)
    weight = np.where(np.arange(n) < max(1, int(n * BUSY_SHARE)), 50.0, 1.0)
    place = rng.choice(n, total, p=weight / weight.sum())
    day = rng.integers(1, 15, total)
    rel = -day * DAY + rng.integers(*OPENING, total)
    codes = pl.Series(_codes(n))
    return _frame("place_scans", id_number=ctx.id_text(person), place_code=codes.gather(place),
                  scanned_at=ctx.text_times(rel), shown_color=pl.repeat("green", total, eager=True))


def random_risk_places(ctx: Context, rng: np.random.Generator) -> pl.DataFrame:
    """A few risk places (about 1 in 200, at least 3): high ongoing, or medium then lifted."""
    n = place_count(ctx.night_residents)
    k = max(3, n // 200)
    which = rng.choice(np.arange(max(1, int(n * BUSY_SHARE)), n), k, replace=False)
    high = rng.random(k) < 0.4
    start = -(rng.integers(2, 12, k) * DAY)
    end = np.where(high, 0, start + rng.integers(2, 6, k) * DAY)
    end = np.where(end >= 0, 0, end)
    return _frame("risk_places", place_code=pl.Series(_codes(n)).gather(which),
                  level=pl.Series(np.where(high, "high", "medium")), valid_from=ctx.text_times(start),
                  valid_to=ctx.text_times(end, null=end == 0))


def _frame(feed: str, **cols: pl.Series) -> pl.DataFrame:
    names = [c.name for c in FEEDS[feed].columns]
    return pl.DataFrame([cols[n].alias(n).cast(pl.String) for n in names])


GENERATORS = {"places": random_places, "place_scans": random_scans, "risk_places": random_risk_places}
