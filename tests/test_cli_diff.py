"""`hcode diff` on a small warehouse: two runs, the auditor's ruleset dry run, usage errors."""

from __future__ import annotations

import json

from ops_fixtures import three_published_runs
from typer.testing import CliRunner

from hcode.cli.app import app

runner = CliRunner()


def test_diff_runs_json_and_out(wh, db, tmp_path):
    three_published_runs(wh, tmp_path / "in")
    res = runner.invoke(app, ["diff", "1", "4", "--db", str(db), "--json", "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["before"]["run_id"] == 1 and summary["after"]["run_id"] == 4
    assert summary["persons_compared"] == sum(sum(r.values()) for r in summary["matrix"].values())
    assert summary["only_after"] == 1  # person 3 registered on C
    assert json.loads((tmp_path / "rep" / "summary.json").read_text()) == summary
    assert (tmp_path / "rep" / "report.html").exists()


def test_diff_rulesets_dry_run_prints_report(wh, db, tmp_path):
    three_published_runs(wh, tmp_path / "in")
    res = runner.invoke(app, ["diff", "--db", str(db), "--ruleset", "shanghai@2022.05.23",
                              "--against", "zhejiang@2022.03.01", "--as-of", "2022-06-12"])
    assert res.exit_code == 0, res.output
    assert "Transition matrix" in res.stdout and "shanghai@2022.05.23" in res.stdout


def test_diff_usage_errors(db):
    for args in (["diff", "1"], ["diff"], ["diff", "1", "2", "--ruleset", "shanghai@2022.05.23"],
                 ["diff", "--ruleset", "shanghai@2022.05.23", "--as-of", "2022-06-12"]):
        res = runner.invoke(app, [*args, "--db", str(db)])
        assert res.exit_code == 2, (args, res.output)


def test_diff_unknown_run(db):
    res = runner.invoke(app, ["diff", "1", "2", "--db", str(db)])
    assert res.exit_code == 1
