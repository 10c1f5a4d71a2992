"""Load a province's YAML rule file, resolve `extends`, check it, hash it; find shipped rulesets.

Everything is checked when the file loads — unknown feeds, columns, facts and colours, type
errors, cycles, duplicate ids — and every error names the file, the line and the rule, so
that a rule author never discovers a mistake on the night of a run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcode import paths
from hcode.errors import RulesetError
from hcode.feeds import FEEDS
from hcode.rules.check import AGG_TYPES, CheckError, Scope, Type, resolve, resolve_fact
from hcode.rules.examples import check_example, to_date
from hcode.rules.lang import (
    Aggregate,
    And,
    FactRef,
    IsNull,
    IsTrue,
    Node,
    Not,
    Or,
    Within,
    walk,
)
from hcode.rules.parse import ParseError, parse_duration, parse_expr, parse_fact
from hcode.rules.ruleset import PLACE_TOKEN, Fact, Rule, Ruleset
from hcode.rules.yaml_lines import Located, load_located

TOP_KEYS = {"province", "version", "effective_from", "title", "basis", "palette", "extends", "remove",
            "facts", "rules", "examples", "notes"}
RULE_KEYS = {"id", "color", "title", "basis", "trigger", "window", "release", "when", "notes"}


# ---------------------------------------------------------------- loading


class LoadErrors:
    """Every problem found while loading, as ``file:line: rule ID: message`` lines."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, file: str, line: int, msg: str, rule: str | None = None, fact: str | None = None) -> None:
        where = f"rule {rule}: " if rule else f"fact {fact}: " if fact else ""
        self.items.append(f"{file}:{line}: {where}{msg}")

    def raise_if_any(self) -> None:
        if self.items:
            raise RulesetError("\n".join(self.items))


def load_ruleset(path: str | Path) -> Ruleset:
    """Load, resolve `extends`, and check one ruleset file. Raises `RulesetError` listing every
    problem as ``file:line: rule ID: message``; a failure no check foresaw is still a
    `RulesetError` naming the file (line 1), never a traceback."""
    try:
        return _load(Path(path), ())
    except RulesetError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError, UnicodeDecodeError,
            OSError) as exc:
        raise RulesetError(f"{Path(path)}:1: cannot load this ruleset: {type(exc).__name__}: {exc}") from None


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
    errs = LoadErrors()
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
        name = doc.raw("extends")
        if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z._-]*", name) or ".." in name:
            raise RulesetError(f"{file}:{doc.line_of('extends')}: extends {name!r}: name a version in the same "
                               "folder (such as 2022.05.23), not a path")
        parent = _load(path.parent / f"{name}.yaml", (*stack, path))
        if parent.province != str(doc["province"]):
            errs.add(file, doc.line_of("extends"), f"extends a ruleset of another province ({parent.province})")
    palette = _palette(doc, parent, file, errs)
    raw_facts = dict(parent_raw_facts(parent))
    for name, val in (doc.get("facts") or {}).items():
        raw_facts[name] = (val, file, doc["facts"].line_of(name))
    raw_rules = _merge_rules(doc, parent, file, errs)
    facts, types = _check_facts(raw_facts, palette, errs)
    checked = [_check_rule(r, f, ln, types, palette, errs) for r, f, ln in raw_rules]
    errs.raise_if_any()
    rules = tuple(r for r in checked if r is not None)  # None only with an error, raised above
    checked_examples = [check_example(e, file, doc["examples"].line_at(i), palette, rules, errs)
                        for i, e in enumerate(doc.get("examples") or [])]
    errs.raise_if_any()
    examples = tuple(e for e in checked_examples if e is not None)

    rs = Ruleset(
        province=str(doc["province"]), version=doc.raw("version"),
        effective_from=to_date(doc["effective_from"], file, doc.line_of("effective_from")),
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


RawFacts = dict[str, tuple[Any, str, int]]  # name -> (YAML value, file, line)
RawRule = tuple[Located.Map, str, int]  # (YAML mapping, file, line)


def parent_raw_facts(parent: Ruleset | None) -> Iterable[tuple[str, tuple[Any, str, int]]]:
    return getattr(parent, "_raw_facts", {}).items() if parent else ()


def _check_header(rs: Ruleset, path: Path, doc: Located.Map, errs: LoadErrors) -> None:
    if path.stem != rs.version:
        errs.add(rs.files[0], doc.line_of("version"), f"version {rs.version} differs from the file name {path.name}")


def _palette(doc: Located.Map, parent: Ruleset | None, file: str, errs: LoadErrors) -> tuple[str, ...]:
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


def _merge_rules(doc: Located.Map, parent: Ruleset | None, file: str, errs: LoadErrors) -> list[RawRule]:
    """Parent rules in order; `remove` drops some; a child rule with a parent's id takes its
    place; new rules come after."""
    rules: list[RawRule] = list(getattr(parent, "_raw_rules", [])) if parent else []
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
        line = items.line_at(i) if isinstance(items, Located.List) else doc.line
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


def _check_facts(raw: RawFacts, palette: tuple[str, ...], errs: LoadErrors) -> tuple[dict[str, Fact], dict[str, Type]]:
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


def _check_rule(r: Located.Map, file: str, line: int, types: Mapping[str, Type], palette: tuple[str, ...],
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


def _text(v: Any, file: str, line: int, what: str) -> dict[str, str]:
    if isinstance(v, Mapping) and v.get("zh") and v.get("en") and set(v) == {"zh", "en"}:
        return {"zh": str(v["zh"]), "en": str(v["en"])}
    raise RulesetError(f"{file}:{line}: {what} needs exactly a zh and an en text (quote texts holding commas)")


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
