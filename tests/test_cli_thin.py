"""The command line only parses flags and renders: hcode/cli/ holds no SQL and no loop that
does library work (loops over files or persons belong to the library).

Checked on the source with `ast`, so the rule is exact:
- no string literal holding an SQL statement keyword (SELECT, INSERT, UPDATE, DELETE, CREATE);
- no `.execute(...)` or `.sql(...)` call (no database access at all);
- inside a loop body (`for`, `while`, or a comprehension's element and conditions), no call of
  a library function: nothing bound by an import from `hcode` outside `hcode.cli` (and the
  error classes of `hcode.errors`) is called there. A loop may only render what the library returned.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parent.parent / "hcode" / "cli"
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE)\b")
FILES = sorted(CLI.glob("*.py"))


def _library_names(tree: ast.AST) -> set[str]:
    """Names bound by importing from hcode, except from hcode.cli itself and hcode.errors
    (raising a usage error while parsing a repeated flag is not library work)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hcode") \
                and not node.module.startswith(("hcode.cli", "hcode.errors")):
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names
                      if a.name.startswith("hcode") and not a.name.startswith("hcode.cli")}
    return names


def _root(func: ast.expr) -> str | None:
    while isinstance(func, ast.Attribute | ast.Call | ast.Subscript):
        func = func.value if not isinstance(func, ast.Call) else func.func
    return func.id if isinstance(func, ast.Name) else None


def _loop_parts(tree: ast.AST) -> Iterator[tuple[ast.stmt | ast.expr, list[ast.AST]]]:
    """(loop node, the nodes evaluated once per iteration)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.For | ast.AsyncFor | ast.While):
            yield node, [*node.body, *node.orelse]
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp):
            yield node, [node.elt, *[c for g in node.generators for c in g.ifs], *[g.iter for g in node.generators[1:]]]
        elif isinstance(node, ast.DictComp):
            yield node, [node.key, node.value, *[c for g in node.generators for c in g.ifs]]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_sql_in_the_cli(path: Path) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    sql = [(n.lineno, n.value[:40]) for n in ast.walk(tree)
           if isinstance(n, ast.Constant) and isinstance(n.value, str) and SQL.search(n.value)]
    calls = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr in ("execute", "sql", "executemany")]
    assert not sql, f"{path.name}: SQL text at {sql}: move the query into hcode/store or the stage that owns it"
    assert not calls, f"{path.name}: database calls at lines {calls}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_cli_loops_only_render(path: Path) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    library = _library_names(tree)
    bad = []
    for loop, parts in _loop_parts(tree):
        for part in parts:
            for call in (n for n in ast.walk(part) if isinstance(n, ast.Call)):
                if _root(call.func) in library:
                    bad.append((loop.lineno, ast.unparse(call.func)))
    assert not bad, f"{path.name}: loops calling the library (line, call): {bad}: give the library the loop"


ENGINES = ("polars", "duckdb", "pyarrow", "numpy", "yaml", "hcode.store.warehouse", "hcode.feeds")


def test_the_command_line_starts_without_the_engines() -> None:
    """Building the command (what `hcode --help`, `--version` and shell completion do) imports
    none of the library's engines: each command imports what it runs when it runs, so a
    command starts in a fifth of a second rather than a second (benchmarks/startup.py)."""
    code = ("import sys, hcode.cli.app; "
            f"print(','.join(m for m in {ENGINES!r} if m in sys.modules))")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert got == "", f"building the command line imported {got}: import it inside the command that needs it"


def test_a_command_still_finds_its_library(tmp_path: Path) -> None:
    """The imports moved into the commands are there when a command runs: `hcode init` then
    `hcode runs --json` in a fresh process each."""
    import json

    db = tmp_path / "w.duckdb"
    hcode = [sys.executable, "-c", "from hcode.cli import app; app()"]
    subprocess.run([*hcode, "init", "--db", str(db)], check=True, capture_output=True)
    runs = subprocess.run([*hcode, "runs", "--db", str(db), "--json"], check=True, capture_output=True, text=True)
    assert json.loads(runs.stdout) == {"runs": []}


def test_the_rule_catches_what_it_should() -> None:
    """The checks above find a query and a per-file library call when there is one."""
    src = ("from hcode.ingest import load as ingest_mod\n"
           "def f(wh, files):\n"
           "    wh.con.execute('SELECT 1')\n"
           "    for f in files:\n"
           "        ingest_mod.ingest(wh, [f])\n")
    tree = ast.parse(src)
    assert any(isinstance(n, ast.Constant) and isinstance(n.value, str) and SQL.search(n.value)
               for n in ast.walk(tree))
    library = _library_names(tree)
    found = [ast.unparse(c.func) for _, parts in _loop_parts(tree) for p in parts for c in ast.walk(p)
             if isinstance(c, ast.Call) and _root(c.func) in library]
    assert found == ["ingest_mod.ingest"]
