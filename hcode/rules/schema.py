"""The JSON Schema of ruleset files, for editors: `hcode/rules/ruleset.schema.json`.

yaml-language-server (VS Code's YAML extension, and other editors through LSP) validates
and completes a ruleset while its author types, given the modeline
``# yaml-language-server: $schema=<path or URL of ruleset.schema.json>`` at the top of the
file (docs/rulesets.md). The schema knows the file's keys, the rules' keys, the feeds and
their columns (from `hcode.feeds`, so example rows complete column names and enumeration
values) and the shape of durations and timestamps. It does not know the rule language's
grammar, the facts' types or the palette: `hcode rules check` stays the authority, and the
schema never rejects what it accepts (YAML 1.2 as editors read it: dates are text).

The shipped file is generated: ``python -m hcode.rules.schema > hcode/rules/ruleset.schema.json``
(tests/test_ruleset_schema.py fails when it is stale).
"""

from __future__ import annotations

import json
import re
from typing import Any

from hcode.feeds import FEEDS, Column, Kind
from hcode.rules.definitions import RULE_KEYS
from hcode.rules.examples import EXAMPLE_KEYS, EXPECT_KEYS
from hcode.rules.load import TOP_KEYS
from hcode.rules.parse import UNITS

SCHEMA_ID = "https://hcode.invalid/ruleset.schema.json"  # a name, not a place: editors use the file
WS = "[ \\t]*"
NAME = "^[a-z][a-z0-9_]*$"
DATE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TIMESTAMP = f"^{WS}[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}([ T][0-9]{{2}}:[0-9]{{2}}(:[0-9]{{2}})?)?{WS}$"
DURATION = f"^{WS}[0-9]+(\\.[0-9]+)?{WS}({'|'.join(sorted(UNITS, key=len, reverse=True))}){WS}$"
COLOR = f"^{WS}[A-Za-z][A-Za-z0-9_-]*{WS}$"


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def _value(col: Column) -> dict[str, Any]:
    """What ingest accepts for one contract column, as written in YAML."""
    k = col.kind
    if k is Kind.TIMESTAMP:
        s: dict[str, Any] = {"type": "string", "pattern": TIMESTAMP,
                             "description": "YYYY-MM-DD[ HH:MM[:SS]], China Standard Time"}
    elif k is Kind.ENUM:  # the values complete; other cases and padding are normalised as ingest does
        s = {"anyOf": [{"enum": list(col.values)},
                       {"type": "string", "pattern": f"^{WS}({'|'.join(_any_case(v) for v in col.values)}){WS}$"}],
             "description": "one of " + ", ".join(col.values)}
    elif k is Kind.BOOL:
        s = {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]},
                       {"type": "string", "pattern": f"^{WS}({_any_case('true')}|{_any_case('false')}|1|0){WS}$"}]}
    elif k is Kind.CODE6:
        s = {"type": "string", "pattern": f"^{WS}[0-9]{{6}}{WS}$",
             "description": "a 6-digit code, in quotes (unquoted, 010101 is a number)"}
    elif k is Kind.CODE2:
        s = {"anyOf": [{"type": "string", "pattern": f"^{WS}[0-9]{{2}}{WS}$"},
                       {"type": "integer", "minimum": 0, "maximum": 99}]}
    elif k is Kind.COLOR:
        s = {"type": "string", "pattern": COLOR, "description": "a colour (lower-cased)"}
    elif k is Kind.ORIGIN:
        s = {"type": "string", "pattern": f"^{WS}[A-Za-z]{{2}}{WS}$", "description": "ISO 3166-1 alpha-2"}
    elif k is Kind.ID_NUMBER:
        s = {"anyOf": [{"type": "string", "pattern": f"^{WS}[0-9]{{17}}[0-9Xx]{WS}$"}, {"type": "integer"}],
             "description": "optional: the person's 18-character id number (checked, then dropped)"}
    else:
        s = {"type": "string"}
    if col.nullable:
        s = {"anyOf": [{"type": "null"}, s]}
    return s


def _row(feed: str) -> dict[str, Any]:
    f = FEEDS[feed]
    required = [c.name for c in f.stored_columns if not c.nullable and c.kind is not Kind.BOOL]
    return {"type": "object", "properties": {c.name: _value(c) for c in f.columns},
            "required": required, "additionalProperties": False}


def schema() -> dict[str, Any]:
    text = {"type": "object", "properties": {"zh": {"type": "string"}, "en": {"type": "string"}},
            "required": ["zh", "en"], "additionalProperties": False,
            "description": "{zh: ..., en: ...}; quote a text that holds a comma"}
    condition = {"type": "string", "description": "a condition in the rule language (docs/rulesets.md)"}
    fact = {"oneOf": [
        {"type": "string", "description": "latest|earliest FEED.COLUMN ... | count|exists FEED ..."},
        {"type": "object", "properties": {
            "value": {"type": "string"},
            "evidence": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {
                "en": {"type": "string"}, "zh": {"type": "string"}}}]}},
         "required": ["value"], "additionalProperties": False}]}
    rule: dict[str, Any] = {"type": "object", "properties": {
        "id": {"type": "string"}, "color": {"type": "string", "pattern": "^[a-z]"}, "title": {"$ref": "#/$defs/text"},
        "basis": {"type": "string"}, "trigger": {"type": "string", "pattern": NAME},
        "window": {"type": "string", "pattern": DURATION}, "release": condition, "when": condition,
        "notes": {"type": "string"}},
        "required": ["id", "color", "title"], "anyOf": [{"required": ["trigger"]}, {"required": ["when"]}],
        "additionalProperties": False}
    assert set(rule["properties"]) == RULE_KEYS
    events = {"type": "object", "properties": {f: {"type": "array", "items": _row(f)} for f in FEEDS},
              "additionalProperties": False}
    example: dict[str, Any] = {"type": "object", "properties": {
        "name": {"type": "string"}, "as_of": {"type": "string", "pattern": DATE}, "notes": {"type": "string"},
        "events": {"$ref": "#/$defs/events"},
        "others": {"type": "array", "items": {"$ref": "#/$defs/events"},
                   "description": "other persons' events (a case whose scans make the example person a companion)"},
        "expect": {"type": "object", "properties": {
            "color": {"type": "string"}, "rules": {"type": "array", "items": {"type": "string"}},
            "rule": {"type": "string"}}, "required": ["color"], "additionalProperties": False}},
        "required": ["as_of", "expect"], "additionalProperties": False}
    assert set(example["properties"]) == EXAMPLE_KEYS
    assert set(example["properties"]["expect"]["properties"]) == EXPECT_KEYS
    top = {
        "province": {"type": "string"}, "version": {"type": ["string", "number"]},
        "effective_from": {"type": "string", "pattern": DATE}, "title": {"$ref": "#/$defs/text"},
        "basis": {"type": "string"},
        "palette": {"type": "array", "items": {"type": "string", "pattern": "^[a-z][a-z0-9_-]*$"},
                    "minItems": 1, "uniqueItems": True},
        "extends": {"type": ["string", "number"]},
        "remove": {"type": "array", "items": {"type": "string"}},
        "facts": {"type": "object", "propertyNames": {"pattern": NAME}, "additionalProperties": fact},
        "rules": {"type": "array", "items": rule},
        "examples": {"type": "array", "items": example},
        "notes": {"type": "string"},
    }
    assert set(top) == TOP_KEYS
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "hcode ruleset",
        "description": "A province's health-code ruleset (docs/rulesets.md). `hcode rules check` is the authority.",
        "type": "object",
        "properties": top,
        "required": ["province", "version", "effective_from", "title", "basis"],
        "if": {"not": {"required": ["extends"]}},
        "then": {"required": ["palette", "rules"]},
        "additionalProperties": False,
        "$defs": {"text": text, "events": events},
    }


def render() -> str:
    return json.dumps(schema(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
