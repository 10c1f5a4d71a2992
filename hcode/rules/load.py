"""Load a province's YAML rule file, resolve `extends`, check it, hash it; find shipped rulesets.

Everything is checked when the file loads — unknown feeds, columns, facts and colours, type
errors, cycles, duplicate ids, the version, date and title, the examples' rows — and every
problem names the file, the line and the rule (a `RulesetProblem` of the `RulesetError`),
all of a file's problems together, so that a rule author never discovers a mistake on the
night of a run. (The facts and rules are checked by `hcode.rules.definitions`, the examples
by `hcode.rules.examples`.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcode import paths
from hcode.errors import RulesetError
from hcode.rules.definitions import (
    LoadErrors,
    RawFacts,
    RawRule,
    check_facts,
    check_rule,
    fail,
    text_pair,
)
from hcode.rules.examples import check_examples, to_date
from hcode.rules.ruleset import Ruleset
from hcode.rules.yaml_lines import Located, load_located

TOP_KEYS = {"province", "version", "effective_from", "title", "basis", "palette", "extends", "remove",
            "facts", "rules", "examples", "notes"}
EXTENDS_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]*")


# ---------------------------------------------------------------- loading


def load_ruleset(path: str | Path) -> Ruleset:
    """Load, resolve `extends`, and check one ruleset file. Raises `RulesetError` listing every
    problem (``file:line: rule ID: message``; as data in its `problems`); a failure no check
    foresaw is still a `RulesetError` naming the file (line 1), never a traceback."""
    try:
        return _load(Path(path), ())
    except RulesetError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError, UnicodeDecodeError,
            OSError) as exc:
        raise fail(str(Path(path)), 1, f"cannot load this ruleset: {type(exc).__name__}: {exc}") from None


def _read(path: Path) -> tuple[str, Located.Map]:
    """The file's text and its YAML mapping (a problem here stops the loading)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        doc = load_located(text)
    except UnicodeDecodeError as exc:
        raise fail(file, None, f"not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        line, _, msg = str(exc).partition(": ")
        raise fail(file, int(line) if line.isdigit() else None, msg) from None
    if not isinstance(doc, Located.Map):
        raise fail(file, 1, "a ruleset is a YAML mapping")
    return text, doc


def _parent(doc: Located.Map, path: Path, stack: tuple[Path, ...], errs: LoadErrors) -> Ruleset | None:
    """The ruleset `doc` extends (a version in the same folder), its problems added to `errs`."""
    file, name, line = str(path), doc.raw("extends"), doc.line_of("extends")
    if not EXTENDS_NAME.fullmatch(name) or ".." in name:
        errs.add(file, line, f"extends {name!r}: name a version in the same folder (such as 2022.05.23), not a path")
        return None
    parent_path = path.parent / f"{name}.yaml"
    if not parent_path.is_file():
        errs.add(file, line, f"extends {name}: no file {parent_path.name} beside this one")
        return None
    try:
        return _load(parent_path, (*stack, path))
    except RulesetError as exc:  # the parent's own problems, reported with this file's
        errs.items.extend(exc.problems)
        return None


def _load(path: Path, stack: tuple[Path, ...]) -> Ruleset:
    path = path.resolve()
    if path in stack:
        chain = " -> ".join(p.name for p in (*stack, path))
        raise fail(str(stack[-1]), 1, f"extends makes a cycle: {chain}")
    if not path.is_file():
        raise fail(str(path), None, "no such ruleset file")
    file = str(path)
    text, doc = _read(path)
    errs = LoadErrors()
    for k in doc:
        if k not in TOP_KEYS:
            errs.add(file, doc.line_of(k), f"unknown key {k!r} (allowed: {', '.join(sorted(TOP_KEYS))})")
    for k in ("province", "version", "effective_from", "title", "basis", "rules"):
        if k not in doc and not (k in ("rules",) and "extends" in doc):
            errs.add(file, doc.line, f"missing key {k!r}")
    structural = len(errs.items)  # problems that stop the checking here (reported with the header's)
    effective_from, title = _check_header(doc, path, errs)
    parent = _parent(doc, path, stack, errs) if "extends" in doc else None
    if structural or ("extends" in doc and parent is None):
        errs.raise_if_any()
    key = (file, text, parent.content_hash if parent is not None else None)
    if key in _LOADED and not errs.items:
        return _LOADED[key]
    if parent is not None and parent.province != str(doc["province"]):
        errs.add(file, doc.line_of("extends"), f"extends a ruleset of another province ({parent.province})")
    palette = _palette(doc, parent, file, errs)
    raw_facts = dict(parent_raw_facts(parent))
    for name, val in (doc.get("facts") or {}).items():
        raw_facts[name] = (val, file, doc["facts"].line_of(name))
    raw_rules = _merge_rules(doc, parent, file, errs)
    facts, types = check_facts(raw_facts, palette, errs)
    checked = [check_rule(r, f, ln, types, palette, errs) for r, f, ln in raw_rules]
    rule_ids = [str(r.get("id")) for r, _, _ in raw_rules]
    checked_examples = check_examples(doc["examples"], file, palette, rule_ids, errs) if doc.get("examples") else []
    errs.raise_if_any()
    rules = tuple(r for r in checked if r is not None)  # None only with an error, raised above
    examples = tuple(e for e in checked_examples if e is not None)

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
    if len(_LOADED) >= _LOADED_HELD:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = rs
    return rs


# Rulesets loaded in this process, by (file, its text, the parent's content hash): a ruleset is
# a function of these, and immutable. `find_ruleset(province)` loads every version of the
# province, each later one loading its parent again, and the nightly batch and its report
# load the one they use again: 0.1-0.2 s each time.
_LOADED: dict[tuple[str, str, str | None], Ruleset] = {}
_LOADED_HELD = 32


def parent_raw_facts(parent: Ruleset | None) -> Iterable[tuple[str, tuple[Any, str, int]]]:
    raw: RawFacts = getattr(parent, "_raw_facts", {}) if parent else {}
    return raw.items()


def _check_header(doc: Located.Map, path: Path, errs: LoadErrors) -> tuple[dt.date, dict[str, str]]:
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
                effective_from = to_date(doc[key], file, doc.line_of(key))
            else:
                title = text_pair(doc[key], file, doc.line_of(key), key)
        except RulesetError as exc:
            errs.items.extend(exc.problems)
    return effective_from, title


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
