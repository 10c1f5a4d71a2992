"""A feed's file written block by block: `night.generate_and_write` appends each block's rows.

CSV: the header (and a UTF-8 BOM for `utf-8-sig`) once, then every block's rows, in the
feed's encoding; the bytes are those of writing all the rows at once. Parquet: a night of
one block is written by Polars exactly as `night.write_feed` writes it; a night of several
blocks through `pyarrow.parquet.ParquetWriter` (the same compression), every column text,
one or more row groups per block.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP = 1 << 20  # rows per Parquet row group (a block's rows are converted a group at a time)


class FeedWriter:
    """Appends frames of one feed (same columns each time) to `path`."""

    def __init__(self, path: Path, fmt: str, encoding: str = "utf-8", *, one_block: bool = False) -> None:
        self.path, self.fmt, self.encoding, self.one_block = path, fmt, encoding, one_block
        self.frames = 0
        self._csv: BinaryIO | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, frame: pl.DataFrame) -> None:
        first = self.frames == 0
        self.frames += 1
        if self.fmt == "parquet":
            self._write_parquet(frame, first)
            return
        if self._csv is None:
            self._csv = self.path.open("wb")
        if self.encoding in ("utf-8", "utf-8-sig"):
            frame.write_csv(self._csv, include_header=first, include_bom=first and self.encoding == "utf-8-sig")
        else:
            self._csv.write(frame.write_csv(include_header=first).encode(self.encoding))

    def _write_parquet(self, frame: pl.DataFrame, first: bool) -> None:
        if self.one_block:
            if not first:
                raise RuntimeError(f"{self.path.name}: a one-block night writes its Parquet file once")
            frame.write_parquet(self.path, compression="zstd", compression_level=1, statistics=False)
            return
        if self._parquet is None:
            self._schema = pa.schema([pa.field(c, pa.large_string()) for c in frame.columns])
            self._parquet = pq.ParquetWriter(self.path, self._schema, compression="zstd", compression_level=1,
                                             write_statistics=False)
        assert self._schema is not None
        if frame.columns != self._schema.names:
            raise ValueError(f"{self.path.name}: columns {frame.columns} differ from {self._schema.names}")
        for start in range(0, frame.height, ROW_GROUP):
            part = frame.slice(start, ROW_GROUP).to_arrow().cast(self._schema)
            self._parquet.write_table(part, row_group_size=ROW_GROUP)

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None

    def __enter__(self) -> FeedWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
