"""A ruleset as data: its facts, rules and examples, resolved and checked.

A ruleset is data a province's staff can read and write (docs/rulesets.md): a palette,
named *facts* (per-person aggregations of one feed, in the rule language of
`hcode.rules.lang`), *rules* (a colour, titles, a legal basis and a condition built from
`trigger` / `window` / `release` / `when`), and embedded *examples*. `hcode.rules.load`
reads, checks and finds ruleset files; this module holds what it returns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hcode.feeds import FEEDS, LISTINGS, Kind
from hcode.rules.check import Type
from hcode.rules.lang import Aggregate, Column, Companion, Duration, Node, RiskArea, walk

# In an evidence text, "{place}" names the place of the row's place_code (from the `places`
# registry), for feeds with a place_code column.
PLACE_TOKEN = "{place}"

ENGINE_READS = {  # read by the engine itself, whatever the rules say
    "registrations": ("district_code", "registered_at"),
    "overrides": ("authority", "basis", "color", "expires_at", "issued_at", "operator", "reason"),
}


@dataclass(frozen=True)
class Fact:
    name: str
    expr: Aggregate  # resolved
    type: Type  # timestamp | number | bool
    evidence: Mapping[str, str]  # {"en": ..., "zh": ...}: detail text; "{column}" names a column
    deps: tuple[str, ...]  # facts its `where` reads
    file: str
    line: int

    @property
    def feed(self) -> str:
        return self.expr.feed


@dataclass(frozen=True)
class Rule:
    id: str
    color: str
    title: Mapping[str, str]
    basis: str
    trigger: str | None
    window: Duration | None
    release: Node | None
    when: Node | None
    condition: Node  # the whole match condition, built from the four parts above
    evidence_facts: tuple[str, ...]  # facts whose events explain a match
    file: str
    line: int

    def describe(self) -> str:
        """One line a person can read and a diff can compare: the rule's logic and colour."""
        parts = [f"color {self.color}"]
        if self.trigger:
            parts.append(f"trigger {self.trigger}")
        if self.window:
            parts.append(f"window {self.window.src()}")
        if self.when is not None:
            parts.append(f"when {self.when.src()}")
        if self.release is not None:
            parts.append(f"release {self.release.src()}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Example:
    name: str
    as_of: dt.date
    events: Mapping[str, tuple[Mapping[str, object], ...]]
    color: str
    rules: tuple[str, ...] | None  # exact set of matched rules, when given
    rule: str | None  # deciding rule, when given
    file: str
    line: int
    # other persons' events (companions, cases), each its own person: not registered unless
    # it lists registrations
    others: tuple[Mapping[str, tuple[Mapping[str, object], ...]], ...] = ()


@dataclass(frozen=True)
class Ruleset:
    province: str
    version: str
    effective_from: dt.date
    title: Mapping[str, str]
    basis: str
    palette: tuple[str, ...]
    facts: Mapping[str, Fact]  # in dependency order
    rules: tuple[Rule, ...]
    examples: tuple[Example, ...]
    extends: str | None
    files: tuple[str, ...]  # the file and its ancestors, child first
    source_text: str  # the YAML text of every file, child first
    content_hash: str = field(default="")

    @property
    def name(self) -> str:
        return f"{self.province}@{self.version}"

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def rank(self, color: str) -> int:
        return self.palette.index(color)

    def reads(self) -> dict[str, list[str]]:
        """Which personal data the ruleset uses: ``{feed: sorted columns}`` (the engine's own
        reads of registrations and overrides included)."""
        out: dict[str, set[str]] = {f: set(c) for f, c in ENGINE_READS.items()}
        for fact in self.facts.values():
            feed = FEEDS[fact.feed]
            cols = out.setdefault(fact.feed, set())
            cols.add(feed.event_time)
            cols.update(c for c in (fact.expr.column, fact.expr.per) if c)
            if fact.expr.per:
                cols.update(c.name for c in feed.stored_columns if c.kind is Kind.COLOR)
            for node in walk(fact.expr):
                if isinstance(node, Column) and node.feed == fact.feed:
                    cols.add(node.name)
                if isinstance(node, RiskArea):
                    listing, key = LISTINGS[node.listing]
                    out.setdefault(listing, set()).update({key, "level", "valid_from", "valid_to"})
                if isinstance(node, Companion):  # the other persons' rows
                    other = out.setdefault(node.feed, set())
                    other.update({FEEDS[node.feed].event_time, node.column})
                    if node.where is not None:
                        other.update(n.name for n in walk(node.where) if isinstance(n, Column))
                    out.setdefault("place_scans", set()).update({"place_code", "scanned_at"})
            for text in fact.evidence.values():
                cols.update(c.name for c in feed.stored_columns if "{" + c.name + "}" in text)
                if PLACE_TOKEN in text and "place_code" in cols | {c.name for c in feed.stored_columns}:
                    cols.add("place_code")
                    out.setdefault("places", set()).update({"place_code", "name", "registered_at"})
        return {f: sorted(c) for f, c in sorted(out.items())}

    def canonical(self) -> dict[str, Any]:
        """The resolved logic, as plain data: what `content_hash` hashes."""
        return {
            "palette": list(self.palette),
            "facts": {n: {"expr": f.expr.src(), "evidence": dict(sorted(f.evidence.items()))}
                      for n, f in sorted(self.facts.items())},
            "rules": [{"id": r.id, "color": r.color, "title": dict(sorted(r.title.items())), "basis": r.basis,
                       "condition": r.condition.src(), "evidence": list(r.evidence_facts)} for r in self.rules],
        }


def not_in_force(rs: Ruleset, as_of: dt.date) -> str | None:
    """The warning for evaluating `rs` as of a date before it takes effect (None when in force)."""
    if as_of >= rs.effective_from:
        return None
    return f"{rs.name} is not in force on {as_of}: it takes effect on {rs.effective_from}"


def not_in_force_all(as_of: dt.date | None, *rulesets: Ruleset) -> list[str]:
    """`not_in_force` for each ruleset used as of `as_of` (none without a date)."""
    return [w for rs in rulesets if as_of is not None and (w := not_in_force(rs, as_of))]
