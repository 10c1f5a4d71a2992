"""The `hcode` command: a thin Typer shell over the library.

Each area registers its commands from its own module (`hcode/cli_*.py`); this file only
assembles them. Every command's help ends with an example (tests/test_cli_docs.py checks).
"""

from __future__ import annotations

import typer

from . import cli_warehouse

app = typer.Typer(
    name="hcode",
    help="Explainable health codes from department exports: load, evaluate, diff, publish.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
)



@app.callback()
def _root() -> None:
    """Explainable health codes from department exports: load, evaluate, diff, publish."""


for module in (cli_warehouse,):
    module.register(app)


def main() -> None:  # pragma: no cover
    app()
