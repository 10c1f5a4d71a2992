"""The publish guard: a shrunk population or a jump in red codes is held back, unless the
move is too small to mean anything; thresholds from hcode.toml."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from ops_fixtures import IDS, csv, load, register, run
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.config import ConfigError, GuardConfig, load_config
from hcode.ops import guard

PREV = (7, dt.date(2022, 6, 13), 10_000, {"green": 9_500, "yellow": 200, "red": 300})


def test_shrunk_population_is_refused():
    v = guard.compare(PREV, 9_000, {"green": 8_500, "yellow": 200, "red": 300})
    assert not v.ok and len(v.reasons) == 1
    assert "population shrank from 10,000 to 9,000 (-10.0 %, 1,000 persons) since published run 7" in v.reasons[0]
    assert v.figures["persons_before"] == 10_000 and v.figures["population_change"] == pytest.approx(-0.1)


def test_red_jump_is_refused_both_ways():
    up = guard.compare(PREV, 10_000, {"green": 9_000, "yellow": 200, "red": 800})
    assert not up.ok and "red codes rose from 300 to 800 (+166.7 %, 500 persons)" in up.reasons[0]
    down = guard.compare(PREV, 10_000, {"green": 9_700, "yellow": 200, "red": 100})
    assert not down.ok and "red codes fell from 300 to 100" in down.reasons[0]
    both = guard.compare(PREV, 5_000, {"green": 3_800, "yellow": 200, "red": 1_000})
    assert len(both.reasons) == 2


def test_small_counts_are_exempt():
    small = (1, dt.date(2022, 6, 13), 300, {"green": 280, "yellow": 0, "red": 20})
    v = guard.compare(small, 250, {"green": 190, "yellow": 0, "red": 60})  # -17 %, red x3, but < 100 persons
    assert v.ok and v.reasons == ()
    assert not guard.compare(small, 250, {"green": 190, "yellow": 0, "red": 60},
                             GuardConfig(min_persons=10)).ok


def test_normal_night_and_first_night_are_accepted():
    assert guard.compare(PREV, 10_050, {"green": 9_530, "yellow": 190, "red": 330}).ok
    first = guard.compare(None, 10, {"green": 10, "yellow": 0, "red": 0})
    assert first.ok and first.figures["previous_run"] is None


def test_guard_against_the_previous_published_run_of_the_province(db, tmp_path):
    from hcode.store.warehouse import Warehouse

    with Warehouse.open(db) as wh:
        d = dt.date(2022, 6, 13)
        register(wh, tmp_path, range(30), d)
        r1 = run(wh, d, publish=True)
        load(wh, csv(tmp_path, "cases.csv", "id_number,case_type,reported_at",
                     [f"{IDS[i]},confirmed,2022-06-14 08:00:00" for i in range(20)]), d + dt.timedelta(days=1))
        unpublished = run(wh, d + dt.timedelta(days=1), publish=False)
        r3 = run(wh, d + dt.timedelta(days=1), publish=False)
        v = guard.check_run(wh.con, r3, GuardConfig(min_persons=5))
        assert not v.ok and v.figures["previous_run"] == r1  # unpublished runs are not compared with
        assert v.figures["red_before"] == 0 and v.figures["red_after"] == 20
        assert guard.check_run(wh.con, unpublished).ok  # default min_persons 100
    (db.parent / "hcode.toml").write_text("[guard]\nmin_persons = 5\nmax_red_change = 0.25\n")
    assert load_config(db).guard == GuardConfig(max_red_change=0.25, min_persons=5)
    res = CliRunner().invoke(app, ["guard", str(r3), "--db", str(db), "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["ok"] is False
    (db.parent / "hcode.toml").write_text("[guard]\nmin_persons = -1\n")
    with pytest.raises(ConfigError, match=r"\[guard\] min_persons"):
        load_config(db)


# ---------------------------------------------------------------- every colour, persons, rules

TRIAL = """province: shanghai
version: 2022.07.01
extends: 2022.06.28
effective_from: 2022-07-01
title: {zh: 上海市健康码赋码规则（试行）, en: Shanghai health code rules (trial)}
basis: a rule author's trial
facts:
  last_test_at: latest nat_results.sampled_at
rules:
  - id: SH-Y-72
    color: yellow
    title: {zh: 72小时内无核酸检测, en: No NAT test within 72 hours}
    when: last_test_at is null or not last_test_at within 72 hours
"""


def trial_ruleset(tmp_path) -> Path:
    """The new rule author's ruleset: the shipped Shanghai rules plus 'yellow when no test
    within 72 h', in a folder of its own (with the shipped versions it extends)."""
    from hcode.paths import rulesets_dir

    folder = tmp_path / "rulesets" / "shanghai"
    folder.mkdir(parents=True)
    for f in (rulesets_dir() / "shanghai").glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    (folder / "2022.07.01.yaml").write_text(TRIAL, encoding="utf-8")
    return folder / "2022.07.01.yaml"


def test_a_jump_in_any_colour_is_refused_naming_the_colour_and_rules():
    prev = guard.Previous(7, dt.date(2022, 6, 13), 10_000, {"green": 9_500, "yellow": 200, "red": 300},
                          {("green", "(no rule)"): 9_500, ("yellow", "NR-Y-01"): 200, ("red", "SH-R-01"): 300})
    rules = {("green", "(no rule)"): 8_800, ("yellow", "NR-Y-01"): 190, ("yellow", "SH-Y-72"): 700,
             ("red", "SH-R-01"): 310}
    v = guard.compare(prev, 10_000, {"green": 8_800, "yellow": 890, "red": 310}, rules=rules, changed=700)
    assert not v.ok and len(v.reasons) == 2
    assert v.reasons[0].startswith("yellow codes rose from 200 to 890 (+345.0 %, 690 persons) since published run 7")
    assert "rules that moved most: SH-Y-72 +700 (0 → 700), NR-Y-01 -10 (200 → 190)" in v.reasons[0]
    assert v.reasons[1].startswith("700 persons changed colour (7.0 % of 10,000)")
    assert v.figures["yellow_before"] == 200 and v.figures["yellow_after"] == 890
    assert v.figures["rules_moved"][0] == {"rule": "SH-Y-72", "before": 0, "after": 700}
    # a colour's own share: yellow may triple here; the persons' share still holds it back
    loose = GuardConfig(colors={"yellow": 4.0}, max_changed=0.10)
    assert guard.compare(prev, 10_000, {"green": 8_800, "yellow": 890, "red": 310}, loose, rules=rules,
                         changed=700).ok
    # the older key still governs the most severe colour only
    red_only = GuardConfig(max_red_change=5.0)
    v = guard.compare(prev, 10_000, {"green": 8_200, "yellow": 500, "red": 1_300}, red_only)
    assert [r.split(" codes")[0] for r in v.reasons] == ["yellow"]


def test_orange_is_watched_and_a_lost_colour_counts_as_none():
    prev = (3, dt.date(2022, 6, 13), 10_000, {"green": 9_000, "yellow": 300, "orange": 400, "red": 300})
    v = guard.compare(prev, 10_000, {"green": 9_000, "yellow": 300, "orange": 900, "red": 300})
    assert not v.ok and v.reasons[0].startswith("orange codes rose from 400 to 900")
    lost = guard.compare(prev, 10_000, {"green": 9_400, "yellow": 300, "red": 300})
    assert any(r.startswith("orange codes fell from 400 to 0") for r in lost.reasons)


def test_changed_persons_counts_only_persons_in_both_runs():
    pids = pl.Series([1, 2, 3, 4, 5, 6], dtype=pl.Int32)
    before = guard.RunCodes(pids[:5], pl.DataFrame({"pid": [1, 2], "color": ["red", "yellow"],
                                                    "rule": ["A", "B"]}, schema_overrides={"pid": pl.Int32}),
                            "green", None)
    after = guard.RunCodes(pids[1:], pl.DataFrame({"pid": [2, 3, 6], "color": ["yellow", "red", "red"],
                                                   "rule": ["C", "A", "A"]}, schema_overrides={"pid": pl.Int32}),
                           "green", None)
    assert guard.changed_persons(before, after) == 1  # 3 turned red; 1 left, 6 is new, 2 is still yellow
    everyone = guard.RunCodes(after.pids, after.details, "yellow", "Y")
    assert guard.changed_persons(before, everyone) == 3  # 3 red, and 4 and 5 from green to yellow
    assert after.rule_counts() == {("yellow", "C"): 1, ("red", "A"): 2, ("green", "(no rule)"): 2}


def test_guard_colors_in_hcode_toml(db):
    (db.parent / "hcode.toml").write_text("[guard]\nmax_color_change = 0.4\nmax_changed = 0.02\n"
                                          "[guard.colors]\nyellow = 2.0\n")
    cfg = load_config(db).guard
    assert cfg.color_limit("yellow", False) == 2.0 and cfg.color_limit("orange", False) == 0.4
    assert cfg.max_changed == 0.02 and cfg.color_limit("red", True) == 0.4
    (db.parent / "hcode.toml").write_text("[guard.colors]\nyellow = -1\n")
    with pytest.raises(ConfigError, match=r"\[guard.colors\] yellow"):
        load_config(db)
    (db.parent / "hcode.toml").write_text("[guard]\ncolors = 3\n")
    with pytest.raises(ConfigError, match=r"\[guard\] colors"):
        load_config(db)


@pytest.mark.slow
def test_the_sample_night_yellow_jump_is_held_back(tmp_path, monkeypatch):
    """On the sample night, 'yellow when no test within 72 h' moves yellow from a handful to
    nearly everyone: `hcode guard` refuses the run, the nightly batch does not publish it, and
    --accept-jump publishes it with the verdict in the audit log."""
    from hcode.ops.nightly import run_nightly
    from hcode.paths import sample_data_dir
    from hcode.store import warehouse
    from hcode.store.warehouse import Warehouse

    monkeypatch.setenv("HCODE_KEY", "guard-test-key-of-thirty-two-characters")
    db = tmp_path / "w.duckdb"
    warehouse.init(db)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for f in sample_data_dir().glob("*.csv"):
        shutil.copy(f, inbox / f.name)
    first = run_nightly(db, inbox, "shanghai", dt.date(2022, 6, 14), now=dt.datetime(2022, 6, 15, 6),
                        reports=tmp_path / "reports")
    assert first.published and first.guard is not None and first.guard.ok
    trial = trial_ruleset(tmp_path)
    day = dt.date(2022, 6, 17)

    res = CliRunner().invoke(app, ["evaluate", "--ruleset", str(trial), "--as-of", day.isoformat(), "--db", str(db),
                                   "--json"])
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout)["run_id"]
    res = CliRunner().invoke(app, ["guard", str(run_id), "--db", str(db), "--json"])
    verdict = json.loads(res.stdout)
    assert res.exit_code == 1 and not verdict["ok"]
    f = verdict["figures"]
    assert f["yellow_after"] > 2_500 and f["yellow_before"] < 100 and f["previous_run"] == first.run_id
    yellow = next(r for r in verdict["reasons"] if r.startswith("yellow codes rose"))
    assert f"from {f['yellow_before']:,} to {f['yellow_after']:,}" in yellow
    assert "rules that moved most: SH-Y-72 +" in yellow
    assert f["changed_persons"] > 2_500 and any("persons changed colour" in r for r in verdict["reasons"])

    held = run_nightly(db, inbox, str(trial), day, now=dt.datetime(2022, 6, 18, 6), reports=tmp_path / "reports")
    assert not held.published and held.exit_code == 1 and held.guard is not None
    assert any(r.startswith("yellow codes rose") and "SH-Y-72" in r for r in held.guard.reasons)
    accepted = run_nightly(db, inbox, str(trial), day, now=dt.datetime(2022, 6, 18, 6), reports=tmp_path / "reports",
                           override_guard=True)
    assert accepted.published
    with Warehouse.open(db, read_only=True) as wh:
        (detail,) = wh.con.execute("SELECT detail FROM audit WHERE action = 'publish' ORDER BY seq DESC LIMIT 1"
                                   ).fetchall()[0]
    logged = json.loads(detail)
    assert logged["run_id"] == accepted.run_id and logged["accept_jump"] is True
    assert any(r.startswith("yellow codes rose") for r in logged["guard"]["reasons"])
