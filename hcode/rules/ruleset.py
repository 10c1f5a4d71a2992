"""Rulesets: load a province's YAML rule file, resolve `extends`, check it, hash it, find it.

A ruleset is data a province's staff can read and write (docs/rulesets.md): a palette,
named *facts* (per-person aggregations of one feed, in the rule language of
`hcode.rules.lang`), *rules* (a colour, titles, a legal basis and a condition built from
`trigger` / `window` / `release` / `when`), and embedded *examples*. Everything is checked
when the file loads — unknown feeds, columns, facts and colours, type errors, cycles,
duplicate ids — and every error names the file, the line and the rule, so that a rule
author never discovers a mistake on the night of a run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hcode import paths
from hcode.errors import RulesetError, RulesetProblem
from hcode.feeds import FEEDS, Kind
from hcode.rules.check import AGG_TYPES, CheckError, Scope, resolve, resolve_fact
from hcode.rules.example_rows import Example, check_example
from hcode.rules.lang import (
    Aggregate,
    And,
    Duration,
    FactRef,
    IsNull,
    IsTrue,
    Node,
    Not,
    Or,
    ParseError,
    Within,
    parse_duration,
    parse_expr,
    parse_fact,
    walk,
)
from hcode.rules.yaml_lines import Located, load_located

TOP_KEYS = {"province", "version", "effective_from", "title", "basis", "palette", "extends", "remove",
            "facts", "rules", "examples", "notes"}
RULE_KEYS = {"id", "color", "title", "basis", "trigger", "window", "release", "when", "notes"}
ENGINE_READS = {  # read by the engine itself, whatever the rules say
    "registrations": ("district_code", "registered_at"),
    "overrides": ("authority", "basis", "color", "expires_at", "issued_at", "operator", "reason"),
}


@dataclass(frozen=True)
class Fact:
    name: str
    expr: Aggregate  # resolved
    type: str  # timestamp | number | bool
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
                if type(node).__name__ == "Column":
                    cols.add(node.name)
                if type(node).__name__ == "RiskArea":
                    out.setdefault("risk_areas", set()).update({"region_code", "level", "valid_from", "valid_to"})
            for text in fact.evidence.values():
                cols.update(c.name for c in feed.stored_columns if "{" + c.name + "}" in text)
        return {f: sorted(c) for f, c in sorted(out.items())}

    def canonical(self) -> dict:
        """The resolved logic, as plain data: what `content_hash` hashes."""
        return {
            "palette": list(self.palette),
            "facts": {n: {"expr": f.expr.src(), "evidence": dict(sorted(f.evidence.items()))}
                      for n, f in sorted(self.facts.items())},
            "rules": [{"id": r.id, "color": r.color, "title": dict(sorted(r.title.items())), "basis": r.basis,
                       "condition": r.condition.src(), "evidence": list(r.evidence_facts)} for r in self.rules],
        }


# ---------------------------------------------------------------- loading


def _fail(file: str, line: int | None, msg: str) -> RulesetError:
    return RulesetError(problems=(RulesetProblem(msg, file, line),))


class _Errors:
    def __init__(self) -> None:
        self.items: list[RulesetProblem] = []

    def add(self, file: str, line: int, msg: str, rule: str | None = None, fact: str | None = None) -> None:
        self.items.append(RulesetProblem(msg, file, line, rule, fact))

    def raise_if_any(self) -> None:
        if self.items:
            raise RulesetError(problems=tuple(self.items))


def load_ruleset(path: str | Path) -> Ruleset:
    """Load, resolve `extends`, and check one ruleset file. Raises `RulesetError` listing every
    problem as ``file:line: rule ID: message``."""
    return _load(Path(path), ())


def _load(path: Path, stack: tuple[Path, ...]) -> Ruleset:
    path = path.resolve()
    if path in stack:
        chain = " -> ".join(p.name for p in (*stack, path))
        raise _fail(str(stack[-1]), 1, f"extends makes a cycle: {chain}")
    if not path.is_file():
        raise _fail(str(path), None, "no such ruleset file")
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        doc = load_located(text)
    except UnicodeDecodeError as exc:
        raise _fail(file, None, f"not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        line, _, msg = str(exc).partition(": ")
        raise _fail(file, int(line) if line.isdigit() else None, msg) from None
    errs = _Errors()
    if not isinstance(doc, Located.Map):
        raise _fail(file, 1, "a ruleset is a YAML mapping")
    for k in doc:
        if k not in TOP_KEYS:
            errs.add(file, doc.line_of(k), f"unknown key {k!r} (allowed: {', '.join(sorted(TOP_KEYS))})")
    for k in ("province", "version", "effective_from", "title", "basis", "rules"):
        if k not in doc and not (k in ("rules",) and "extends" in doc):
            errs.add(file, doc.line, f"missing key {k!r}")
    structural = len(errs.items)  # problems that stop the checking here (reported with the header's)
    header = _check_header(doc, path, errs)
    parent = None
    if "extends" in doc:
        parent_path = path.parent / f"{doc.raw('extends')}.yaml"
        if not parent_path.is_file():
            errs.add(file, doc.line_of("extends"),
                     f"extends {doc.raw('extends')}: no file {parent_path.name} beside this one")
        else:
            try:
                parent = _load(parent_path, (*stack, path))
            except RulesetError as exc:  # the parent's own problems, reported with this file's
                errs.items.extend(exc.problems)
                structural += 1
    if structural or ("extends" in doc and parent is None):
        errs.raise_if_any()
    if parent is not None and parent.province != str(doc["province"]):
        errs.add(file, doc.line_of("extends"), f"extends a ruleset of another province ({parent.province})")
    palette = _palette(doc, parent, file, errs)
    raw_facts = dict(parent_raw_facts(parent))
    for name, val in (doc.get("facts") or {}).items():
        raw_facts[name] = (val, file, doc["facts"].line_of(name))
    raw_rules = _merge_rules(doc, parent, file, errs)
    facts, types = _check_facts(raw_facts, palette, errs)
    rules = tuple(_check_rule(r, f, ln, types, palette, errs) for r, f, ln in raw_rules)
    rule_ids = [str(r.get("id")) for r, _, _ in raw_rules]
    examples = tuple(check_example(e, file, doc["examples"].line_at(i), palette, rule_ids, errs)
                     for i, e in enumerate(doc.get("examples") or []))
    errs.raise_if_any()

    effective_from, title = header
    rs = Ruleset(
        province=str(doc["province"]), version=doc.raw("version"), effective_from=effective_from,
        title=title, basis=str(doc["basis"]),
        palette=palette, facts=facts, rules=rules, examples=examples,
        extends=doc.raw("extends") if "extends" in doc else None,
        files=(file, *(parent.files if parent else ())),
        source_text=text + ("" if parent is None else f"\n# --- extends {parent.name}\n" + parent.source_text),
    )
    digest = hashlib.sha256(json.dumps(rs.canonical(), sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    object.__setattr__(rs, "content_hash", digest)
    object.__setattr__(rs, "_raw_facts", raw_facts)
    object.__setattr__(rs, "_raw_rules", raw_rules)
    return rs


def parent_raw_facts(parent: Ruleset | None):
    return getattr(parent, "_raw_facts", {}).items() if parent else ()


def _check_header(doc: Located.Map, path: Path, errs: _Errors) -> tuple[dt.date, dict[str, str]]:
    """The version (it must be the file's name), the effective date and the title, checked
    with the other errors of the file (not after them)."""
    file = str(path)
    if "version" in doc and path.stem != doc.raw("version"):
        errs.add(file, doc.line_of("version"), f"version {doc.raw('version')} differs from the file name {path.name}")
    effective_from, title = dt.date.min, {}
    for key in ("effective_from", "title"):
        if key not in doc:
            continue
        try:
            if key == "effective_from":
                effective_from = _date(doc[key], file, doc.line_of(key))
            else:
                title = _text(doc[key], file, doc.line_of(key), key)
        except RulesetError as exc:
            errs.items.extend(exc.problems)
    return effective_from, title


def _palette(doc, parent, file, errs) -> tuple[str, ...]:
    if "palette" not in doc:
        if parent is None:
            errs.add(file, doc.line, "missing key 'palette'")
            return ()
        return parent.palette
    pal = doc["palette"]
    if not isinstance(pal, list) or not pal or not all(isinstance(c, str) and c.islower() for c in pal):
        errs.add(file, doc.line_of("palette"), "palette is a list of lower-case colour names, least severe first")
        return ()
    if len(set(pal)) != len(pal):
        errs.add(file, doc.line_of("palette"), "palette lists a colour twice")
    return tuple(pal)


def _merge_rules(doc, parent, file, errs) -> list[tuple[Located.Map, str, int]]:
    """Parent rules in order; `remove` drops some; a child rule with a parent's id takes its
    place; new rules come after."""
    rules = list(getattr(parent, "_raw_rules", [])) if parent else []
    for rid in doc.get("remove") or []:
        idx = [i for i, (r, _, _) in enumerate(rules) if r.get("id") == rid]
        if not idx:
            errs.add(file, doc.line_of("remove"), f"remove: no parent rule {rid!r}")
        rules = [r for r in rules if r[0].get("id") != rid]
    seen: set[str] = set()
    items = doc.get("rules") or []
    if not isinstance(items, list):
        errs.add(file, doc.line_of("rules"), "rules is a list")
        return rules
    for i, r in enumerate(items):
        line = items.line_at(i)
        if not isinstance(r, Located.Map) or "id" not in r:
            errs.add(file, line, "a rule is a mapping with an id")
            continue
        rid = str(r["id"])
        if rid in seen:
            errs.add(file, line, "duplicate rule id (each id appears once per file)", rule=rid)
            continue
        seen.add(rid)
        pos = [j for j, (p, _, _) in enumerate(rules) if p.get("id") == rid]
        if pos:
            rules[pos[0]] = (r, file, line)
        else:
            rules.append((r, file, line))
    return rules


def _fact_source(val):
    if isinstance(val, Located.Map):
        return val.get("value"), val.get("evidence")
    return val, None


def _check_facts(raw: dict, palette, errs: _Errors) -> tuple[dict[str, Fact], dict[str, str]]:
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


def _check_rule(r, file: str, line: int, types: Mapping[str, str], palette, errs: _Errors) -> Rule | None:
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
        title = _text(r.get("title"), file, r.line_of("title") if "title" in r else line, "title")
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
        if typ != "bool":
            bad(f"{key} must be a condition (bool), not {typ}", key)
        return node

    when, release = cond("when"), cond("release")
    trigger = r.get("trigger")
    if trigger is not None and types.get(str(trigger)) != "timestamp":
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


def _text(v, file: str, line: int, what: str) -> dict[str, str]:
    if isinstance(v, Mapping) and v.get("zh") and v.get("en") and set(v) == {"zh", "en"}:
        return {"zh": str(v["zh"]), "en": str(v["en"])}
    raise _fail(file, line, f"{what} needs exactly a zh and an en text (quote texts holding commas)")


def _date(v, file: str, line: int) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v))
    except ValueError:
        raise _fail(file, line, f"{v!r} is not a date (YYYY-MM-DD)") from None


# ---------------------------------------------------------------- finding shipped rulesets


@dataclass(frozen=True)
class Shipped:
    province: str
    version: str
    path: Path


def shipped(root: Path | None = None) -> list[Shipped]:
    root = root or paths.rulesets_dir()
    return [Shipped(p.parent.name, p.stem, p) for p in sorted(root.glob("*/*.yaml"))]


def not_in_force(rs: Ruleset, as_of: dt.date) -> str | None:
    """The warning for evaluating `rs` as of a date before it takes effect (None when in force)."""
    if as_of >= rs.effective_from:
        return None
    return f"{rs.name} is not in force on {as_of}: it takes effect on {rs.effective_from}"


def not_in_force_all(as_of: dt.date | None, *rulesets: Ruleset) -> list[str]:
    """`not_in_force` for each ruleset used as of `as_of` (none without a date)."""
    return [w for rs in rulesets if as_of is not None and (w := not_in_force(rs, as_of))]


def find_ruleset(spec: str | Path, as_of: dt.date | None = None) -> Ruleset:
    """``province@version``, a bare ``province`` (the latest version in force on `as_of`, or the
    latest version at all without it), or a path to a YAML file."""
    if isinstance(spec, Path) or str(spec).endswith((".yaml", ".yml")) or "/" in str(spec):
        return load_ruleset(Path(spec))
    spec = str(spec)
    if "@" in spec:
        province, version = spec.split("@", 1)
        path = paths.rulesets_dir() / province / f"{version}.yaml"
        if not path.is_file():
            known = ", ".join(f"{s.province}@{s.version}" for s in shipped()) or "none"
            raise RulesetError(f"no ruleset {spec} (shipped: {known})")
        return load_ruleset(path)
    versions = [load_ruleset(s.path) for s in shipped() if s.province == spec]
    if not versions:
        raise RulesetError(f"no ruleset for province {spec!r} (shipped: "
                           f"{', '.join(sorted({s.province for s in shipped()})) or 'none'})")
    versions.sort(key=lambda r: (r.effective_from, r.version))
    if as_of is not None:
        versions = [r for r in versions if r.effective_from <= as_of]
        if not versions:
            raise RulesetError(f"no {spec} ruleset is in force on {as_of}")
    return versions[-1]
