"""Two ruleset versions side by side: rules added, removed and changed, and palette changes.

The rule author's question before a release ("what exactly did 2022.06.28 change?"),
answered from the resolved rulesets rather than the YAML text: a rule inherited unchanged
through `extends` is unchanged, and a rule whose condition reads a fact whose definition
changed (an exit test moved from +12 to +6 days) is reported as changed, naming the fact.
Every condition is shown in its canonical source form (`Node.src()`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hcode.rules.lang import FactRef, Node, walk
from hcode.rules.ruleset import Rule, Ruleset

FIELDS = ("color", "window", "trigger", "release", "when", "condition", "title", "basis")


@dataclass(frozen=True)
class RuleChange:
    id: str
    kind: str  # added | removed | changed | unchanged
    before: dict[str, str] | None  # FIELDS as text, and "facts": referenced fact names
    after: dict[str, str] | None
    changed: tuple[str, ...]  # which FIELDS differ, plus "fact <name>" for redefined facts


@dataclass(frozen=True)
class RulesDiff:
    before: str  # province@version
    after: str
    palette_before: tuple[str, ...]
    palette_after: tuple[str, ...]
    rules: tuple[RuleChange, ...]  # after's order, then removed rules in before's order
    facts: dict[str, tuple[str | None, str | None]]  # redefined facts read by some rule: before, after

    @property
    def palette_changed(self) -> bool:
        return self.palette_before != self.palette_after

    def of_kind(self, kind: str) -> list[RuleChange]:
        return [r for r in self.rules if r.kind == kind]

    def as_json(self) -> dict[str, Any]:
        """What `hcode rules diff --json` prints."""
        return rules_diff_dict(self)


def _fact_refs(node: Node) -> set[str]:
    return {n.name for n in walk(node) if isinstance(n, FactRef)}


def _closure(rs: Ruleset, names: set[str]) -> set[str]:
    """The facts named and every fact they read, transitively."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in rs.facts:
            continue
        seen.add(name)
        todo.extend(rs.facts[name].deps)
    return seen


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Node):
        return value.src()
    if isinstance(value, dict) or hasattr(value, "items"):
        return " / ".join(f"{k}: {v}" for k, v in sorted(value.items()))
    return str(value)


def _describe(rule: Rule) -> dict[str, str]:
    return {f: _text(getattr(rule, f)) for f in FIELDS}


def rules_diff(before: Ruleset, after: Ruleset) -> RulesDiff:
    """Compare two resolved rulesets (A = before, B = after)."""
    b_rules = {r.id: r for r in before.rules}
    a_rules = {r.id: r for r in after.rules}
    redefined: dict[str, tuple[str | None, str | None]] = {}
    changes = []
    for rid in [*a_rules, *(r for r in b_rules if r not in a_rules)]:
        b, a = b_rules.get(rid), a_rules.get(rid)
        if b is None or a is None:
            changes.append(RuleChange(rid, "added" if b is None else "removed", _describe(b) if b else None,
                                      _describe(a) if a else None, ()))
            continue
        db, da = _describe(b), _describe(a)
        fields = [f for f in FIELDS if db[f] != da[f]]
        facts = _closure(before, _fact_refs(b.condition)) | _closure(after, _fact_refs(a.condition))
        for name in sorted(facts):
            fb = before.facts[name].expr.src() if name in before.facts else None
            fa = after.facts[name].expr.src() if name in after.facts else None
            if fb != fa:
                redefined[name] = (fb, fa)
                if fb is not None and fa is not None:  # a new or dropped fact shows in the condition
                    fields.append(f"fact {name}")
        changes.append(RuleChange(rid, "changed" if fields else "unchanged", db, da, tuple(fields)))
    return RulesDiff(before.name, after.name, tuple(before.palette), tuple(after.palette), tuple(changes),
                     dict(sorted(redefined.items())))


def rules_diff_dict(rd: RulesDiff) -> dict[str, Any]:
    """What `hcode rules diff --json` prints."""
    return {
        "before": rd.before, "after": rd.after,
        "palette": {"before": list(rd.palette_before), "after": list(rd.palette_after),
                    "added": [c for c in rd.palette_after if c not in rd.palette_before],
                    "removed": [c for c in rd.palette_before if c not in rd.palette_after],
                    "changed": rd.palette_changed},
        "added": [r.id for r in rd.of_kind("added")],
        "removed": [r.id for r in rd.of_kind("removed")],
        "changed": [r.id for r in rd.of_kind("changed")],
        "unchanged": [r.id for r in rd.of_kind("unchanged")],
        "rules": [{"id": r.id, "kind": r.kind, "changed": list(r.changed), "before": r.before, "after": r.after}
                  for r in rd.rules],
        "facts": {n: {"before": b, "after": a} for n, (b, a) in rd.facts.items()},
    }
