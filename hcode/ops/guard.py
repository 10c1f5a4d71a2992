"""The publish guard: refuse to push a night whose figures jumped for no believable reason.

A truncated registrations file makes the population shrink; a missing negative-results file
or a duplicated contact list makes red codes jump. Either way millions of people would see a
wrong colour the next morning. So before publishing, a run's counts are compared with the
previous *published* run of the same province, and the run is held back when

- the population shrank by more than `max_shrink` (default 5 %), or
- the count of the palette's most severe colour (red) moved, up or down, by more than
  `max_red_change` (default 50 %),

and in either case by at least `min_persons` persons (default 100: a village-sized
warehouse can double its 30 red codes on a normal night). Thresholds come from `[guard]` in
`hcode.toml`. The verdict says why, with the figures; a human decides (re-run with the
missing file, or publish anyway with the batch's override flag).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb

from hcode.config import GuardConfig
from hcode.store.warehouse import one


@dataclass(frozen=True)
class GuardVerdict:
    ok: bool
    reasons: tuple[str, ...]
    figures: Mapping[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "reasons": list(self.reasons), "figures": dict(self.figures)}


def severe_color(colors: Mapping[str, int]) -> str:
    """The colour the guard watches: `red` when the palette has it, else its last colour."""
    return "red" if "red" in colors else list(colors)[-1]


def previous_published(con: duckdb.DuckDBPyConnection, province: str, as_of: dt.date | None = None,
                       exclude_run: int | None = None) -> tuple[Any, ...] | None:
    """(run_id, as_of, persons, colors) of the latest published run of `province` with an as-of
    date not after `as_of` (any date when None), other than `exclude_run`."""
    row = one(con,
              "SELECT run_id, as_of, persons, colors FROM runs WHERE published AND province = ? "
              "AND (?::DATE IS NULL OR as_of <= ?::DATE) AND (?::INTEGER IS NULL OR run_id != ?::INTEGER) "
              "ORDER BY as_of DESC, run_id DESC LIMIT 1",
              [province, as_of, as_of, exclude_run, exclude_run])
    if row is None:
        return None
    return row[0], row[1], row[2], json.loads(row[3])


def _pct(x: float) -> str:
    return f"{x * 100:+.1f} %"


def compare(previous: tuple[Any, ...] | None, persons: int, colors: Mapping[str, int],
            config: GuardConfig | None = None) -> GuardVerdict:
    """The verdict for a run with `persons` and `colors` against `previous` (see
    `previous_published`); pure, so the nightly batch can call it before storing anything."""
    cfg = config or GuardConfig()
    sev = severe_color(colors)
    figures: dict[str, object] = {
        "persons_after": persons, f"{sev}_after": colors.get(sev, 0), "severe_color": sev,
        "max_shrink": cfg.max_shrink, "max_red_change": cfg.max_red_change, "min_persons": cfg.min_persons,
        "previous_run": None,
    }
    if previous is None:
        return GuardVerdict(True, (), figures)
    run_id, as_of, before, before_colors = previous
    red_before, red_after = before_colors.get(sev, 0), colors.get(sev, 0)
    figures.update({"previous_run": run_id, "previous_as_of": str(as_of), "persons_before": before,
                    f"{sev}_before": red_before})
    since = f"since published run {run_id} (as of {as_of})"
    reasons = []
    shrink = before - persons
    share = shrink / before if before else 0.0
    figures["population_change"] = -share if before else None
    if shrink > 0 and share > cfg.max_shrink and shrink >= cfg.min_persons:
        reasons.append(
            f"the population shrank from {before:,} to {persons:,} ({_pct(-share)}, {shrink:,} persons) {since}; "
            f"the limit is {cfg.max_shrink * 100:g} % and {cfg.min_persons:,} persons: a registrations file "
            "may be missing or truncated")
    moved = red_after - red_before
    red_share = abs(moved) / red_before if red_before else (float("inf") if moved else 0.0)
    figures[f"{sev}_change"] = (moved / red_before) if red_before else None
    if moved and red_share > cfg.max_red_change and abs(moved) >= cfg.min_persons:
        how = f"{_pct(moved / red_before)}" if red_before else "from none"
        reasons.append(
            f"{sev} codes {'rose' if moved > 0 else 'fell'} from {red_before:,} to {red_after:,} ({how}, "
            f"{abs(moved):,} persons) {since}; the limit is ±{cfg.max_red_change * 100:g} % and "
            f"{cfg.min_persons:,} persons: check for a missing, duplicated or wrong file before publishing")
    return GuardVerdict(not reasons, tuple(reasons), figures)


def check(con: duckdb.DuckDBPyConnection, province: str, as_of: dt.date | None, persons: int, colors: Mapping[str, int],
          config: GuardConfig | None = None, exclude_run: int | None = None) -> GuardVerdict:
    """Compare a new run's counts with the previous published run of the same province."""
    return compare(previous_published(con, province, as_of, exclude_run), persons, colors, config)


def check_run(con: duckdb.DuckDBPyConnection, run_id: int, config: GuardConfig | None = None) -> GuardVerdict:
    """The guard's verdict for a stored (not necessarily published) run."""
    row = one(con, "SELECT province, as_of, persons, colors FROM runs WHERE run_id = ?", [run_id])
    if row is None:
        from hcode.errors import UnknownRun

        raise UnknownRun(f"no run {run_id} in this warehouse")
    province, as_of, persons, colors = row
    return check(con, province, as_of, persons, json.loads(colors), config, exclude_run=run_id)
