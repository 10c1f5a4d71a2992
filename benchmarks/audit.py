"""`hcode audit verify` benchmark: wall time and peak memory on a generated warehouse.

Builds a warehouse the way production does: an `hcode sample` night (14 days of history,
as of 2022-06-13) published by `hcode nightly`, then the next day's increment published too
(two populations, two runs, 24 loads). Then times, each in its own process:

- `hcode audit verify --head audit-head.json` (every digest recomputed: every feed row,
  every person, both populations, both runs' codes);
- the baseline, measured in the same run on the same warehouse: the digests of schema 4 (an
  XOR of per-row MD5s, forgeable) over the same feed, person and code rows, in one DuckDB
  query per table; and a plain `count(*)` of each table (reading the rows at all);
- the cost of the digests at write time: `audit.load_content` of the largest load (done by
  ingest in the load's transaction) and `audit.run_content` of the last run (done by
  store_run), against the nightly's load and publish stages.

    python benchmarks/audit.py --residents 1000000
    python benchmarks/audit.py --residents 10000000 --scans-per-day 0    # the target: verify <= 30 s
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nightly import KEY, make_inbox, run_night  # noqa: E402  (the sibling benchmark's helpers)

CHILD = ("import json, sys, time, resource\n"
         "t0 = time.perf_counter()\n"
         "from hcode.cli import app\n"
         "try:\n    app()\nexcept SystemExit as e:\n    rc = e.code\n"
         "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
         "print(json.dumps({'peak_rss_mib': int(hwm) / 1024, 'rc': rc, 'inside': time.perf_counter() - t0}),"
         " file=sys.stderr)\n")

BASELINE = """
import json, os, sys, time
from hcode.feeds import FEEDS
from hcode.store.warehouse import Warehouse

def xor_md5(con, table, cols):
    text = ", ".join(f"coalesce(CAST({c} AS VARCHAR), '\\\\N')" for c in cols)
    return con.execute(f"SELECT load_id, count(*), bit_xor(md5_number(concat_ws(chr(31), {text}))) "
                       f"FROM {table} GROUP BY ALL").fetchall() if "load_id" in cols else con.execute(
        f"SELECT count(*), bit_xor(md5_number(concat_ws(chr(31), {text}))) FROM {table}").fetchall()

with Warehouse.open(sys.argv[1], read_only=True) as wh:
    con = wh.con
    tables = {f.table: (["pid"] if f.has_person else []) + [c.name for c in f.stored_columns] + ["load_id"]
              for f in FEEDS.values()}
    tables["persons"] = ["pid", "person_key"]
    tables["population_rows"] = ["population_id", "pid", "district"]
    tables["code_details"] = ["run_id", "pid", "color", "rule", "matched_rules", "evidence", "override",
                              "explanation"]
    t0 = time.perf_counter()
    for t in tables:
        con.execute(f"SELECT count(*) FROM {t}").fetchall()
    scan = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t, cols in tables.items():
        xor_md5(con, t, cols)
    print(json.dumps({"scan": scan, "xor_md5": time.perf_counter() - t0}))
"""

WRITE_COST = """
import json, sys, time
import pyarrow, pyarrow.compute  # imported before the clock starts, as in a running ingest
from hcode.store import audit
from hcode.store.warehouse import Warehouse

with Warehouse.open(sys.argv[1], read_only=True) as wh:
    lid, feed, rows = wh.con.execute("SELECT load_id, feed, rows_loaded FROM loads ORDER BY rows_loaded DESC "
                                     "LIMIT 1").fetchall()[0]
    t0 = time.perf_counter()
    audit.load_content(wh.con, feed, lid)
    load = time.perf_counter() - t0
    run = wh.con.execute("SELECT max(run_id) FROM runs").fetchall()[0][0]
    t0 = time.perf_counter()
    audit.run_content(wh.con, run, "given")  # the population's digest is computed while storing, apart
    print(json.dumps({"feed": feed, "rows": rows, "load_content": load, "run_content": time.perf_counter() - t0}))
"""


def child(args: list[str], env: dict[str, str]) -> tuple[float, dict, str]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    return wall, json.loads(out.stderr.strip().splitlines()[-1]), out.stdout


def script(code: str, db: Path, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2, help="verify runs (the best and all are printed)")
    ap.add_argument("--scans-per-day", type=float, default=3.0,
                    help="Place scans a resident a day (0: the feeds of the Shanghai rulesets only, the "
                         "warehouse of the issue's 10M target; 3, the sample's default, adds 42 rows a resident).")
    ap.add_argument("--work", type=Path, default=None,
                    help="Keep the warehouse in this folder, and reuse it when it is there already "
                         "(default: a temporary folder, removed).")
    args = ap.parse_args()
    os.environ["HCODE_KEY"] = KEY
    env = dict(os.environ)
    from hcode.store import warehouse

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        db = work / "hcode.duckdb"
        stages: dict[str, float] = {}
        rows = 0
        head = work / "reports" / "2022-06-14" / "audit-head.json"
        if not head.exists():
            warehouse.init(db)
            for label, as_of, increment in (("full", dt.date(2022, 6, 13), False),
                                            ("next", dt.date(2022, 6, 14), True)):
                inbox = work / f"inbox-{label}"
                rows += make_inbox(inbox, args.residents, args.seed, as_of, increment, args.scans_per_day)
                r = run_night(db, inbox, work / "reports", as_of)
                if r["exit_code"] not in (0, 3):
                    raise SystemExit(f"nightly {label} failed: {r['message']}")
                for k, v in r["stages"].items():
                    stages[k] = stages.get(k, 0.0) + v
                shutil.rmtree(inbox, ignore_errors=True)
        else:
            from hcode.store.warehouse import Warehouse

            with Warehouse.open(db, read_only=True) as wh:
                rows = wh.con.execute("SELECT sum(rows_loaded) FROM loads").fetchall()[0][0]
        print(f"audit verify, {args.residents:,} residents ({rows:,} rows loaded over 2 nights, 2 published runs), "
              f"{os.cpu_count()} cores, {db.stat().st_size / 2**20:,.0f} MiB warehouse")
        walls = []
        for _ in range(args.rounds):
            wall, meta, stdout = child(["audit", "verify", "--db", str(db), "--head", str(head), "--json"], env)
            v = json.loads(stdout)
            if not v["ok"]:
                raise SystemExit(f"verify failed: {v['problem']}")
            walls.append(wall)
            inside = meta["inside"]
        print(f"  hcode audit verify --head:        {min(walls):6.1f} s wall (best of {len(walls)}: "
              f"{', '.join(f'{w:.1f}' for w in walls)}; the last {inside:.1f} s inside the process), "
              f"peak {meta['peak_rss_mib']:,.0f} MiB, "
              f"{v['entries']} entries")
        base = script(BASELINE, db, env)
        print(f"  baseline, same warehouse: count(*) of every table {base['scan']:.1f} s; "
              f"schema-4 XOR-of-MD5 digests of the same rows {base['xor_md5']:.1f} s")
        cost = script(WRITE_COST, db, env)
        print(f"  at write time: load_content of the largest load ({cost['feed']}, {cost['rows']:,} rows) "
              f"{cost['load_content']:.1f} s (the 2 nights' load stages: {stages.get('load', 0):.1f} s); "
              f"run_content {cost['run_content']:.2f} s (publish stages: {stages.get('publish', 0):.1f} s)")


if __name__ == "__main__":
    main()
