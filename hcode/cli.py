"""The `hcode` command: a thin Typer shell over the library.

Each area registers its commands from its own module (`hcode/cli_<area>.py`, a
`register(app)` function); this file only assembles them. Every command's help ends with
an example (tests/test_cli_docs.py checks).
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import hcode

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


for _info in sorted(pkgutil.iter_modules(hcode.__path__), key=lambda m: m.name):
    if _info.name.startswith("cli_") and _info.name != "cli_common":
        importlib.import_module(f"hcode.{_info.name}").register(app)
