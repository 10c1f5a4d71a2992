"""Options and helpers shared by every command module (`hcode/cli/*.py`)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar, overload

import typer
from rich.console import Console

from hcode import __version__
from hcode.errors import HcodeError, UsageError, out_of_space
from hcode.report.escape import terminal as t_

__all__ = ["t_"]  # the terminal escape every command module prints data text with

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


def command_line() -> str:
    """This process's command, as the warehouse lock records its holder."""
    return "hcode " + " ".join(sys.argv[1:])


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


P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn an `HcodeError` into its message on stderr and its exit code; so too a write that
    found no room (a full disk: `hcode.errors.out_of_space`)."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except HcodeError as exc:
            err.print("[bold red]error:[/] " + t_(error_text(exc)), markup=True, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            full = out_of_space(exc)
            if full is None:
                raise
            err.print("[bold red]error:[/] " + t_(error_text(full)), markup=True, highlight=False)
            raise typer.Exit(full.exit_code) from None

    return wrapper


IdArgument = Annotated[str | None, typer.Argument(
    help="The person's id number (hashed with the key, never stored); or use --id-file so that it stays "
         "out of the shell history.", show_default=False)]
IdFileOption = Annotated[str | None, typer.Option(
    "--id-file", help="Read the id number from this file, or from standard input with '-'.")]


def read_id(id_number: str | None, id_file: str | None) -> str:
    """The id number from the argument, or from `--id-file` (a path, or `-` for standard
    input): its first non-empty line. Exactly one of the two must be given."""
    if (id_number is None) == (id_file is None):
        raise UsageError("give the id number as an argument or with --id-file PATH ('-' reads standard input)")
    if id_number is not None:
        return id_number
    assert id_file is not None
    if id_file == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(id_file).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--id-file {id_file}: cannot read it ({exc.__class__.__name__})") from None
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), None)
    if line is None:
        raise UsageError(f"--id-file {id_file}: no id number in it")
    return line


@overload
def parse_date(value: str, flag: str = "--as-of") -> dt.date: ...
@overload
def parse_date(value: None, flag: str = "--as-of") -> None: ...
@overload
def parse_date(value: str | None, flag: str = "--as-of") -> dt.date | None: ...
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


EngineOption = Annotated[str, typer.Option("--engine", help="embedded (this process) or spark (the warehouse's "
                                           "events, in the lake brought in step, evaluated per bucket on Spark; "
                                           "pip install -e '.[spark]').")]
SparkMasterOption = Annotated[str, typer.Option("--spark-master", help="With --engine spark: the master URL "
                                                "(local[*], spark://host:7077, yarn, k8s://https://host:443).")]
