"""cli: the `hcode` command, a thin Typer shell over the library.

Holds one module per command group (each a `register(app)`), `common` (options, exit
codes, printing) and `doc` (docs/cli.md from the help). It parses flags and renders what
the library returns: no SQL, no loops over files or persons. May import every other
package; nothing imports it. A command imports the library it runs inside its body: building
the command line (`--help`, `--version`, shell completion) loads no engine.
"""

from hcode.cli.app import app

__all__ = ["app"]
