"""The companions test (rules.md): the article's scene is flagged, a control gathering whose
red persons the rules explain is not; shown vs published; nights without scans."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from ops_fixtures import IDS, csv, key_of, load, register, run

from hcode.ops.companions import companions
from hcode.ops.nightly import MEMBERS_FILE, run_nightly
from hcode.store.warehouse import Warehouse

HENAN = "henan@2022.06.01"
D0, D = dt.date(2022, 6, 13), dt.date(2022, 6, 14)
STATION, MARKET = "ZZ-STATION-SW", "ZZ-MARKET-1"
# persons (indexes into IDS): depositors, their families, a case and the case's companions
DEPOSITORS, FAMILY, OVERRIDDEN = [0, 1, 2], [3, 4], 5
CASE, CONTROL_COMPANIONS = 6, [7, 8]
SCAN_HEAD = "id_number,place_code,scanned_at,shown_color"


def scans(rows: list[tuple[int, str, str, str]]) -> list[str]:
    return [f"{IDS[i]},{place},{t},{color}" for i, place, t, color in rows]


def _scene(wh, tmp, *, with_scans: bool = True, extra: list[tuple[int, str, str, str]] = ()) -> int:
    """Day D0: everyone registered, a case reported (red under HA-R-01), run published.
    Day D: the station scene and the control gathering at a market; an override no rule
    supports; the run of D."""
    register(wh, tmp, range(10), batch=D0)
    load(wh, csv(tmp, "cases.csv", "id_number,case_type,reported_at", [f"{IDS[CASE]},confirmed,2022-06-12 09:00"]),
         D0)
    load(wh, csv(tmp, "places.csv", "place_code,name,district_code,registered_at",
                 [f"{STATION},郑州站西南出口,410102,2022-01-01", f"{MARKET},Erqi market,410103,2022-01-01"]), D0)
    run(wh, D0, ruleset=HENAN)
    load(wh, csv(tmp, "overrides.csv", "id_number,color,authority,basis,operator,reason,issued_at,expires_at",
                 [f"{IDS[OVERRIDDEN]},red,Zhengzhou epidemic office,none given,op-zz-7,risk control,"
                  "2022-06-14 09:00,"]), D)
    if with_scans:
        rows = [
            # the station exit, 10:00-10:12: depositors show red, families green
            *((i, STATION, f"2022-06-14 10:0{n}:00", "red") for n, i in enumerate(DEPOSITORS)),
            (OVERRIDDEN, STATION, "2022-06-14 10:05:00", "red"),
            *((i, STATION, f"2022-06-14 10:1{n}:00", "green") for n, i in enumerate(FAMILY)),
            # the market, 15:00-15:08: the case shows red (published red: explained)
            (CASE, MARKET, "2022-06-14 15:00:00", "red"),
            *((i, MARKET, f"2022-06-14 15:0{4 + 4 * n}:00", "green") for n, i in enumerate(CONTROL_COMPANIONS)),
            # the station again at 18:00, long after: a separate gathering of one green person
            (FAMILY[0], STATION, "2022-06-14 18:00:00", "green"),
            *extra,
        ]
        load(wh, csv(tmp, "place_scans.csv", SCAN_HEAD, scans(rows)), D)
    return run(wh, D, ruleset=HENAN)


def test_the_station_scene_is_flagged_and_the_control_gathering_is_not(wh, tmp_path):
    run_id = _scene(wh, tmp_path)
    res = companions(wh, run_id)
    assert res.gatherings == 3 and res.note is None
    [g] = res.groups
    assert (g.place_code, g.place_name, g.district_code) == (STATION, "郑州站西南出口", "410102")
    assert (g.start, g.end) == (dt.datetime(2022, 6, 14, 10, 0), dt.datetime(2022, 6, 14, 10, 11))
    assert (g.persons, g.unexplained, g.first_color_companions) == (6, 4, 2)
    assert g.shown == {"red": 4, "green": 2}
    assert (g.authorities, g.operators) == (("Zhengzhou epidemic office",), ("op-zz-7",))
    members = res.members.sort("person_key")
    want = sorted([(key_of(wh, i), i in (*DEPOSITORS, OVERRIDDEN)) for i in (*DEPOSITORS, OVERRIDDEN, *FAMILY)])
    assert list(zip(members["person_key"], members["unexplained"], strict=True)) == want
    svp = res.shown_vs_published
    assert (svp.scans, svp.compared, svp.more_severe, svp.less_severe, svp.not_compared, svp.not_comparable) == \
        (10, 10, 4, 0, 0, 0)
    assert {(p["published"], p["shown"]): p["scans"] for p in svp.by_pair} == \
        {("green", "red"): 4, ("green", "green"): 5, ("red", "red"): 1}
    assert {d["district_code"]: d["more_severe"] for d in svp.by_district} == {"410102": 4, "410103": 0}


def test_a_gathering_without_a_first_colour_companion_is_not_flagged(wh, tmp_path):
    """Split by the window: with 1 minute, the families (10:10, 10:11) form their own
    gathering, apart from the depositors (10:00-10:05)."""
    run_id = _scene(wh, tmp_path)
    assert companions(wh, run_id, dt.timedelta(minutes=1)).groups == ()
    assert len(companions(wh, run_id, dt.timedelta(minutes=5)).groups) == 1


def test_colours_outside_the_palette_and_unknown_persons_and_places_are_counted_apart(wh, tmp_path):
    extra = [(9, "NOT-LISTED", "2022-06-14 20:00:00", "blue"), (20, "NOT-LISTED", "2022-06-14 20:01:00", "green")]
    run_id = _scene(wh, tmp_path, extra=extra)
    res = companions(wh, run_id)
    svp = res.shown_vs_published
    assert (svp.scans, svp.compared, svp.not_compared, svp.not_comparable) == (12, 10, 1, 1)
    assert res.unlisted_places == 1 and len(res.groups) == 1
    assert {d["district_code"]: d["scans"] for d in svp.by_district}["unknown"] == 2


def test_a_night_without_scans_says_so_and_flags_nothing(wh, tmp_path):
    run_id = _scene(wh, tmp_path, with_scans=False)
    res = companions(wh, run_id)
    assert res.groups == () and res.shown_vs_published.scans == 0
    assert res.note == "place_scans has never been loaded: no scans to check"


@pytest.mark.slow
def test_nightly_warns_on_a_flagged_gathering_and_reports_counts_only(db, tmp_path):
    with Warehouse.open(db) as wh:
        _scene(wh, tmp_path / "data", with_scans=False)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rows = scans([*((i, STATION, f"2022-06-15 10:0{n}:00", "red") for n, i in enumerate(DEPOSITORS)),
                  (FAMILY[0], STATION, "2022-06-15 10:07:00", "green")])
    (inbox / "place_scans.csv").write_text(SCAN_HEAD + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    res = run_nightly(db, inbox, HENAN, dt.date(2022, 6, 15), operator="tester", reports=tmp_path / "reports",
                      now=dt.datetime(2022, 6, 16, 6))
    assert res.published and res.exit_code == 3
    assert {k: res.companions[k] for k in ("flagged_groups", "unexplained", "note")} == \
        {"flagged_groups": 1, "unexplained": 3, "note": None}
    svp = res.as_json()["companions"]["shown_vs_published"]
    assert (svp["scans"], svp["compared"], svp["more_severe"]) == (4, 4, 3)
    assert any(w.startswith("companions test: 3 unexplained person(s) among 4 at 郑州站西南出口") for w in res.warnings)
    report = (res.report_dir / "report.md").read_text(encoding="utf-8")
    assert "Companions test: flagged gatherings" in report and "郑州站西南出口" in report
    assert "| 4 | 3 | 1 |" in report  # persons, unexplained, green companions
    night = json.loads((res.report_dir / "nightly.json").read_text(encoding="utf-8"))
    assert night["companions"]["groups"][0]["unexplained"] == 3
    members = pl.read_parquet(res.report_dir / MEMBERS_FILE)
    assert members.height == 4
    for key in members["person_key"]:  # person keys in the file, never in the reports
        assert key not in report and key[:12] not in json.dumps(night)


def test_cli_json_shape_and_exit_code(db, tmp_path):
    from typer.testing import CliRunner

    from hcode.cli.app import app

    with Warehouse.open(db) as wh:
        run_id = _scene(wh, tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["companions", "--db", str(db), "--run", str(run_id), "--window", "10m", "--json"])
    assert res.exit_code == 3, res.output
    doc = json.loads(res.stdout)
    assert {"run_id", "date", "window_minutes", "groups", "shown_vs_published"} <= set(doc)
    assert (doc["run_id"], doc["date"], doc["window_minutes"]) == (run_id, "2022-06-14", 10)
    [g] = doc["groups"]
    assert set(g) == {"place_code", "place_name", "district_code", "from", "to", "persons", "unexplained",
                      "first_color_companions", "shown", "authorities", "operators"}
    assert {"scans", "compared", "more_severe", "less_severe", "not_compared"} <= set(doc["shown_vs_published"])
    quiet = runner.invoke(app, ["companions", "--db", str(db), "--run", str(run_id), "--window", "1m"])
    assert quiet.exit_code == 0 and "no gathering flagged" in quiet.stdout
    assert runner.invoke(app, ["companions", "--db", str(db), "--window", "soon"]).exit_code == 2


def test_evaluate_says_when_place_scans_never_arrived(db, tmp_path):
    from typer.testing import CliRunner

    from hcode.cli.app import app

    with Warehouse.open(db) as wh:
        register(wh, tmp_path, range(3), batch=D0)
    res = CliRunner().invoke(app, ["evaluate", "--db", str(db), "--ruleset", HENAN, "--as-of", "2022-06-14",
                                   "--dry-run", "--json"])
    assert res.exit_code == 0
    assert "place_scans: no file loaded yet; HA-R-03, HA-Y-01, HA-Y-02 read it" in res.stderr
    assert json.loads(res.stdout)["persons"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("ruleset", [HENAN, "shanghai@2022.05.23"])
def test_nightly_purges_scans_past_retention_without_changing_published_codes(db, tmp_path, ruleset):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "registrations.csv").write_text("id_number,registered_at,district_code\n" + "".join(
        f"{IDS[i]},2022-01-01,410102\n" for i in range(4)), encoding="utf-8")
    (inbox / "cases.csv").write_text(f"id_number,case_type,reported_at\n{IDS[0]},confirmed,2022-05-10 08:00\n",
                                     encoding="utf-8")
    (inbox / "place_scans.csv").write_text(SCAN_HEAD + "\n" + "\n".join(scans([
        (0, STATION, "2022-05-09 10:00:00", "green"), (1, STATION, "2022-05-09 10:10:00", "green"),  # 37 days
        (2, STATION, "2022-05-18 10:00:00", "green"),  # exactly C - 28 days: kept
        (3, STATION, "2022-06-14 10:00:00", "green")])) + "\n", encoding="utf-8")
    res = run_nightly(db, inbox, ruleset, D, operator="tester", reports=tmp_path / "reports",
                      now=dt.datetime(2022, 6, 15, 6))
    assert res.published
    night = json.loads((res.report_dir / "nightly.json").read_text(encoding="utf-8"))
    assert night["retention"] == {"before": "2022-05-18", "removed": 2, "kept": 0}
    with Warehouse.open(db) as wh:
        from hcode.store.warehouse import one
        assert one(wh.con, "SELECT count(*) FROM feed_place_scans") == (2,)
        from hcode.runs.store import run_codes
        before = run_codes(wh.con, res.run_id).select("person_key", "color", "explanation")
        from hcode.ops.purge import needed_persons
        assert needed_persons(wh, res.run_id, dt.datetime(2022, 5, 18), ("place_scans",)).len() == 0
        assert run_codes(wh.con, res.run_id).select("person_key", "color", "explanation").equals(before)
