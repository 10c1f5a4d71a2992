"""Bounded input: no file, link or ruleset makes ingest or the rules loader crash, hang,
read outside the inbox or exhaust memory; each is refused with a message."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ID_A, NOW

from hcode.errors import RulesetError
from hcode.ingest.load import expand, ingest
from hcode.paths import rulesets_dir
from hcode.rules.load import load_ruleset

BASE = (rulesets_dir() / "shanghai" / "2022.05.23.yaml").read_text(encoding="utf-8")
CASES = f"id_number,case_type,reported_at\n{ID_A},confirmed,2022-06-10 10:00:00\n"


def test_a_symlink_in_the_inbox_is_refused_and_its_target_not_read(tmp_path, wh):
    outside = tmp_path / "secret.csv"
    outside.write_text(CASES, encoding="utf-8")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "cases.csv").symlink_to(outside)
    files = expand([inbox])
    assert files == [inbox / "cases.csv"]
    [r] = ingest(wh, files, now=NOW)
    assert r.rejected and "symbolic link" in (r.error or "") and r.rows_read == 0
    assert wh.con.execute("SELECT count(*) FROM feed_cases").fetchall() == [(0,)]


def test_a_fifo_is_refused_without_blocking(tmp_path, wh):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.mkfifo(inbox / "cases.csv")  # nobody writes to it: reading it would block forever
    [r] = ingest(wh, expand([inbox]), now=NOW)
    assert r.rejected and "not a regular file" in (r.error or "")


def test_a_file_over_max_file_bytes_is_refused(tmp_path, wh):
    p = tmp_path / "cases.csv"
    p.write_text(CASES, encoding="utf-8")
    [r] = ingest(wh, [p], now=NOW, max_bytes=len(CASES.encode()) - 1)
    assert r.rejected and "max_file_bytes" in (r.error or "")
    [ok] = ingest(wh, [p], now=NOW, max_bytes=len(CASES.encode()))
    assert not ok.rejected and ok.rows_loaded == 1


def test_max_file_bytes_comes_from_hcode_toml(tmp_path, db):
    from typer.testing import CliRunner

    from hcode.cli.app import app

    (db.parent / "hcode.toml").write_text("[ingest]\nmax_file_bytes = 10\n", encoding="utf-8")
    p = tmp_path / "cases.csv"
    p.write_text(CASES, encoding="utf-8")
    res = CliRunner().invoke(app, ["ingest", str(p), "--db", str(db), "--now", "2022-06-15T06:00:00"])
    assert res.exit_code == 1 and "max_file_bytes" in res.output


@pytest.mark.parametrize("header", ["id_number,case_type,case_type,reported_at",
                                    "id_number,case_type,reported_at, ID_NUMBER"])
def test_a_duplicate_column_name_is_refused(tmp_path, wh, header):
    p = tmp_path / "cases.csv"
    p.write_text(f"{header}\n{ID_A},confirmed,confirmed,2022-06-10 10:00:00\n", encoding="utf-8")
    [r] = ingest(wh, [p], now=NOW)
    assert r.rejected and "more than once" in (r.error or "")


def _ruleset(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "rulesets" / "shanghai"
    d.mkdir(parents=True, exist_ok=True)
    p = d / "2022.05.23.yaml"
    p.write_text(text, encoding="utf-8")
    return p


BOMB = "".join(f"{a}: &{a} [{', '.join(['*' + b] * 9 if b else ['x'] * 9)}]\n"
               for a, b in zip("abcdefghij", ["", *"abcdefghi"], strict=True))


def _cap_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_a_yaml_alias_bomb_fails_fast_with_a_clear_error(tmp_path):
    p = _ruleset(tmp_path, BOMB + BASE)
    code = textwrap.dedent(f"""
        from hcode.errors import RulesetError
        from hcode.rules.load import load_ruleset
        try:
            load_ruleset({str(p)!r})
        except RulesetError as exc:
            print(exc)
    """)
    # generous timeout; memory capped at 2 GiB: before the bound this grew without limit
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)),
                         preexec_fn=_cap_memory)
    assert res.returncode == 0, res.stderr
    assert f"{p}:" in res.stdout and "alias" in res.stdout


@pytest.mark.parametrize(("edit", "line", "words"), [
    (lambda t: t + "\nx: " + "[" * 3000 + "]" * 3000 + "\n", 1, "nested"),
    (lambda t: t + "\nx:\n" + "".join("  " * i + f"k{i}:\n" for i in range(400)), None, "nested"),
    (lambda t: t.replace('{en: "{case_type} case reported"', '{en: "{} case reported"'), 17, "braces"),
    (lambda t: t.replace('{en: "{case_type} case reported"', '{en: "{case_type.x} case"'), 17, "braces"),
    (lambda t: t.replace("window: 14 days", "window: 99999999999999999999 days", 1), 62, "at most"),
    (lambda t: t.replace("window: 14 days", "window: 999999999 days", 1), 62, "at most"),
    (lambda t: t.replace("sampled_at >= close_contact_at + 12 days", "sampled_at >= close_contact_at + 9999999 days"),
     25, "at most"),
    (lambda t: "extends: ../../outside\n" + t, 1, "not a path"),
    (lambda t: "extends: /etc/passwd\n" + t, 1, "not a path"),
])
def test_a_malformed_ruleset_names_file_and_line_never_a_traceback(tmp_path, edit, line, words):
    p = _ruleset(tmp_path, edit(BASE))
    with pytest.raises(RulesetError) as err:
        load_ruleset(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}:") and words in msg
    if line is not None:
        assert msg.startswith(f"{p}:{line}:")


def test_extends_resolves_only_in_the_same_folder(tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text(BASE, encoding="utf-8")
    p = _ruleset(tmp_path, "extends: ../../outside\n" + BASE)
    with pytest.raises(RulesetError, match="not a path"):
        load_ruleset(p)
