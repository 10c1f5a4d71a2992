"""`hcode demo`: the whole job on sample data, end to end, in a folder of its own.

1. a fresh warehouse and key in DIR;
2. the sample night (the bundled one, or `--residents N` generated now) dropped into an
   inbox and run through the nightly batch: load, freshness, evaluate shanghai@2022.05.23,
   guard, publish, report;
3. the auditor's dry run: shanghai@2022.05.23 against the candidate 2022.06.28 on the same
   data, with its diff report;
4. one planted close contact explained;
5. the article's scene, in a Henan warehouse of its own (`henan/`): a generated night of
   `SCENE_RESIDENTS` residents with place scans, split in two nights (events before the
   as-of date, then the as-of date's own) and run through the nightly batch with
   henan@2022.06.01. On the second night the depositors at the station exit show red
   where hcode published green the night before, their families show green: the companions
   test flags that gathering (nightly exit 3), and not the control gathering at a market,
   whose red person is red by the rules.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcode.diff.changes import Diff, diff
from hcode.diff.sides import evaluate_side, load_side
from hcode.feeds import FEEDS
from hcode.ops.companions import CompanionsResult, companions
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
HENAN = "henan@2022.06.01"
SCENE_RESIDENTS = 1_000


@dataclass(frozen=True)
class StationScene:
    """The companions test on the article's scene: the two Henan nights and what it found."""

    dir: Path
    nights: tuple[NightlyResult, NightlyResult]
    found: CompanionsResult
    flagged_place: str  # the planted station exit (code)
    control_place: str  # the planted control gathering's place (code)
    control_name: str

    @property
    def station_flagged(self) -> bool:
        return any(g.place_code == self.flagged_place for g in self.found.groups)

    @property
    def control_flagged(self) -> bool:
        return any(g.place_code == self.control_place for g in self.found.groups)


@dataclass(frozen=True)
class DemoResult:
    dir: Path
    nightly: NightlyResult
    rules_diff: Diff
    rules_report: Path
    explained: Explanation | None
    scene: StationScene | None = None


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


def _split(frames: dict[str, Any], day: dt.date) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each feed's raw rows dated before `day` (and those whose date does not parse: the
    first night quarantines them as it would any night) and those dated `day` or later."""
    import polars as pl

    first, second = {}, {}
    for feed, df in frames.items():
        when = pl.col(FEEDS[feed].event_time).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        later = df.select((when >= day).fill_null(False)).to_series()
        first[feed], second[feed] = df.filter(~later), df.filter(later)
    return first, second


def station_scene(dir: Path, *, residents: int = SCENE_RESIDENTS, seed: int = 1, lang: str = "en",
                  notify: Callable[[str], None] = lambda msg: None) -> StationScene:
    """Step 5 of the module docstring, in `dir` (replaced)."""
    from hcode.sample.night import generate, write_feed

    if dir.exists():
        shutil.rmtree(dir)
    dir.mkdir(parents=True)
    db = dir / "hcode.duckdb"
    warehouse.init(db)
    night = generate(residents, seed, AS_OF)
    eve = AS_OF - dt.timedelta(days=1)
    nights = []
    for n, (date, frames) in enumerate(zip((eve, AS_OF), _split(dict(night.feeds), AS_OF), strict=True), 1):
        inbox = dir / f"inbox-{date}"
        inbox.mkdir()
        for feed, df in frames.items():  # a feed with nothing new sends a header-only file
            write_feed(df, inbox, feed, "csv")
        notify(f"Henan night {n} ({date}): {sum(df.height for df in frames.values()):,} rows in {inbox}")
        nights.append(run_nightly(db, inbox, HENAN, date, operator="demo", reports=dir / "reports",
                                  now=dt.datetime.combine(date + dt.timedelta(days=1), LOADED_AT.time()),
                                  lang=lang, notify=notify))
    scene = night.manifest()["scene"]
    with Warehouse.open(db, read_only=True) as wh:
        found = companions(wh, nights[-1].run_id)
    return StationScene(dir, (nights[0], nights[1]), found, scene["flagged"]["place_code"],
                        scene["control"]["place_code"], scene["control"]["name"])


def run_demo(dir: Path, *, residents: int | None = None, seed: int = 1, lang: str = "en",
             notify: Callable[[str], None] = lambda msg: None, scene: bool = True) -> DemoResult:
    dir = dir.resolve()
    for stale in ("hcode.duckdb", "hcode.duckdb.key", "hcode.duckdb.wal", "inbox", "reports", "generated", "henan"):
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
    station = station_scene(dir / "henan", seed=seed, lang=lang, notify=notify) if scene else None
    return DemoResult(dir, night, d, out, explained, station)
