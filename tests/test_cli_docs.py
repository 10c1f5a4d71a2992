"""Every command documents itself with an example (sqlite-utils' habit)."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.main import get_command

from hcode.cli.app import app

ROOT = Path(__file__).resolve().parent.parent


def all_commands():
    root = get_command(app)

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            full = f"{prefix} {name}".strip()
            if hasattr(cmd, "commands"):
                yield from walk(cmd, full)
            else:
                yield full, cmd

    return list(walk(root, ""))


def test_every_command_has_help_with_an_example():
    commands = all_commands()
    assert len(commands) >= 3
    for name, cmd in commands:
        assert cmd.help and "Example:" in cmd.help, f"`hcode {name}` has no Example: in its help"
        example = cmd.help.split("Example:", 1)[1]
        assert "hcode " in example, f"`hcode {name}`'s example does not show a command line"


def test_typer_app_is_thin():
    assert isinstance(app, typer.Typer)
    assert len((ROOT / "hcode" / "cli" / "app.py").read_text().splitlines()) < 60


def test_cli_reference_is_generated_from_the_current_help():
    from hcode.cli.doc import render

    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/cli.md is stale: run `python -m hcode.cli.doc > docs/cli.md`"
    for name, _ in all_commands():
        assert f"## `hcode {name}`" in committed
