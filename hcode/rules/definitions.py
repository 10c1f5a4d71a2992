"""A ruleset file's facts and rules: parsed, checked and built into `Fact` and `Rule`, and the
problems found while loading (`LoadErrors`, each a `RulesetProblem`: file, line, rule or
fact, message), so that every mistake of a file is reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hcode.errors import RulesetError, RulesetProblem
from hcode.feeds import FEEDS
from hcode.rules.check import AGG_TYPES, CheckError, Scope, Type, resolve, resolve_fact
from hcode.rules.lang import Aggregate, And, FactRef, IsNull, IsTrue, Node, Not, Or, Within, walk
from hcode.rules.parse import ParseError, parse_duration, parse_expr, parse_fact
from hcode.rules.ruleset import PLACE_TOKEN, Fact, Rule
from hcode.rules.yaml_lines import Located

RULE_KEYS = {"id", "color", "title", "basis", "trigger", "window", "release", "when", "notes"}

RawFacts = dict[str, tuple[Any, str, int]]  # name -> (YAML value, file, line)
RawRule = tuple[Located.Map, str, int]  # (YAML mapping, file, line)


def fail(file: str, line: int | None, msg: str) -> RulesetError:
    """The error of one problem that stops the loading of `file`."""
    return RulesetError(problems=(RulesetProblem(msg, file, line),))


class LoadErrors:
    """Every problem found while loading, each a `RulesetProblem` (file, line, rule or fact)."""

    def __init__(self) -> None:
        self.items: list[RulesetProblem] = []

    def add(self, file: str, line: int, msg: str, rule: str | None = None, fact: str | None = None) -> None:
        self.items.append(RulesetProblem(msg, file, line, rule, fact))

    def raise_if_any(self) -> None:
        if self.items:
            raise RulesetError(problems=tuple(self.items))


def _evidence_ok(text: str, feed: str) -> bool:
    """Braces in an evidence text only as `{column}` naming a stored column of the feed."""
    names = {c.name for c in FEEDS[feed].stored_columns} if feed in FEEDS else set()
    if "place_code" in names:  # {place}: the registered name of the row's place (PLACE_TOKEN)
        names.add(PLACE_TOKEN.strip("{}"))
    rest = re.sub(r"\{([a-z_][a-z0-9_]*)\}", lambda m: "" if m.group(1) in names else "{}", text)
    return "{" not in rest and "}" not in rest


def _fact_source(val: Any) -> tuple[Any, Any]:
    if isinstance(val, Located.Map):
        return val.get("value"), val.get("evidence")
    return val, None


def check_facts(raw: RawFacts, palette: tuple[str, ...], errs: LoadErrors) -> tuple[dict[str, Fact], dict[str, Type]]:
    """The facts in dependency order, and the type of every fact that parses (so that rules
    are checked even when a fact has an error, without a cascade of "unknown fact")."""
    parsed: dict[str, tuple[Aggregate, Mapping[str, str], str, int]] = {}
    for name, (val, file, line) in raw.items():
        text, ev = _fact_source(val)
        if not isinstance(text, str):
            errs.add(file, line, "a fact is an expression, or a mapping with 'value' and 'evidence'", fact=name)
            continue
        if not name.isidentifier() or name.startswith("_") or name != name.lower():
            errs.add(file, line, "fact names are lower-case identifiers", fact=name)
            continue
        try:
            agg = parse_fact(text)
        except ParseError as exc:
            errs.add(file, line + exc.line_offset, f"syntax error: {exc.msg}", fact=name)
            continue
        evidence = {"en": name.replace("_", " "), "zh": name.replace("_", " ")}
        if isinstance(ev, str):
            evidence = {"en": ev, "zh": ev}
        elif isinstance(ev, Mapping):
            evidence = {"en": str(ev.get("en", evidence["en"])), "zh": str(ev.get("zh", ev.get("en", "")))}
        bad_braces = [t for t in evidence.values() if not _evidence_ok(t, agg.feed)]
        if bad_braces:
            cols = ", ".join(c.name for c in FEEDS[agg.feed].stored_columns) if agg.feed in FEEDS else "none"
            errs.add(file, line, f"evidence text {bad_braces[0]!r}: braces may only name a column of "
                                 f"{agg.feed} ({cols}), e.g. {{{cols.split(', ')[0]}}}", fact=name)
            continue
        parsed[name] = (agg, evidence, file, line)
    types = {n: AGG_TYPES[a.kind] for n, (a, _, _, _) in parsed.items()}
    resolved: dict[str, Fact] = {}
    for name, (agg, ev, file, line) in parsed.items():
        try:
            r = resolve_fact(agg, types, palette)
        except CheckError as exc:
            errs.add(file, line, str(exc), fact=name)
            continue
        deps = tuple(sorted({n.name for n in walk(r) if isinstance(n, FactRef)}))
        resolved[name] = Fact(name, r, types[name], ev, deps, file, line)
    # dependency order; a cycle is an error naming its facts
    order: dict[str, Fact] = {}
    state: dict[str, int] = {}

    def visit(n: str, path: tuple[str, ...]) -> None:
        if state.get(n) == 2 or n not in resolved:
            return
        if state.get(n) == 1:
            cyc = path[path.index(n):] + (n,)
            f = resolved[n]
            errs.add(f.file, f.line, f"facts depend on each other in a cycle: {' -> '.join(cyc)}", fact=n)
            raise _Cycle
        state[n] = 1
        for d in resolved[n].deps:
            visit(d, (*path, n))
        state[n] = 2
        order[n] = resolved[n]

    try:
        for n in resolved:
            visit(n, ())
    except _Cycle:
        pass
    return order, types


class _Cycle(Exception):
    pass


def check_rule(r: Located.Map, file: str, line: int, types: Mapping[str, Type], palette: tuple[str, ...],
                errs: LoadErrors) -> Rule | None:
    rid = str(r.get("id"))
    n0 = len(errs.items)

    def bad(msg: str, key: str | None = None) -> None:
        errs.add(file, r.line_of(key) if key and key in r else line, msg, rule=rid)

    for k in r:
        if k not in RULE_KEYS:
            bad(f"unknown key {k!r} (allowed: {', '.join(sorted(RULE_KEYS))})", k)
    color = str(r.get("color"))
    if color not in palette:
        bad(f"unknown colour {color!r} (palette: {', '.join(palette)})", "color")
    try:
        title = text_pair(r.get("title"), file, r.line_of("title") if "title" in r else line, "title")
    except RulesetError as exc:
        bad(exc.problems[0].message, "title")
        title = {}
    scope = Scope(None, types, palette)

    def cond(key: str) -> Node | None:
        if key not in r:
            return None
        try:
            node, typ = resolve(parse_expr(str(r[key])), scope)
        except ParseError as exc:
            errs.add(file, r.line_of(key) + exc.line_offset, f"{key}: syntax error: {exc.msg}", rule=rid)
            return None
        except CheckError as exc:
            bad(f"{key}: {exc}", key)
            return None
        if typ != Type.BOOL:
            bad(f"{key} must be a condition (bool), not {typ}", key)
        return node

    when, release = cond("when"), cond("release")
    trigger = r.get("trigger")
    if trigger is not None and types.get(str(trigger)) != Type.TIMESTAMP:
        bad(f"trigger must name a timestamp fact (latest/earliest), not {trigger!r}", "trigger")
    window = None
    if "window" in r:
        try:
            window = parse_duration(str(r["window"]))
        except ParseError as exc:
            bad(f"window: {exc.msg}", "window")
        if trigger is None:
            bad("a window needs a trigger", "window")
    if trigger is None and "when" not in r:
        bad("a rule needs a trigger or a when")
    if len(errs.items) > n0:
        return None
    parts: list[Node] = []
    if trigger:
        parts.append(IsNull(FactRef(str(trigger)), negated=True))
    if when is not None:
        parts.append(when)
    released = Not(IsTrue(release)) if release is not None else None
    if window is not None:
        inside = Within(FactRef(str(trigger)), window)
        parts.append(Or((inside, released)) if released is not None else inside)
    elif released is not None:
        parts.append(released)
    condition = parts[0] if len(parts) == 1 else And(tuple(parts))
    ev_nodes = [FactRef(str(trigger))] if trigger else []
    if when is not None:
        ev_nodes += [n for n in walk(when) if isinstance(n, FactRef)]
    evidence = tuple(dict.fromkeys(n.name for n in ev_nodes))
    return Rule(rid, color, title, str(r.get("basis", "")), str(trigger) if trigger else None, window,
                release, when, condition, evidence, file, line)


def text_pair(v: Any, file: str, line: int, what: str) -> dict[str, str]:
    if isinstance(v, Mapping) and v.get("zh") and v.get("en") and set(v) == {"zh", "en"}:
        return {"zh": str(v["zh"]), "en": str(v["en"])}
    raise fail(file, line, f"{what} needs exactly a zh and an en text (quote texts holding commas)")
