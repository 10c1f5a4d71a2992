"""The errors hcode raises on purpose. The CLI turns each into a message and an exit code."""

from __future__ import annotations

import errno
from dataclasses import dataclass


class HcodeError(Exception):
    """A failure the user can act on; the message says what is wrong."""

    exit_code = 1

    def __init__(self, message: str = "", *, option: str | None = None) -> None:
        """`option`: the library parameter the message is about; the message then reads
        "<option> <message>" (the command line names the flag instead: `hcode.cli.common`)."""
        super().__init__(f"{option}{'' if message.startswith(':') else ' '}{message}" if option else message)
        self.message = message
        self.option = option


class UsageError(HcodeError):
    exit_code = 2


class WarehouseMissing(HcodeError):
    pass


class WrongKey(HcodeError):
    pass


class KeyRefused(HcodeError):
    """The key is weak or exposed (too short, readable by others, a symbolic link), or a new
    key would be written beside a warehouse that has one."""


class WarehouseVersion(HcodeError):
    """The warehouse was made by an hcode with another schema version."""


class WarehouseBusy(HcodeError):
    pass


class OutOfSpace(HcodeError):
    """A write failed because the disk is full, the user's quota is spent or the file would
    grow past its size limit. What the failing step was writing was rolled back."""


OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
OUT_OF_SPACE_TEXTS = ("No space left on device", "File too large", "Disk quota exceeded")


def out_of_space(exc: BaseException) -> OutOfSpace | None:
    """`exc` as an `OutOfSpace` when it says a write found no room (an `OSError`, or DuckDB's
    IO and commit errors, which carry the system's message), else None."""
    if not (isinstance(exc, OSError) and exc.errno in OUT_OF_SPACE_ERRNOS) \
            and not any(t in str(exc) for t in OUT_OF_SPACE_TEXTS):
        return None
    return OutOfSpace(f"no room to write: {str(exc).splitlines()[0][:300]}. The step that was writing was rolled "
                      "back (a load, a run and its publication are each one transaction): the warehouse holds "
                      "what it held before, and the published run is unchanged. Free space, then run the "
                      "command again")


class FileRejected(HcodeError):
    """A whole input file is refused (missing columns, unreadable, wrong types)."""


@dataclass(frozen=True)
class RulesetProblem:
    """One reason a ruleset does not load: where (file and line, when known), in which rule
    or fact, and what."""

    message: str
    file: str | None = None
    line: int | None = None
    rule: str | None = None
    fact: str | None = None

    def __str__(self) -> str:
        where = f"rule {self.rule}: " if self.rule else f"fact {self.fact}: " if self.fact else ""
        at = f"{self.file}:{self.line}: " if self.file and self.line else f"{self.file}: " if self.file else ""
        return f"{at}{where}{self.message}"

    def as_json(self) -> dict[str, str | int | None]:
        return {"file": self.file, "line": self.line, "rule": self.rule, "fact": self.fact, "message": self.message}


class RulesetError(HcodeError):
    """A ruleset does not load or does not type-check; the message names file, line and rule,
    one problem a line, and `problems` holds them as data (for `rules check --json`)."""

    def __init__(self, message: str | None = None, problems: tuple[RulesetProblem, ...] = ()):
        problems = problems or (RulesetProblem(message or "the ruleset does not load"),)
        super().__init__(message if message is not None else "\n".join(map(str, problems)))
        self.problems = problems


class UnknownRun(HcodeError):
    pass
