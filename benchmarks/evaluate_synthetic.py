"""Scale check of the Polars engine alone, on a synthetic night generated in Polars.

    python benchmarks/evaluate_synthetic.py generate --residents 10000000 --out /tmp/syn10m
    python benchmarks/evaluate_synthetic.py run /tmp/syn10m --ruleset shanghai@2022.05.23

`generate` writes one Parquet file per feed (rates of `hcode sample`: ~4.7 NAT results,
1 trip, 1 registration per resident; 0.05 % cases, 1 % close and 1 % secondary contacts, …).
`run` reads them into memory, then times `evaluate` only and prints seconds and the peak
RSS of the process (so run it in a fresh process per measurement).
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time
from pathlib import Path

import numpy as np
import polars as pl

from hcode.engine.evaluate import evaluate
from hcode.engine.sources import feed_schema
from hcode.rules.load import find_ruleset

AS_OF = dt.date(2022, 6, 14)
C = dt.datetime(2022, 6, 15)
US_PER_DAY = 86_400_000_000


def _times(rng, n: int, days: float) -> pl.Series:
    off = rng.integers(0, int(days * US_PER_DAY), n, dtype=np.int64)
    return pl.Series(np.int64(int(C.timestamp() * 1e6)) - off).cast(pl.Datetime("us"))


def _pids(rng, n: int, rate: float) -> np.ndarray:
    return np.sort(rng.choice(n, int(n * rate), replace=False)).astype(np.int32)


def _pick(rng, values: list[str], n: int, p: list[float] | None = None) -> pl.Series:
    return pl.Series(np.asarray(values)[rng.choice(len(values), n, p=p)]).cast(pl.String)


def generate(n: int, out: Path, seed: int = 1) -> None:
    """One Parquet per feed, with C = 2022-06-15 as the night's cut-off (times are UTC-naive,
    interpreted as China Standard Time like every hcode timestamp)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    c_us = int(dt.datetime(2022, 6, 15, tzinfo=dt.UTC).timestamp() * 1e6)

    def ts(k: int, days: float) -> pl.Series:
        return pl.Series(c_us - rng.integers(0, int(days * US_PER_DAY), k, dtype=np.int64)).cast(pl.Datetime("us"))

    def write(feed: str, df: pl.DataFrame) -> None:
        df.select([pl.col(c).cast(t) for c, t in feed_schema(feed).items()]).write_parquet(
            out / f"{feed}.parquet", compression="zstd", compression_level=1)
        print(f"{feed}: {df.height:,} rows", flush=True)

    everyone = np.arange(n, dtype=np.int32)
    regions = [f"{310101 + i:06d}" for i in range(200)]
    write("registrations", pl.DataFrame({"pid": everyone, "registered_at": ts(n, 400),
                                         "district_code": _pick(rng, regions[:16], n)}))
    counts = rng.choice([4, 5], n, p=[0.3, 0.7])
    nat_pid = np.repeat(everyone, counts)
    k = len(nat_pid)
    write("nat_results", pl.DataFrame({
        "pid": nat_pid, "sampled_at": ts(k, 14),
        "result": pl.Series(np.where(rng.random(k) < 0.0005, "positive", "negative")),
        "pooled": rng.random(k) < 0.1}))
    del nat_pid
    risky = rng.random(n) < 0.05  # 5 % of trips go to a region that has risk-area rows
    trip_region = pl.Series(np.where(risky, np.asarray(regions[:10])[rng.integers(0, 10, n)],
                                     np.asarray(regions[10:])[rng.integers(0, 190, n)]))
    write("trips", pl.DataFrame({"pid": everyone, "region_code": trip_region,
                                 "visited_at": ts(n, 14), "source": _pick(rng, ["telecom", "railway", "aviation"], n)}))
    risk = 300
    write("risk_areas", pl.DataFrame({
        "region_code": _pick(rng, regions[:10], risk), "level": _pick(rng, ["high", "medium", "low"], risk),
        "valid_from": ts(risk, 16), "valid_to": pl.Series([None] * risk, dtype=pl.Datetime("us"))}))
    cases = _pids(rng, n, 0.0005)
    write("cases", pl.DataFrame({"pid": cases, "case_type": _pick(rng, ["confirmed", "asymptomatic", "suspected"],
                                                                     len(cases)), "reported_at": ts(len(cases), 60)}))
    half = cases[: len(cases) // 2]
    write("discharges", pl.DataFrame({"pid": half, "discharged_at": ts(len(half), 20)}))
    con = _pids(rng, n, 0.02)
    write("contacts", pl.DataFrame({"pid": con, "contact_level": _pick(rng, ["close", "secondary"], len(con)),
                                    "identified_at": ts(len(con), 20)}))
    ent = _pids(rng, n, 0.0005)
    write("entries", pl.DataFrame({"pid": ent, "entered_at": ts(len(ent), 20),
                                   "origin": _pick(rng, ["HK", "MO", "US", "TW"], len(ent), [0.33, 0.1, 0.37, 0.2])}))
    sym = _pids(rng, n, 0.005)
    write("symptoms", pl.DataFrame({"pid": sym, "symptom": _pick(rng, ["fever", "shortness_of_breath", "respiratory"],
                                                                    len(sym)), "reported_at": ts(len(sym), 14),
                                    "reporter": _pick(rng, ["self", "clinic"], len(sym))}))
    inb = _pids(rng, n, 0.001)
    write("inbound_codes", pl.DataFrame({"pid": inb, "province": _pick(rng, ["11", "44", "33"], len(inb)),
                                         "color": _pick(rng, ["red", "yellow", "green"], len(inb)),
                                         "since": ts(len(inb), 14)}))
    iso = _pids(rng, n, 0.02)
    write("isolation", pl.DataFrame({"pid": iso, "kind": _pick(rng, ["home_health_observation", "centralized"], len(iso)),
                                     "started_at": ts(len(iso), 14),
                                     "ended_at": pl.Series([None] * len(iso), dtype=pl.Datetime("us"))}))
    ovp = _pids(rng, n, 0.00002)
    write("overrides", pl.DataFrame({"pid": ovp, "color": _pick(rng, ["green", "red", "purple"], len(ovp)),
                                     "authority": "district office", "basis": "notice", "operator": "op",
                                     "reason": "review", "issued_at": ts(len(ovp), 10),
                                     "expires_at": pl.Series([None] * len(ovp), dtype=pl.Datetime("us"))}))


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(data: Path, ruleset: str) -> None:
    rs = find_ruleset(ruleset)
    t0 = time.perf_counter()
    frames = {p.stem: pl.read_parquet(p) for p in sorted(data.glob("*.parquet"))}
    rows = sum(f.height for f in frames.values())
    print(f"read {rows:,} rows in {time.perf_counter() - t0:.1f}s; peak RSS so far {_rss_gib():.2f} GiB", flush=True)
    t0 = time.perf_counter()
    ev = evaluate(rs, frames, AS_OF)
    secs = time.perf_counter() - t0
    print(f"{rs.name}: evaluated {ev.persons:,} persons in {secs:.1f}s; colors {ev.colors}; "
          f"overrides applied {ev.overrides_applied}, not applied {ev.overrides_not_applied}; "
          f"peak RSS {_rss_gib():.2f} GiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--residents", type=int, default=1_000_000)
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("run")
    r.add_argument("data", type=Path)
    r.add_argument("--ruleset", default="shanghai@2022.05.23")
    a = ap.parse_args()
    if a.cmd == "generate":
        generate(a.residents, a.out, a.seed)
    else:
        run(a.data, a.ruleset)


if __name__ == "__main__":
    main()
