"""Options and helpers shared by every command module (`hcode/cli_*.py`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .errors import HcodeError

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="HCODE_DB", help="The warehouse file (default: $HCODE_DB, else ./hcode.duckdb)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]
LangOption = Annotated[str, typer.Option("--lang", help="Language of explanations and reports: en or zh.")]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str, indent=2) + "\n")


def handle_errors(fn: Callable) -> Callable:
    """Turn an `HcodeError` into its message on stderr and its exit code."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HcodeError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper
