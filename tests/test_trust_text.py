"""Text from data stays text: escaped for the terminal, Markdown and HTML; CSV exports
defuse formulas; `explain` and `history` read the id from a file or standard input."""

from __future__ import annotations

import json

import polars as pl
from conftest import ID_A
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_fixtures import IDS, three_published_runs
from typer.testing import CliRunner

from hcode import textsafe
from hcode.cli import app
from hcode.report import escape
from hcode.report.nightly import render_html, render_markdown
from hcode.runs import export as export_mod
from hcode.runs.store import write_codes
from hcode.store.warehouse import Warehouse

NASTY = "a|b\nc <script>alert(1)</script> [bold red]x[/] \x1b[31mred\x1b[0m **e** " + ID_A


def _sections(text: str) -> dict:
    load = {"file": f"/in/{text}.csv", "feed": "cases", "rows_read": 1, "rows_loaded": 0, "rows_quarantined": 0,
            "rejected": True, "duplicate": False, "error": text}
    over = {"person_key": "ab" * 32, "color": "red", "rules_color": "green", "authority": text, "basis": text,
            "operator": text, "reason": text, "expires_at": None, "note": text}
    return {"date": "2022-06-14", "run_id": 1, "loads": [load], "freshness": [],
            "quarantine": [{"file": text, "column": "id_number", "reason": text, "rows": 1}],
            "overrides": {"unsupported": [over], "expiring_soon": [], "applied": [over], "not_applied": []}}


def test_nightly_markdown_sections_keep_one_row_per_value_and_no_html():
    md = render_markdown(_sections(NASTY))
    table_rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    # header + one data row for each of the 4 tables with rows: nothing broke a row in two
    assert len(table_rows) == 8
    for row in table_rows:
        cells = row.strip().strip("|").replace("\\|", "").split("|")
        assert len(cells) in (6, 4, 9)
    assert "<script>" not in md and "\x1b" not in md and ID_A not in md


def test_nightly_html_sections_escape_and_mask():
    page = render_html(_sections(NASTY))
    assert "<script>" not in page and "\x1b" not in page and ID_A not in page
    assert "&lt;script&gt;" in page


def test_terminal_escape_removes_markup_ansi_and_controls():
    from rich.console import Console

    console = Console(record=True, width=300, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(escape.terminal(NASTY))
    shown = console.export_text()
    assert "[bold red]x[/]" in shown and "\x1b" not in shown and ID_A not in shown and "\n" not in shown.strip()


def test_cli_prints_a_file_name_with_markup_and_escapes_as_text(tmp_path, db):
    bad = tmp_path / "[blink]nosuchfeed\x1b[2J.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["ingest", str(bad), "--db", str(db)])
    assert res.exit_code == 1
    assert "[blink]nosuchfeed" in res.output and "\x1b" not in res.output


def test_codes_csv_defuses_formulas(tmp_path):
    codes = pl.DataFrame({"person_key": ["ab" * 32], "color": ["red"], "rule": ["=HYPERLINK(\"http://x\")"],
                          "matched_rules": [["@SUM(1)", "ok"]], "explanation": ["+1 " + ID_A]})
    path = write_codes(codes, tmp_path / "codes.csv")
    got = pl.read_csv(path, infer_schema=False).row(0, named=True)
    assert got["rule"] == "'=HYPERLINK(\"http://x\")" and got["matched_rules"] == "'@SUM(1);ok"
    assert got["explanation"].startswith("'+1 ") and ID_A not in got["explanation"]
    assert got["person_key"] == "ab" * 32


def test_push_csv_defuses_formulas(tmp_path, db, monkeypatch):
    frame = pl.DataFrame({"person_key": ["1" * 64], "color": ["-red"], "since": ["2022-06-14"], "rule": ["=1+1"]})
    monkeypatch.setattr(export_mod, "push_frame", lambda con, run_id: frame)
    monkeypatch.setattr(export_mod, "streak_runs", lambda con, run_id: (run_id,))
    with Warehouse.open(db) as wh:
        export_mod.export(wh.con, 1, tmp_path / "push.csv")
    got = pl.read_csv(tmp_path / "push.csv", infer_schema=False).row(0, named=True)
    assert got == {"person_key": "1" * 64, "color": "'-red", "since": "2022-06-14", "rule": "'=1+1"}


def test_explain_and_history_read_the_id_from_stdin_or_a_file(db, tmp_path):
    with Warehouse.open(db) as wh:
        three_published_runs(wh, tmp_path)
    by_arg = CliRunner().invoke(app, ["history", IDS[4], "--db", str(db), "--json"])
    (tmp_path / "id.txt").write_text(f"\n {IDS[4]}\n", encoding="utf-8")
    by_file = CliRunner().invoke(app, ["history", "--id-file", str(tmp_path / "id.txt"), "--db", str(db), "--json"])
    by_stdin = CliRunner().invoke(app, ["history", "--id-file", "-", "--db", str(db), "--json"], input=IDS[4] + "\n")
    assert by_arg.exit_code == by_file.exit_code == by_stdin.exit_code == 0, by_stdin.output
    assert json.loads(by_arg.stdout) == json.loads(by_file.stdout) == json.loads(by_stdin.stdout)
    ex_arg = CliRunner().invoke(app, ["explain", IDS[4], "--run", "1", "--db", str(db), "--json"])
    ex_in = CliRunner().invoke(app, ["explain", "--id-file", "-", "--run", "1", "--db", str(db), "--json"],
                               input=IDS[4])
    assert ex_arg.exit_code == ex_in.exit_code == 0 and json.loads(ex_arg.stdout) == json.loads(ex_in.stdout)
    neither = CliRunner().invoke(app, ["history", "--db", str(db)])
    assert neither.exit_code == 2 and "--id-file" in neither.output


CELL = st.one_of(st.none(), st.text(alphabet="=+-@\t\r 0123456789Xx;机a", max_size=40),
                 st.builds(lambda a, b: a + "110101199003077777"[: len(b) + 12] + b,
                           st.sampled_from(["", "=", "id ", "-"]), st.text(alphabet="0123456789Xx", max_size=8)))


@settings(max_examples=60, deadline=None)
@given(st.lists(CELL, min_size=1, max_size=12))
def test_csv_safe_frame_is_the_one_cell_rule_on_every_cell(cells):
    """The vectorised CSV cell rule (mask only the values with an id-shaped run, then defuse a
    leading formula character) is `csv_safe(mask_ids(cell))` cell by cell; key fields untouched."""
    frame = pl.DataFrame({"note": cells, "person_key": cells}, schema={"note": pl.String, "person_key": pl.String})
    out = textsafe.csv_safe_frame(frame)
    assert out["note"].to_list() == [None if c is None else textsafe.csv_safe(textsafe.mask_ids(c)) for c in cells]
    assert out["person_key"].to_list() == cells


@settings(max_examples=80, deadline=None)
@given(st.lists(st.none() | st.lists(st.none() | st.sampled_from(["HS-R-01", "r2", "", "中"]), max_size=3),
                max_size=12))
def test_joined_lists_is_list_join(lists):
    s = pl.Series("rules", lists, dtype=pl.List(pl.String))
    assert textsafe.joined_lists(s).equals(s.list.join(";"))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.none() | st.text(max_size=4), max_size=12), st.lists(st.none() | st.booleans(), max_size=12),
       st.booleans())
def test_fix_where_is_a_when_then_on_the_flagged_rows(values, flags, into_nulls):
    """`series.fix_where` (the fix computed on the flagged rows only, scattered back) gives
    what a `when`/`then` over every row gives; a null flag counts as false."""
    from hcode.series import fix_where

    n = min(len(values), len(flags))
    s = pl.Series("v", values[:n], dtype=pl.String)
    where = pl.Series("w", flags[:n], dtype=pl.Boolean)
    base = pl.Series("v", [None] * n, dtype=pl.String) if into_nulls else s
    calls: list[int] = []

    def fix(rows: pl.Series) -> pl.Series:
        calls.append(rows.len())
        return rows.str.to_uppercase() + "!"

    out = fix_where(s, where, fix, into=base if into_nulls else None)
    expected = pl.select(pl.when(pl.lit(where).fill_null(False)).then(pl.lit(s).str.to_uppercase() + "!")
                         .otherwise(pl.lit(base))).to_series()
    assert out.to_list() == expected.to_list()
    assert calls == ([] if not where.fill_null(False).any() else [int(where.fill_null(False).sum())])
    assert s.to_list() == values[:n] and base.to_list() == (values[:n] if not into_nulls else [None] * n)  # unchanged
