"""Reading one export file, streamed: never whole in memory, and only a regular file within
`[ingest] max_file_bytes`.

`open_regular` refuses a symbolic link, a FIFO, a device or socket, and a file larger than
the limit before a byte is read; `scan_file` hashes the file and finds its encoding in
CHUNK-sized reads (a file that grows past the limit while read is refused); `read_export`
parses the contract columns in batches of rows, after checking that the path still names the
file scanned. A file that is not UTF-8 is transcoded CHUNK by CHUNK into a temporary copy.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl

from hcode.errors import FileRejected
from hcode.feeds import Feed
from hcode.validate import parquet_type_ok

CHUNK = 1 << 22  # bytes read at a time to hash, check and transcode a file
BATCH_ROWS = 5_000_000  # rows validated and written at a time: bounds memory on 50M-row files


@dataclass(frozen=True)
class Scanned:
    """What one pass over a file found: its SHA-256, its encoding ("parquet", "utf-8",
    "utf-8-sig" or "gb18030") and which file it was (device, inode), so that the parse reads
    the same one."""

    sha256: str
    encoding: str
    ident: tuple[int, int]


def _check_stat(st: os.stat_result, max_bytes: int) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise FileRejected("is a symbolic link: refused (ingest reads only regular files, so that nothing "
                           "outside the inbox is loaded); copy the file itself in")
    if not stat.S_ISREG(st.st_mode):
        raise FileRejected("is not a regular file (a FIFO, device or socket): refused")
    if st.st_size > max_bytes:
        raise FileRejected(f"has {st.st_size:,} bytes, more than [ingest] max_file_bytes = {max_bytes:,}: refused "
                           "(raise it in hcode.toml if the file is genuine)")


def open_regular(path: Path, max_bytes: int) -> BinaryIO:
    """The file opened for reading, when it is a regular file of at most `max_bytes`;
    `FileRejected` for a symbolic link, a FIFO, a device or socket, or a larger file (none of
    them is opened for reading)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise FileRejected(f"cannot read file: {exc.strerror}") from None
    _check_stat(st, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise FileRejected(f"cannot read file: {exc.strerror}") from None
    fh = os.fdopen(fd, "rb")
    try:
        _check_stat(os.fstat(fh.fileno()), max_bytes)  # replaced since the check
    except FileRejected:
        fh.close()
        raise
    return fh


def scan_file(path: Path, max_bytes: int) -> Scanned:
    """The file's SHA-256, encoding and identity in one pass of CHUNK-sized reads (the file is
    never whole in memory); `FileRejected` as `open_regular`, or when it grew past `max_bytes`."""
    sha, utf8 = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")()
    head, ok, size = b"", True, 0
    with open_regular(path, max_bytes) as fh:
        st = os.fstat(fh.fileno())
        while chunk := fh.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:  # grew since the check
                raise FileRejected(f"has more than [ingest] max_file_bytes = {max_bytes:,} bytes: refused")
            sha.update(chunk)
            if not head:
                head = chunk[:4]
            if ok:
                try:
                    utf8.decode(chunk)
                except UnicodeDecodeError:
                    ok = False
    if ok:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            ok = False
    if head == b"PAR1" or path.suffix.lower() in (".parquet", ".pq"):
        encoding = "parquet"
    elif ok:
        encoding = "utf-8-sig" if head.startswith(b"\xef\xbb\xbf") else "utf-8"
    else:
        encoding = "gb18030"
    return Scanned(sha.hexdigest(), encoding, (st.st_dev, st.st_ino))


def _same_file(path: Path, scanned: Scanned, max_bytes: int) -> None:
    """Refuse the file when its path no longer names the regular file scanned."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise FileRejected(f"cannot read file: {exc.strerror}") from None
    _check_stat(st, max_bytes)
    if (st.st_dev, st.st_ino) != scanned.ident:
        raise FileRejected("was replaced while being read: refused")


def _utf8_copy(path: Path, encoding: str, target: Path, max_bytes: int) -> Path:
    """The CSV as UTF-8 without BOM in `target`, transcoded CHUNK by CHUNK (GBK files, and
    UTF-8 ones starting with a BOM); a byte that is not GBK either rejects the file."""
    decoder = codecs.getincrementaldecoder(encoding)()
    done = 0
    with open_regular(path, max_bytes) as src, target.open("wb") as dst:
        while chunk := src.read(CHUNK):
            try:
                dst.write(decoder.decode(chunk).encode("utf-8"))
            except UnicodeDecodeError as exc:
                raise FileRejected(f"not UTF-8 or GBK text (byte {done + exc.start})") from None
            done += len(chunk)
            if done > max_bytes:
                raise FileRejected(f"has more than [ingest] max_file_bytes = {max_bytes:,} bytes: refused")
        try:
            dst.write(decoder.decode(b"", final=True).encode("utf-8"))
        except UnicodeDecodeError as exc:
            raise FileRejected(f"not UTF-8 or GBK text (byte {done + exc.start})") from None
    return target


def check_columns(columns: list[str], feed: Feed) -> dict[str, str]:
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


def read_export(path: Path, scanned: Scanned, feed: Feed, batch_rows: int | None = None,
                max_bytes: int | None = None) -> Iterator[tuple[pl.DataFrame, pl.Series]]:
    """The contract columns as read (extra columns dropped), streamed from the file in batches
    of at most `batch_rows` rows (the file is never whole in memory), each with its rows'
    locations: CSV lines (header = line 1) or Parquet row indexes (from 0). The header (or
    Parquet schema) is checked before the first batch is yielded, so a file missing columns is
    rejected before anything is written. `scanned` is `scan_file`'s: the path must still name
    that file (regular, within `max_bytes`)."""
    batch_rows = min(batch_rows or BATCH_ROWS, BATCH_ROWS)  # (the memory knob's rows, at most BATCH_ROWS)
    limit = max_bytes if max_bytes is not None else 1 << 62
    encoding = scanned.encoding
    kind = "Parquet" if encoding == "parquet" else "CSV"
    with ExitStack() as stack:
        try:
            _same_file(path, scanned, limit)
            if encoding == "parquet":
                schema = pl.read_parquet_schema(path)
                names = check_columns(list(schema), feed)
                wrong = [f"{c.name} ({schema[names[c.name]]})" for c in feed.columns
                         if c.name in names and not parquet_type_ok(schema[names[c.name]], c)]
                if wrong:
                    raise FileRejected(f"column type cannot hold the {feed.name} contract's values: "
                                       f"{', '.join(wrong)}")
                lf = pl.scan_parquet(path)
                first = 0
            else:
                source = path
                if encoding != "utf-8":
                    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hcode-ingest-")))
                    source = _utf8_copy(path, encoding, tmp / "utf8.csv", limit)
                # the header as written: Polars renames a repeated name (x, x_duplicated_0)
                header = [str(v) for v in pl.read_csv(source, infer_schema=False, has_header=False,
                                                      n_rows=1).row(0)]
                check_columns(header, feed)
                header = pl.read_csv(source, infer_schema=False, has_header=True, n_rows=0).columns
                names = check_columns(header, feed)
                lf = pl.scan_csv(source, infer_schema=False, has_header=True)
                first = 2
            lf = lf.select(_contract_columns(names, feed))
            empty = True
            for batch in lf.collect_batches(chunk_size=batch_rows):
                for i in range(0, batch.height, batch_rows):  # chunk_size is a hint: cut to the bound
                    part = batch.slice(i, batch_rows)
                    yield part, pl.int_range(first, first + part.height, eager=True, dtype=pl.Int64).alias("line")
                    first += part.height
                    empty = False
            if empty:  # a header without rows: one empty batch, as a file that says "nothing to send"
                yield lf.clear().collect(), pl.Series("line", [], dtype=pl.Int64)
        except FileRejected:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser failure rejects the file with its message
            raise FileRejected(f"cannot read {kind}: {exc}".splitlines()[0]) from None
