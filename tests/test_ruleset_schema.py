"""The JSON Schema of ruleset files (hcode/rules/ruleset.schema.json): shipped, current, and
true to `rules check` on every shipped ruleset, the docs' tutorial and a few mistakes."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from hcode.paths import rulesets_dir
from hcode.rules.schema import render, schema

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "hcode" / "rules" / "ruleset.schema.json"


class EditorLoader(yaml.SafeLoader):
    """YAML as yaml-language-server reads it for validation: dates and times stay text."""


EditorLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def errors_of(text: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(yaml.load(text, Loader=EditorLoader))]


def test_the_shipped_schema_is_generated_from_the_current_code():
    assert SHIPPED.read_text(encoding="utf-8") == render(), \
        "stale: run `python -m hcode.rules.schema > hcode/rules/ruleset.schema.json`"
    jsonschema.Draft202012Validator.check_schema(schema())


def test_the_schema_ships_with_the_package():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "rules/ruleset.schema.json" in data["tool"]["setuptools"]["package-data"]["hcode"]


@pytest.mark.parametrize("path", sorted(rulesets_dir().glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_ruleset_validates(path):
    assert errors_of(path.read_text(encoding="utf-8")) == []


def test_the_tutorial_validates():
    doc = (ROOT / "docs" / "rulesets.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", doc[doc.index("## Tutorial"):], re.S)
    assert errors_of("".join(blocks[:5])) == []


GOOD = """\
province: testland
version: 2022.01.01
effective_from: 2022-01-01
title: {zh: 测试, en: Test}
basis: test notice
palette: [green, red]
facts:
  contact_at: latest contacts.identified_at
rules:
  - {id: T-1, color: red, title: {zh: 一, en: one}, trigger: contact_at, window: 14 days}
examples:
  - name: contact
    as_of: 2022-06-14
    events:
      contacts: [{identified_at: 2022-06-10 10:00, contact_level: ' Close '}]
      inbound_codes: [{province: 32, color: Red, since: 2022-06-10}]
    expect: {color: red, rules: [T-1]}
"""


@pytest.mark.parametrize(("change", "where"), [
    (("  - {id: T-1, color: red, title", "  - {id: T-1, colour: red, title"), "rules/0"),
    (("window: 14 days", "window: 14 dayz"), "rules/0/window"),
    (("title: {zh: 一, en: one}", "title: {zh: 一, en: one, two}"), "rules/0/title"),
    (("contact_level: ' Close '", "contact_level: closee"), "examples/0/events/contacts/0/contact_level"),
    (("identified_at: 2022-06-10 10:00", "identified_at: 10 June"), "examples/0/events/contacts/0/identified_at"),
    (("      contacts:", "      contact:"), "examples/0/events"),
    (("effective_from: 2022-01-01\n", ""), ""),
    (("expect: {color: red, rules: [T-1]}", "expected: {color: red}"), "examples/0"),
])
def test_mistakes_rules_check_reports_are_flagged_in_the_editor(tmp_path, change, where):
    from hcode.errors import RulesetError
    from hcode.rules.load import load_ruleset

    path = tmp_path / "testland" / "2022.01.01.yaml"
    path.parent.mkdir()
    path.write_text(GOOD, encoding="utf-8")
    assert errors_of(GOOD) == [] and load_ruleset(path).examples  # both accept it
    errors = errors_of(GOOD.replace(*change))
    assert errors and any(e.startswith(f"{where}: ") for e in errors), errors
    path.write_text(GOOD.replace(*change), encoding="utf-8")
    with pytest.raises(RulesetError):  # and rules check, the authority, refuses it too
        load_ruleset(path)
