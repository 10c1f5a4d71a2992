"""Commands about the warehouse itself: init."""

from __future__ import annotations

import typer

from hcode.cli.common import DbOption, JsonOption, err, handle_errors, print_json


def register(app: typer.Typer) -> None:
    @app.command("init")
    @handle_errors
    def init_cmd(db: DbOption = None, json_out: JsonOption = False) -> None:
        """Create the warehouse and its pseudonymisation key file; harmless when they exist.

        The key is $HCODE_KEY when set, else <db>.key (64 random hex characters, mode 0600).

        Example:

            hcode init --db /data/hcode.duckdb
        """
        from hcode.store import warehouse

        res = warehouse.init(db)
        if json_out:
            print_json(res.as_json())
            return
        err.print(f"warehouse {res.db}: {'created' if res.created_db else 'already there'}")
        if res.key_file:
            err.print(f"key file {res.key_file}: {'created (mode 0600)' if res.created_key else 'already there'}")
        else:
            err.print("key: from $HCODE_KEY")
        err.print(f"key fingerprint {res.fingerprint[:16]}…")
