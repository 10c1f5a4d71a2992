"""Where a Spark evaluate's time goes: the session (JVM) start, the driver's preparation
(the lake's sync and the companions' seeds), the first job (Python workers start and import
Polars and hcode) and a second job in the same session, against the embedded evaluate of
the same warehouse, in one process.

    python benchmarks/spark_phases.py --residents 1000000
    python benchmarks/spark_phases.py --residents 1000000 --master 'local[1]'

The cold figure (`benchmarks/scale.py`: `hcode evaluate --engine spark` as a command) is the
sum of the first three; the second job is what a long-lived session pays per evaluate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

KEY = "benchmark-key-of-at-least-32-characters"
AS_OF = dt.date(2022, 6, 14)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=1_000_000)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()
    os.environ["HCODE_KEY"] = KEY
    from hcode.engine import spark
    from hcode.ingest.load import ingest
    from hcode.rules.load import find_ruleset
    from hcode.runs import bucketed
    from hcode.sample.night import generate, write
    from hcode.store import warehouse
    from hcode.store.warehouse import Warehouse

    work = Path(tempfile.mkdtemp(prefix="hcode-spark-phases-"))
    try:
        write(generate(args.residents, 1, AS_OF, scans_per_day=0), work / "night", fmt="parquet")
        (work / "night" / "planted.json").unlink(missing_ok=True)
        db = work / "w.duckdb"
        warehouse.init(db)
        rs = find_ruleset("shanghai@2022.05.23")
        with Warehouse.open(db) as wh:
            ingest(wh, sorted((work / "night").glob("*.parquet")), now=dt.datetime(2022, 6, 15, 6))

            def timed(label: str, f):  # type: ignore[no-untyped-def]
                t = time.perf_counter()
                out = f()
                print(f"{label:50} {time.perf_counter() - t:>7.2f} s")
                return out

            print(f"{args.residents:,} residents, {os.cpu_count()} cores, Spark {args.master}")
            timed("embedded evaluate (all buckets)",
                  lambda: list(bucketed.evaluations_on(wh, rs, AS_OF, "en", "embedded")[1]))
            timed("Spark session (JVM) start", lambda: spark.session(args.master))
            n, evaluations, _, _ = timed("driver: lake sync (first: written), seeds",
                                         lambda: bucketed.evaluations_on(wh, rs, AS_OF, "en", "spark", args.master))
            timed(f"first job ({n} buckets: workers start), read back", lambda: list(evaluations))
            timed("second job, same session (lake in step)",
                  lambda: list(bucketed.evaluations_on(wh, rs, AS_OF, "en", "spark", args.master)[1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
