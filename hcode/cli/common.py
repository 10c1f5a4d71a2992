"""Options and helpers shared by every command module (`hcode/cli/*.py`)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from hcode import __version__
from hcode.errors import HcodeError, UsageError

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="HCODE_DB", help="The warehouse file (default: $HCODE_DB, else ./hcode.duckdb)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hcode {__version__}")
        raise typer.Exit()


VersionOption = Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                             help="Print hcode's version and exit.")]
LangOption = Annotated[str, typer.Option("--lang", help="Language of explanations and reports: en or zh.")]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str, indent=2) + "\n")


# The flag of each library parameter an error may name, where it is not `--<parameter>`.
FLAGS = {"encodings": "--encoding", "codes_file": "--out", "path": "--out"}


def error_text(exc: HcodeError) -> str:
    """The error's message, naming the flag where the library names its parameter."""
    if exc.option is None:
        return str(exc)
    flag = FLAGS.get(exc.option, "--" + exc.option.replace("_", "-"))
    return f"{flag}{'' if exc.message.startswith(':') else ' '}{exc.message}"


def handle_errors(fn: Callable) -> Callable:
    """Turn an `HcodeError` into its message on stderr and its exit code."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HcodeError as exc:
            err.print("[bold red]error:[/] " + escape(error_text(exc)), markup=True, highlight=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def parse_date(value: str | None, flag: str = "--as-of") -> dt.date | None:
    """A YYYY-MM-DD option value (None stays None); a wrong one is a usage error (exit 2)."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a date like 2022-06-14") from None


def parse_timestamp(value: str | None, flag: str = "--now") -> dt.datetime | None:
    """A timestamp option value such as 2022-06-15T06:00:00 (China Standard Time)."""
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a timestamp like 2022-06-15T06:00:00") from None
