"""report.html in a real browser: it opens from disk with the network blocked, draws its
charts, logs no errors, and its search box filters the table. A screenshot is kept in the
test's tmp dir (look at it when changing the page)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from diff_fixtures import ruleset_pair

from hcode.diff.changes import diff
from hcode.report.files import write_diff

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium() -> Path:
    if CHROMIUM.exists() or shutil.which("chromium"):
        return CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium"))
    reason = ("Debian's chromium is not installed (/usr/bin/chromium); "
              "install it with `apt-get install -y chromium` (.ci/run does)")
    if os.environ.get("HCODE_REQUIRE_CHROMIUM"):
        pytest.fail(reason + " and HCODE_REQUIRE_CHROMIUM is set")
    pytest.skip(reason)


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_report_html_in_headless_chromium(tmp_path, lang):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    paths = write_diff(diff(*ruleset_pair(), lang=lang), tmp_path / "report")
    blocked, failed, console_errors = [], [], []

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
        page.goto(paths["report.html"].resolve().as_uri())
        page.wait_for_load_state("load")

        assert page.locator("svg#matrix rect.heat-cell").count() == 16  # 3 colours + absent, squared
        assert page.locator("svg#rule-bars rect.rule-bar").count() == 8  # 4 rules x started/stopped
        assert page.locator("svg#district-bars rect.district-bar").count() == 12  # 3 districts x 4
        assert page.locator("#changes-table tbody tr").count() == 6
        assert page.locator("#rule-changes-table tbody tr").count() == 1

        page.fill("input[data-table=changes-table]", "override" if lang == "en" else "人工转码")
        assert page.locator("#changes-table tbody tr:visible").count() == 1
        page.fill("input[data-table=changes-table]", "")
        assert page.locator("#changes-table tbody tr:visible").count() == 6

        shot = tmp_path / f"report-{lang}.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()

    assert blocked == [] and failed == [], f"network requests: {blocked} failed: {failed}"
    assert console_errors == []
    assert shot.stat().st_size > 10_000
