"""Renderers and files of a diff: golden report.md and terminal text, the --out folder.

Regenerate the golden files after an intended change with
`HCODE_UPDATE_GOLDEN=1 python -m pytest tests/test_report.py` and review the git diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from diff_fixtures import nightly_pair, ruleset_pair

from hcode.diff.changes import diff
from hcode.report.files import summary_dict, write_diff
from hcode.report.html import render_html
from hcode.report.markdown import render_markdown
from hcode.report.terminal import terminal_text

GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("HCODE_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with HCODE_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_report_md_golden(lang):
    check_golden(f"diff-report-{lang}.md", render_markdown(diff(*ruleset_pair(), lang=lang)))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_terminal_golden(lang):
    text = terminal_text(diff(*ruleset_pair(), lang=lang), width=100)
    assert "\x1b[" not in text
    assert max(len(line) for line in text.splitlines()) <= 100
    check_golden(f"diff-terminal-{lang}.txt", text)


def test_nightly_terminal_golden():
    check_golden("diff-terminal-nightly.txt", terminal_text(diff(*nightly_pair()), width=100))


def test_summary_dict_shape():
    s = summary_dict(diff(*ruleset_pair()))
    assert s["before"] == {"label": "shanghai@2022.05.23", "run_id": None, "ruleset": "shanghai",
                           "version": "2022.05.23", "as_of": "2022-06-26", "palette": ["green", "yellow", "red"]}
    assert s["persons_compared"] == 31 and s["changes"] == 6 and s["rule_changes"] == 1
    assert s["matrix"]["red"] == {"green": 2, "yellow": 1, "red": 1, "absent": 0}
    assert s["matrix"]["absent"]["green"] == 1
    assert s["rules"]["SH-R-03"] == {"title": "Close contact", "started": 0, "stopped": 3}
    assert s["districts"]["310115"]["changes"] == 3
    assert (s["only_before"], s["only_after"]) == (1, 1)
    json.dumps(s)  # plain JSON types only


def test_write_diff_files(tmp_path):
    d = diff(*ruleset_pair(), lang="zh")
    paths = write_diff(d, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["changes.parquet", "changes.csv", "summary.json", "report.md", "report.html"])
    parquet = pl.read_parquet(paths["changes.parquet"])
    assert parquet.height == 6 and parquet.schema["rules_before"] == pl.List(pl.String)
    assert set(parquet.columns) >= {"person_key", "before", "after", "rules_before", "rules_after", "explanation"}
    raw = paths["changes.csv"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    csv = pl.read_csv(raw[3:])
    assert csv.height == 6
    assert "SH-R-03" in csv["rules_before"].drop_nulls().to_list()
    assert "红码" in raw.decode("utf-8-sig")
    assert json.loads(paths["summary.json"].read_text(encoding="utf-8"))["lang"] == "zh"


def test_html_is_self_contained_and_escaped():
    before, after = ruleset_pair()
    evil = after.codes.with_columns(
        pl.when(pl.col("color") == "red").then(pl.lit("<script>alert(1)</script>")).otherwise("district_code")
        .alias("district_code"))
    after = type(after)(**{**after.__dict__, "codes": evil, "label": "<b>run</b>"})
    page = render_html(diff(before, after))
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "<b>run</b>" not in page
    assert page.count("<script>") == 1  # only the inline table filter
    for external in ("http://", "https://", "src=", "@import", "url("):
        assert external not in page


def test_the_parquet_thread_is_given_arrow_tables_and_calls_no_polars(tmp_path, monkeypatch):
    """changes.parquet is written on a thread of its own, which must never call Polars:
    Polars called from two threads at once can deadlock (a 100M report hung so). Every call
    the thread is handed is pyarrow's writer on a pyarrow table, and the files are the ones
    written without the thread."""
    import concurrent.futures

    import pyarrow as pa
    import pyarrow.parquet as pq

    from hcode.diff.listed import Listed
    from hcode.report import files

    handed = []

    class Recording(concurrent.futures.ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            handed.append((fn, args, kwargs))
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(files, "ThreadPoolExecutor", Recording)
    changes = diff(*nightly_pair()).changes.frame()
    rows = changes.sample(250_000, with_replacement=True, seed=1)  # two batches of 100,000 rows and a short one
    files.write_listed(Listed.of(rows), tmp_path / "changes.parquet", tmp_path / "changes.csv")
    assert len(handed) == -(-rows.height // 100_000) > 1
    for fn, args, kwargs in handed:
        assert getattr(fn, "__self__", None).__class__ is pq.ParquetWriter and fn.__name__ == "write_table"
        assert [type(a) for a in args] == [pa.Table] and not kwargs
    assert pl.read_parquet(tmp_path / "changes.parquet").equals(rows)


def test_an_override_cell_of_changes_csv_is_its_readable_text():
    """changes.csv writes an override as one text (colour: authority / basis / operator, and
    "(not applied)"), built for the rows that have one only: the same text, row by row, as the
    rule written out in Python, and null where there is none (hypothesis, a few overrides
    among many rows as in a report's batch)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from hcode.feeds import OVERRIDE
    from hcode.report.files import changes_for_csv

    text = st.none() | st.sampled_from(["red", "上海市卫健委", "=cmd", "", "a / b"])
    override = st.none() | st.fixed_dictionaries({
        "color": text, "authority": text, "basis": text, "operator": text, "reason": text,
        "issued_at": st.none(), "expires_at": st.none(), "applied": st.none() | st.booleans()})

    def expected(o: dict | None) -> str | None:
        if o is None or o["color"] is None:
            return None
        return (f"{o['color']}: {o['authority'] if o['authority'] is not None else '?'} / "
                f"{o['basis'] if o['basis'] is not None else '?'} / "
                f"{o['operator'] if o['operator'] is not None else '?'}"
                + (" (not applied)" if o["applied"] is False else ""))

    @settings(max_examples=60, deadline=None)
    @given(st.lists(override, max_size=12), st.integers(0, 200))
    def check(overrides: list, nulls: int) -> None:
        rows = overrides + [None] * nulls
        frame = pl.DataFrame({"override_after": pl.Series(rows, dtype=OVERRIDE)})
        out = changes_for_csv(frame).get_column("override_after")
        assert out.dtype == pl.String
        assert out.to_list() == [expected(o) for o in rows]

    check()
