"""The push file: `since` is the start of the person's current unbroken streak of that colour
over published runs only."""

from __future__ import annotations

import json

import polars as pl
from ops_fixtures import A, B, C, key_of, three_published_runs
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.runs.export import export, push_frame


def test_since_over_three_published_runs(wh, tmp_path):
    ra, held, rb, rc = three_published_runs(wh, tmp_path)
    f = push_frame(wh.con, rc)
    assert f.columns == ["person_key", "color", "since", "rule"]
    got = {r["person_key"]: (r["color"], r["since"], r["rule"]) for r in f.iter_rows(named=True)}
    assert got[key_of(wh, 0)] == ("red", A, "SH-R-03")  # red in A, B, C
    assert got[key_of(wh, 1)] == ("red", B, "SH-R-02")  # green in A, red from B
    assert got[key_of(wh, 2)] == ("green", A, "")  # the held-back red run does not count
    assert got[key_of(wh, 3)] == ("green", C, "")  # registered on C: no code before
    assert got[key_of(wh, 4)] == ("red", C, "NR-R-01")  # red A, green B, red C: the streak restarted
    assert f["person_key"].is_sorted()
    # exporting an earlier run looks back only over runs before it; the held run itself counts when exported
    g = {r["person_key"]: r["since"] for r in push_frame(wh.con, rb).iter_rows(named=True)}
    assert g[key_of(wh, 4)] == B and g[key_of(wh, 0)] == A
    h = {r["person_key"]: (r["color"], r["since"]) for r in push_frame(wh.con, held).iter_rows(named=True)}
    assert h[key_of(wh, 2)] == ("red", A)


def test_export_files_csv_and_parquet(db, tmp_path):
    from hcode.store.warehouse import Warehouse

    with Warehouse.open(db) as wh:
        *_, rc = three_published_runs(wh, tmp_path / "in")
        res = export(wh.con, rc, tmp_path / "push.parquet")
    assert res.rows == 5
    pq = pl.read_parquet(tmp_path / "push.parquet")
    assert pq.schema["since"] == pl.Date and pq.height == 5
    out = CliRunner().invoke(app, ["export", "--run", str(rc), "--out", str(tmp_path / "push.csv"), "--db", str(db),
                                   "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["rows"] == 5
    text = (tmp_path / "push.csv").read_text().splitlines()
    assert text[0] == "person_key,color,since,rule" and len(text) == 6
    assert CliRunner().invoke(app, ["export", "--run", "99", "--out", str(tmp_path / "x.csv"),
                                    "--db", str(db)]).exit_code == 1
