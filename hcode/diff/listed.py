"""The persons a diff lists, in memory or spilled to disk bucket by bucket.

A diff lists one row per colour change (and, apart, per rule-only change), ordered by
district then person key. On an ordinary night that is a few per cent of persons; on a
province's first night it is everyone: 10M rows of texts and evidence lists, about 5 GiB
in memory and more while sorting. So the bucketed diff (`hcode.diff.buckets`) does not
gather them: each bucket's rows, already in order, stay in a Parquet file of their own,
and `Listed` reads them back only as the writers need them:

- `height`, `head(n)`: what the reports show (counts and the first rows; the head merges
  each bucket file's first `n` rows, so it reads no more than `n` rows a bucket);
- `batches()`: every row in order, `BATCH_ROWS` at a time, for changes.parquet and
  changes.csv. The order across buckets comes from DuckDB's ORDER BY over the files,
  which spills to disk within its memory limit instead of growing with the population.

An in-memory `Listed` (`Listed.of(frame)`, what a whole diff gives) answers the same
calls from its frame, in batches of the same size, so the files written from either are
byte for byte the same (tests/test_buckets.py).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

LISTED_ORDER = ("district_code", "person_key")  # unique per person: a total order
BATCH_ROWS = 100_000


class SpillDir:
    """A private temporary folder, removed when the last object holding it is gone."""

    def __init__(self, prefix: str = "hcode-diff-") -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._remove = weakref.finalize(self, shutil.rmtree, self.path, True)

    def close(self) -> None:
        self._remove()


@dataclass(frozen=True, eq=False)
class Listed:
    """A diff's listed rows, in `LISTED_ORDER`: `frame` in memory, or `files` (each sorted,
    persons disjoint) with their `schema` and total `height`."""

    schema: pl.Schema
    height: int
    frame_: pl.DataFrame | None = None
    files: tuple[Path, ...] = ()
    memory_limit: str = "1GB"  # DuckDB's, while ordering the files' rows
    spill: SpillDir | None = field(default=None, repr=False)  # keeps the files alive

    @classmethod
    def of(cls, frame: pl.DataFrame) -> Listed:
        return cls(schema=frame.schema, height=frame.height, frame_=frame)

    @classmethod
    def spilled(cls, files: Sequence[Path], schema: pl.Schema, spill: SpillDir, memory_limit: str) -> Listed:
        height = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in files)
        return cls(schema=schema, height=height, files=tuple(files), memory_limit=memory_limit, spill=spill)

    @classmethod
    def empty(cls, schema: pl.Schema) -> Listed:
        return cls.of(pl.DataFrame(schema=schema))

    def is_empty(self) -> bool:
        return self.height == 0

    def head(self, n: int) -> pl.DataFrame:
        """The first `n` rows."""
        if self.frame_ is not None:
            return self.frame_.head(n)
        heads = [pl.scan_parquet(f).head(n) for f in self.files]
        return self._typed(pl.concat(heads).sort(LISTED_ORDER, nulls_last=True).head(n).collect())

    def frame(self) -> pl.DataFrame:
        """Every row as one frame: for small diffs and tests (a first night's is the
        population)."""
        if self.frame_ is not None:
            return self.frame_
        if not self.files:
            return pl.DataFrame(schema=self.schema)
        return self._typed(pl.read_parquet(list(self.files)).sort(LISTED_ORDER, nulls_last=True))

    def batches(self, rows: int | None = None) -> Iterator[pl.DataFrame]:
        """Every row in order, `rows` (default `BATCH_ROWS`) at a time, the last batch
        shorter; one empty batch when there are none, so that a writer still writes its
        header."""
        rows = rows or BATCH_ROWS
        if self.height == 0:
            yield pl.DataFrame(schema=self.schema)
            return
        if self.frame_ is not None:
            for part in self.frame_.iter_slices(rows):
                yield part.rechunk()
            return
        yield from _exact(self._ordered(rows), rows)

    def _ordered(self, rows: int) -> Iterator[pl.DataFrame]:
        assert self.spill is not None
        con = duckdb.connect()
        try:
            # No progress bar: DuckDB draws it on stdout, where --json output must stand alone.
            con.execute("SET enable_progress_bar = false")
            con.execute(f"SET memory_limit = '{self.memory_limit}'")
            con.execute("SET temp_directory = ?", [str(self.spill.path / "duckdb.tmp")])
            order = ", ".join(f"{c} NULLS LAST" for c in LISTED_ORDER)
            reader = con.sql(f"SELECT * FROM read_parquet(?) ORDER BY {order}",
                             params=[[str(f) for f in self.files]]).to_arrow_reader(rows)
            for batch in reader:
                yield self._typed(pl.from_arrow(batch))  # type: ignore[arg-type]
        finally:
            con.close()

    def _typed(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(self.schema.names()).cast(self.schema)


def _exact(frames: Iterator[pl.DataFrame], rows: int) -> Iterator[pl.DataFrame]:
    """`frames` cut again into frames of exactly `rows` rows (the last one shorter)."""
    pending: list[pl.DataFrame] = []
    held = 0
    for f in frames:
        pending.append(f)
        held += f.height
        while held >= rows:
            whole = pl.concat(pending)
            yield whole.head(rows).rechunk()
            rest = whole.slice(rows)
            pending, held = [rest], rest.height
    if held:
        yield pl.concat(pending).rechunk()
