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
    # The station scene: the depositors' gathering is flagged, the control gathering is not.
    assert "published run 2 of henan@2022.06.01 for 2022-06-14" in res.output
    assert "1 flagged gathering(s)" in res.output and "郑州站西南" in res.output
    assert "(ZZ-MARKET-ERQI): not flagged" in res.output
    assert (tmp_path / "demo" / "henan" / "reports" / "2022-06-14" / "report.html").exists()
    # Running it again starts over rather than piling up runs.
    again = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path / "demo")])
    assert again.exit_code == 0 and "published run 1 " in again.output


def test_the_station_scene_flags_the_depositors_and_not_the_control(tmp_path):
    from hcode.ops.demo import station_scene
    from hcode.sample.places import scene

    s = station_scene(tmp_path / "henan", residents=300)
    first, second = s.nights
    assert first.published and second.published and second.exit_code == 3
    assert first.date < second.date and s.found.published_run == first.run_id
    [g] = s.found.groups
    planted = scene()
    assert g.place_code == planted["flagged"]["place_code"] == s.flagged_place
    assert (g.unexplained, g.first_color_companions) == (len(planted["flagged"]["unexplained"]),
                                                         len(planted["flagged"]["companions"]))
    assert s.station_flagged and not s.control_flagged
    assert second.companions["flagged_groups"] == 1
