"""Render the CLI reference (docs/cli.md) from the Typer app itself, so it never drifts:
`python -m hcode.cli.doc > docs/cli.md`; tests/test_cli_docs.py fails when it is stale."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import click
from typer.main import get_command

HEADER = """# CLI reference

Generated from the commands' own help by `python -m hcode.cli.doc > docs/cli.md`
(a test fails when this file is stale). Common to every command: `--db PATH` (default
`$HCODE_DB`, else `./hcode.duckdb`); the key is `$HCODE_KEY` or `<db>.key`; `--json`
prints one JSON object on stdout; exit codes 0 done, 1 could not be done, 2 wrong usage,
3 (nightly) published with warnings.

`hcode --version` prints the version. Shell completion (bash, zsh, fish, PowerShell):
`hcode --install-completion` installs it for the current shell (open a new shell
afterwards); `hcode --show-completion` prints the script, to install it by hand.

The examples below use the ids of the README's session on the sample night
(`hcode sample --out sample_data --residents 3000 --seed 1 --as-of 2022-06-14`, loaded with
`hcode ingest sample_data/ --now 2022-06-15T06:00:00`, evaluated as of 2022-06-14 and
2022-06-15): the person 310101198008080019, runs 1 and 2, loads 1 to 12.
"""


def _commands(group: click.Group, prefix: str) -> Iterator[tuple[str, click.Command]]:
    for name in sorted(group.commands):
        cmd = group.commands[name]
        full = f"{prefix} {name}".strip()
        if hasattr(cmd, "commands"):  # a group of commands
            yield from _commands(cast(click.Group, cmd), full)
        else:
            yield full, cmd


def _option_line(p: Any) -> str:  # a click.Argument or a click.Option
    if p.param_type_name == "argument":
        what = f"argument{'' if p.required else ', optional'}{', repeatable' if p.nargs == -1 else ''}"
        return f"- `{p.name.upper()}` ({what}): {(p.help or '').strip()}"
    opt = p
    names = ", ".join(f"`{o}`" for o in opt.opts + opt.secondary_opts)
    help_text = (getattr(opt, "help", "") or "").strip()
    default = "" if opt.is_flag or opt.default in (None, (), False) else f" (default: `{opt.default}`)"
    return f"- {names}: {help_text}{default}"


def render() -> str:
    from hcode.cli.app import app

    root = get_command(app)
    parts = [HEADER]
    for name, cmd in _commands(cast(click.Group, root), ""):
        parts.append(f"\n## `hcode {name}`\n\n")
        doc = (cmd.help or "").strip()
        body, _, example = doc.partition("Example:")
        parts.append(body.strip().replace("\b\n", "") + "\n")
        params = [p for p in cmd.params if p.name != "help"]
        if params:
            parts.append("\n" + "\n".join(_option_line(p) for p in params) + "\n")
        if example.strip():
            lines = [ln.strip() for ln in example.replace("\b", "").strip().splitlines() if ln.strip()]
            parts.append("\nExample:\n\n```sh\n" + "\n".join(lines) + "\n```\n")
    return "".join(parts)


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
