from __future__ import annotations

from typer.testing import CliRunner

from hcode.cli.app import app


def test_demo_runs_the_whole_job(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path / "demo")])
    assert res.exit_code == 0, res.output
    assert "published run 1 of shanghai@2022.05.23 for 2022-06-14" in res.output
    assert "Transition matrix" in res.output and "SH-Y-03" in res.output
    for folder in ("reports/2022-06-14", "reports/rules-2022.06.28"):
        for name in ("report.html", "report.md", "summary.json", "changes.parquet", "changes.csv"):
            assert (tmp_path / "demo" / folder / name).exists()
    # Running it again starts over rather than piling up runs.
    again = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path / "demo")])
    assert again.exit_code == 0 and "published run 1 " in again.output
