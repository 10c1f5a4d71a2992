"""How long `hcode sample` takes and how much memory it needs, for N residents.

Generates a night block by block (`--block` residents at a time, feed by feed) and writes it
(Parquet by default) into a temporary folder, then prints the wall time, the rows written and
the peak resident memory of this process.

    python benchmarks/sample.py                      # 1M residents, Parquet
    python benchmarks/sample.py --residents 10000000 --format csv
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from hcode.sample import DEFAULT_SCANS
from hcode.sample import night as sample


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--residents", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--format", default="parquet", choices=sample.FORMATS)
    ap.add_argument("--scans-per-day", type=float, default=DEFAULT_SCANS)
    ap.add_argument("--block", type=int, default=sample.BLOCK, help="residents generated at a time")
    ap.add_argument("--keep", type=Path, help="write here instead of a temporary folder")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        t0 = time.perf_counter()
        res = sample.generate_and_write(out, residents=args.residents, seed=args.seed, fmt=args.format,
                                        scans_per_day=args.scans_per_day, block=args.block)
        seconds = time.perf_counter() - t0
        size = sum(f.path.stat().st_size for f in res.files)
        rows = sum(f.rows for f in res.files)
    print(f"residents        {args.residents:,}")
    print(f"format           {args.format}, {args.scans_per_day:g} scans a day, blocks of {args.block:,}")
    print(f"rows written     {rows:,} in {len(res.files)} files ({size / 1e6:,.0f} MB)")
    for f in res.files:
        print(f"  {f.feed:<15} {f.rows:>12,}")
    print(f"seconds          {seconds:.1f}")
    print(f"peak RSS         {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
