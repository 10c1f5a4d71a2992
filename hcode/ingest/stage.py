"""Where a file's rows wait until its one transaction moves them into the warehouse.

A file is loaded in one transaction (all of its rows, quarantine, new persons, repeats and
its `loads` record, or nothing). DuckDB keeps what a transaction has appended in memory
until it commits, outside its memory limit: about 120 bytes a row for the NAT feed, so the
50M-row file of 10M residents took ingest to 8.6 GiB at a 6 GiB limit (7.3 GiB at 3 GiB;
6.2 and 5.2 GiB staged). So ingest writes each batch into temporary
tables of its connection (`Stage`), which DuckDB's buffer manager spills to its temporary
folder within the memory limit, and the file's transaction then copies them into the
warehouse with one INSERT each, which DuckDB streams to disk as it goes (measured: 40M rows
staged and moved at a 1.8 GiB peak against 2.7 GiB inserted batch by batch in the transaction).

Temporary tables belong to the connection: a crash leaves nothing to clean up, a rollback
or a rejected file drops them, and no other connection ever sees them. They hold what the
warehouse tables would (pids and person keys, masked quarantine text), never a raw id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import duckdb

from hcode.feeds import Feed


@dataclass(frozen=True)
class Stage:
    """The temporary tables of one file's load, named after the warehouse tables they feed."""

    feed: Feed
    rows: ClassVar[str] = "_hcode_stage_rows"
    persons: ClassVar[str] = "_hcode_stage_persons"
    repeats: ClassVar[str] = "_hcode_stage_repeats"
    quarantine: ClassVar[str] = "_hcode_stage_quarantine"

    def tables(self) -> dict[str, str]:
        """warehouse table -> its stage table."""
        return {"persons": self.persons, self.feed.table: self.rows, "quarantine": self.quarantine,
                "repeats": self.repeats}

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        for table, stage in self.tables().items():
            con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS SELECT * FROM {table} LIMIT 0")

    def move(self, con: duckdb.DuckDBPyConnection) -> dict[str, int]:
        """Copy every stage table into its warehouse table (inside the file's transaction), in
        the order the rows were staged (registrations are staged in pid order); returns the
        rows moved into each warehouse table."""
        moved = {}
        for table, stage in self.tables().items():
            row = con.execute(f"INSERT INTO {table} SELECT * FROM {stage}").fetchone()
            moved[table] = int(row[0]) if row else 0
        return moved

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        for stage in self.tables().values():
            con.execute(f"DROP TABLE IF EXISTS {stage}")
