"""How long an `hcode` command takes to start: the command line against its floors.

Each command builds the Typer application and then imports what it runs: `hcode --help`,
`--version` and shell completion import no engine at all (no Polars, DuckDB, pyarrow or
numpy), and `hcode runs` imports DuckDB and the runs store, not the sample generator, the
backtest or the report writers. Measured here, each a fresh process, in turn, the median
of `--repeat` runs:

- floor: `python -c "import typer, rich.console"`, what any Typer command pays;
- engines: `python -c "import polars, duckdb, pyarrow"`, what a command that reads the
  warehouse pays at least;
- eager: importing every library module the command line imported at its start before it
  imported them in the commands (hcode 2026-12-08 and earlier): the baseline;
- the commands themselves, on a warehouse of the bundled sample night.

    python benchmarks/startup.py
    python benchmarks/startup.py --repeat 9
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "benchmark-key-of-at-least-32-characters"
# What `import hcode.cli.app` imported before the commands imported their own library.
EAGER = ("hcode.cli.app", "hcode.runs.backtest", "hcode.runs.compute", "hcode.runs.explain", "hcode.runs.store",
         "hcode.ops.nightly", "hcode.ops.demo", "hcode.sample.night", "hcode.diff.changes", "hcode.report.files",
         "hcode.report.terminal", "hcode.ingest.load", "hcode.ingest.quarantine", "hcode.engine.examples",
         "hcode.rules.catalogue", "hcode.rules.diff", "hcode.rules.load", "hcode.store.audit",
         "hcode.store.warehouse", "hcode.config", "hcode.feeds")
HCODE = [sys.executable, "-c", "import sys; from hcode.cli import app; sys.exit(app())"]


def seconds(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def prepare(work: Path, env: dict[str, str]) -> Path:
    db = work / "startup.duckdb"
    if not db.exists():
        subprocess.run([*HCODE, "init", "--db", str(db)], check=True, capture_output=True, env=env)
        subprocess.run([*HCODE, "ingest", "--db", str(db), str(ROOT / "sample_data"), "--now", "2022-06-15T06:00:00"],
                       check=True, capture_output=True, env=env)
        subprocess.run([*HCODE, "evaluate", "--db", str(db), "--ruleset", "shanghai@2022.05.23",
                        "--as-of", "2022-06-14"], check=True, capture_output=True, env=env)
    return db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="Runs of each, in turn; the median is shown (default 5).")
    ap.add_argument("--work", type=Path, help="Where the sample warehouse goes (default: a temporary folder).")
    args = ap.parse_args()
    env = dict(os.environ, HCODE_KEY=KEY)
    work = args.work or Path(tempfile.mkdtemp(prefix="hcode-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        db = str(prepare(work, env))
        cases = {
            "floor (typer, rich)": [sys.executable, "-c", "import typer, rich.console"],
            "engines (polars, duckdb, pyarrow)": [sys.executable, "-c", "import polars, duckdb, pyarrow"],
            "eager (the library modules the CLI imported)": [sys.executable, "-c", "import " + ", ".join(EAGER)],
            "hcode --version": [*HCODE, "--version"],
            "hcode --help": [*HCODE, "--help"],
            "hcode rules list --json": [*HCODE, "rules", "list", "--json"],
            "hcode runs --json": [*HCODE, "runs", "--db", db, "--json"],
            "hcode evaluate --dry-run (3,000 residents)": [*HCODE, "evaluate", "--db", db, "--ruleset",
                                                           "shanghai@2022.05.23", "--as-of", "2022-06-14",
                                                           "--dry-run", "--json"],
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeat):
            for name, cmd in cases.items():
                times[name].append(seconds(cmd, env))
        print(f"{'command':46s} {'median s':>9s}  runs")
        for name, got in times.items():
            print(f"{name:46s} {statistics.median(got):9.3f}  {', '.join(f'{t:.2f}' for t in got)}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
