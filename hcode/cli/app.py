"""The `hcode` command: a thin Typer shell over the library.

Each command group registers its commands from its own module (`hcode/cli/<group>.py`, a
`register(app)` function); this file only assembles them, in the order of `GROUPS`. Every command's help ends with
an example (tests/test_cli_docs.py checks).
"""

from __future__ import annotations

import inspect

import typer

from hcode.cli import backtest, companions, demo, diff, ingest, nightly, ops, rules, rulesdiff, runs, sample
from hcode.cli import warehouse as warehouse_cmds
from hcode.cli.common import VersionOption

# The command groups, in registration order (`rulesdiff` attaches to the group `rules` made).
GROUPS = (backtest, companions, demo, diff, ingest, nightly, ops, rules, rulesdiff, runs, sample, warehouse_cmds)

app = typer.Typer(
    name="hcode",
    help="Explainable health codes from department exports: load, evaluate, diff, publish.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root(version: VersionOption = False) -> None:
    """Explainable health codes from department exports: load, evaluate, diff, publish."""


for _group in GROUPS:
    _group.register(app)


def _keep_examples_verbatim(typer_app: typer.Typer) -> None:
    """Mark each help's example block with click's no-rewrap marker (\b), so that
    multi-line examples keep one command per line in --help."""
    for info in typer_app.registered_commands:
        doc = info.help or inspect.cleandoc(info.callback.__doc__ or "") if info.callback else info.help
        if doc and "Example:\n" in doc and "\b" not in doc:
            head, tail = doc.split("Example:\n", 1)
            info.help = head + "Example:\n\n\b\n" + tail.lstrip("\n")
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _keep_examples_verbatim(group.typer_instance)


_keep_examples_verbatim(app)
