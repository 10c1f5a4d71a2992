"""Reading one export: bounded (regular files only, at most `[ingest] max_file_bytes`),
decoded (UTF-8 or GBK), its header checked against the feed's contract, then its contract
columns in batches with each row's location (CSV line or Parquet row index)."""

from __future__ import annotations

import codecs
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from hcode.errors import FileRejected
from hcode.feeds import Feed
from hcode.validate import parquet_type_ok


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; `FileRejected` for a symbolic
    link, a FIFO, a device or socket, or a larger file (none of them is read)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise FileRejected(f"cannot read file: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise FileRejected("is a symbolic link: refused (ingest reads only regular files, so that nothing "
                           "outside the inbox is loaded); copy the file itself in")
    if not stat.S_ISREG(st.st_mode):
        raise FileRejected("is not a regular file (a FIFO, device or socket): refused")
    if st.st_size > max_bytes:
        raise FileRejected(f"has {st.st_size:,} bytes, more than [ingest] max_file_bytes = {max_bytes:,}: refused "
                           "(raise it in hcode.toml if the file is genuine)")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise FileRejected(f"cannot read file: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # replaced since the check
            raise FileRejected("is not a regular file: refused")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew since the check
        raise FileRejected(f"has more than [ingest] max_file_bytes = {max_bytes:,} bytes: refused")
    return data


def _decode_csv(data: bytes) -> bytes:
    """UTF-8 (with or without BOM) or GBK → UTF-8 bytes without BOM."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:  # checked in slices: decoding the whole file at once would copy it (twice its size)
        utf8 = codecs.getincrementaldecoder("utf-8")()
        view, step = memoryview(data), 1 << 22
        for i in range(0, len(data), step):
            utf8.decode(view[i:i + step])
        utf8.decode(b"", final=True)
        return data
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030").encode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8 or GBK text (byte {exc.start})") from None


def _check_columns(columns: list[str], feed: Feed) -> dict[str, str]:
    """Map each contract column the file has to its header name; reject the file when a
    required one is missing (an optional column may be absent: its values are empty), or
    when a name appears twice (which of the two holds the values?)."""
    seen: dict[str, int] = {}
    for c in columns:
        seen[c.strip().lower()] = seen.get(c.strip().lower(), 0) + 1
    twice = [c for c, n in seen.items() if n > 1]
    if twice:
        raise FileRejected(f"column name{'s' if len(twice) > 1 else ''} {', '.join(twice)} appear"
                           f"{'' if len(twice) > 1 else 's'} more than once in the header: refused")
    found = {c.strip().lower(): c for c in reversed(columns)}
    missing = [c.name for c in feed.required_columns if c.name not in found]
    if missing:
        raise FileRejected(
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"for feed {feed.name} (found: {', '.join(columns) or 'none'})"
        )
    return {c.name: found[c.name] for c in feed.columns if c.name in found}


def _contract_columns(names: dict[str, str], feed: Feed) -> list[pl.Expr]:
    """The contract's columns, in its order, from the file's (an absent optional one: empty)."""
    return [pl.col(names[c.name]).alias(c.name) if c.name in names else pl.lit(None, pl.String).alias(c.name)
            for c in feed.columns]


def read_export(path: Path, data: bytes, feed: Feed, batch_rows: int
                ) -> Iterator[tuple[pl.DataFrame, pl.Series]]:
    """The contract columns as read (extra columns dropped), in batches of at most
    `batch_rows` rows, each with its rows' locations: CSV lines (header = line 1) or
    Parquet row indexes (from 0). The header (or Parquet schema) is checked before the
    first batch is yielded, so a file missing columns is rejected before anything is written."""
    is_parquet = path.suffix.lower() in (".parquet", ".pq") or data[:4] == b"PAR1"
    kind = "Parquet" if is_parquet else "CSV"
    try:
        if is_parquet:
            schema = pl.read_parquet_schema(io.BytesIO(data))
            names = _check_columns(list(schema), feed)
            wrong = [f"{c.name} ({schema[names[c.name]]})" for c in feed.columns
                     if c.name in names and not parquet_type_ok(schema[names[c.name]], c)]
            if wrong:
                raise FileRejected(f"column type cannot hold the {feed.name} contract's values: {', '.join(wrong)}")
            frame = pl.read_parquet(io.BytesIO(data), columns=list(dict.fromkeys(names.values())))
            batches = (frame.slice(i, batch_rows) for i in range(0, max(frame.height, 1), batch_rows))
            first = 0
        else:
            text = _decode_csv(data)
            # the header as written: Polars renames a repeated name (x, x_duplicated_0)
            header = [str(v) for v in pl.read_csv(io.BytesIO(text), infer_schema=False, has_header=False,
                                                  n_rows=1).row(0)]
            _check_columns(header, feed)
            header = pl.read_csv(io.BytesIO(text), infer_schema=False, has_header=True, n_rows=0).columns
            names = _check_columns(header, feed)
            frame = pl.read_csv(io.BytesIO(text), infer_schema=False, has_header=True,
                                columns=list(dict.fromkeys(names.values())))
            del text
            batches = (frame.slice(i, batch_rows) for i in range(0, max(frame.height, 1), batch_rows))
            first = 2
        for batch in batches:
            assert isinstance(batch, pl.DataFrame)
            batch = batch.select(_contract_columns(names, feed))
            yield batch, pl.int_range(first, first + batch.height, eager=True, dtype=pl.Int64).alias("line")
            first += batch.height
    except FileRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure rejects the file with its message
        raise FileRejected(f"cannot read {kind}: {exc}".splitlines()[0]) from None
