"""`hcode rules diff`: what a ruleset version changed, from the resolved rulesets."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hcode.cli.app import app
from hcode.paths import rulesets_dir
from hcode.rules.diff import rules_diff, rules_diff_dict
from hcode.rules.load import find_ruleset

runner = CliRunner()


def test_shanghai_0628_changes_exactly_the_7_plus_3_rules():
    rd = rules_diff(find_ruleset("shanghai@2022.05.23"), find_ruleset("shanghai@2022.06.28"))
    d = rules_diff_dict(rd)
    assert d["added"] == ["SH-Y-03", "SH-Y-04"]
    assert d["removed"] == [] and not d["palette"]["changed"]
    assert d["changed"] == ["SH-R-03", "SH-R-04"]
    sh_r_03 = next(r for r in d["rules"] if r["id"] == "SH-R-03")
    assert {"window", "release", "condition"} <= set(sh_r_03["changed"]) and "color" not in sh_r_03["changed"]
    assert (sh_r_03["before"]["window"], sh_r_03["after"]["window"]) == ("14 days", "7 days")
    assert "exit_test_6d_after_contact" in d["facts"]


def test_same_ruleset_has_no_changes():
    rs = find_ruleset("zhejiang@2022.03.01")
    d = rules_diff_dict(rules_diff(rs, rs))
    assert d["added"] == d["removed"] == d["changed"] == [] and d["facts"] == {}


def test_redefined_fact_marks_the_rule_changed_and_palette_change(tmp_path):
    src = (rulesets_dir() / "shanghai" / "2022.05.23.yaml").read_text(encoding="utf-8")
    assert "+ 12 days" in src
    changed = src.replace("+ 12 days", "+ 10 days", 1).replace("version: 2022.05.23", "version: 2022.05.24")
    path = Path(tmp_path / "shanghai" / "2022.05.24.yaml")
    path.parent.mkdir()
    path.write_text(changed, encoding="utf-8")
    rd = rules_diff(find_ruleset("shanghai@2022.05.23"), find_ruleset(path))
    changed_rules = rd.of_kind("changed")
    assert changed_rules and all(any(c.startswith("fact ") for c in r.changed) for r in changed_rules)
    assert all(b and a and b != a for b, a in rd.facts.values())


def test_cli_rules_diff_json_and_text():
    res = runner.invoke(app, ["rules", "diff", "shanghai@2022.05.23", "shanghai@2022.06.28", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["added"] == ["SH-Y-03", "SH-Y-04"]
    res = runner.invoke(app, ["rules", "diff", "shanghai@2022.05.23", "zhejiang@2022.03.01"])
    assert res.exit_code == 0 and "ZJ-R-01" in res.stdout and "removed" in res.stdout
    res = runner.invoke(app, ["rules", "diff", "shanghai@2022.05.23", "nowhere@1"])
    assert res.exit_code == 1
