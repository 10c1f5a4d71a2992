"""`hcode backtest`: day D's colours are exactly those of `evaluate --as-of D --dry-run` on the
same warehouse (person by person, for several days and rulesets, the trial rule that matches
persons without events included), the person-days add up, and the CLI's JSON and files."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.engine.days import DayCodes
from hcode.ingest.load import ingest
from hcode.paths import rulesets_dir, sample_data_dir
from hcode.rules.load import find_ruleset
from hcode.runs.backtest import backtest
from hcode.runs.store import evaluate_warehouse
from hcode.store import warehouse
from hcode.store.warehouse import Warehouse

PLANTED = json.loads((sample_data_dir() / "planted.json").read_text(encoding="utf-8"))
LOADED_AT = dt.datetime.fromisoformat(PLANTED["loaded_at"])
KEY = "backtest-test-key-of-32-characters"
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
    title: {zh: 72小时内无核酸检测, en: "No NAT test within 72 hours <script>alert(1)</script>"}
    when: last_test_at is null or not last_test_at within 72 hours
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The sample night in a warehouse, and a trial ruleset ('yellow when no test within 72 h',
    whose title holds markup) extending the shipped Shanghai rules."""
    tmp = tmp_path_factory.mktemp("backtest")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HCODE_KEY", KEY)
        warehouse.init(tmp / "w.duckdb")
        with Warehouse.open(tmp / "w.duckdb") as wh:
            ingest(wh, [sample_data_dir()], now=LOADED_AT)
    folder = tmp / "rulesets" / "shanghai"
    folder.mkdir(parents=True)
    for f in (rulesets_dir() / "shanghai").glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    (folder / "2022.07.01.yaml").write_text(TRIAL, encoding="utf-8")
    return tmp / "w.duckdb", folder / "2022.07.01.yaml"


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("HCODE_KEY", KEY)


def _codes(ev) -> pl.DataFrame:
    return ev.codes.select("pid", "color", "rule")


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "against", "start", "end"), [
    ("trial", "shanghai@2022.06.28", dt.date(2022, 5, 29), dt.date(2022, 6, 20)),
    ("zhejiang@2022.03.01", "shanghai@2022.05.23", dt.date(2022, 6, 8), dt.date(2022, 6, 16)),
])
def test_each_day_is_evaluate_of_that_day_person_by_person(loaded, key, spec, against, start, end):
    db, trial = loaded
    rs = find_ruleset(str(trial) if spec == "trial" else spec)
    ref = find_ruleset(against)
    seen: dict[dt.date, tuple[DayCodes, DayCodes | None]] = {}
    with Warehouse.open(db, read_only=True) as wh:
        bt = backtest(wh, rs, start, end, ref, on_day=lambda a, b: seen.setdefault(a.day, (a, b)))
        assert [d.date for d in bt.days] == sorted(seen) and len(seen) == (end - start).days + 1
        checked = sorted({start, end, start + (end - start) // 2, dt.date(2022, 6, 14), dt.date(2022, 6, 15)}
                         & set(seen))
        for day in checked:
            a, b = seen[day]
            for r, codes in ((rs, a), (ref, b)):
                ev, _, _ = evaluate_warehouse(wh, r, day)
                assert codes is not None and codes.codes().equals(_codes(ev)), (r.name, day)
            row = next(d for d in bt.days if d.date == day)
            assert row.colors == evaluate_warehouse(wh, rs, day)[0].colors
            assert row.against_colors == evaluate_warehouse(wh, ref, day)[0].colors
    # the totals are the days' sums, and the rules' moves add up to the difference
    assert bt.person_days == {c: sum(d.colors[c] for d in bt.days) for c in rs.palette}
    assert bt.against_person_days == {c: sum(d.against_colors[c] for d in bt.days) for c in ref.palette}
    decided = sum(r.person_days_decided or 0 for r in bt.rules)
    restricted = bt.restricted_person_days
    assert decided >= restricted > 0  # every restricted person-day has a deciding rule (or override)
    moves = sum((r.restricted_added or 0) - (r.restricted_removed or 0) for r in bt.rules)
    assert moves == restricted - bt.against_restricted_person_days


@pytest.mark.slow
def test_the_trial_rule_adds_restricted_days_and_the_cli_agrees_with_evaluate(loaded, key, tmp_path):
    db, trial = loaded
    res = CliRunner().invoke(app, ["backtest", "--ruleset", str(trial), "--against", "shanghai@2022.06.28",
                                   "--from", "2022-06-12", "--to", "2022-06-17", "--db", str(db), "--json",
                                   "--out", str(tmp_path / "bt")])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert set(got) >= {"ruleset", "against", "from", "to", "days", "person_days", "against_person_days", "rules"}
    assert got["ruleset"] == "shanghai@2022.07.01" and got["against"] == "shanghai@2022.06.28"
    assert [d["date"] for d in got["days"]] == [f"2022-06-{n}" for n in range(12, 18)]
    for day in ("2022-06-12", "2022-06-17"):
        ev = CliRunner().invoke(app, ["evaluate", "--ruleset", str(trial), "--as-of", day, "--dry-run", "--json",
                                      "--db", str(db)])
        assert ev.exit_code == 0, ev.output
        assert next(d for d in got["days"] if d["date"] == day)["colors"] == json.loads(ev.stdout)["colors"]
    rules = {r["id"]: r for r in got["rules"]}
    yellow = rules["SH-Y-72"]
    assert yellow["against_person_days_decided"] is None and yellow["restricted_person_days_removed"] == 0
    assert yellow["restricted_person_days_added"] == yellow["person_days_decided"] > 0
    assert got["restricted_person_days"] - got["against_restricted_person_days"] == yellow[
        "restricted_person_days_added"]
    assert json.loads((tmp_path / "bt" / "backtest.json").read_text(encoding="utf-8")) == got
    page = (tmp_path / "bt" / "backtest.html").read_text(encoding="utf-8")
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_without_against_the_against_keys_are_null(loaded, key):
    db, _ = loaded
    res = CliRunner().invoke(app, ["backtest", "--ruleset", "shanghai@2022.05.23", "--from", "2022-06-14",
                                   "--to", "2022-06-14", "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["against"] is None and got["against_person_days"] is None
    assert got["days"][0]["against_colors"] is None and got["person_days"] == got["days"][0]["colors"]
    assert all(r["against_person_days_decided"] is None and r["restricted_person_days_added"] is None
               for r in got["rules"])


def test_a_range_backwards_is_a_usage_error(loaded, key):
    db, _ = loaded
    res = CliRunner().invoke(app, ["backtest", "--ruleset", "shanghai", "--from", "2022-06-14", "--to", "2022-06-01",
                                   "--db", str(db)])
    assert res.exit_code == 2 and "before --from" in res.output


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_backtest_page_in_headless_chromium(loaded, key, tmp_path, lang):
    from test_report_browser import ARGS, _chromium

    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    from hcode.report.backtest import write_backtest

    db, trial = loaded
    with Warehouse.open(db, read_only=True) as wh:
        bt = backtest(wh, find_ruleset(str(trial)), dt.date(2022, 6, 10), dt.date(2022, 6, 17),
                      find_ruleset("shanghai@2022.06.28"))
    paths = write_backtest(bt, tmp_path / "bt", lang)
    blocked: list[str] = []
    failed: list[str] = []
    console_errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def route(r):
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("requestfailed", lambda req: failed.append(req.url))
        page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: console_errors.append(str(exc)))
        page.goto(paths["backtest.html"].resolve().as_uri())
        page.wait_for_load_state("load")

        assert page.locator("svg.line").count() == len(bt.palette)  # one chart per colour
        assert page.locator("svg.line polyline.ruleset").count() == len(bt.palette)
        assert page.locator("svg.line polyline.against").count() == len(bt.palette)
        assert page.locator("svg#chart-yellow circle.point").count() == 2 * len(bt.days)
        box = page.locator("svg#chart-yellow").bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        assert page.locator("#rules-table tbody tr").count() == len(bt.rules)
        assert page.locator('#rules-table tr[data-rule="SH-Y-72"] td').nth(1).inner_text().count("<script>") == (
            1 if lang == "en" else 0)  # the title's markup is shown as text, never run
        assert page.locator("#person-days-table tbody tr").count() == 2
        shot = tmp_path / f"backtest-{lang}.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert blocked == [] and failed == [], f"network requests: {blocked} failed: {failed}"
    assert console_errors == []
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.dates(dt.date(2022, 5, 25), dt.date(2022, 6, 18)), length=st.integers(1, 6),
       spec=st.sampled_from(["zhejiang@2022.03.01", "shanghai@2022.06.28", "trial"]))
def test_a_day_does_not_depend_on_the_range_around_it(loaded, key, start, length, spec):
    """What is read for the range (pushed predicates over every day, persons narrowed by the
    whole range's reads) never changes a day: any range, any ruleset, each day is evaluate's."""
    db, trial = loaded
    rs = find_ruleset(str(trial) if spec == "trial" else spec)
    end = start + dt.timedelta(days=length - 1)
    seen: list[DayCodes] = []
    with Warehouse.open(db, read_only=True) as wh:
        backtest(wh, rs, start, end, on_day=lambda a, _b: seen.append(a))
        for codes in (seen[0], seen[-1]):
            ev, _, _ = evaluate_warehouse(wh, rs, codes.day)
            assert codes.codes().equals(_codes(ev)), (rs.name, codes.day)


def test_progress_bar_on_a_terminal_only(monkeypatch):
    import io

    from rich.console import Console

    from hcode.cli import backtest as cli_backtest

    buffer = io.StringIO()
    monkeypatch.setattr(cli_backtest, "err", Console(file=buffer, force_terminal=True, width=100))
    with cli_backtest._progress(3, quiet=False) as tick:
        assert tick is not None
        for d in range(1, 4):
            tick(dt.date(2022, 6, d))
    assert "backtest 2022-06-0" in buffer.getvalue()
    with cli_backtest._progress(3, quiet=True) as tick:  # --json
        assert tick is None
    monkeypatch.setattr(cli_backtest, "err", Console(file=io.StringIO(), force_terminal=False))
    with cli_backtest._progress(3, quiet=False) as tick:  # stderr not a terminal
        assert tick is None
