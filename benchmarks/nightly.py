"""Nightly batch benchmark: wall time per stage and peak memory, end to end.

Night 1 loads a whole `hcode sample` night (14 days of history, as of 2022-06-13) into an
empty warehouse and publishes it. Night 2 is a realistic increment: the rows of the sample
as of 2022-06-14 whose event time falls on 2022-06-14, i.e. one day's new files; it is
loaded, evaluated, diffed against night 1's published run, published and reported. Each
night runs as `hcode nightly` in its own process (Parquet inbox), so its peak RSS is its own.

    python benchmarks/nightly.py --residents 1000000
    python benchmarks/nightly.py --residents 10000000
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

KEY = "benchmark-key-of-at-least-32-characters"


def make_inbox(inbox: Path, residents: int, seed: int, as_of: dt.date, increment: bool,
               scans_per_day: float = 3.0) -> int:
    from hcode.feeds import FEEDS
    from hcode.sample.night import generate, write

    night = generate(residents, seed, as_of, scans_per_day=scans_per_day)
    if increment:
        day = as_of.isoformat()
        feeds = {name: frame.filter(pl.col(FEEDS[name].event_time).str.slice(0, 10) == day)
                 for name, frame in night.feeds.items()}
        night = dataclasses.replace(night, feeds=feeds)
    write(night, inbox, fmt="parquet")
    (inbox / "planted.json").unlink(missing_ok=True)
    return sum(f.height for f in night.feeds.values())


def run_night(db: Path, inbox: Path, reports: Path, date: dt.date) -> dict:
    """`hcode nightly` in a child process; its JSON plus the child's peak RSS."""
    code = ("import json, sys, resource\n"
            "from hcode.cli import app\n"
            "try:\n    app()\nexcept SystemExit as e:\n    rc = e.code\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            "print(json.dumps({'peak_rss_mib': int(hwm) / 1024, 'rc': rc}), file=sys.stderr)\n")
    env = dict(os.environ, HCODE_KEY=KEY)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, "nightly", "--db", str(db), "--inbox", str(inbox),
                          "--ruleset", "shanghai@2022.05.23", "--date", date.isoformat(), "--reports", str(reports),
                          "--now", f"{date + dt.timedelta(days=1)}T06:00:00", "--json"],
                         capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    try:
        result = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"nightly did not print one JSON object:\n{out.stdout[:2000]}\n{out.stderr[-2000:]}") from None
    result.update(json.loads(out.stderr.strip().splitlines()[-1]))
    result["wall"] = wall
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.environ["HCODE_KEY"] = KEY
    from hcode.store import warehouse

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "hcode.duckdb"
        warehouse.init(db)
        print(f"nightly batch, {args.residents:,} residents, shanghai@2022.05.23, Parquet ({os.cpu_count()} cores)")
        print(f"{'night':8} {'rows':>11} {'load':>7} {'evaluate':>9} {'freshness':>10} {'guard':>6} {'publish':>8} "
              f"{'report':>7} {'total':>7} {'wall':>7} {'peak MiB':>9} {'exit':>5}")
        for label, as_of, increment in (("full", dt.date(2022, 6, 13), False), ("next", dt.date(2022, 6, 14), True)):
            inbox = work / f"inbox-{label}"
            rows = make_inbox(inbox, args.residents, args.seed, as_of, increment)
            r = run_night(db, inbox, work / "reports", as_of)
            s = r["stages"]
            print(f"{label:8} {rows:>11,} {s.get('load', 0):>7.1f} {s.get('evaluate', 0):>9.1f} "
                  f"{s.get('freshness', 0):>10.1f} {s.get('guard', 0):>6.2f} {s.get('publish', 0):>8.1f} "
                  f"{s.get('report', 0):>7.1f} {sum(s.values()):>7.1f} {r['wall']:>7.1f} {r['peak_rss_mib']:>9,.0f} "
                  f"{r['exit_code']:>5}")
            if r["warnings"]:
                print("         warnings: " + "; ".join(w[:100] for w in r["warnings"][:3]))


if __name__ == "__main__":
    main()
