"""Late feeds: judged on batch dates (so a back-fill behaves like live nights), with an impact
sentence computed from the data (the article's missing discharge list)."""

from __future__ import annotations

import datetime as dt

import pytest
from ops_fixtures import IDS, csv, load, register, run

from hcode.config import ConfigError, load_config
from hcode.ops import freshness
from hcode.rules.load import find_ruleset
from hcode.runs.store import run_codes

D = dt.date(2022, 6, 14)
DAYS = [D - dt.timedelta(days=k) for k in (4, 3, 2, 1, 0)]  # 06-10 .. 06-14


def _night(wh, tmp, day: dt.date, i: int, discharges: bool, now: dt.datetime | None = None):
    """One batch: a file of every daily feed (with one new row each), discharges optional."""
    t = f"{day} 08:00:00"
    files = [
        ("registrations.csv", "id_number,registered_at,district_code", f"{IDS[i]},{t},310101"),
        ("cases.csv", "id_number,case_type,reported_at", f"{IDS[i]},suspected,{t}"),
        ("contacts.csv", "id_number,contact_level,identified_at", f"{IDS[i]},secondary,{t}"),
        ("nat_results.csv", "id_number,sampled_at,result,pooled", f"{IDS[i]},{t},negative,false"),
        ("entries.csv", "id_number,entered_at,origin", f"{IDS[i]},{t},MO"),
        ("trips.csv", "id_number,region_code,visited_at,source", f"{IDS[i]},310101,{t},telecom"),
        ("symptoms.csv", "id_number,symptom,reported_at,reporter", f"{IDS[i]},fever,{t},self"),
        ("isolation.csv", "id_number,kind,started_at,ended_at", f"{IDS[i]},centralized,{t},"),
        ("inbound_codes.csv", "id_number,province,color,since", f"{IDS[i]},44,green,{t}"),
        ("risk_areas.csv", "region_code,level,valid_from,valid_to", f"310101,low,{t},"),
    ]
    if discharges:
        files.append(("discharges.csv", "id_number,discharged_at", f"{IDS[i]},{t}"))
    for name, header, row in files:
        load(wh, csv(tmp, name, header, [row]), day, now)


def _by_feed(report):
    return {f.feed: f for f in report}


def _withhold_discharges(wh, tmp, now=None):
    for k, day in enumerate(DAYS):
        _night(wh, tmp, day, k, discharges=day <= dt.date(2022, 6, 11), now=now)


def test_feed_withheld_for_three_days_is_three_days_late(wh, tmp_path):
    _withhold_discharges(wh, tmp_path)
    f = _by_feed(freshness.check(wh.con, D))
    d = f["discharges"]
    assert (d.late, d.last_loaded, d.days_late, d.cadence) == (True, dt.date(2022, 6, 11), 3, 1)
    assert d.impact.startswith("discharges: last file 2022-06-11, 3 days late")
    for name in ("registrations", "cases", "contacts", "nat_results", "risk_areas"):
        assert not f[name].late and f[name].days_late == 0 and f[name].impact is None
    assert not f["overrides"].late and f["overrides"].cadence is None  # never late
    assert [x.feed for x in freshness.late_feeds(freshness.check(wh.con, D))] == ["discharges"]
    # the same warehouse judged as of earlier batch dates: later batches do not count
    assert _by_feed(freshness.check(wh.con, dt.date(2022, 6, 11)))["discharges"].late is False
    assert _by_feed(freshness.check(wh.con, dt.date(2022, 6, 12)))["discharges"].days_late == 1
    early = _by_feed(freshness.check(wh.con, dt.date(2022, 6, 9)))
    assert early["discharges"].late and early["discharges"].days_late is None and early["discharges"].last_loaded is None


def test_backfilled_batches_behave_like_live_nights(wh, tmp_path):
    # loaded today (the clock is 2026 or whenever the suite runs), batch dates in 2022
    _withhold_discharges(wh, tmp_path, now=dt.datetime.now().replace(microsecond=0))
    live_like = _by_feed(freshness.check(wh.con, D))["discharges"]
    assert (live_like.late, live_like.last_loaded, live_like.days_late) == (True, dt.date(2022, 6, 11), 3)


def test_retracted_file_does_not_count_and_config_changes_cadence(wh, tmp_path, db):
    _withhold_discharges(wh, tmp_path)
    from hcode.ops.retract import retract

    last_nat = wh.con.execute("SELECT max(load_id) FROM loads WHERE feed = 'nat_results'").fetchall()[0][0]
    retract(wh, last_nat, "wrong file", "op")
    nat = _by_feed(freshness.check(wh.con, D))["nat_results"]
    assert (nat.late, nat.days_late, nat.last_loaded) == (True, 1, dt.date(2022, 6, 13))

    (db.parent / "hcode.toml").write_text("[freshness]\ndischarges = 4\nnat_results = \"never\"\n")
    cfg = load_config(db)
    f = _by_feed(freshness.check(wh.con, D, cfg))
    assert not f["discharges"].late and f["discharges"].cadence == 4
    assert not f["nat_results"].late and f["nat_results"].cadence is None
    (db.parent / "hcode.toml").write_text("[freshness]\ndischarge = 2\n")
    with pytest.raises(ConfigError, match="discharge: not a feed"):
        load_config(db)
    (db.parent / "hcode.toml").write_text("[freshness]\ndischarges = 1.5\n")
    with pytest.raises(ConfigError, match="whole number of days"):
        load_config(db)


def test_late_discharge_impact_counts_persons_awaiting_discharge(wh, tmp_path):
    register(wh, tmp_path, range(4), dt.date(2022, 6, 10))
    load(wh, csv(tmp_path, "cases.csv", "id_number,case_type,reported_at", [
        f"{IDS[0]},confirmed,2022-05-01 10:00:00",  # old, never discharged: waiting
        f"{IDS[1]},confirmed,2022-06-10 10:00:00",  # recent: not yet expected to be discharged
        f"{IDS[2]},asymptomatic,2022-05-01 10:00:00",  # old, discharged
    ]), dt.date(2022, 6, 10))
    load(wh, csv(tmp_path, "discharges.csv", "id_number,discharged_at", [f"{IDS[2]},2022-05-20 09:00:00"]),
         dt.date(2022, 6, 11))
    run_id = run(wh, D)
    rs = find_ruleset("shanghai@2022.05.23")
    codes = run_codes(wh.con, run_id)
    d = _by_feed(freshness.check(wh.con, D, ruleset=rs, codes=codes))["discharges"]
    assert d.impact == ("discharges: last file 2022-06-11, 3 days late; 1 person is red under SH-R-02 with a "
                        "case older than 14 days and may be awaiting discharge")
    assert d.read_by == ("SH-R-02",)
    plain = _by_feed(freshness.check(wh.con, D))["discharges"]
    assert plain.impact.endswith("1 registered person has a case reported more than 14 days ago and no "
                                 "discharge since: they stay red until the list arrives")
    nat = _by_feed(freshness.check(wh.con, D, ruleset=rs, codes=codes))["nat_results"]
    assert nat.late and nat.days_late is None
    assert "SH-R-01, SH-R-03, SH-R-04 read it" in nat.impact and "(0 persons currently matched)" in nat.impact
    sym = _by_feed(freshness.check(wh.con, D, ruleset=rs))["symptoms"]
    assert "no rule of shanghai@2022.05.23 reads it" in sym.impact
