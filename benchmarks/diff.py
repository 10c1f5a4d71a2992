"""Time `diff()` on two synthetic 10M-person sides against a bare DuckDB full outer join.

Usage: python benchmarks/diff.py [--persons N] [--change 0.02] [--out DIR]

The sides look like a night's codes: ~97 % green without rules, the rest matching one or
two rules with evidence; about `--change` of persons change colour in the after side and
0.1 % are only in one side. Prints seconds for diff(), for writing changes.parquet and
summary.json, the peak RSS during that step, and the same for a DuckDB full outer join of
the two (person_key, color) tables grouped into the transition matrix.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from hcode.diff.changes import CODES_SCHEMA, Side, diff
from hcode.report.files import write_diff, write_listed, write_summary

RULES = {"red": ["SH-R-01", "SH-R-02", "SH-R-03", "SH-R-04"], "yellow": ["SH-Y-03", "NR-Y-01"]}
TITLES = {r: {"en": f"rule {r}", "zh": f"规则 {r}"} for rs in RULES.values() for r in rs}
FEEDS = {"SH-R-01": "nat_results", "SH-R-02": "cases", "SH-R-03": "contacts", "SH-R-04": "entries",
         "SH-Y-03": "contacts", "NR-Y-01": "inbound_codes"}


def codes_frame(keys: pl.Series, colors: np.ndarray, seed: int) -> pl.DataFrame:
    """Codes for `keys`; the same seed gives a person the same rule and evidence time."""
    rng = np.random.default_rng(seed)
    n = len(keys)
    rule_idx = rng.integers(0, 4, n)
    yellow_idx = rng.integers(0, 2, n)
    frame = pl.DataFrame({
        "person_key": keys, "color": colors.astype(str),
        "red": np.array(RULES["red"])[rule_idx], "yellow": np.array(RULES["yellow"])[yellow_idx],
        "district_code": (310101 + rng.integers(0, 16, n)).astype(str),
        "hours": rng.integers(0, 14 * 24, n),
    })
    frame = frame.with_columns(rule=pl.when(pl.col("color") == "red").then("red")
                               .when(pl.col("color") == "yellow").then("yellow"))
    base = dt.datetime(2022, 6, 1)
    return frame.with_columns(
        matched_rules=pl.when(pl.col("rule").is_not_null()).then(pl.concat_list("rule")).otherwise(pl.lit([], pl.List(pl.String))),
        evidence=pl.when(pl.col("rule").is_not_null()).then(pl.concat_list(pl.struct(
            rule="rule", feed=pl.col("rule").replace(FEEDS),
            time=pl.lit(base) + pl.duration(hours="hours"), detail=pl.lit("identified"))))
        .otherwise(pl.lit([], CODES_SCHEMA["evidence"])),
        override=pl.lit(None, CODES_SCHEMA["override"]),
        explanation=pl.when(pl.col("rule").is_not_null()).then(pl.concat_str(["rule", pl.lit(" matches")]))
        .otherwise(pl.lit("no rule matches")),
    ).select(list(CODES_SCHEMA))


def make_sides(n: int, change: float, seed: int = 1) -> tuple[Side, Side]:
    rng = np.random.default_rng(seed)
    total = n + n // 1000
    ids = pl.int_range(total, dtype=pl.Int64)
    keys = pl.select(pl.concat_str([ids.hash(seed + i).cast(pl.String).str.pad_start(20, "0") for i in range(4)])
                     .str.slice(0, 64).alias("person_key")).to_series()  # 64 characters, like a key
    colors = rng.choice(np.array(["green", "yellow", "red"], dtype=object), total, p=[0.97, 0.02, 0.01])
    after_colors = colors.copy()
    flip = rng.random(total) < change
    after_colors[flip] = np.where(colors[flip] == "green", "red", "green")
    before = codes_frame(keys, colors, seed).slice(0, n)
    after = codes_frame(keys, after_colors, seed).slice(total - n, n)  # 0.1 % only in one side
    meta = dict(ruleset="shanghai", palette=("green", "yellow", "red"), rule_titles=TITLES)
    return (Side(label="run 1", run_id=1, version="2022.05.23", as_of=dt.date(2022, 6, 14), codes=before, **meta),
            Side(label="run 2", run_id=2, version="2022.05.23", as_of=dt.date(2022, 6, 15), codes=after, **meta))


def reset_peak() -> int:
    Path("/proc/self/clear_refs").write_text("5")
    return rss("VmRSS")


def rss(field: str = "VmHWM") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=10_000_000)
    ap.add_argument("--change", type=float, default=0.02)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    t = time.perf_counter()
    before, after = make_sides(args.persons, args.change)
    print(f"generated 2 x {args.persons:,} persons in {time.perf_counter() - t:.1f} s")
    out = args.out or Path(tempfile.mkdtemp(prefix="hcode-diff-bench-"))
    out.mkdir(parents=True, exist_ok=True)

    base = reset_peak()
    t = time.perf_counter()
    d = diff(before, after)
    t_diff = time.perf_counter() - t
    t = time.perf_counter()
    write_listed(d.changes, parquet=out / "changes.parquet")
    write_summary(d, out / "summary.json")
    t_write = time.perf_counter() - t
    peak_diff = rss() - base

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.register("b_slim", before.codes.select("person_key", "color"))
    con.register("a_slim", after.codes.select("person_key", "color"))
    base = reset_peak()
    t = time.perf_counter()
    con.sql("SELECT b.color AS before, a.color AS after, count(*) AS persons FROM b_slim b "
            "FULL OUTER JOIN a_slim a USING (person_key) GROUP BY ALL").fetchall()
    t_duck = time.perf_counter() - t
    peak_duck = rss() - base

    t = time.perf_counter()
    write_diff(d, out / "all")
    t_all = time.perf_counter() - t

    total = t_diff + t_write
    print(f"persons compared {d.persons_compared:,}; changes {d.n_changes:,}; "
          f"rule-only changes {d.rule_changes.height:,}")
    print(f"diff() {t_diff:.2f} s + write changes.parquet & summary.json {t_write:.2f} s = {total:.2f} s; "
          f"peak RSS above baseline {peak_diff:,} MiB (process peak {rss():,} MiB)")
    print(f"bare DuckDB full outer join + matrix {t_duck:.2f} s; peak RSS above baseline {peak_duck:,} MiB")
    print(f"(for information: every --out file incl. changes.csv, report.md, report.html: {t_all:.2f} s)")
    print(f"ratio diff/bare join {total / t_duck:.2f}x  (goals: < 30 s, <= 2x)")


if __name__ == "__main__":
    main()
