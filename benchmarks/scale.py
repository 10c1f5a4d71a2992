"""Scale benchmark: peak RSS and seconds per stage of a nightly at N residents, and the
embedded engine's evaluate against Spark local[1] / local[2] on the same warehouse.

Every measured step is an `hcode` command in its own process under `/usr/bin/time -v`
(peak RSS = "Maximum resident set size" of the process and the children it waited for;
Spark's JVM is a child of the hcode process), in this order:

1. `hcode sample --residents N --format parquet` (the night's files);
2. `hcode nightly` on them into an empty warehouse (its stages from --json), then the next
   night's (the increment of the next day's events, diffed against the first night's run);
3. `hcode evaluate --dry-run` with the embedded engine, then with `--engine spark` at
   `local[1]` and `local[2]` (JVM start and the lake export included), each printed with its
   ratio to the embedded one measured in the same run.

    python benchmarks/scale.py --residents 100000
    python benchmarks/scale.py --residents 1000000 --no-spark
    HCODE_BUCKETS=4 python benchmarks/scale.py --residents 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEY = "benchmark-key-0123456789abcdef0123456789"  # (32 characters at least)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from nightly import make_inbox  # noqa: E402  (the sibling benchmark's helper)

AS_OF = "2022-06-14"
RULESET = "shanghai@2022.05.23"
HCODE = [sys.executable, "-c", "from hcode.cli import app; app()"]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run `hcode args` under /usr/bin/time -v: (seconds, peak RSS MiB, stdout)."""
    time_bin = shutil.which("time") or "/usr/bin/time"
    t0 = time.perf_counter()
    out = subprocess.run([time_bin, "-v", *HCODE, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if out.returncode not in (0, 3):
        raise SystemExit(f"hcode {' '.join(args)} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    return wall, (int(m.group(1)) / 1024 if m else float("nan")), out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-spark", action="store_true", help="Measure the embedded engine only.")
    ap.add_argument("--scans-per-day", type=float, default=0,
                    help="Place scans per resident a day in the night (default 0: the feeds the Shanghai "
                         "rulesets read; 3 is the sample's default, ten times the rows).")
    ap.add_argument("--work", type=Path, default=None, help="Work folder (default: a temporary one, removed).")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hcode-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    db, inbox = work / "hcode.duckdb", work / "inbox"
    env = dict(os.environ, HCODE_KEY=KEY, HCODE_DB=str(db))
    try:
        print(f"scale benchmark: {args.residents:,} residents ({args.scans_per_day:g} scans a day), {RULESET} "
              f"as of {AS_OF}, {os.cpu_count()} cores "
              f"(HCODE_BUCKETS={os.environ.get('HCODE_BUCKETS', 'derived')}, "
              f"HCODE_MEMORY={os.environ.get('HCODE_MEMORY', 'default')})")
        print(f"{'step':28} {'seconds':>8} {'peak MiB':>9}  detail")
        shutil.rmtree(inbox, ignore_errors=True)
        wall, rss, _ = timed(["sample", "--out", str(inbox), "--residents", str(args.residents), "--seed",
                              str(args.seed), "--as-of", AS_OF, "--format", "parquet",
                              "--scans-per-day", str(args.scans_per_day)], env)
        (inbox / "planted.json").unlink(missing_ok=True)
        (inbox / "README.md").unlink(missing_ok=True)
        print(f"{'sample':28} {wall:>8.1f} {rss:>9,.0f}")
        db.unlink(missing_ok=True)
        init = subprocess.run([*HCODE, "init"], env=env, capture_output=True, text=True)
        if init.returncode:
            raise SystemExit(f"hcode init failed: {init.stderr}")
        wall, rss, stdout = timed(["nightly", "--inbox", str(inbox), "--ruleset", RULESET, "--date", AS_OF,
                                   "--now", "2022-06-15T06:00:00", "--reports", str(work / "reports"), "--json"], env)
        stages = json.loads(stdout).get("stages", {})
        print(f"{'nightly':28} {wall:>8.1f} {rss:>9,.0f}  "
              + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
        # The next night: the increment of 2022-06-15 (events of that day), diffed against night 1.
        nxt = work / "inbox-next"
        shutil.rmtree(nxt, ignore_errors=True)
        rows = make_inbox(nxt, args.residents, args.seed, dt.date(2022, 6, 15), True, args.scans_per_day)
        wall, rss, stdout = timed(["nightly", "--inbox", str(nxt), "--ruleset", RULESET, "--date", "2022-06-15",
                                   "--now", "2022-06-16T06:00:00", "--reports", str(work / "reports"), "--json"], env)
        stages = json.loads(stdout).get("stages", {})
        print(f"{'next nightly':28} {wall:>8.1f} {rss:>9,.0f}  {rows:,} rows; "
              + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
        engines = [("evaluate embedded", [])]
        if not args.no_spark:
            engines += [(f"evaluate spark {m}", ["--engine", "spark", "--spark-master", m])
                        for m in ("local[1]", "local[2]")]
        base = None
        for label, extra in engines:
            wall, rss, _ = timed(["evaluate", "--ruleset", RULESET, "--as-of", AS_OF, "--dry-run", "--json",
                                  *extra], env)
            base = base or wall
            print(f"{label:28} {wall:>8.1f} {rss:>9,.0f}  {wall / base:.2f}x embedded")
        print("(one run on a shared machine: noisy; ratios are within this run)")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
