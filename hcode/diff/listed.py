"""The persons a diff lists, in memory or spilled to disk bucket by bucket.

A diff lists one row per colour change (and, apart, per rule-only change), ordered by
district then person key. On an ordinary night that is a few per cent of persons; on a
province's first night it is everyone: 10M rows of texts and evidence lists, about 5 GiB
in memory and more while sorting. So the bucketed diff (`hcode.diff.buckets`) does not
gather them: each bucket's rows, already in order, stay in a Parquet file of their own
(`write_part`; a large one keeps each district in row groups of its own), and `Listed`
reads them back only as the writers need them:

- `height`, `head(n)`: what the reports show (counts and the first rows);
- `batches()`: every row in order, `BATCH_ROWS` at a time, for changes.parquet and
  changes.csv. The order across buckets is made a few consecutive districts at a time
  (up to `CHUNK_ROWS`): their rows from every bucket file, sorted in memory
  (`listed_order`). A district too large for a share of the memory limit is ordered by
  DuckDB instead, which spills to disk within the limit, so memory never grows with the
  population.

Sorting a few districts at a time replaced one DuckDB ORDER BY over every file (2026-12-07,
a 10M first night's 10M listed rows in 18 files; figures in benchmarks/RESULTS.md).

An in-memory `Listed` (`Listed.of(frame)`, what a whole diff gives) answers the same
calls from its frame, in batches of the same size, so the files written from either are
byte for byte the same (tests/test_buckets.py, tests/test_listed.py).
"""

from __future__ import annotations

import bisect
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

LISTED_ORDER = ("district_code", "person_key")  # unique per person: a total order
BATCH_ROWS = 100_000
DUCKDB_FLOOR = 128 << 20  # the least memory DuckDB is given to order a district (it needs some to start)
# Consecutive districts are sorted together up to this many rows: enough to read a small
# part once for many districts, few enough that a sort's copies stay small (a 10M first
# night sorted in chunks of up to 512 MB peaked at 4.2 GiB and ran 20 % slower than in
# districts of 87K rows, 2026-12-07).
CHUNK_ROWS = 4 * BATCH_ROWS
SORT_OVERHEAD = 3  # a district sorted in memory: its rows, their sorted copy, and the batches cut from it


class SpillDir:
    """A private temporary folder, removed when the last object holding it is gone."""

    def __init__(self, prefix: str = "hcode-diff-") -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._remove = weakref.finalize(self, shutil.rmtree, self.path, True)

    def close(self) -> None:
        self._remove()


@dataclass(frozen=True)
class Part:
    """One bucket's listed rows in a Parquet file (`write_part`), in `LISTED_ORDER`:
    `districts[district]` is (its first row, its rows, their bytes in memory) and
    `group_starts` the first row of each row group."""

    path: Path
    rows: int
    districts: Mapping[str | None, tuple[int, int, int]]
    group_starts: tuple[int, ...]


def write_part(frame: pl.DataFrame, path: Path, group_rows: int = BATCH_ROWS) -> Part:
    """`frame` (a bucket's listed rows, in `LISTED_ORDER`) as a `Part` at `path`, in row
    groups of at most `group_rows` rows. A part of more than `group_rows` rows (a first
    night's) has row groups that never hold two districts, so that a district is read
    without its neighbours; a smaller one (an ordinary night's) is one row group, as a
    hundred small groups cost more to write and read than they save (2026-12-07, a 10M next
    night's report: 2.5 s)."""
    return write_arrow_part(*arrow_part(frame), path, group_rows)


DistrictRuns = list[tuple[str | None, int]]  # (district, rows) of consecutive rows, in order


def arrow_part(frame: pl.DataFrame) -> tuple[pa.Table, DistrictRuns]:
    """What `write_arrow_part` needs of `frame`, made with Polars on the caller's thread: its
    rows as Arrow and its runs of districts."""
    runs = frame.get_column("district_code").rle().struct.unnest()
    return frame.to_arrow(), list(zip(runs.get_column("value").to_list(), runs.get_column("len").to_list(),
                                      strict=True))


def write_arrow_part(table: pa.Table, runs: DistrictRuns, path: Path, group_rows: int = BATCH_ROWS) -> Part:
    """`write_part` of rows given as Arrow (`arrow_part`). Calls nothing of Polars, so it may
    run on a thread of its own while the caller goes on (pola-rs/polars#27472)."""
    districts: dict[str | None, tuple[int, int, int]] = {}
    starts: list[int] = []
    at = 0
    aligned = table.num_rows > group_rows
    # (read back by row group only: no statistics; no dictionaries, which cost a quarter of
    # the write for the keys and explanations, 0.36 s against 0.49 s for 767,611 rows)
    with pq.ParquetWriter(path, table.schema, compression="lz4", use_dictionary=False, write_statistics=False) as out:
        for district, n in runs:
            rows = table.slice(at, n)
            districts[district] = (at, n, rows.nbytes)
            if aligned:
                out.write_table(rows, row_group_size=group_rows)  # (a call's row groups are its own)
                starts.extend(range(at, at + n, group_rows))
            at += n
        if not aligned and table.num_rows:
            out.write_table(table, row_group_size=group_rows)
            starts.append(0)
    return Part(path=path, rows=table.num_rows, districts=districts, group_starts=tuple(starts))


RANK_BITS = 12  # of `listed_order`'s sort key, for the district


def listed_order(district: pl.Series, person_key: pl.Series) -> pl.Series:
    """The positions that put rows in `LISTED_ORDER` (district, then person key, nulls last).
    Sorts one 8-byte integer: the district's rank in its top 12 bits, then the key's first 13
    hex digits. That is the strings' order when every key starts with lower-case hex digits
    (a person key is a SHA-256 in hex), there are fewer than 4,095 districts, and no two keys
    of a district share those digits; else the strings are sorted (Polars sorts two string
    columns several times slower: 0.3 s for a bucket of 555K persons against 0.1 s)."""
    districts = district.unique().drop_nulls().sort()
    if districts.len() < (1 << RANK_BITS) - 1 and person_key.str.contains("^[0-9a-f]{13}").fill_null(False).all():
        rank = district.replace_strict(districts, pl.int_range(districts.len(), dtype=pl.UInt64, eager=True),
                                       default=districts.len(), return_dtype=pl.UInt64)  # (null: last)
        prefix = person_key.str.slice(0, 13).str.to_integer(base=16, dtype=pl.UInt64)
        sort_key = rank * (1 << (64 - RANK_BITS)) + prefix
        order = sort_key.arg_sort()
        ordered = sort_key.gather(order)  # a key shared is then a neighbour (a tenth of `is_duplicated`'s time)
        if not (ordered.slice(1) == ordered.head(-1)).any():
            return order
    return pl.DataFrame({"district_code": district, "person_key": person_key}).select(
        pl.arg_sort_by(list(LISTED_ORDER), nulls_last=True)).to_series()


Piece = tuple[pq.ParquetFile, range, int, int]  # a part's row groups, and the rows (offset, count) wanted of them


@dataclass(frozen=True, eq=False)
class Listed:
    """A diff's listed rows, in `LISTED_ORDER`: `frame` in memory, or `parts` (each sorted,
    persons disjoint) with their `schema` and total `height`."""

    schema: pl.Schema
    height: int
    frame_: pl.DataFrame | None = None
    parts: tuple[Part, ...] = ()
    memory_limit: int = 1 << 30  # bytes, for ordering the rows (in memory, or by DuckDB beyond it)
    spill: SpillDir | None = field(default=None, repr=False)  # keeps the files alive

    @classmethod
    def of(cls, frame: pl.DataFrame) -> Listed:
        return cls(schema=frame.schema, height=frame.height, frame_=frame)

    @classmethod
    def spilled(cls, parts: Sequence[Part], schema: pl.Schema, spill: SpillDir, memory_limit: int) -> Listed:
        return cls(schema=schema, height=sum(p.rows for p in parts), parts=tuple(parts), memory_limit=memory_limit,
                   spill=spill)

    @classmethod
    def empty(cls, schema: pl.Schema) -> Listed:
        return cls.of(pl.DataFrame(schema=schema))

    def is_empty(self) -> bool:
        return self.height == 0

    def head(self, n: int) -> pl.DataFrame:
        """The first `n` rows."""
        if self.frame_ is not None:
            return self.frame_.head(n)
        taken: list[pl.DataFrame] = []
        held = 0
        for frame in self._ordered(n) if n > 0 else ():
            taken.append(frame)
            held += frame.height
            if held >= n:
                break
        return pl.concat([pl.DataFrame(schema=self.schema), *taken]).head(n)

    def frame(self) -> pl.DataFrame:
        """Every row as one frame: for small diffs and tests (a first night's is the
        population)."""
        if self.frame_ is not None:
            return self.frame_
        return pl.concat([pl.DataFrame(schema=self.schema), *self._ordered(BATCH_ROWS)]).rechunk()

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
        """The parts' rows in order, consecutive districts sorted together in memory up to
        `CHUNK_ROWS` rows and a share of the memory limit (an ordinary night's all at once); a
        district too large for the memory alone is ordered by DuckDB, in frames of about `rows`."""
        files = {p.path: pq.ParquetFile(p.path) for p in self.parts}
        budget = self.memory_limit // SORT_OVERHEAD
        # the districts in the order Polars sorts them (`LISTED_ORDER`: nulls last)
        districts = pl.Series([d for p in self.parts for d in p.districts], dtype=pl.String).unique()
        chunk: list[str | None] = []
        held = held_rows = 0
        for district in districts.sort(nulls_last=True).to_list():
            found = [p.districts[district] for p in self.parts if district in p.districts]
            n, size = sum(f[1] for f in found), sum(f[2] for f in found)
            if chunk and (held + size > budget or held_rows + n > CHUNK_ROWS):
                yield from self._chunk(files, chunk, held <= budget, rows)
                chunk, held, held_rows = [], 0, 0
            chunk.append(district)
            held, held_rows = held + size, held_rows + n
        if chunk:
            yield from self._chunk(files, chunk, held <= budget, rows)

    def _chunk(self, files: Mapping[Path, pq.ParquetFile], districts: list[str | None], in_memory: bool, rows: int
               ) -> Iterator[pl.DataFrame]:
        """The rows of `districts` (consecutive in order) from every part, in order: sorted in
        memory, else (one district over the budget) by DuckDB. In a part they are consecutive
        rows, read from the row groups that hold them."""
        pieces: list[Piece] = []
        for p in self.parts:
            present = [p.districts[d] for d in districts if d in p.districts]
            if not present:
                continue
            start, end = present[0][0], present[-1][0] + present[-1][1]
            first = bisect.bisect_right(p.group_starts, start) - 1
            groups = range(first, bisect.bisect_left(p.group_starts, end))
            pieces.append((files[p.path], groups, start - p.group_starts[first], end - start))
        if in_memory:
            table = pa.concat_tables([f.read_row_groups(list(groups)).slice(offset, n)
                                      for f, groups, offset, n in pieces])
            frame = pl.DataFrame(table)
            yield self._typed(frame[listed_order(frame.get_column("district_code"), frame.get_column("person_key"))])
        else:
            assert len(districts) == 1  # (a chunk over the budget is one district)
            yield from self._ordered_by_duckdb(pieces, rows)

    def _ordered_by_duckdb(self, pieces: list[Piece], rows: int) -> Iterator[pl.DataFrame]:
        """One district too large to sort in memory, ordered by DuckDB within the memory limit
        (spilling to the diff's folder)."""
        assert self.spill is not None
        schema = pieces[0][0].schema_arrow
        stream = pa.RecordBatchReader.from_batches(schema, (b for piece in pieces for b in _batches(*piece)))
        con = duckdb.connect()
        try:
            # No progress bar: DuckDB draws it on stdout, where --json output must stand alone.
            con.execute("SET enable_progress_bar = false")
            con.execute(f"SET memory_limit = '{max(DUCKDB_FLOOR, self.memory_limit) >> 20}MiB'")
            con.execute("SET temp_directory = ?", [str(self.spill.path / "duckdb.tmp")])
            con.register("district_rows", stream)
            reader = con.sql("SELECT * FROM district_rows ORDER BY person_key NULLS LAST").to_arrow_reader(rows)
            for batch in reader:
                yield self._typed(pl.DataFrame(pa.Table.from_batches([batch])))
        finally:
            con.close()

    def _typed(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(self.schema.names()).cast(self.schema)


def _batches(f: pq.ParquetFile, groups: range, offset: int, n: int) -> Iterator[pa.RecordBatch]:
    """Rows [offset, offset + n) of row groups `groups` of `f`, a row group at a time."""
    for g in groups:
        table = f.read_row_group(g)
        if offset >= table.num_rows:
            offset -= table.num_rows
            continue
        table = table.slice(offset, n)
        offset, n = 0, n - table.num_rows
        yield from table.to_batches()
        if n <= 0:
            return


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
