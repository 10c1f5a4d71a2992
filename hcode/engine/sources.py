"""Where the engine gets a feed's rows: Polars frames in memory, or the warehouse.

The engine (evaluate.py) asks a source for a feed's rows before the cut-off, with the
contract's columns and types, optionally narrowed by a pushed predicate (pushdown.py) and to
a set of persons. A `FrameSource` ignores the predicate (the engine applies every fact's whole
filter anyway). A `WarehouseSource` turns both into the DuckDB query's WHERE clause, so that
the 50M NAT rows of a 10M-resident night never travel to Polars: the positives are read for
the trigger facts, then only the negatives of the few persons with a trigger.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, Final, Literal, Protocol

import duckdb
import polars as pl

from hcode.engine.compile import TS
from hcode.engine.pushdown import Pushed
from hcode.feeds import FEEDS, POLARS_TYPES, Kind
from hcode.store.warehouse import ArrowStream, to_polars, view

Engine = Literal["streaming", "in-memory"]  # Polars' engines for collecting a plan
STREAMING: Final = "streaming"
# a registration's district code (six digits, validated at ingest) as a number
DISTRICT = pl.col("district_code").cast(pl.Int32, strict=True)
_names = itertools.count()


class FeedSource(Protocol):
    # the Polars engine for plans over this source's rows: "streaming" for whole feeds in
    # memory (bounded memory), "in-memory" for rows a database already narrowed (faster)
    engine: Engine

    # each companion's seed scans by `companion_key`, when given (evaluate.all_seeds): a source
    # holding one bucket of persons cannot find them; empty: read from `everyone()`
    seeds: Mapping[str, pl.DataFrame]

    def rows(self, feed: str, where: Pushed | None = None, pids: pl.DataFrame | None = None) -> pl.LazyFrame:
        """The feed's rows with an event time before the cut-off (at least those satisfying
        `where`, of the persons in `pids` when given), with exactly the contract's columns."""
        ...

    def registrations(self) -> pl.LazyFrame:
        """The registrations before the cut-off as `pid`, `district` (the 6-digit code as an
        Int32) and `registered_at`: what the population is built from. Numbers cost half as
        much as strings to move, sort and store, and for 10M persons that shows."""
        ...

    def concurrent(self) -> AbstractContextManager[FeedSource]:
        """The same source for use on another thread, while this one is used."""
        ...

    def everyone(self) -> FeedSource:
        """The same source for every person (a companion is another person, even when this
        source reads one person's rows for `explain`)."""
        ...


def dtype_of(kind: Kind) -> pl.DataType:
    return POLARS_TYPES[kind.value_type]


def feed_schema(name: str) -> dict[str, pl.DataType]:
    feed = FEEDS[name]
    head: dict[str, pl.DataType] = {"pid": pl.Int32()} if feed.has_person else {}
    return head | {c.name: dtype_of(c.kind) for c in feed.stored_columns}


def feed_rows(frames: Mapping[str, pl.LazyFrame | pl.DataFrame], name: str, cutoff: dt.datetime) -> pl.LazyFrame:
    """The feed's rows before the cut-off, with exactly the contract's columns and types (an
    optional column the frame lacks is empty)."""
    schema = feed_schema(name)
    f = frames.get(name)
    lf = pl.LazyFrame(schema=schema) if f is None else f.lazy()
    have = lf.collect_schema()
    lf = lf.select([pl.lit(None, t).alias(c) if c not in have else pl.col(c).cast(t) if have[c] != t else pl.col(c)
                    for c, t in schema.items()])
    return lf.filter(pl.col(FEEDS[name].event_time) < pl.lit(cutoff, dtype=TS))


class FrameSource:
    """Feeds given as Polars frames (examples, tests, purge's what-if): every row is there."""

    engine: Engine = STREAMING

    def __init__(self, frames: Mapping[str, pl.LazyFrame | pl.DataFrame], cutoff: dt.datetime,
                 seeds: Mapping[str, pl.DataFrame] | None = None):
        self.frames = frames
        self.cutoff = cutoff
        self.seeds = seeds or {}

    def rows(self, feed: str, where: Pushed | None = None, pids: pl.DataFrame | None = None) -> pl.LazyFrame:
        lf = feed_rows(self.frames, feed, self.cutoff)
        if pids is None:
            return lf
        # one semi-join shared by the facts that read these rows
        return lf.join(pids.lazy(), on="pid", how="semi").collect(engine=STREAMING).lazy()

    def registrations(self) -> pl.LazyFrame:
        return self.rows("registrations").select("pid", DISTRICT.alias("district"), "registered_at")

    @contextmanager
    def concurrent(self) -> Iterator[FrameSource]:
        yield self  # frames are read-only

    def everyone(self) -> FrameSource:
        return self


class WarehouseSource:
    """Feeds read from the warehouse: rows of loads up to `max_load_id`, before the cut-off,
    of the `persons` given (explain reads one person) or of one person bucket (`pid_range`:
    a range [lo, hi) of pids, store/buckets.py), with pushed predicates and person sets applied
    by DuckDB. Feeds without persons (risk areas) are read whole by every bucket."""

    engine: Engine = "in-memory"  # the rows are narrowed frames already (streaming: 2x slower plans at 1M)

    def __init__(self, con: duckdb.DuckDBPyConnection, cutoff: dt.datetime, max_load_id: int, persons: list[int] | None = None,
                 pid_range: tuple[int, int] | None = None):
        self.con = con
        self.cutoff = cutoff
        self.max_load_id = max_load_id
        self.persons = persons
        self.pid_range = pid_range
        self.seeds: Mapping[str, pl.DataFrame] = {}

    def rows(self, feed: str, where: Pushed | None = None, pids: pl.DataFrame | None = None) -> pl.LazyFrame:
        return feed_rows({feed: self._read(feed, list(feed_schema(feed)), where, pids)}, feed, self.cutoff)

    def registrations(self) -> pl.LazyFrame:
        # DuckDB casts the codes (validated at ingest: six digits) on every core
        return self._read("registrations", ["pid", "CAST(district_code AS INTEGER) AS district", "registered_at"],
                          None, None).lazy()

    def _read(self, feed: str, cols: list[str], where: Pushed | None, pids: pl.DataFrame | None) -> pl.DataFrame:
        f = FEEDS[feed]
        conds = ["load_id <= ?"]
        params: list[Any] = [self.max_load_id]
        if f.event_time:
            conds.append(f"{f.event_time} < ?")
            params.append(self.cutoff)
        if self.persons is not None and f.has_person:
            conds.append("list_contains(?, pid)")
            params.append(self.persons)
        if self.pid_range is not None and f.has_person:
            conds.append("pid >= ? AND pid < ?")
            params.extend(self.pid_range)
        if where is not None:
            conds.append(f"({where.sql})")
            params.extend(where.params)
        with ExitStack() as views:
            if pids is not None:
                name = views.enter_context(view(self.con, f"_hcode_pids_{next(_names)}", ArrowStream(pids.select("pid"))))
                conds.append(f"pid IN (SELECT pid FROM {name})")
            return to_polars(self.con.sql(f"SELECT {', '.join(cols)} FROM {f.table} WHERE {' AND '.join(conds)}",
                                          params=params))

    def everyone(self) -> WarehouseSource:
        if self.persons is None and self.pid_range is None:
            return self
        return WarehouseSource(self.con, self.cutoff, self.max_load_id)

    @contextmanager
    def concurrent(self) -> Iterator[WarehouseSource]:
        """This source on a connection of its own (a DuckDB cursor, which sees committed data:
        evaluation never runs inside a write transaction)."""
        cursor = self.con.cursor()
        try:
            yield WarehouseSource(cursor, self.cutoff, self.max_load_id, self.persons, self.pid_range)
        finally:
            cursor.close()
