"""Backtest benchmark: a 30-day `hcode backtest` against one `hcode evaluate --dry-run`.

The goal (issue 16): a 30-day backtest at 1M residents costs at most 10x one evaluate of the
same warehouse. This builds (or reuses, with benchmarks/evaluate.py's layout) a warehouse
loaded with a `hcode sample` night of N residents, then, in separate subprocesses (so each
peak RSS is its own), in turn for `--repeat` rounds:

- evaluate: `evaluate_warehouse` of shanghai@2022.05.23 as of 2022-06-14, nothing stored
  (what `hcode evaluate --dry-run` does);
- backtest: `backtest` of the same ruleset over the 30 days up to 2022-06-14 (with
  `--against shanghai@2022.06.28` when `--against` is given: two rulesets, 60 ruleset-days);

and prints the median wall and CPU seconds, the peak RSS and the ratios. The CPU ratio is the
steadier figure on a shared machine. Every round also checks that the backtest's last day
has evaluate's colour counts.

    python benchmarks/backtest.py --residents 100000
    python benchmarks/backtest.py --residents 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate import AS_OF, KEY, prepare, rss_mib  # noqa: E402  (the evaluate benchmark's warehouse)

RULESET, AGAINST = "shanghai@2022.05.23", "shanghai@2022.06.28"


def child(mode: str, db: Path, days: int, against: bool) -> dict:
    from hcode.rules.load import find_ruleset
    from hcode.runs.backtest import backtest
    from hcode.runs.store import evaluate_warehouse
    from hcode.store.warehouse import Warehouse

    rs = find_ruleset(RULESET)
    ref = find_ruleset(AGAINST) if against else None
    t0, c0 = time.perf_counter(), time.process_time()
    with Warehouse.open(db, read_only=True) as wh:
        if mode == "evaluate":
            ev, _, _ = evaluate_warehouse(wh, rs, AS_OF)
            colors = ev.colors
        else:
            bt = backtest(wh, rs, AS_OF - dt.timedelta(days=days - 1), AS_OF, ref)
            colors = bt.days[-1].colors
    return {"mode": mode, "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0,
            "peak_rss_mib": rss_mib(), "colors": colors}


def run_child(mode: str, db: Path, days: int, against: bool) -> dict:
    env = dict(os.environ, HCODE_KEY=KEY)
    cmd = [sys.executable, __file__, "--child", mode, str(db), "--days", str(days)] + (["--against"] if against else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--against", action="store_true", help=f"Backtest against {AGAINST} too.")
    ap.add_argument("--repeat", type=int, default=3, help="Rounds of (evaluate, backtest); medians (default 3).")
    ap.add_argument("--work", type=Path, default=None, help="Keep the warehouse here to reuse it.")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "DB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.days, args.against)))
        return
    os.environ["HCODE_KEY"] = KEY
    work = args.work or Path(f"/tmp/hcode-bench-evaluate-{args.residents}")
    work.mkdir(parents=True, exist_ok=True)
    db = prepare(work, args.residents, args.seed).with_name("loaded.duckdb")
    samples: dict[str, list[dict]] = {"evaluate": [], "backtest": []}
    for _ in range(args.repeat):
        for mode in samples:
            samples[mode].append(run_child(mode, db, args.days, args.against))
        ev, bt = samples["evaluate"][-1], samples["backtest"][-1]
        assert ev["colors"] == bt["colors"], f"last day differs: evaluate {ev['colors']} backtest {bt['colors']}"

    def median(mode: str, key: str) -> float:
        return sorted(r[key] for r in samples[mode])[args.repeat // 2]

    what = f"{RULESET}" + (f" against {AGAINST}" if args.against else "")
    print(f"{what} on {args.residents:,} residents, {args.days} days up to {AS_OF} ({os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"{'':10} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9}")
    for mode in samples:
        print(f"{mode:10} {median(mode, 'seconds'):>8.2f} {median(mode, 'cpu'):>8.2f} "
              f"{max(r['peak_rss_mib'] for r in samples[mode]):>9,.0f}")
    print(f"ratio backtest / evaluate: wall {median('backtest', 'seconds') / median('evaluate', 'seconds'):.1f}x, "
          f"cpu {median('backtest', 'cpu') / median('evaluate', 'cpu'):.1f}x (goal: at most 10x for 30 days at 1M)")
    print(f"median of {args.repeat} rounds; every round's wall / cpu seconds:")
    for mode in samples:
        print(f"  {mode}: " + ", ".join(f"{r['seconds']:.2f}/{r['cpu']:.2f}" for r in samples[mode]))
    rounds = [b["seconds"] / e["seconds"] for e, b in zip(samples["evaluate"], samples["backtest"], strict=True)]
    print("  per-round wall ratio: " + ", ".join(f"{r:.1f}x" for r in rounds))


if __name__ == "__main__":
    main()
