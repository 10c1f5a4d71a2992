"""`hcode demo`: the whole job on sample data, end to end, in a folder of its own.

1. a fresh warehouse and key in DIR;
2. the sample night (the bundled one, or `--residents N` generated now) dropped into an
   inbox and run through the nightly batch: load, freshness, evaluate shanghai@2022.05.23,
   guard, publish, report;
3. the auditor's dry run: shanghai@2022.05.23 against the candidate 2022.06.28 on the same
   data, with its diff report;
4. one planted close contact explained.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hcode.diff.changes import Diff, diff
from hcode.diff.sides import evaluate_side, load_side
from hcode.ops.nightly import NightlyResult, run_nightly
from hcode.paths import sample_data_dir
from hcode.report.files import write_diff
from hcode.rules.load import find_ruleset
from hcode.runs.explain import Explanation, explain
from hcode.store import warehouse
from hcode.store.warehouse import Warehouse

AS_OF = dt.date(2022, 6, 14)
LOADED_AT = dt.datetime(2022, 6, 15, 6, 0)
BEFORE, AFTER = "shanghai@2022.05.23", "shanghai@2022.06.28"


@dataclass(frozen=True)
class DemoResult:
    dir: Path
    nightly: NightlyResult
    rules_diff: Diff
    rules_report: Path
    explained: Explanation | None


def prepare_inbox(dir: Path, residents: int | None, seed: int) -> tuple[Path, Path]:
    """The night's files in DIR/inbox, and the planted-person manifest beside them."""
    inbox = dir / "inbox"
    if residents is None:
        source = sample_data_dir()
    else:
        from hcode.sample.night import generate, write

        source = dir / "generated"
        write(generate(residents, seed, AS_OF), source, fmt="csv")
    inbox.mkdir(parents=True)
    for f in sorted(source.glob("*.csv")):
        shutil.copy(f, inbox / f.name)
    return inbox, source / "planted.json"


def run_demo(dir: Path, *, residents: int | None = None, seed: int = 1, lang: str = "en",
             notify: Callable[[str], None] = lambda msg: None) -> DemoResult:
    dir = dir.resolve()
    for stale in ("hcode.duckdb", "hcode.duckdb.key", "hcode.duckdb.wal", "inbox", "reports", "generated"):
        p = dir / stale
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    dir.mkdir(parents=True, exist_ok=True)
    db = dir / "hcode.duckdb"
    warehouse.init(db)
    inbox, manifest = prepare_inbox(dir, residents, seed)
    notify(f"warehouse {db}; {len(list(inbox.glob('*.csv')))} export files in {inbox}")
    night = run_nightly(db, inbox, BEFORE, AS_OF, operator="demo", reports=dir / "reports", now=LOADED_AT,
                        lang=lang, notify=notify)
    with Warehouse.open(db) as wh:
        before = load_side(wh, night.run_id) if night.run_id else evaluate_side(wh, find_ruleset(BEFORE), AS_OF)
        after = evaluate_side(wh, find_ruleset(AFTER), AS_OF, lang=lang)
        d = diff(before, after, lang=lang)
        out = dir / "reports" / "rules-2022.06.28"
        write_diff(d, out, lang)
        explained = None
        if manifest.exists():
            planted = json.loads(manifest.read_text(encoding="utf-8"))["persons"]
            contact = next((p for p in planted if p["expected"][BEFORE]["rules"] == ["SH-R-03"]
                            and p["expected"][AFTER]["color"] == "yellow"), None)
            if contact and night.run_id:
                explained = explain(wh, contact["id_number"], run_id=night.run_id, lang=lang)
    return DemoResult(dir, night, d, out, explained)
