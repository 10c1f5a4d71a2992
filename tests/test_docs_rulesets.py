"""Every YAML block of docs/rulesets.md runs: the comment before a block says what it is.

* ``<!-- test: ruleset PROVINCE/VERSION -->`` — part of that ruleset file: the blocks of one
  file are joined in order; every file must load (with `extends` among them) and pass its
  examples through the engine;
* ``<!-- test: examples of PROVINCE@VERSION -->`` — examples of a shipped ruleset: they are
  run against it (as the examples of a child ruleset that extends it);
* ``<!-- test: facts -->`` — fact definitions: they must load in a ruleset of their own.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from hcode.engine.examples import run_examples
from hcode.paths import rulesets_dir
from hcode.rules.load import load_ruleset

DOC = Path(__file__).resolve().parent.parent / "docs" / "rulesets.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCK = re.compile(r"(?:<!-- test: (?P<tag>[^>]*?) -->\n)?```yaml\n(?P<body>.*?)```", re.S)
BLOCKS = [(m["tag"], m["body"]) for m in BLOCK.finditer(TEXT)]
HEAD = """\
province: {province}
version: {version}
effective_from: 2099-01-01
title: {{zh: 文档, en: docs}}
basis: docs/rulesets.md
"""


def _tagged(kind: str) -> list[tuple[str, str]]:
    return [(tag.removeprefix(kind).strip().removeprefix("of "), body) for tag, body in BLOCKS
            if tag and tag.split(" ", 1)[0] == kind]


def _passes(path: Path) -> int:
    rs = load_ruleset(path)
    outcomes = run_examples(rs)
    assert all(o.passed for o in outcomes), [(o.example.name, o.problems) for o in outcomes if not o.passed]
    return len(outcomes)


def test_every_yaml_block_of_the_page_is_tested():
    assert BLOCKS and TEXT.count("```yaml") == len(BLOCKS)
    untagged = [body.splitlines()[0] for tag, body in BLOCKS if tag is None]
    assert not untagged, f"a YAML block without a '<!-- test: ... -->' line: {untagged}"
    assert {tag.split(" ", 1)[0] for tag, _ in BLOCKS} == {"ruleset", "examples", "facts"}


def test_the_ruleset_files_of_the_page_load_and_pass_their_examples(tmp_path):
    files: dict[str, str] = {}
    for name, body in _tagged("ruleset"):
        files[name] = files.get(name, "") + body
    assert files
    for name, text in files.items():
        path = tmp_path / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    examples = {name: _passes(tmp_path / f"{name}.yaml") for name in files}
    assert examples["guangxi/2022.07.01"] >= 1  # the tutorial's examples ran
    rs = load_ruleset(tmp_path / "guangxi/2022.07.01.yaml")
    assert rs.palette == ("green", "yellow", "orange", "red")
    assert [r.id for r in rs.rules] == ["GX-R-01", "GX-O-01", "GX-Y-01"]
    later = load_ruleset(tmp_path / "guangxi/2022.08.01.yaml")
    assert [r.id for r in later.rules] == ["GX-R-01", "GX-O-01"] and later.rule("GX-O-01").window.src() == "5 days"


@pytest.mark.parametrize("spec, body", _tagged("examples"))
def test_the_examples_of_the_page_pass_on_the_shipped_ruleset(spec, body, tmp_path):
    province, version = spec.split("@")
    folder = tmp_path / province
    shutil.copytree(rulesets_dir() / province, folder)
    child = folder / "2099.01.01.yaml"
    child.write_text(HEAD.format(province=province, version="2099.01.01") + f"extends: {version}\n" + body,
                     encoding="utf-8")
    assert _passes(child) >= 1


@pytest.mark.parametrize("body", [b for _, b in _tagged("facts")])
def test_the_facts_of_the_page_load(body, tmp_path):
    path = tmp_path / "x" / "2099.01.01.yaml"
    path.parent.mkdir()
    path.write_text(HEAD.format(province="x", version="2099.01.01") + "palette: [green, red]\nrules: []\nfacts:\n"
                    + textwrap.indent(body, "  "), encoding="utf-8")
    rs = load_ruleset(path)
    assert rs.facts and all(f.expr.src() for f in rs.facts.values())
