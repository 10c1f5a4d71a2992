"""Ingest benchmark: hcode's validated, pseudonymised load against a bare DuckDB load.

Generates a night with `hcode sample` (default 1M residents, about 7M rows), then loads it
as Parquet and as CSV into fresh warehouses, each measurement in its own subprocess so that
peak memory (max RSS) is its own. The baseline, in the same run, is DuckDB's
`CREATE TABLE AS SELECT * FROM read_parquet/read_csv` of the same files with no validation.

    python benchmarks/ingest.py                    # 1M residents
    python benchmarks/ingest.py --residents 100000 # quicker
    python benchmarks/ingest.py --repeat 5         # median of 5 runs of each loader (default 3)
    python benchmarks/ingest.py --lake             # also hcode keeping a lake ([lake] path set)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mib() -> float:
    """Peak RSS of this process (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, fmt: str, src: Path, db: Path) -> dict:
    files = sorted(src.glob(f"*.{fmt}"))
    t0 = time.perf_counter()
    if mode in ("hcode", "hcode-lake"):
        from hcode.ingest.load import ingest
        from hcode.store import warehouse
        from hcode.store.warehouse import Warehouse

        os.environ["HCODE_KEY"] = "benchmark-key-of-at-least-32-characters"
        if mode == "hcode-lake":  # (its own folder: hcode.toml sits beside the warehouse)
            (db.parent / "hcode.toml").write_text(f'[lake]\npath = "{db}.lake"\n', encoding="utf-8")
        warehouse.init(db)
        with Warehouse.open(db) as wh:
            results = ingest(wh, files, now=dt.datetime(2022, 6, 15, 6))
        rows = sum(r.rows_read for r in results)
        quarantined = sum(r.rows_quarantined for r in results)
    else:
        import duckdb

        con = duckdb.connect(str(db))
        rows = 0
        for f in files:
            reader = f"read_parquet('{f}')" if fmt == "parquet" else f"read_csv('{f}', header=true, all_varchar=true)"
            con.execute(f"CREATE TABLE {f.stem} AS SELECT * FROM {reader}")
            rows += con.execute(f"SELECT count(*) FROM {f.stem}").fetchall()[0][0]
        con.close()
        quarantined = 0
    seconds = time.perf_counter() - t0
    return {"mode": mode, "format": fmt, "rows": rows, "quarantined": quarantined, "seconds": seconds,
            "peak_rss_mib": rss_mib()}


def measure(mode: str, fmt: str, src: Path, work: Path, n: int) -> dict:
    folder = work / mode
    folder.mkdir(exist_ok=True)
    db = folder / f"{fmt}-{n}.duckdb"
    out = subprocess.run([sys.executable, __file__, "--child", mode, fmt, str(src), str(db)],
                         check=True, capture_output=True, text=True)
    for f in folder.glob(f"{db.name}*"):
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_of(runs: list[dict]) -> dict:
    """The run with the median time (its peak memory is reported with it)."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3,
                    help="Measure each loader this many times, alternating; report the median (default 3).")
    ap.add_argument("--scans-per-day", type=float, default=0,
                    help="Place scans a resident a day (default 0: the night of the earlier figures; 3 is "
                         "the sample's default, about 42 more rows a resident).")
    ap.add_argument("--lake", action="store_true", help="Also measure hcode keeping a lake (hcode-lake).")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "FORMAT", "SRC", "DB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, fmt, src, db = args.child
        print(json.dumps(child(mode, fmt, Path(src), Path(db))))
        return

    from hcode.sample.night import generate, write

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        night = generate(args.residents, args.seed, dt.date(2022, 6, 14), scans_per_day=args.scans_per_day)
        for fmt in ("parquet", "csv"):
            write(night, work / fmt, fmt=fmt)
        del night
        print(f"generated {args.residents:,} residents in {time.perf_counter() - t0:.1f} s "
              f"(machine: {os.cpu_count()} cores)")
        print(f"{'format':8} {'loader':10} {'rows':>12} {'seconds':>8} {'rows/s':>12} {'peak MiB':>9} {'ratio':>6}")
        samples = {}
        for fmt in ("parquet", "csv"):
            modes = ("bare", "hcode", "hcode-lake") if args.lake else ("bare", "hcode")
            runs = [tuple(measure(m, fmt, work / fmt, work, n) for m in modes) for n in range(args.repeat)]
            bare, ours = median_of([r[0] for r in runs]), median_of([r[1] for r in runs])
            samples[fmt] = runs
            for r in (bare, ours, *([median_of([r[2] for r in runs])] if args.lake else [])):
                ratio = r["seconds"] / bare["seconds"]
                print(f"{fmt:8} {r['mode']:10} {r['rows']:>12,} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>12,.0f} "
                      f"{r['peak_rss_mib']:>9,.0f} {ratio:>6.2f}")
            print(f"{fmt:8} quarantined by hcode: {ours['quarantined']:,}")
        print(f"median of {args.repeat} alternating runs; every run ({' / '.join(r['mode'] for r in runs[0])} "
              "seconds):")
        for fmt, runs in samples.items():
            print(f"  {fmt}: " + ", ".join(" / ".join(f"{r['seconds']:.2f}" for r in run) for run in runs))


if __name__ == "__main__":
    main()
