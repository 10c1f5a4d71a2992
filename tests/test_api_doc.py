"""docs/api.md's example runs as written, and `hcode.api` exports what the page names."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import hcode.api
from hcode.paths import ROOT

DOC = ROOT / "docs" / "api.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text("utf-8"), flags=re.S)


@pytest.mark.slow
def test_the_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    [block] = _python_blocks()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HCODE_KEY", raising=False)
    exec(compile(block, str(DOC), "exec"), {"__name__": "api_example"})  # noqa: S102 - our own documentation
    printed = capsys.readouterr().out
    assert re.search(r"^run 1: [\d,]+ persons", printed, flags=re.M)
    assert re.search(r"^[\d,]+ colour changes of [\d,]+ persons$", printed, flags=re.M)
    assert (tmp_path / "warehouse.duckdb").exists() and (tmp_path / "audit" / "summary.json").exists()
    assert os.stat(tmp_path / "warehouse.duckdb.key").st_mode & 0o077 == 0


def test_every_name_the_page_calls_is_exported() -> None:
    doc = DOC.read_text("utf-8")
    called = set(re.findall(r"`([A-Za-z_]+)\(", doc)) - {"as_json"}  # as_json: a method of the results
    assert called, "the page names no call"
    missing = sorted(n for n in called if not hasattr(hcode.api, n))
    assert not missing, f"docs/api.md names calls hcode.api does not export: {missing}"
    assert set(hcode.api.__all__) <= set(dir(hcode.api))


def test_importing_hcode_does_not_import_the_stages() -> None:
    import subprocess
    import sys

    code = "import sys, hcode; print(sorted(m for m in sys.modules if m.startswith('hcode')))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "['hcode']"
