"""One vocabulary: feeds, column types, the codes schema and colours are defined once
(`hcode/feeds.py`, `hcode/colors.py`) and imported everywhere else in `hcode/`."""

from __future__ import annotations

import ast
from pathlib import Path

import polars as pl

from hcode.colors import COLOR_ZH, color_hex, color_label
from hcode.config import DEFAULT_CADENCE
from hcode.diff.changes import CODES_SCHEMA as DIFF_CODES
from hcode.engine.evaluate import CODES_SCHEMA as ENGINE_CODES
from hcode.engine.sources import dtype_of
from hcode.feeds import FEEDS, Kind
from hcode.rules.check import column_type

HCODE = Path(__file__).resolve().parent.parent / "hcode"
HOMES = {HCODE / "feeds.py", HCODE / "colors.py"}
SOURCES = sorted(p for p in HCODE.rglob("*.py") if p not in HOMES)


def _trees() -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text("utf-8"))) for p in SOURCES]


def _strings(nodes: list[ast.expr | None]) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_second_list_of_feeds() -> None:
    """No literal list, tuple or set of feed names, and no dict of plain data keyed by feed
    names, outside feeds.py (a dispatch table of functions per feed is not vocabulary)."""
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.List | ast.Tuple | ast.Set):
                names = [s for s in _strings(list(node.elts)) if s in FEEDS]
            elif isinstance(node, ast.Dict) and all(isinstance(v, ast.Constant) for v in node.values):
                names = [s for s in _strings(list(node.keys)) if s in FEEDS]
            else:
                continue
            if len(names) >= 3:
                found.append(f"{path.relative_to(HCODE)}:{node.lineno}")
    assert not found, f"feed lists outside hcode/feeds.py: {found}"


def test_no_second_table_of_colours_or_types() -> None:
    """Colour labels and shades live in colors.py; the timestamp dtype and the kind → type
    mappings in feeds.py."""
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                    node.value == "绿码" or node.value.lower() == "#1b7f3b"):
                found.append(f"{path.relative_to(HCODE)}:{node.lineno}: colour label")
            if isinstance(node, ast.Dict) and any(
                    isinstance(k, ast.Attribute) and isinstance(k.value, ast.Name) and k.value.id == "Kind"
                    for k in node.keys):
                found.append(f"{path.relative_to(HCODE)}:{node.lineno}: a mapping keyed by Kind")
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "pl.Datetime":
                found.append(f"{path.relative_to(HCODE)}:{node.lineno}: pl.Datetime (use feeds.TIMESTAMP)")
    assert not found, found


def test_the_derived_tables_agree() -> None:
    assert set(DEFAULT_CADENCE) == set(FEEDS)
    assert DEFAULT_CADENCE["risk_areas"] == 7 and DEFAULT_CADENCE["overrides"] is None
    assert {k: v for k, v in DIFF_CODES.items() if k != "person_key"} == \
        {k: v for k, v in ENGINE_CODES.items() if k != "pid"}
    assert ENGINE_CODES["pid"] == pl.Int32 and DIFF_CODES["person_key"] == pl.String
    for kind in Kind:
        sql = {"timestamp": "TIMESTAMP", "bool": "BOOLEAN"}.get(column_type(kind), "VARCHAR")
        column = next((c for f in FEEDS.values() for c in f.columns if c.kind is kind), None)
        if column is not None:
            assert column.sql_type == sql and column.dtype == dtype_of(kind)
    assert color_label("green", "zh") == COLOR_ZH["green"] and color_label(None, "en") == "absent"
    assert color_hex("no-such-colour") != color_hex("green")
