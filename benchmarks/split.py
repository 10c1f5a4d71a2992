"""Splitting a stored run into the diff's person buckets: one pass over the whole run (the
baseline, how `codes_by_bucket` worked until 2026-12-06) against passes over ranges of pids
(`hcode.diff.buckets.split_persons_per_pass`, what a diff does now), on an existing
warehouse. Each mode runs in its own process under /usr/bin/time -v; while it runs, the size
of DuckDB's temporary folder (`<db>.tmp`, where its join spills) is polled.

    HCODE_MEMORY=12GB python benchmarks/split.py --db run/hcode.duckdb --run 1

Prints, per mode: seconds, peak RSS, the largest spill seen, passes, files and rows written
(the rows must be the run's persons in both modes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def folder_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:  # a spill file removed while we looked
                pass
    return total


def child(db: Path, run_id: int, mode: str) -> None:
    import pyarrow.parquet as pq

    from hcode.config import load_config
    from hcode.diff.buckets import diff_bucket_count, split_persons_per_pass
    from hcode.runs.store import codes_by_bucket
    from hcode.store.warehouse import Warehouse

    with Warehouse.open(db, read_only=True) as wh, tempfile.TemporaryDirectory(prefix="hcode-split-") as tmp:
        n = diff_bucket_count(wh)
        per_pass = None if mode == "one-pass" else split_persons_per_pass(load_config(db))
        t0 = time.perf_counter()
        codes_by_bucket(wh.con, run_id, n, Path(tmp) / "run", per_pass)
        seconds = time.perf_counter() - t0
        files = sorted((Path(tmp) / "run").glob("bucket=*/*.parquet"))
        rows = sum(pq.read_metadata(f).num_rows for f in files)
        persons, span = wh.con.execute(
            "SELECT count(*), coalesce(max(pid) - min(pid) + 1, 0) FROM population_rows WHERE population_id = "
            "(SELECT population_id FROM runs WHERE run_id = ?)", [run_id]).fetchall()[0]
        passes = 1 if per_pass is None else -(-span // per_pass)
        print(json.dumps({"seconds": seconds, "buckets": n, "passes": passes, "files": len(files),
                          "rows": rows, "persons": persons}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--run", type=int, default=1)
    ap.add_argument("--child", choices=("one-pass", "passes"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.db, args.run, args.child)
        return
    spill = args.db.with_name(args.db.name + ".tmp")
    time_bin = shutil.which("time") or "/usr/bin/time"
    print(f"split benchmark: run {args.run} of {args.db} (HCODE_MEMORY={os.environ.get('HCODE_MEMORY', 'default')})")
    print(f"{'mode':10} {'seconds':>8} {'peak MiB':>9} {'spill MiB':>10} {'passes':>7} {'files':>6} {'rows':>12}")
    for mode in ("one-pass", "passes"):
        biggest, done = [0], threading.Event()

        def poll(biggest: list[int] = biggest, done: threading.Event = done) -> None:
            while not done.wait(0.5):
                biggest[0] = max(biggest[0], folder_size(spill))

        watcher = threading.Thread(target=poll)
        watcher.start()
        out = subprocess.run([time_bin, "-v", sys.executable, __file__, "--db", str(args.db), "--run", str(args.run),
                              "--child", mode], capture_output=True, text=True)
        done.set()
        watcher.join()
        if out.returncode:
            raise SystemExit(f"{mode} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
        got = json.loads(out.stdout.strip().splitlines()[-1])
        rss = next(int(line.split()[-1]) for line in out.stderr.splitlines() if "Maximum resident" in line) / 1024
        print(f"{mode:10} {got['seconds']:>8.1f} {rss:>9,.0f} {biggest[0] / 2**20:>10,.0f} {got['passes']:>7} "
              f"{got['files']:>6} {got['rows']:>12,}")
        if got["rows"] != got["persons"]:
            raise SystemExit(f"{mode}: {got['rows']} rows written for {got['persons']} persons")


if __name__ == "__main__":
    main()
