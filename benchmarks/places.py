"""Place codes at scale: HA-Y-02 (space-time companions) and the companions test, each against
a hand-written DuckDB SQL self-join over the same warehouse, in the same run.

    python benchmarks/places.py --residents 100000 [--scans-per-day 3] [--rounds 3]

Builds a warehouse directly (no CSV): `residents` registered persons, about `scans-per-day`
scans each a day over 14 days at `residents * 3 / 100` places (3 % of them busy), 0.05 %
cases reported over the 14 days, 5 NAT results each. Then, per round:

* **HA-Y-02**: `evaluate` of a ruleset holding HA-Y-02 alone (its facts as in
  henan@2022.06.01), through the warehouse source, against one SQL statement computing the
  same persons (seed scans of the cases, a range self-join on place and ±30 minutes, the
  window and the two-negatives release);
* **companions test**: `hcode.ops.companions.companions` on the stored run against one SQL
  statement computing the same gatherings, mismatches and flagged gatherings.

Both sides' results are compared (the benchmark stops if they differ). Prints seconds per
round and the ratio hcode / SQL, and the peak RSS. Timings on a shared machine are noisy:
compare the ratio of one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from hcode.ops.companions import companions
from hcode.rules.load import load_ruleset
from hcode.runs.store import evaluate_warehouse, store_run
from hcode.store import warehouse
from hcode.store.warehouse import Warehouse, to_polars

AS_OF = dt.date(2022, 6, 14)
C = dt.datetime(2022, 6, 15)
US_DAY = 86_400_000_000
RULESET = """\
province: bench
version: 2022.06.01
effective_from: 2022-06-01
title: {zh: 基准, en: benchmark}
basis: HA-Y-02 of henan@2022.06.01
palette: [green, yellow, red]
facts:
  companion_scan_at:
    value: >
      latest place_scans.scanned_at where scanned_at within 14 days
                                    and companion(30 minutes, cases.reported_at, -4 days, 1 day)
    evidence: {en: "scanned {place} within 30 minutes of a case", zh: "{place}"}
  first_negative_after_companion: >
    earliest nat_results.sampled_at where result = 'negative' and sampled_at > companion_scan_at
  last_negative_after_companion: >
    latest nat_results.sampled_at where result = 'negative' and sampled_at > companion_scan_at
rules:
  - id: HA-Y-02
    color: yellow
    title: {zh: 时空伴随者, en: Space-time companion}
    trigger: companion_scan_at
    window: 3 days
    release: last_negative_after_companion > first_negative_after_companion + 24 hours
"""

SQL_HA_Y_02 = """
WITH seeds AS (
  SELECT DISTINCT s.pid AS q, s.place_code, s.scanned_at AS ts
  FROM feed_cases c JOIN feed_place_scans s ON s.pid = c.pid
  WHERE c.reported_at < $c AND s.scanned_at < $c
    AND s.scanned_at >= c.reported_at - INTERVAL 4 DAY AND s.scanned_at < c.reported_at + INTERVAL 1 DAY),
hits AS (
  SELECT p.pid, max(p.scanned_at) AS at
  FROM feed_place_scans p JOIN seeds s ON p.place_code = s.place_code
   AND p.scanned_at >= s.ts - INTERVAL 30 MINUTE AND p.scanned_at <= s.ts + INTERVAL 30 MINUTE
  WHERE p.pid <> s.q AND p.scanned_at >= $c - INTERVAL 14 DAY AND p.scanned_at < $c
  GROUP BY p.pid),
neg AS (
  SELECT h.pid, min(n.sampled_at) AS first, max(n.sampled_at) AS last
  FROM hits h JOIN feed_nat_results n ON n.pid = h.pid
  WHERE n.result = 'negative' AND n.sampled_at > h.at AND n.sampled_at < $c GROUP BY h.pid)
SELECT h.pid FROM hits h LEFT JOIN neg USING (pid)
WHERE h.pid IN (SELECT pid FROM feed_registrations WHERE registered_at < $c)
  AND (h.at >= $c - INTERVAL 3 DAY OR NOT coalesce(neg.last > neg.first + INTERVAL 24 HOUR, false))
ORDER BY h.pid
"""

SQL_COMPANIONS = """
WITH s AS (
  SELECT pid, place_code, scanned_at, shown_color FROM feed_place_scans
  WHERE scanned_at >= $d AND scanned_at < $c),
b AS (
  SELECT *, CASE WHEN scanned_at - lag(scanned_at) OVER (PARTITION BY place_code ORDER BY scanned_at, pid)
                      <= INTERVAL 10 MINUTE THEN 0 ELSE 1 END AS new FROM s),
g AS (
  SELECT *, sum(new) OVER (PARTITION BY place_code ORDER BY scanned_at, pid ROWS UNBOUNDED PRECEDING) AS gid
  FROM b),
pub AS (SELECT pid, color FROM codes WHERE run_id = $published AND pid IN (SELECT pid FROM s)),
ov AS (SELECT pid FROM codes WHERE run_id = $run AND override IS NOT NULL AND override.applied
       AND list_position(['green', 'yellow', 'red'], override.color) - 1
           > CASE WHEN len(matched_rules) > 0 THEN 1 ELSE 0 END),  -- HA-Y-02 (yellow) is the only rule
m AS (
  SELECT g.place_code, g.gid, g.pid,
         bool_or(list_position(['green', 'yellow', 'red'], g.shown_color)
                 > list_position(['green', 'yellow', 'red'], pub.color)) OR g.pid IN (SELECT pid FROM ov)
           AS unexplained,
         bool_or(g.shown_color = 'green') AS firsts
  FROM g LEFT JOIN pub USING (pid) GROUP BY g.place_code, g.gid, g.pid),
per AS (
  SELECT place_code, gid, count(*) AS persons, count(*) FILTER (WHERE unexplained) AS unexplained,
         count(*) FILTER (WHERE firsts AND NOT unexplained) AS companions
  FROM m GROUP BY place_code, gid)
SELECT place_code, persons, unexplained, companions FROM per WHERE unexplained > 0 AND companions > 0
ORDER BY unexplained DESC, place_code
"""


def build(db: Path, n: int, per_day: float, seed: int = 1) -> None:
    """The warehouse tables, written directly (load 1)."""
    rng = np.random.default_rng(seed)
    warehouse.init(db)
    c_us = int((C - dt.datetime(1970, 1, 1)).total_seconds() * 1e6)
    places = max(20, n * 3 // 100)
    busy = max(1, int(places * 0.03))
    weight = np.where(np.arange(places) < busy, 50.0, 1.0)
    counts = rng.poisson(per_day * 14, n)
    pid = np.repeat(np.arange(n, dtype=np.int32), counts)
    k = len(pid)
    day = rng.integers(1, 15, k)
    scanned = c_us - day * US_DAY + rng.integers(7 * 3600, 22 * 3600, k) * 1_000_000
    codes = pl.Series([f"P{i:07d}" for i in range(places)])
    # 0.1 % of the last day's scans show red: codes changed by hand, for the companions test
    shown = np.where((day == 1) & (rng.random(k) < 0.001), "red", "green")
    scans = pl.DataFrame({"pid": pid, "place_code": codes.gather(rng.choice(places, k, p=weight / weight.sum())),
                          "scanned_at": pl.Series(scanned).cast(pl.Datetime("us")),
                          "shown_color": pl.Series(shown), "load_id": pl.repeat(1, k, eager=True)})
    case_pid = np.sort(rng.choice(n, max(1, n // 2000), replace=False)).astype(np.int32)
    cases = pl.DataFrame({"pid": case_pid, "case_type": pl.repeat("confirmed", len(case_pid), eager=True),
                          "reported_at": pl.Series(c_us - rng.integers(0, 14 * US_DAY, len(case_pid)))
                          .cast(pl.Datetime("us")), "load_id": pl.repeat(1, len(case_pid), eager=True)})
    nat_pid = np.repeat(np.arange(n, dtype=np.int32), rng.poisson(5, n))
    m = len(nat_pid)
    nats = pl.DataFrame({"pid": nat_pid, "sampled_at": pl.Series(c_us - rng.integers(0, 14 * US_DAY, m))
                         .cast(pl.Datetime("us")), "result": pl.repeat("negative", m, eager=True),
                         "pooled": pl.repeat(False, m, eager=True), "load_id": pl.repeat(1, m, eager=True)})
    regs = pl.DataFrame({"pid": np.arange(n, dtype=np.int32), "registered_at": pl.repeat(
        dt.datetime(2022, 1, 1), n, eager=True), "district_code": pl.repeat("410102", n, eager=True),
        "load_id": pl.repeat(1, n, eager=True)})
    reg_places = pl.DataFrame({"place_code": codes, "name": codes, "district_code": pl.repeat(
        "410102", places, eager=True), "registered_at": pl.repeat(dt.datetime(2022, 1, 1), places, eager=True),
        "load_id": pl.repeat(1, places, eager=True)})
    with Warehouse.open(db) as wh:
        con = wh.con
        for table, df in (("feed_place_scans", scans), ("feed_cases", cases), ("feed_nat_results", nats),
                          ("feed_registrations", regs), ("feed_places", reg_places)):
            con.register("_bench", df.to_arrow())
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _bench")
            con.unregister("_bench")
        con.execute("INSERT INTO persons BY NAME SELECT pid, printf('%064x', pid) AS person_key, 1 AS load_id FROM range(?) t(pid)", [n])
        con.execute("INSERT INTO loads VALUES (1, 'place_scans', 'bench', 'bench', 0, 0, 0, 0, now(), now(), "
                    "NULL, 'bench', NULL, NULL)")
    print(f"{n:,} residents, {k:,} scans at {places:,} places, {len(case_pid):,} cases, {m:,} NAT results",
          flush=True)


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=100_000)
    ap.add_argument("--scans-per-day", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        build(db, args.residents, args.scans_per_day)
        rules = Path(tmp) / "bench" / "2022.06.01.yaml"
        rules.parent.mkdir()
        rules.write_text(RULESET, encoding="utf-8")
        rs = load_ruleset(rules)
        with Warehouse.open(db) as wh:
            con = wh.con
            ev, top, loads = evaluate_warehouse(wh, rs, AS_OF - dt.timedelta(days=1))
            published = store_run(wh, ev, top, loads, "bench", publish=True)
            ev, top, loads = evaluate_warehouse(wh, rs, AS_OF)
            run_id = store_run(wh, ev, top, loads, "bench", publish=True)
            params = {"c": C, "d": C - dt.timedelta(days=1), "published": published, "run": run_id}
            for r in range(1, args.rounds + 1):
                t_h, ev = _timed(lambda: evaluate_warehouse(wh, rs, AS_OF)[0])
                t_s, sql = _timed(lambda: to_polars(con.sql(SQL_HA_Y_02, params={"c": C})))
                got = ev.results.filter(pl.col("matched_rules").list.contains("HA-Y-02"))["pid"].sort()
                if got.to_list() != sql["pid"].to_list():
                    raise SystemExit(f"HA-Y-02 differs: hcode {got.len()} persons, SQL {sql.height}")
                t_c, res = _timed(lambda: companions(wh, run_id))
                t_q, flagged = _timed(lambda: to_polars(con.sql(SQL_COMPANIONS, params=params)))
                if len(res.groups) != flagged.height:
                    raise SystemExit(f"companions differ: hcode {len(res.groups)} flagged, SQL {flagged.height}")
                print(f"round {r}: HA-Y-02 hcode {t_h:.2f} s, SQL {t_s:.2f} s, ratio {t_h / t_s:.2f} "
                      f"({got.len():,} persons); companions hcode {t_c:.2f} s, SQL {t_q:.2f} s, "
                      f"ratio {t_c / t_q:.2f} ({res.gatherings:,} gatherings, {len(res.groups)} flagged)",
                      flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"peak RSS {rss:.2f} GiB (noisy figures: shared machine)")


if __name__ == "__main__":
    main()
