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
from hcode.errors import RulesetError
from hcode.feeds import FEEDS, LISTINGS, Kind
from hcode.rules.check import AGG_TYPES, CheckError, Scope, resolve, resolve_fact
from hcode.rules.lang import (
    Aggregate,
    And,
    Column,
    Companion,
    Duration,
    FactRef,
    IsNull,
    IsTrue,
    Node,
    Not,
    Or,
    ParseError,
    RiskArea,
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
                    other.update(n.name for n in walk(node.where) if isinstance(n, Column)) if node.where else None
                    out.setdefault("place_scans", set()).update({"place_code", "scanned_at"})
            for text in fact.evidence.values():
                cols.update(c.name for c in feed.stored_columns if "{" + c.name + "}" in text)
                if "{place}" in text and "place_code" in cols | {c.name for c in feed.stored_columns}:
                    cols.add("place_code")
                    out.setdefault("places", set()).update({"place_code", "name", "registered_at"})
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


class _Errors:
    def __init__(self):
        self.items: list[str] = []

    def add(self, file: str, line: int, msg: str, rule: str | None = None, fact: str | None = None) -> None:
        where = f"rule {rule}: " if rule else f"fact {fact}: " if fact else ""
        self.items.append(f"{file}:{line}: {where}{msg}")

    def raise_if_any(self) -> None:
        if self.items:
            raise RulesetError("\n".join(self.items))


def load_ruleset(path: str | Path) -> Ruleset:
    """Load, resolve `extends`, and check one ruleset file. Raises `RulesetError` listing every
    problem as ``file:line: rule ID: message``."""
    return _load(Path(path), ())


def _load(path: Path, stack: tuple[Path, ...]) -> Ruleset:
    path = path.resolve()
    if path in stack:
        chain = " -> ".join(p.name for p in (*stack, path))
        raise RulesetError(f"{stack[-1]}:1: extends makes a cycle: {chain}")
    if not path.is_file():
        raise RulesetError(f"{path}: no such ruleset file")
    text = path.read_text(encoding="utf-8")
    file = str(path)
    try:
        doc = load_located(text)
    except ValueError as exc:
        raise RulesetError(f"{file}:{exc}") from None
    errs = _Errors()
    if not isinstance(doc, Located.Map):
        raise RulesetError(f"{file}:1: a ruleset is a YAML mapping")
    for k in doc:
        if k not in TOP_KEYS:
            errs.add(file, doc.line_of(k), f"unknown key {k!r} (allowed: {', '.join(sorted(TOP_KEYS))})")
    for k in ("province", "version", "effective_from", "title", "basis", "rules"):
        if k not in doc and not (k in ("rules",) and "extends" in doc):
            errs.add(file, doc.line, f"missing key {k!r}")
    errs.raise_if_any()

    parent = None
    if "extends" in doc:
        parent = _load(path.parent / f"{doc.raw('extends')}.yaml", (*stack, path))
        if parent.province != str(doc["province"]):
            errs.add(file, doc.line_of("extends"), f"extends a ruleset of another province ({parent.province})")
    palette = _palette(doc, parent, file, errs)
    raw_facts = dict(parent_raw_facts(parent))
    for name, val in (doc.get("facts") or {}).items():
        raw_facts[name] = (val, file, doc["facts"].line_of(name))
    raw_rules = _merge_rules(doc, parent, file, errs)
    facts, types = _check_facts(raw_facts, palette, errs)
    rules = tuple(_check_rule(r, f, ln, types, palette, errs) for r, f, ln in raw_rules)
    errs.raise_if_any()
    examples = tuple(_check_example(e, file, doc["examples"].line_at(i), palette, rules, errs)
                     for i, e in enumerate(doc.get("examples") or []))
    errs.raise_if_any()

    rs = Ruleset(
        province=str(doc["province"]), version=doc.raw("version"),
        effective_from=_date(doc["effective_from"], file, doc.line_of("effective_from")),
        title=_text(doc["title"], file, doc.line_of("title"), "title"), basis=str(doc["basis"]),
        palette=palette, facts=facts, rules=rules, examples=examples,
        extends=doc.raw("extends") if "extends" in doc else None,
        files=(file, *(parent.files if parent else ())),
        source_text=text + ("" if parent is None else f"\n# --- extends {parent.name}\n" + parent.source_text),
    )
    _check_header(rs, path, doc, errs)
    errs.raise_if_any()
    digest = hashlib.sha256(json.dumps(rs.canonical(), sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    object.__setattr__(rs, "content_hash", digest)
    object.__setattr__(rs, "_raw_facts", raw_facts)
    object.__setattr__(rs, "_raw_rules", raw_rules)
    return rs


def parent_raw_facts(parent: Ruleset | None):
    return getattr(parent, "_raw_facts", {}).items() if parent else ()


def _check_header(rs: Ruleset, path: Path, doc, errs: _Errors) -> None:
    if path.stem != rs.version:
        errs.add(rs.files[0], doc.line_of("version"), f"version {rs.version} differs from the file name {path.name}")


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
        bad(str(exc).split(": ", 1)[-1], "title")
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
    raise RulesetError(f"{file}:{line}: {what} needs exactly a zh and an en text (quote texts holding commas)")


def _date(v, file: str, line: int) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v))
    except ValueError:
        raise RulesetError(f"{file}:{line}: {v!r} is not a date (YYYY-MM-DD)") from None


def to_value(v, kind: Kind):
    """An example's cell, typed as the feed stores it."""
    if v is None:
        return None
    if kind is Kind.TIMESTAMP:
        if isinstance(v, dt.datetime):
            return v
        if isinstance(v, dt.date):
            return dt.datetime(v.year, v.month, v.day)
        return dt.datetime.fromisoformat(str(v))
    if kind is Kind.BOOL:
        if isinstance(v, bool):
            return v
        raise ValueError(f"{v!r} is not true/false")
    if kind is Kind.CODE6:  # as ingest checks it (evaluation holds a district as a number)
        if not isinstance(v, str):  # unquoted, 010101 is the octal number 4161 to YAML
            raise ValueError(f"{v!r} is a number to YAML, not a 6-digit code: write it in quotes, like '310101'")
        if not (len(v) == 6 and v.isascii() and v.isdigit()):
            raise ValueError(f"{v!r} is not a 6-digit code, like '310101'")
    return str(v)


def _check_example(e, file: str, line: int, palette, rules, errs: _Errors) -> Example | None:
    if not isinstance(e, Located.Map):
        errs.add(file, line, "an example is a mapping")
        return None
    name = str(e.get("name", f"example at line {line}"))
    n0 = len(errs.items)

    def bad(msg: str, ln: int | None = None) -> None:
        errs.add(file, ln or line, f"example {name!r}: {msg}")

    as_of = None
    try:
        as_of = _date(e.get("as_of"), file, line)
    except RulesetError as exc:
        bad(str(exc).split(": ", 1)[-1])
    events = _example_events(e.get("events") or {}, e, "events", bad)
    others = []
    for i, other in enumerate(e.get("others") or []):
        if not isinstance(other, Located.Map):
            bad(f"others[{i}] is a mapping of feeds to rows", line)
            continue
        others.append(_example_events(other, e, "others", bad))
    expect = e.get("expect") or {}
    color = str(expect.get("color"))
    if color not in palette:
        bad(f"expected colour {color!r} is not in the palette")
    ids = {r.id for r in rules if r}
    exp_rules = expect.get("rules")
    for rid in [*(exp_rules or []), *([expect["rule"]] if expect.get("rule") not in (None, "override") else [])]:
        if rid not in ids:
            bad(f"unknown rule {rid!r}")
    if len(errs.items) > n0:
        return None
    return Example(name, as_of, events, color, tuple(exp_rules) if exp_rules is not None else None,
                   expect.get("rule"), file, line, tuple(others))


def _example_events(doc, e, key: str, bad) -> dict[str, tuple[dict, ...]]:
    """One person's events of an example, typed as the feeds store them."""
    events: dict[str, tuple[dict, ...]] = {}
    for feed_name, rows in doc.items():
        ln = doc.line_of(feed_name) if isinstance(doc, Located.Map) else e.line
        if feed_name not in FEEDS:
            bad(f"unknown feed {feed_name!r}", ln)
            continue
        feed = FEEDS[feed_name]
        typed = []
        for row in rows or []:
            out = {}
            for k in row:
                if k not in {c.name for c in feed.stored_columns}:
                    bad(f"{feed_name} has no column {k!r}", ln)
            for c in feed.stored_columns:
                if c.name not in row:
                    if c.kind is Kind.BOOL:
                        out[c.name] = False
                    elif c.nullable:
                        out[c.name] = None
                    else:
                        bad(f"{feed_name} row lacks {c.name!r}", ln)
                    continue
                try:
                    out[c.name] = to_value(row[c.name], c.kind)
                except ValueError as exc:
                    bad(f"{feed_name}.{c.name}: {exc}", ln)
            typed.append(out)
        events[feed_name] = tuple(typed)
    return events


# ---------------------------------------------------------------- finding shipped rulesets


@dataclass(frozen=True)
class Shipped:
    province: str
    version: str
    path: Path


def shipped(root: Path | None = None) -> list[Shipped]:
    root = root or paths.rulesets_dir()
    return [Shipped(p.parent.name, p.stem, p) for p in sorted(root.glob("*/*.yaml"))]


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
