"""Reading ahead: while a batch is written, the next one is read and validated on a thread.

Validation is Polars work and writing mostly DuckDB's, and each alone keeps two cores busy
only part of the time. So an ingest session has one reading thread (`ReadAhead`): while a
file's batch is written it reads and validates the file's next batch (`validated_ahead`),
and once a file has no more to read, while its last batch is written, moved into the
warehouse and digested, it opens the next file (`open_file`: its hash, and its first batch
read and validated). Files still load one at a time, each in its own transaction, in order.

What makes that safe:

- No Polars object is used by both threads: the thread is handed the known ids as a
  Series of its own, and the caller touches a batch only once the thread has returned it
  (two threads calling one Polars frame can deadlock: pola-rs/polars#27472).
- A batch is validated against the ids mapped when it was read, so its "new" ids may
  include some mapped since: the caller filters them against the later mappings
  (`PersonIndex.unknown`, `Batch.mapped`). A file rolled back since takes its mappings with
  it: a batch read before that (`Batch.generation`) is validated again.
- A file found ahead to have the same bytes as a stored load is not read (a rerun of a
  night reads nothing). One found new is checked again at its turn by the caller: an
  earlier file of the session may be the same bytes.
- A file that turns out to be rejected or a duplicate at its turn is closed unread beyond
  its first batch, and everything still being read ahead stops with the session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import polars as pl

from hcode.errors import FileRejected
from hcode.feeds import FEEDS, Feed, feed_for_file
from hcode.ingest.read import Scanned, read_export, scan_file
from hcode.store.persons import PersonIndex
from hcode.validate import Validated, validate

Batches = Iterator[tuple[pl.DataFrame, pl.Series]]  # a file's rows as read, and their locations
PRIOR_LOAD = ("SELECT load_id FROM loads WHERE sha256 = ? AND retracted_at IS NULL "
              "AND (rows_read > 0 OR coalesce(batch_date, CAST(clock AS DATE)) = ?) ORDER BY load_id LIMIT 1")
"""The live load of the same bytes, if any, with (sha256, the batch date). The same bytes again
are a duplicate, except a file without rows sent on another day: it says "nothing to send"
for that day, and the feed is not late (docs/configuration.md)."""


class Batch(NamedTuple):
    """Rows as read, their locations, `validate`'s verdict, and the session's id map when
    it was validated: how many ids it held (`mapped`) and its `PersonIndex.generation`."""

    raw: pl.DataFrame
    location: pl.Series
    checked: Validated
    mapped: int
    generation: int


def validated(raw: pl.DataFrame, location: pl.Series, contract: Feed, now: dt.datetime, known: pl.Series,
              generation: int) -> Batch:
    return Batch(raw, location, validate(raw, contract, now, known), known.len(), generation)


@dataclass
class Opening:
    """A file as found before its turn: `scan_error` (refused unread), else `scanned` and
    either `prior` (a stored load of the same bytes: nothing read), no contract (an unknown
    feed: nothing read), `first_error` (its header refused) or its `first` batch validated
    and the rest of its `batches` to read."""

    feed: str | None
    scan_error: FileRejected | None = None
    scanned: Scanned | None = None
    prior: int | None = None
    first_error: FileRejected | None = None
    first: Batch | None = None
    batches: Batches | None = None

    def close(self) -> None:
        """Stop reading the file (a reader cleans up its temporary copy when closed)."""
        if isinstance(self.batches, Generator):
            self.batches.close()


def open_file(path: Path, feed: str | None, cursor: duckdb.DuckDBPyConnection, batch_date: dt.date, now: dt.datetime,
              known: pl.Series, generation: int, max_bytes: int, batch_rows: int | None) -> Opening:
    """Scan `path`, look for a stored load of its bytes and, when there is none, read and
    validate its first batch (its header is checked there). `cursor`: a connection of the
    reading thread's own."""
    name = feed or feed_for_file(path.name)
    try:
        scanned = scan_file(path, max_bytes)
    except FileRejected as exc:
        return Opening(name, scan_error=exc)
    contract = FEEDS.get(name or "")
    if contract is None:
        return Opening(name, scanned=scanned)
    prior = cursor.execute(PRIOR_LOAD, [scanned.sha256, batch_date]).fetchone()
    if prior:
        return Opening(name, scanned=scanned, prior=prior[0])
    batches = read_export(path, scanned, contract, max_bytes=max_bytes, batch_rows=batch_rows)
    try:
        raw, location = next(batches)
    except FileRejected as exc:
        return Opening(name, scanned=scanned, first_error=exc)
    return Opening(name, scanned=scanned, batches=batches,
                   first=validated(raw, location, contract, now, known, generation))


class ReadAhead:
    """The reading thread of an ingest session over `files` (in order): `opening(i)` is file
    i as `open_file` found it, opened ahead by `ahead(i)` or now; `batches` reads a file's
    next batches ahead. `close()` stops everything still being read."""

    def __init__(self, con: duckdb.DuckDBPyConnection, files: Sequence[Path], people: PersonIndex, *,
                 feed: str | None, batch_date: dt.date, now: dt.datetime, max_bytes: int, batch_rows: int | None):
        self.files = files
        self.people = people
        self.now = now
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="hcode-read")
        self._cursor = con.cursor()  # (the thread's own connection: a connection is used by one thread)
        self._open: Callable[[Path, pl.Series, int], Opening] = lambda path, known, generation: open_file(
            path, feed, self._cursor, batch_date, now, known, generation, max_bytes, batch_rows)
        self._opening: dict[int, Future[Opening]] = {}
        self._pending: list[Future[Batch | None]] = []

    def ahead(self, i: int) -> None:
        """Start opening file i (when there is one) on the thread."""
        if i < len(self.files) and i not in self._opening:
            self._opening[i] = self._pool.submit(self._open, self.files[i], self.people.known_ids,
                                                 self.people.generation)

    def opening(self, i: int) -> Opening:
        self.ahead(i)
        return self._opening.pop(i).result()

    def batches(self, opening: Opening, contract: Feed) -> Generator[Batch, None, None]:
        """The file's batches, its first one then each next one read and validated while the
        caller writes the one before. Use it under `contextlib.closing`: closed, it waits for
        the batch being read and closes the file."""
        assert opening.first is not None and opening.batches is not None
        rest = opening.batches

        def next_validated(known: pl.Series, generation: int) -> Batch | None:
            item = next(rest, None)
            return None if item is None else validated(*item, contract, self.now, known, generation)

        def read_next() -> Future[Batch | None]:
            pending = self._pool.submit(next_validated, self.people.known_ids, self.people.generation)
            self._pending.append(pending)
            return pending

        pending = read_next()
        try:
            yield opening.first
            while (done := pending.result()) is not None:
                pending = read_next()
                yield done
        finally:
            self._stop(pending)
            opening.close()

    def _stop(self, *pending: Future[Any]) -> None:
        for f in pending:
            f.cancel()
        wait(pending)  # (a batch being read is let finish: its reader is closed after)
        self._pending = [f for f in self._pending if not f.done()]

    def close(self) -> None:
        openings = list(self._opening.values())
        self._stop(*openings, *self._pending)
        for f in openings:
            if not f.cancelled() and f.exception() is None:
                f.result().close()
        self._opening.clear()
        self._pool.shutdown()
        self._cursor.close()
