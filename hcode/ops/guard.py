"""The publish guard: refuse to push a night whose figures jumped for no believable reason.

A truncated registrations file makes the population shrink; a missing negative-results file
or a duplicated contact list makes red codes jump; a new rule written in a hurry can turn a
third of the city yellow. Either way millions of people would see a wrong colour the next
morning. So before publishing, a run is compared with the previous *published* run of the
same province, and held back when

- the population shrank by more than `max_shrink` (default 5 %), or
- the count of any colour other than the palette's first (yellow, orange, red...) moved, up
  or down, by more than its share (`max_color_change`, default 50 %, or the colour's own
  share under `[guard.colors]`; `max_red_change`, the older key, is the most severe
  colour's), or
- more persons changed colour than `max_changed` (default 5 %) of the previous population,

and in each case by at least `min_persons` persons (default 100: a village-sized warehouse
can double its 30 red codes on a normal night). Thresholds come from `[guard]` in
`hcode.toml`. The verdict says why, with the figures and the deciding rules whose counts
moved most; a human decides (re-run with the missing file, or publish anyway with the
batch's `--accept-jump`, which the audit log records).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from hcode.config import GuardConfig
from hcode.engine.evaluate import Evaluation, registered
from hcode.store.warehouse import ArrowStream, one, scalar, view

TOP_RULES = 3  # how many moving rules a reason names
DEFAULT_RULE = "(no rule)"  # the deciding "rule" of persons with the palette's first colour and no rule


@dataclass(frozen=True)
class GuardVerdict:
    ok: bool
    reasons: tuple[str, ...]
    figures: Mapping[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "reasons": list(self.reasons), "figures": dict(self.figures)}


@dataclass(frozen=True)
class RunCodes:
    """What the guard reads of a run's codes: the population's pids (sorted), the colour and
    deciding rule of the persons some rule matched or an override names (`details`: pid,
    color, rule), and the code of everyone else."""

    pids: pl.Series
    details: pl.DataFrame
    default_color: str
    default_rule: str | None

    def rule_counts(self) -> dict[tuple[str, str], int]:
        """Persons per (colour, deciding rule); `override` is a rule here, DEFAULT_RULE the default."""
        counts = {(c, r if r is not None else DEFAULT_RULE): n
                  for c, r, n in self.details.group_by("color", "rule").len().iter_rows()}
        key = (self.default_color, self.default_rule or DEFAULT_RULE)
        counts[key] = counts.get(key, 0) + self.pids.len() - self.details.height
        return {k: n for k, n in counts.items() if n}

    @classmethod
    def of_evaluation(cls, ev: Evaluation) -> RunCodes:
        return cls(ev.population["pid"], ev.results.select("pid", "color", "rule"), ev.default_color, ev.default_rule)

    @classmethod
    def of_run(cls, con: duckdb.DuckDBPyConnection, run_id: int, among: pl.Series | None = None) -> RunCodes:
        """A stored run's codes; when `among` (pids: one bucket's persons) is given, of the
        persons between its least and greatest pid, and of those only when the run has more
        than twice as many there (a Spark bucket's persons are scattered over every pid):
        `changed_persons` counts the persons of both runs, so the others count for nothing.
        (A pid range is read without the rest of the run; DuckDB's semi-join with a bucket of
        7M pids took 0.74–0.97 s, the range 0.11 s.)"""
        with ExitStack() as stack:
            where, params = "", [run_id]
            if among is not None and among.len():
                lo, hi = int(among.min()), int(among.max())  # type: ignore[arg-type]
                where, params = " AND pid >= ? AND pid <= ?", [run_id, lo, hi]
                there = scalar(con, "SELECT count(*) FROM runs r JOIN population_rows p USING (population_id) "
                                    f"WHERE r.run_id = ?{where}", params)
                if there > 2 * among.len():
                    name = stack.enter_context(view(con, "_hcode_guard_pids", ArrowStream(among.to_frame("pid"))))
                    where += f" AND pid IN (SELECT pid FROM {name})"
            elif among is not None:
                where = " AND false"
            pids = pl.DataFrame(con.sql("SELECT p.pid FROM runs r JOIN population_rows p USING (population_id) "
                                        f"WHERE r.run_id = ?{where} ORDER BY p.pid", params=params))["pid"]
            details = pl.DataFrame(con.sql(f"SELECT pid, color, rule FROM code_details WHERE run_id = ?{where}",
                                           params=params))
        row = one(con, "SELECT color, rule FROM code_defaults WHERE run_id = ?", [run_id])
        color, rule = row if row else ("", None)
        return cls(pids, details, color, rule)


def run_rule_counts(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[tuple[str, str], int]:
    """`RunCodes.of_run(con, run_id).rule_counts()`, counted by DuckDB (the run is never whole
    in memory)."""
    counts = {(c, r if r is not None else DEFAULT_RULE): int(n) for c, r, n in con.execute(
        "SELECT color, rule, count(*) FROM code_details WHERE run_id = ? GROUP BY ALL", [run_id]).fetchall()}
    row = one(con, "SELECT d.color, d.rule, p.persons FROM code_defaults d JOIN runs r USING (run_id) "
                   "JOIN populations p USING (population_id) WHERE d.run_id = ?", [run_id])
    if row is not None:
        key = (row[0], row[1] or DEFAULT_RULE)
        counts[key] = counts.get(key, 0) + int(row[2]) - sum(counts.values())
    return {k: n for k, n in counts.items() if n}


def changed_persons(before: RunCodes, after: RunCodes) -> int:
    """Persons in both runs whose colour differs. Only persons listed in either run's details
    can differ, unless the two runs' default colours differ (then every other person in both
    populations changed too)."""
    listed = pl.concat([before.details["pid"], after.details["pid"]]).unique().sort()
    both = registered(before.pids.to_frame("pid"), registered(after.pids.to_frame("pid"), listed))
    frame = both.to_frame("pid")
    colors = []
    for side in (before, after):
        colors.append(frame.join(side.details.select("pid", "color"), on="pid", how="left")["color"]
                      .fill_null(side.default_color))
    changed = int((colors[0] != colors[1]).sum())
    if before.default_color != after.default_color:
        common = registered(before.pids.to_frame("pid"), after.pids).len()
        changed += common - both.len()
    return changed


def severe_color(colors: Mapping[str, int]) -> str:
    """The palette's most severe colour: `red` when the palette has it, else its last colour."""
    return "red" if "red" in colors else list(colors)[-1]


@dataclass(frozen=True)
class Previous:
    """The previous published run the guard compares with: its figures, and per (colour,
    deciding rule) its counts when known."""

    run_id: int
    as_of: dt.date
    persons: int
    colors: Mapping[str, int]
    rules: Mapping[tuple[str, str], int] = field(default_factory=dict)


def previous_published(con: duckdb.DuckDBPyConnection, province: str, as_of: dt.date | None = None,
                       exclude_run: int | None = None) -> tuple[int, dt.date, int, dict[str, int]] | None:
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


def _moving_rules(before: Mapping[tuple[str, str], int], after: Mapping[tuple[str, str], int],
                  color: str | None) -> list[tuple[str, int, int]]:
    """(rule, before, after) of the rules deciding `color` (any colour when None) whose counts
    moved most, largest move first (ties: by rule id)."""
    keys = {k for k in (*before, *after) if color is None or k[0] == color}
    moves: dict[str, list[int]] = {}
    for c, r in keys:
        if color is None and r == DEFAULT_RULE:
            continue
        m = moves.setdefault(r, [0, 0])
        m[0] += before.get((c, r), 0)
        m[1] += after.get((c, r), 0)
    ranked = sorted(((r, b, a) for r, (b, a) in moves.items() if a != b), key=lambda t: (-abs(t[2] - t[1]), t[0]))
    return ranked[:TOP_RULES]


def _rules_text(moving: list[tuple[str, int, int]]) -> str:
    if not moving:
        return ""
    return "; rules that moved most: " + ", ".join(f"{r} {a - b:+,} ({b:,} → {a:,})" for r, b, a in moving)


def compare(previous: tuple[Any, ...] | Previous | None, persons: int, colors: Mapping[str, int],
            config: GuardConfig | None = None, *, rules: Mapping[tuple[str, str], int] | None = None,
            changed: int | None = None) -> GuardVerdict:
    """The verdict for a run with `persons`, `colors` (in palette order), per (colour, rule)
    counts `rules` and `changed` persons against `previous` (see `previous_published`; a
    tuple, or a `Previous` with its rule counts); pure, so the nightly batch can call it
    before storing anything."""
    cfg = config or GuardConfig()
    sev = severe_color(colors)
    watched = list(colors)[1:]
    figures: dict[str, object] = {
        "persons_after": persons, f"{sev}_after": colors.get(sev, 0), "severe_color": sev,
        "watched_colors": watched, "max_shrink": cfg.max_shrink, "max_color_change": cfg.max_color_change,
        "max_red_change": cfg.max_red_change, "max_changed": cfg.max_changed, "min_persons": cfg.min_persons,
        "color_limits": {c: cfg.color_limit(c, c == sev) for c in watched},
        "changed_persons": changed, "previous_run": None,
    }
    for c in watched:
        figures[f"{c}_after"] = colors.get(c, 0)
    if previous is None:
        return GuardVerdict(True, (), figures)
    prev = previous if isinstance(previous, Previous) else Previous(*previous)
    before_rules, after_rules = dict(prev.rules), dict(rules or {})
    compare_rules = bool(before_rules) and bool(after_rules)
    before = prev.persons
    first = list(prev.colors)[:1]
    for c in prev.colors:  # a watched colour the new palette lost is watched too (now 0)
        if c not in colors and c not in first and c not in watched:
            watched.append(c)
    figures.update({"previous_run": prev.run_id, "previous_as_of": str(prev.as_of), "persons_before": before})
    since = f"since published run {prev.run_id} (as of {prev.as_of})"
    reasons = []
    shrink = before - persons
    share = shrink / before if before else 0.0
    figures["population_change"] = -share if before else None
    if shrink > 0 and share > cfg.max_shrink and shrink >= cfg.min_persons:
        reasons.append(
            f"the population shrank from {before:,} to {persons:,} ({_pct(-share)}, {shrink:,} persons) {since}; "
            f"the limit is {cfg.max_shrink * 100:g} % and {cfg.min_persons:,} persons: a registrations file "
            "may be missing or truncated")
    for c in watched:
        n_before, n_after = prev.colors.get(c, 0), colors.get(c, 0)
        limit = cfg.color_limit(c, c == sev)
        moved = n_after - n_before
        moved_share = abs(moved) / n_before if n_before else (float("inf") if moved else 0.0)
        figures[f"{c}_before"], figures[f"{c}_after"] = n_before, n_after
        figures[f"{c}_change"] = (moved / n_before) if n_before else None
        if moved and moved_share > limit and abs(moved) >= cfg.min_persons:
            how = f"{_pct(moved / n_before)}" if n_before else "from none"
            moving = _moving_rules(before_rules, after_rules, c) if compare_rules else []
            reasons.append(
                f"{c} codes {'rose' if moved > 0 else 'fell'} from {n_before:,} to {n_after:,} ({how}, "
                f"{abs(moved):,} persons) {since}; the limit is ±{limit * 100:g} % and {cfg.min_persons:,} persons"
                f"{_rules_text(moving)}: check for a missing, duplicated or wrong file, or a rule that "
                "matches more than meant, before publishing")
    if changed is not None and before:
        figures["changed_share"] = changed / before
        if changed / before > cfg.max_changed and changed >= cfg.min_persons:
            moving = _moving_rules(before_rules, after_rules, None) if compare_rules else []
            reasons.append(
                f"{changed:,} persons changed colour ({changed / before * 100:.1f} % of {before:,}) {since}; the "
                f"limit is {cfg.max_changed * 100:g} % and {cfg.min_persons:,} persons{_rules_text(moving)}")
    if compare_rules:
        figures["rules_moved"] = [{"rule": r, "before": b, "after": a}
                                  for r, b, a in _moving_rules(before_rules, after_rules, None)]
    return GuardVerdict(not reasons, tuple(reasons), figures)


def check(con: duckdb.DuckDBPyConnection, province: str, as_of: dt.date | None, persons: int,
          colors: Mapping[str, int], config: GuardConfig | None = None,
          exclude_run: int | None = None) -> GuardVerdict:
    """Compare a new run's counts with the previous published run of the same province
    (colour counts and population only: `check_codes` also compares persons and rules)."""
    return compare(previous_published(con, province, as_of, exclude_run), persons, colors, config)


def check_codes(con: duckdb.DuckDBPyConnection, province: str, as_of: dt.date | None, persons: int,
                colors: Mapping[str, int], codes: RunCodes, config: GuardConfig | None = None,
                exclude_run: int | None = None) -> GuardVerdict:
    """The full verdict for a run whose codes are `codes`: colour counts, population, persons
    who changed colour and the rules that moved, against the previous published run."""
    prev = previous_published(con, province, as_of, exclude_run)
    if prev is None:
        return compare(None, persons, colors, config)
    before = RunCodes.of_run(con, prev[0])
    return compare(Previous(*prev, rules=before.rule_counts()), persons, colors, config,
                   rules=codes.rule_counts(), changed=changed_persons(before, codes))


class Tally:
    """What the guard needs of a run evaluated person bucket by person bucket (runs/bucketed.py),
    gathered as the buckets come so that no bucket is kept: the counts per (colour, deciding
    rule) and the persons who changed colour since the previous published run, both sums over
    the buckets (buckets share no person). The verdict is the same whatever the bucket count."""

    def __init__(self, con: duckdb.DuckDBPyConnection, province: str, as_of: dt.date | None,
                 exclude_run: int | None = None) -> None:
        self.previous = previous_published(con, province, as_of, exclude_run)
        self.rules: dict[tuple[str, str], int] = {}
        self.changed = 0

    def add(self, con: duckdb.DuckDBPyConnection, ev: Evaluation) -> None:
        """Count one bucket's evaluation."""
        codes = RunCodes.of_evaluation(ev)
        for key, n in codes.rule_counts().items():
            self.rules[key] = self.rules.get(key, 0) + n
        if self.previous is not None:  # the previous run's codes of this bucket's persons only
            self.changed += changed_persons(RunCodes.of_run(con, self.previous[0], among=codes.pids), codes)

    def verdict(self, con: duckdb.DuckDBPyConnection, persons: int, colors: Mapping[str, int],
                config: GuardConfig | None = None) -> GuardVerdict:
        if self.previous is None:
            return compare(None, persons, colors, config)
        prev = Previous(*self.previous, rules=run_rule_counts(con, self.previous[0]))
        return compare(prev, persons, colors, config, rules=self.rules, changed=self.changed)


def check_evaluation(con: duckdb.DuckDBPyConnection, ev: Evaluation, config: GuardConfig | None = None,
                     exclude_run: int | None = None) -> GuardVerdict:
    """The verdict for an evaluation not stored yet (one bucket: `Tally` for several)."""
    tally = Tally(con, ev.ruleset.province, ev.as_of, exclude_run)
    tally.add(con, ev)
    return tally.verdict(con, ev.persons, ev.colors, config)


def check_run(con: duckdb.DuckDBPyConnection, run_id: int, config: GuardConfig | None = None) -> GuardVerdict:
    """The guard's verdict for a stored (not necessarily published) run."""
    row = one(con, "SELECT province, as_of, persons, colors FROM runs WHERE run_id = ?", [run_id])
    if row is None:
        from hcode.errors import UnknownRun

        raise UnknownRun(f"no run {run_id} in this warehouse")
    province, as_of, persons, colors = row
    return check_codes(con, province, as_of, persons, json.loads(colors), RunCodes.of_run(con, run_id), config,
                       exclude_run=run_id)
