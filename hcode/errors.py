"""The errors hcode raises on purpose. The CLI turns each into a message and an exit code."""

from __future__ import annotations


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


class FileRejected(HcodeError):
    """A whole input file is refused (missing columns, unreadable, wrong types)."""


class RulesetError(HcodeError):
    """A ruleset does not load or does not type-check; the message names file, line and rule."""


class UnknownRun(HcodeError):
    pass
