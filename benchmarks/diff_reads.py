"""Reading a stored run bucket by bucket for the diff: the baseline, how a diff read its runs
until 2026-12-06 (a DuckDB pass over ranges of pids writing every code into one Parquet
folder per person-key bucket, then each bucket's files read back), against what it does now
(each bucket a range of pids, read straight from the warehouse: `runs.store.pid_ranges`),
on an existing warehouse. Each mode runs in its own process under /usr/bin/time -v; while it
runs, the size of DuckDB's temporary folder (`<db>.tmp`, where a query spills) is polled.

    HCODE_MEMORY=6GiB python benchmarks/diff_reads.py --db hcode.duckdb --run 1

Prints, per mode: seconds, peak RSS, the largest spill seen, buckets, rows read and a
checksum of the rows (both must be the run's: every person once, the same codes).
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
from collections.abc import Iterator
from pathlib import Path

SPLIT_BYTES_PER_PERSON = 400  # the baseline's pass size, as it was


def folder_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:  # a spill file removed while we looked
                pass
    return total


def split_then_read(wh, run_id: int, n: int, folder: Path) -> Iterator:  # noqa: ANN001 - hcode imported late
    """The baseline: the run's codes split into `n` person-key buckets in passes of pids."""
    import polars as pl

    from hcode.config import load_config
    from hcode.runs.store import CODE_COLUMNS, CODES_WITH_KEYS
    from hcode.store.buckets import bucket_sql
    from hcode.store.warehouse import DUCKDB_SHARE, to_polars

    per_pass = max(1, int(load_config(wh.path).memory_limit * DUCKDB_SHARE / 2 / SPLIT_BYTES_PER_PERSON))
    lo, hi = wh.con.execute("SELECT coalesce(min(pid), 0), coalesce(max(pid) + 1, 0) FROM population_rows WHERE "
                            "population_id = (SELECT population_id FROM runs WHERE run_id = ?)", [run_id]).fetchall()[0]
    for start in range(lo, hi, per_pass):
        wh.con.execute(f"COPY (SELECT {CODE_COLUMNS}, {bucket_sql(n, 'p.person_key')} AS bucket {CODES_WITH_KEYS} "
                       f"WHERE c.run_id = {int(run_id)} AND c.pid >= {start} AND c.pid < {start + per_pass}) "
                       f"TO '{folder}' (FORMAT parquet, PARTITION_BY (bucket), COMPRESSION lz4, "
                       f"FILENAME_PATTERN 'pass{start}_{{i}}', OVERWRITE_OR_IGNORE)")
    schema = to_polars(wh.con.sql(f"SELECT {CODE_COLUMNS} {CODES_WITH_KEYS} LIMIT 0")).schema
    for b in range(n):
        files = sorted((folder / f"bucket={b}").glob("*.parquet"))
        if files:
            yield pl.read_parquet(files, hive_partitioning=False).select([pl.col(c).cast(t) for c, t in schema.items()])


def pid_ranges_read(wh, run_id: int, n: int) -> Iterator:  # noqa: ANN001
    from hcode.runs.store import pid_ranges, run_codes

    for r in pid_ranges(wh.con, [run_id], n):
        yield run_codes(wh.con, run_id, ordered=False, pid_range=r)


def child(db: Path, run_id: int, mode: str) -> None:
    import polars as pl

    from hcode.diff.buckets import diff_bucket_count
    from hcode.store.warehouse import Warehouse

    with Warehouse.open(db, read_only=True) as wh, tempfile.TemporaryDirectory(prefix="hcode-reads-") as tmp:
        n = diff_bucket_count(wh)
        t0 = time.perf_counter()
        parts = split_then_read(wh, run_id, n, Path(tmp) / "run") if mode == "split" else pid_ranges_read(wh, run_id, n)
        rows = check = 0
        for part in parts:  # what a diff's bucket reads; a checksum instead of the diff
            rows += part.height
            hashes = part.select(pl.struct("person_key", "color", "rule", "explanation").hash(7) % (1 << 31))
            check += int(hashes.to_series().cast(pl.Int64).sum())  # (free of the rows' order)
        seconds = time.perf_counter() - t0
        persons = wh.con.execute("SELECT persons FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
        print(json.dumps({"seconds": seconds, "buckets": n, "rows": rows, "persons": persons, "check": check}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--run", type=int, default=1)
    ap.add_argument("--child", choices=("split", "ranges"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.db, args.run, args.child)
        return
    spill = args.db.with_name(args.db.name + ".tmp")
    time_bin = shutil.which("time") or "/usr/bin/time"
    print(f"diff reads benchmark: run {args.run} of {args.db} "
          f"(HCODE_MEMORY={os.environ.get('HCODE_MEMORY', 'default')})")
    print(f"{'mode':8} {'seconds':>8} {'peak MiB':>9} {'spill MiB':>10} {'buckets':>8} {'rows':>12}")
    checks = {}
    for mode in ("split", "ranges"):
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
        print(f"{mode:8} {got['seconds']:>8.1f} {rss:>9,.0f} {biggest[0] / 2**20:>10,.0f} {got['buckets']:>8} "
              f"{got['rows']:>12,}")
        if got["rows"] != got["persons"]:
            raise SystemExit(f"{mode}: {got['rows']} rows read for {got['persons']} persons")
        checks[mode] = got["check"]
    if checks["split"] != checks["ranges"]:
        raise SystemExit("the two modes read different codes")


if __name__ == "__main__":
    main()
