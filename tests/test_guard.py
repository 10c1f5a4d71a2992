"""The publish guard: a shrunk population or a jump in red codes is held back, unless the
move is too small to mean anything; thresholds from hcode.toml."""

from __future__ import annotations

import datetime as dt
import json

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
