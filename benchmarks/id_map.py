"""How an ingest session's map of ids grows with the province: finding each batch's ids.

An ingest session validates each batch's ids once and joins its rows with the persons they
map to, so for every batch it finds which of the batch's distinct ids the session has
mapped already, and to which pids. Simulated here for N persons arriving in batches (each
batch `--batch-ids` distinct ids, `--new` of them new, the rest drawn from those mapped
before), in one process, on one machine:

- probe (the baseline, hcode until 2026-12-08): the session's keys as one growing Series,
  every key probed against the batch's (`is_in`), then gathered: each batch costs the
  whole map, so the session grows as the square of its batches;
- runs (`hcode.store.persons`): the map as runs sorted by key (`PersonIndex._append`), the
  batch's keys searched in each (`KnownRuns.find`): each batch costs its own keys times the
  logarithm of the map, plus the runs' merges.

Both find the same pids (checked). Times are the lookups' and the map's upkeep, summed.

    python benchmarks/id_map.py                          # 10M and 30M persons
    python benchmarks/id_map.py --persons 100000000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from hcode.store.persons import PersonIndex


def session(persons: int, batch_ids: int, new: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    keys = rng.choice(np.iinfo(np.int64).max, size=persons, replace=False).astype(np.int64)  # (distinct)
    index = PersonIndex("benchmark")
    known = pl.Series("id_key", [], dtype=pl.Int64)  # the baseline's map: keys in mapping order
    pids = pl.Series("pid", [], dtype=pl.Int32)
    took = {"probe": 0.0, "runs: find": 0.0, "runs: upkeep": 0.0}
    mapped = 0
    while mapped < persons:
        fresh = keys[mapped:mapped + new]
        old = keys[rng.integers(0, mapped, size=min(batch_ids - fresh.size, mapped))] if mapped else keys[:0]
        batch = pl.Series("id_key", np.unique(np.concatenate([old, fresh])))
        t = time.perf_counter()
        at = known.is_in(batch.implode()).arg_true()
        probed = pl.DataFrame([known.gather(at), pids.gather(at)])
        took["probe"] += time.perf_counter() - t
        t = time.perf_counter()
        found = index.known_ids.find(batch)
        took["runs: find"] += time.perf_counter() - t
        assert found.sort("id_key").equals(probed.sort("id_key"))
        entries = pl.DataFrame({"id_key": fresh, "pid": np.arange(mapped + 1, mapped + 1 + fresh.size, dtype=np.int32)})
        t = time.perf_counter()
        index._append(entries)
        took["runs: upkeep"] += time.perf_counter() - t
        known = pl.concat([known, entries.get_column("id_key")], rechunk=False)
        pids = pl.concat([pids, entries.get_column("pid")], rechunk=False)
        mapped += fresh.size
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, nargs="+", default=[10_000_000, 30_000_000])
    ap.add_argument("--batch-ids", type=int, default=1_600_000, help="Distinct ids a batch (default 1.6M).")
    ap.add_argument("--new", type=int, default=400_000, help="New ids a batch (default 400,000).")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"{'persons':>12} {'batches':>8} {'probe s':>9} {'runs s':>8} {'(find':>7} {'upkeep)':>8} {'probe/runs':>11}")
    for n in args.persons:
        took = session(n, args.batch_ids, args.new, args.seed)
        runs = took["runs: find"] + took["runs: upkeep"]
        print(f"{n:>12,} {-(-n // args.new):>8} {took['probe']:>9.2f} {runs:>8.2f} {took['runs: find']:>7.2f} "
              f"{took['runs: upkeep']:>8.2f} {took['probe'] / runs:>10.1f}x")


if __name__ == "__main__":
    main()
