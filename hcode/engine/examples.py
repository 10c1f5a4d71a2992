"""Run a ruleset's embedded examples through the real engine.

An example is one person's events, an as-of date and the expected colour (and matched rules,
and deciding rule). The examples are the rule author's own acceptance tests and the
province staff's documentation; `hcode rules check` runs them, and so does the test suite.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from hcode.engine.evaluate import evaluate
from hcode.engine.sources import feed_schema
from hcode.errors import RulesetProblem
from hcode.feeds import FEEDS
from hcode.rules.ruleset import Example, Ruleset, not_in_force

REGISTERED_AT = dt.datetime(2000, 1, 1)  # an example person is registered unless it says otherwise


@dataclass(frozen=True)
class ExampleOutcome:
    example: Example
    passed: bool
    color: str
    rule: str | None
    matched_rules: tuple[str, ...]
    explanation: str
    problems: tuple[str, ...]


def example_frames(ex: Example, pid: int = 1) -> dict[str, pl.DataFrame]:
    """The example's events as typed feed frames: the example person `pid`, then each of the
    `others` (pids pid+1, ...; registered only when they list registrations)."""
    events: dict[str, tuple[Mapping[str, object], ...]] = dict(ex.events)
    events.setdefault("registrations", ({"registered_at": REGISTERED_AT, "district_code": "000000"},))
    people = [(pid, events), *((pid + 1 + i, dict(o)) for i, o in enumerate(ex.others))]
    data: dict[str, list[dict[str, object]]] = {}
    for who, evs in people:
        for feed, rows in evs.items():
            key: dict[str, object] = {"pid": who} if FEEDS[feed].has_person else {}
            data.setdefault(feed, []).extend(key | dict(r) for r in rows)
    frames: dict[str, pl.DataFrame] = {}
    for feed, frame_rows in data.items():
        schema = feed_schema(feed)
        frames[feed] = (pl.DataFrame(frame_rows, schema=schema, orient="row") if frame_rows
                        else pl.DataFrame(schema=schema))
    return frames


def run_example(rs: Ruleset, ex: Example) -> ExampleOutcome:
    ev = evaluate(rs, example_frames(ex), ex.as_of)
    row = ev.codes.filter(pl.col("pid") == 1).row(0, named=True)
    matched = tuple(row["matched_rules"])
    problems = []
    if row["color"] != ex.color:
        problems.append(f"colour is {row['color']}, expected {ex.color}")
    if ex.rules is not None and set(matched) != set(ex.rules):
        problems.append(f"matched rules are [{', '.join(matched)}], expected [{', '.join(ex.rules)}]")
    if ex.rule is not None and row["rule"] != ex.rule:
        problems.append(f"deciding rule is {row['rule']}, expected {ex.rule}")
    return ExampleOutcome(ex, not problems, row["color"], row["rule"], matched, row["explanation"], tuple(problems))


def run_examples(rs: Ruleset) -> list[ExampleOutcome]:
    return [run_example(rs, ex) for ex in rs.examples]


@dataclass(frozen=True)
class RulesetCheck:
    """A ruleset that loaded and type-checked, and the outcome of each of its examples."""

    ruleset: Ruleset
    outcomes: tuple[ExampleOutcome, ...]
    warnings: tuple[str, ...] = ()  # e.g. checked as of a date before it takes effect

    @property
    def failed(self) -> tuple[ExampleOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)

    @property
    def passed(self) -> int:
        return len(self.outcomes) - len(self.failed)

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_json(self) -> dict[str, Any]:
        """What `hcode rules check --json` prints."""
        rs, failed = self.ruleset, self.failed
        return {
            "ruleset": rs.name, "ok": self.ok, "errors": [], "warnings": list(self.warnings),
            "province": rs.province, "version": rs.version, "path": rs.files[0],
            "effective_from": rs.effective_from.isoformat(), "extends": rs.extends,
            "content_hash": rs.content_hash, "palette": list(rs.palette), "rules": [r.id for r in rs.rules],
            "facts": list(rs.facts), "reads": rs.reads(),
            "examples": {"passed": self.passed, "failed": len(failed),
                         "failures": [{"name": o.example.name, "file": o.example.file, "line": o.example.line,
                                       "problems": list(o.problems), "explanation": o.explanation}
                                      for o in failed]}}


def check_ruleset(rs: Ruleset, as_of: dt.date | None = None) -> RulesetCheck:
    """Run every embedded example of `rs` (which loaded, so it type-checks); checked `as_of` a
    date before it takes effect, say so in `warnings`."""
    warning = not_in_force(rs, as_of) if as_of is not None else None
    return RulesetCheck(rs, tuple(run_examples(rs)), (warning,) if warning else ())


def check_failure_json(spec: str, problems: Sequence[RulesetProblem]) -> dict[str, Any]:
    """What `hcode rules check --json` prints when the ruleset does not load: the same object
    as `RulesetCheck.as_json`, with `ok` false and every problem in `errors`."""
    return {"ruleset": spec, "ok": False, "errors": [p.as_json() for p in problems], "warnings": []}
