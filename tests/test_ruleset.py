"""Loading rulesets: extends, static checks with file/line/rule, hashing, reads, finding versions."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.errors import RulesetError
from hcode.paths import rulesets_dir
from hcode.rules.load import find_ruleset, load_ruleset, shipped

HEAD = """\
province: testland
version: {version}
effective_from: {date}
title: {{zh: 测试, en: Test}}
basis: test notice
"""
PARENT_BODY = """\
palette: [green, yellow, red]
facts:
  contact_at: latest contacts.identified_at where contact_level = 'close'
  case_at: latest cases.reported_at
  entry_at: latest entries.entered_at
rules:
  - {id: T-1, color: red, title: {zh: 一, en: one}, trigger: contact_at, window: 14 days}
  - {id: T-2, color: red, title: {zh: 二, en: two}, trigger: case_at}
  - {id: T-3, color: yellow, title: {zh: 三, en: three}, trigger: entry_at}
"""


class _Parent:
    @staticmethod
    def format(version: str, date: str) -> str:
        return HEAD.format(version=version, date=date) + PARENT_BODY


PARENT = _Parent()


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / "testland" / f"{name}.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


@pytest.fixture
def parent(tmp_path):
    return write(tmp_path, "2022.01.01", PARENT.format(version="2022.01.01", date="2022-01-01"))


def test_shipped_rulesets_load_with_the_rules_of_rules_md():
    assert [(s.province, s.version) for s in shipped()] == [
        ("henan", "2022.06.01"), ("shanghai", "2022.05.23"), ("shanghai", "2022.06.28"), ("zhejiang", "2022.03.01")]
    ha = find_ruleset("henan@2022.06.01")
    assert [r.id for r in ha.rules] == ["HA-R-01", "HA-R-02", "HA-R-03", "HA-Y-01", "HA-Y-02", "NR-R-01", "NR-Y-01"]
    assert ha.rule("HA-Y-02").window.src() == "3 days" and ha.rule("HA-R-03").window.src() == "7 days"
    sh = find_ruleset("shanghai@2022.05.23")
    assert [r.id for r in sh.rules] == ["SH-R-01", "SH-R-02", "SH-R-03", "SH-R-04", "SH-R-05", "NR-R-01", "NR-Y-01"]
    assert sh.palette == ("green", "yellow", "red")
    new = find_ruleset("shanghai@2022.06.28")
    assert [r.id for r in new.rules] == ["SH-R-01", "SH-R-02", "SH-R-03", "SH-R-04", "SH-R-05", "NR-R-01",
                                         "NR-Y-01", "SH-Y-03", "SH-Y-04"]
    assert new.rule("SH-R-03").window.src() == "7 days" and sh.rule("SH-R-03").window.src() == "14 days"
    assert new.extends == "2022.05.23" and len(new.files) == 2
    zj = find_ruleset("zhejiang@2022.03.01")
    assert [r.id for r in zj.rules] == ["ZJ-R-01", "ZJ-R-02", "ZJ-R-03", "ZJ-R-04", "ZJ-R-05", "ZJ-Y-01",
                                        "ZJ-Y-02", "NR-R-01", "NR-Y-01"]
    for rs in (sh, new, zj):
        for r in rs.rules:
            assert r.title["zh"] and r.title["en"] and r.basis


def test_version_picking_by_as_of():
    assert find_ruleset("shanghai", as_of=dt.date(2022, 6, 14)).version == "2022.05.23"
    assert find_ruleset("shanghai", as_of=dt.date(2022, 6, 28)).version == "2022.06.28"
    assert find_ruleset("shanghai").version == "2022.06.28"
    with pytest.raises(RulesetError, match="no shanghai ruleset is in force on 2022-05-01"):
        find_ruleset("shanghai", as_of=dt.date(2022, 5, 1))
    with pytest.raises(RulesetError, match="no ruleset shanghai@2030.01.01"):
        find_ruleset("shanghai@2030.01.01")
    with pytest.raises(RulesetError, match="no ruleset for province 'atlantis'"):
        find_ruleset("atlantis")


def test_extends_replaces_in_place_removes_and_appends(tmp_path, parent):
    child = write(tmp_path, "2022.02.01", HEAD.format(version="2022.02.01", date="2022-02-01") + """\
extends: 2022.01.01
remove: [T-2]
rules:
  - {id: T-4, color: yellow, title: {zh: 四, en: four}, trigger: case_at}
  - {id: T-1, color: red, title: {zh: 一, en: one bis}, trigger: contact_at, window: 7 days}
""")
    rs = load_ruleset(child)
    assert [r.id for r in rs.rules] == ["T-1", "T-3", "T-4"]
    assert rs.rule("T-1").title["en"] == "one bis" and rs.rule("T-1").window.src() == "7 days"
    assert rs.palette == ("green", "yellow", "red")
    assert rs.rule("T-1").file == str(child.resolve()) and rs.rule("T-3").file == str(parent.resolve())
    assert "extends testland@2022.01.01" in rs.source_text


def test_a_ruleset_loaded_again_is_the_same_until_it_or_its_parent_changes(tmp_path, parent):
    """Loading is kept per process by (file, text, parent): the same files give the very
    ruleset loaded before; a change to the file or to its parent is read anew."""
    child = write(tmp_path, "2022.02.01", HEAD.format(version="2022.02.01", date="2022-02-01") + """\
extends: 2022.01.01
rules:
  - {id: T-4, color: yellow, title: {zh: 四, en: four}, trigger: case_at}
""")
    first = load_ruleset(child)
    assert load_ruleset(child) is first
    write(tmp_path, "2022.01.01", PARENT.format(version="2022.01.01", date="2022-01-01").replace("one}", "uno}"))
    changed = load_ruleset(child)
    assert changed.rule("T-1").title["en"] == "uno" and changed.content_hash != first.content_hash
    child.write_text(child.read_text(encoding="utf-8").replace("four}", "vier}"), encoding="utf-8")
    assert load_ruleset(child).rule("T-4").title["en"] == "vier"
    broken = child.read_text(encoding="utf-8").replace("trigger: case_at", "trigger: nothing_at")
    child.write_text(broken, encoding="utf-8")
    with pytest.raises(RulesetError, match="nothing_at"):
        load_ruleset(child)


def test_extends_cycle_is_an_error(tmp_path):
    write(tmp_path, "a", HEAD.format(version="a", date="2022-01-01") + "extends: b\n")
    b = write(tmp_path, "b", HEAD.format(version="b", date="2022-01-01") + "extends: a\n")
    with pytest.raises(RulesetError, match="extends makes a cycle: b.yaml -> a.yaml -> b.yaml"):
        load_ruleset(b)


def test_content_hash_depends_on_rules_not_on_layout(tmp_path, parent):
    a = load_ruleset(parent)
    other = write(tmp_path, "2022.01.02", "# a comment\n" + PARENT.format(version="2022.01.02", date="2022-01-02")
                  .replace("window: 14 days", "window: 14  days"))
    assert load_ruleset(other).content_hash == a.content_hash
    changed = write(tmp_path, "2022.01.03", PARENT.format(version="2022.01.03", date="2022-01-03")
                    .replace("window: 14 days", "window: 13 days"))
    assert load_ruleset(changed).content_hash != a.content_hash
    assert len(a.content_hash) == 64


def test_reads_lists_feeds_and_columns():
    reads = find_ruleset("zhejiang@2022.03.01").reads()
    assert reads["symptoms"] == ["reported_at", "reporter", "symptom"]
    assert reads["isolation"] == ["ended_at", "kind", "started_at"]
    assert reads["risk_areas"] == ["level", "region_code", "valid_from", "valid_to"]
    assert "overrides" in reads and "registrations" in reads
    sh = find_ruleset("shanghai@2022.05.23").reads()
    assert "symptoms" not in sh and "isolation" not in sh


BAD = HEAD.format(version="bad", date="2022-01-01") + """\
palette: [green, red]
facts:
  c_at: latest contacts.identified_at where contact_level = 'closee'
  d_at: latest contacts.identifed_at
  e: exists nat_results where f
  f: exists nat_results where e
  g: exists nat_results where result = 'positive' and
rules:
  - id: R1
    color: purple
    title: {zh: a, en: b}
    when: c_at > 3
  - id: R2
    color: red
    title: {zh: a, en: b}
    when: __import__('os')
  - id: R2
    color: red
    title: {zh: a, en: b}
    trigger: e
  - id: R3
    color: red
    title: {zh: a, en: b}
    window: 3 days
    colour: red
"""


def test_every_static_error_names_file_line_and_rule(tmp_path):
    p = write(tmp_path, "bad", BAD)
    with pytest.raises(RulesetError) as exc:
        load_ruleset(p)
    msgs = str(exc.value).splitlines()
    f = str(p.resolve())
    expected = [
        f"{f}:22: rule R2: duplicate rule id",
        f"{f}:8: fact c_at: 'closee' is not a value of contacts.contact_level",
        f"{f}:9: fact d_at: unknown column contacts.identifed_at",
        f"{f}:12: fact g: syntax error: expected a value",
        f"{f}:10: fact e: facts depend on each other in a cycle: e -> f -> e",
        f"{f}:15: rule R1: unknown colour 'purple'",
        f"{f}:17: rule R1: when: cannot compare timestamp with number",
        f"{f}:21: rule R2: when: syntax error: invalid name '__import__'",
        f"{f}:30: rule R3: unknown key 'colour'",
        f"{f}:29: rule R3: a window needs a trigger",
        f"{f}:26: rule R3: a rule needs a trigger or a when",
    ]
    for e in expected:
        assert any(m.startswith(e) for m in msgs), (e, msgs)


def test_yaml_and_header_errors(tmp_path):
    p = write(tmp_path, "x", "province: [unclosed\n")
    with pytest.raises(RulesetError, match=r"x.yaml:\d+: YAML syntax error"):
        load_ruleset(p)
    p = write(tmp_path, "y", HEAD.format(version="z", date="2022-01-01") + "palette: [green]\nrules: []\nextra: 1\n")
    with pytest.raises(RulesetError) as exc:
        load_ruleset(p)
    assert "version z differs from the file name y.yaml" in str(exc.value) or "unknown key 'extra'" in str(exc.value)
    p = write(tmp_path, "w", HEAD.format(version="w", date="2022-01-01").replace("title: {zh: 测试, en: Test}",
                                                                                  "title: {en: Test}")
              + "palette: [green]\nrules: []\n")
    with pytest.raises(RulesetError, match="w.yaml:4: title needs exactly a zh and an en text"):
        load_ruleset(p)


def test_example_errors_are_reported(tmp_path):
    p = write(tmp_path, "2022.01.01", PARENT.format(version="2022.01.01", date="2022-01-01") + """\
examples:
  - name: typo
    as_of: 2022-06-14
    events:
      contacts: [{identified_at: 2022-06-01, contact_levl: close}]
      registrations: [{registered_at: 2022-01-01, district_code: Pudong}, {registered_at: 2022-01-02,
                       district_code: 010101}]
    expect: {color: blue, rules: [T-9]}
""")
    with pytest.raises(RulesetError) as exc:
        load_ruleset(p)
    text = str(exc.value)
    assert "example 'typo': contacts has no column 'contact_levl'" in text
    assert "example 'typo': expected colour 'blue' is not in the palette" in text
    assert "example 'typo': unknown rule 'T-9'" in text
    assert "registrations.district_code 'Pudong': not a 6-digit code" in text
    assert "registrations.district_code: 4161 is a number to YAML, not a 6-digit code: write it in quotes" in text


runner = CliRunner()


@pytest.mark.parametrize("spec", ["shanghai@2022.05.23", "shanghai@2022.06.28", "zhejiang@2022.03.01"])
def test_rules_check_runs_every_embedded_example(spec):
    res = runner.invoke(app, ["rules", "check", spec, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ok"] and data["examples"]["failed"] == 0 and data["examples"]["passed"] >= 12
    assert data["reads"]["nat_results"] == ["pooled", "result", "sampled_at"]


def test_every_shipped_rule_has_an_example_that_matches_it():
    for s in shipped():
        rs = load_ruleset(s.path)
        own = {r.id for r in rs.rules if r.file == rs.files[0]}
        covered = {rid for ex in rs.examples for rid in (ex.rules or ())}
        assert own <= covered, (rs.name, own - covered)


def test_rules_check_fails_on_a_wrong_example(tmp_path):
    p = write(tmp_path, "2022.01.01", PARENT.format(version="2022.01.01", date="2022-01-01") + """\
examples:
  - name: wrong on purpose
    as_of: 2022-06-14
    events:
      contacts: [{identified_at: 2022-06-10, contact_level: close}]
    expect: {color: green, rules: []}
""")
    res = runner.invoke(app, ["rules", "check", str(p)])
    assert res.exit_code == 1
    assert "FAIL" in res.stdout and "wrong on purpose" in res.stdout and "colour is red, expected green" in res.stdout


def test_rules_check_reports_load_errors_with_exit_1(tmp_path):
    p = write(tmp_path, "bad", BAD)
    res = runner.invoke(app, ["rules", "check", str(p)])
    assert res.exit_code == 1
    assert "rule R1: unknown colour 'purple'" in res.output


def test_rules_list_json():
    res = runner.invoke(app, ["rules", "list", "--json"])
    assert res.exit_code == 0
    items = json.loads(res.stdout)["rulesets"]
    by = {i["ruleset"]: i for i in items}
    assert by["shanghai@2022.06.28"]["rules"] == 9 and by["shanghai@2022.06.28"]["extends"] == "2022.05.23"
    assert by["zhejiang@2022.03.01"]["effective_from"] == "2022-03-01"


@pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False), reason="PyYAML built without libyaml")
@pytest.mark.parametrize("path", sorted(rulesets_dir().glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_libyaml_and_python_parsers_build_the_same_located_document(path):
    from yaml.constructor import SafeConstructor

    from hcode.rules.yaml_lines import _build

    text = path.read_text(encoding="utf-8")
    fast, slow = (_build(yaml.compose(text, Loader=loader), SafeConstructor())
                  for loader in (yaml.CSafeLoader, yaml.SafeLoader))

    def same(a, b):
        assert type(a) is type(b) and a == b
        assert getattr(a, "_lines", None) == getattr(b, "_lines", None)  # the line numbers errors cite
        assert getattr(a, "_raw", None) == getattr(b, "_raw", None)
        for x, y in (zip(a.values(), b.values(), strict=True) if isinstance(a, dict) else
                     zip(a, b, strict=True) if isinstance(a, list) else ()):
            same(x, y)

    same(fast, slow)
