"""The files of `hcode diff --out DIR`, and `summary_dict` (also what `hcode diff --json` prints).

`changes.parquet` keeps lists and override structs as they are (zstd level 1: the fastest
level that still compresses well on 10M rows); `changes.csv` is for people opening it in
Excel: UTF-8 with a BOM so Chinese shows, lists `;`-joined, overrides as one readable text,
text cells that a spreadsheet would run as a formula defused with `'` (`hcode.textsafe`).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from hcode.diff.changes import Diff
from hcode.diff.listed import Listed
from hcode.series import fix_where
from hcode.textsafe import csv_safe_frame, joined_lists

PARQUET_AHEAD = 2  # batches handed to the Parquet thread and not yet written (each BATCH_ROWS rows)


def summary_dict(diff: Diff, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """The content of `summary.json`: both sides, persons compared, the transition matrix
    (before -> after -> persons, palette order then "absent"), per-rule started/stopped,
    colour changes per district, the one-sided counts, and `warnings` (such as a ruleset
    evaluated before it takes effect)."""
    return {
        "before": diff.before.as_dict(),
        "after": diff.after.as_dict(),
        "lang": diff.lang,
        "persons_compared": diff.persons_compared,
        "changes": diff.n_changes,
        "rule_changes": diff.rule_changes.height,
        "only_before": diff.only_before,
        "only_after": diff.only_after,
        "palette": list(diff.palette),
        "matrix": diff.matrix,
        "rules": {
            r["rule"]: {"title": r["title"], "started": r["started"], "stopped": r["stopped"]}
            for r in diff.rules.iter_rows(named=True)
        },
        "districts": {
            r.pop("district_code"): r for r in diff.districts.iter_rows(named=True)
        },
        "warnings": list(warnings),
    }


def write_summary(diff: Diff, path: Path, warnings: Sequence[str] = ()) -> None:
    path.write_text(json.dumps(summary_dict(diff, warnings), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_listed(listed: Listed, parquet: Path | None = None, csv: Path | None = None) -> None:
    """`changes.parquet` and/or `changes.csv` from one pass over the listed rows (a spilled
    diff orders them once for both). The Parquet file has one row group a batch, so that
    memory stays a batch's whatever the number of rows."""
    with ExitStack() as files:
        pq_out = files.enter_context(pq.ParquetWriter(parquet, listed.head(0).to_arrow().schema, compression="zstd",
                                                      compression_level=1)) if parquet else None
        csv_out = files.enter_context(csv.open("wb")) if csv else None
        # The Parquet file is written on a thread of its own while the next batches are
        # ordered and the CSV written; the thread is done before the file closes. It is given
        # Arrow tables only and calls nothing of Polars: two threads using one Polars frame at
        # once can deadlock (a CSV thread beside it hung a 100M report in `to_arrow`, `slice`
        # and `schema` of one batch, every thread asleep; pola-rs/polars#27472 is one such lock).
        pool = files.enter_context(ThreadPoolExecutor(1, thread_name_prefix="hcode-changes.parquet"))
        pending: deque[Future[None]] = deque()
        for i, batch in enumerate(listed.batches()):
            if pq_out is not None:
                pending.append(pool.submit(pq_out.write_table, batch.to_arrow()))
                while len(pending) > PARQUET_AHEAD:
                    pending.popleft().result()
            if csv_out is not None:
                csv_safe_frame(changes_for_csv(batch)).write_csv(csv_out, include_bom=i == 0, include_header=i == 0)
        for done in pending:
            done.result()


def _override_text(column: str) -> pl.Expr:
    o = pl.col(column)
    return pl.when(o.is_not_null()).then(pl.concat_str(
        [o.struct.field("color"), pl.lit(": "), o.struct.field("authority").fill_null("?"),
         pl.lit(" / "), o.struct.field("basis").fill_null("?"), pl.lit(" / "),
         o.struct.field("operator").fill_null("?"),
         pl.when(o.struct.field("applied") == False).then(pl.lit(" (not applied)")).otherwise(pl.lit(""))]  # noqa: E712
    ))


def _override_texts(s: pl.Series) -> pl.Series:
    """`_override_text` of the overrides present only: a listed row rarely has one, and text
    built for every row stays behind its nulls, where the id mask's search still reads it
    (a first night's batch of 100,000 rows with 8 overrides: the id mask 12 ms for that column;
    the whole batch made spreadsheet-safe in 23 ms against 34–47 ms)."""
    none = pl.repeat(None, s.len(), dtype=pl.String, eager=True).alias(s.name)
    return fix_where(s, s.is_not_null(), lambda present: present.to_frame().select(_override_text(s.name)).to_series(),
                     into=none)


def changes_for_csv(frame: pl.DataFrame) -> pl.DataFrame:
    """Lists `;`-joined and overrides as text, so that every cell is a plain string."""
    lists = [c for c, t in frame.schema.items() if isinstance(t, pl.List)]
    structs = [c for c, t in frame.schema.items() if isinstance(t, pl.Struct)]
    return frame.with_columns(
        *[joined_lists(frame.get_column(c)) for c in lists],
        *[_override_texts(frame.get_column(c)) for c in structs],
    )


def write_diff(diff: Diff, out_dir: Path | str, lang: str | None = None, warnings: Sequence[str] = ()
               ) -> dict[str, Path]:
    """Write changes.parquet, changes.csv, summary.json, report.md and report.html into
    `out_dir` (created if needed); returns the paths by name. `lang` defaults to the diff's."""
    from hcode.report.html import render_html
    from hcode.report.markdown import render_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lang = lang or diff.lang
    paths = {name: out / name for name in
             ("changes.parquet", "changes.csv", "summary.json", "report.md", "report.html")}
    write_listed(diff.changes, paths["changes.parquet"], paths["changes.csv"])
    write_summary(diff, paths["summary.json"], warnings)
    paths["report.md"].write_text(render_markdown(diff, lang), encoding="utf-8")
    paths["report.html"].write_text(render_html(diff, lang), encoding="utf-8")
    return paths
