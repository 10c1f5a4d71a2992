"""The diff of two stored runs, computed person bucket by person bucket.

A person's diff row depends on nothing but that person's codes on both sides, so the diff
of two runs is the diff of each bucket's persons, put together. A diff's buckets are
ranges of pids (`runs.store.pid_ranges`): a pid names the same person in every run of a
warehouse, and DuckDB reads one range of a run without touching the rest of it. The
transition matrices, the counts, the one-sided totals and the per-district counts are
sums; the per-rule table is made again from the sums; the listed changes are the buckets'
rows in the order one diff gives them (district, then person key, both unique per person). The result, and every report written
from it, is the same whatever the number of buckets (tests/test_buckets.py compares the
nightly reports byte for byte).

Why: comparing two whole runs held both sides and the diff's working frames at once, about
1.75 kB a person at the diff's peak (3.5 GiB for a first night of 2M persons, 17 GiB for the
10M nightly). A bucket bounds that by the bucket. The listed rows themselves, a few per
cent of persons on an ordinary night but everyone on a province's first night, stay in
each bucket's file and are read back in order by the writers (`hcode.diff.listed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

import polars as pl

from hcode.colors import ABSENT
from hcode.config import load_config
from hcode.diff.changes import Diff, Side, by_changes, diff, merged_palette, rule_table
from hcode.diff.listed import Listed, Part, SpillDir, arrow_part, write_arrow_part
from hcode.diff.sides import load_side
from hcode.runs.store import pid_ranges
from hcode.store.buckets import bucket_count, persons_in_warehouse
from hcode.store.warehouse import Warehouse

DIFF_BYTES_PER_PERSON = 2_000  # the diff's peak per person of a bucket (measured: 1.75 kB, a first night)
DIFF_SHARE = 0.25  # of the memory limit for one bucket's diff; also DuckDB's while ordering the listed rows
LISTED = ("changes", "rule_changes")


def diff_bucket_count(wh: Warehouse) -> int:
    """`bucket_count` for one bucket's diff: `DIFF_BYTES_PER_PERSON` within `DIFF_SHARE` of
    the memory limit."""
    return bucket_count(persons_in_warehouse(wh.con), load_config(wh.path), DIFF_BYTES_PER_PERSON, DIFF_SHARE)


def diff_runs(wh: Warehouse, before: int | None, after: int, lang: str = "en", *, buckets: int | None = None,
              empty_before: Callable[[], Side] | None = None) -> Diff:
    """The diff of stored run `before` (None: `empty_before()`, a side without codes) and
    stored run `after`, bucket by bucket (`buckets`, default `diff_bucket_count`). With more
    than one bucket the listed rows stay in files (`Listed`), removed with the diff."""
    n = buckets or diff_bucket_count(wh)

    def side(run_id: int | None, pids: tuple[int, int] | None) -> Side:
        if run_id is not None:  # two runs: by pid (a first night lists everyone: keys read at once)
            return load_side(wh, run_id, pid_range=pids, explanations=False, by_pid=before is not None)
        if empty_before is None:
            raise ValueError("a diff without a before run needs empty_before")
        return empty_before()

    if n == 1:
        return diff(side(before, None), side(after, None), lang=lang)
    # Both runs are read range of pids by range (a pid is the same person in both), and each
    # bucket's listed rows go to a file at once: held in memory, they would keep alive the
    # buffers of the bucket's sides that their texts were gathered from.
    # A bucket's files are written on a thread while the next bucket is read and compared
    # (the thread is handed Arrow tables only: `write_arrow_part`); one bucket's at most wait.
    spill = SpillDir()
    limit = int(load_config(wh.path).memory_limit * DIFF_SHARE)
    light: list[Diff] = []
    parts: dict[str, list[Future[Part]]] = {name: [] for name in LISTED}
    with ThreadPoolExecutor(1, thread_name_prefix="hcode-diff-parts") as pool:
        for b, pids in enumerate(pid_ranges(wh.con, [r for r in (before, after) if r is not None], n)):
            d = diff(side(before, pids), side(after, pids), lang=lang)
            if b:
                for name in LISTED:
                    parts[name][-1].result()
            for name in LISTED:
                parts[name].append(pool.submit(write_arrow_part, *arrow_part(getattr(d, name).frame()),
                                               spill.path / f"{name}.{b:05d}.parquet"))
            light.append(replace(d, changes=Listed.empty(d.changes.schema),
                                 rule_changes=Listed.empty(d.rule_changes.schema)))
            del d
    schema = light[0].changes.schema
    listed = {name: Listed.spilled([f.result() for f in parts[name]], schema, spill, limit) for name in LISTED}
    return merge_diffs(light, listed["changes"], listed["rule_changes"])


def merge_diffs(diffs: Iterable[Diff], changes: Listed, rule_changes: Listed) -> Diff:
    """The diffs of disjoint sets of persons (same two sides otherwise) as one diff, with all
    their listed rows (`changes`, `rule_changes`, in the order a diff lists them)."""
    parts = list(diffs)
    first = parts[0]
    base = merged_palette(tuple(first.before.palette), tuple(first.after.palette))
    strays = sorted({c for p in parts for c in p.palette} - set(base))
    palette = (*base, *strays)
    axis = [*palette, ABSENT]
    matrix = {r: dict.fromkeys(axis, 0) for r in axis}
    for p in parts:
        for r, row in p.matrix.items():
            for c, persons in row.items():
                matrix[r][c] += persons
    counts = pl.concat([p.rules.select("rule", "started", "stopped") for p in parts]).group_by("rule").sum()
    districts = pl.concat([p.districts for p in parts]).group_by("district_code").sum().pipe(by_changes)
    return Diff(
        before=first.before, after=first.after, lang=first.lang, palette=palette,
        persons_compared=sum(p.persons_compared for p in parts), changes=changes, rule_changes=rule_changes,
        matrix=matrix, rules=rule_table(first.before, first.after, counts, first.lang),
        districts=districts,
        only_before=sum(p.only_before for p in parts), only_after=sum(p.only_after for p in parts),
    )
