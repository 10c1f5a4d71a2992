"""Load department exports into the warehouse: read, validate, pseudonymise, store.

One file = one transaction: either its good rows, its quarantine rows and its `loads`
record are all written, or nothing is (the batches wait in temporary tables until then:
`hcode.ingest.stage`). Rows read = rows loaded + rows quarantined, always.
A row identical (in every kept column) to a stored one is the same event and stored once
(a later load that sends it again has a `repeats` row for it: `hcode.ingest.write`); the
same bytes loaded twice are a no-op reported as a duplicate. When the warehouse keeps a
lake (`hcode.store.lake`), a file's rows reach it right after the file's transaction
commits, and a session starts by bringing the whole lake in step (after a crash between the
two).
"""

from __future__ import annotations

import datetime as dt
import getpass
import itertools
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from hcode.config import DEFAULT_MAX_FILE_BYTES, load_config
from hcode.errors import FileRejected, UsageError
from hcode.feeds import FEEDS, Feed, feed_for_file
from hcode.ingest.read import read_export, scan_file
from hcode.ingest.stage import Stage
from hcode.ingest.write import WrittenHashes, ids_of_good_rows, write_quarantine, write_rows
from hcode.profiling import Stages
from hcode.store import audit
from hcode.store.lake import keep_lake
from hcode.store.persons import EMPTY, KnownRuns, PersonIndex
from hcode.store.warehouse import Warehouse, one, private_files, scalar
from hcode.textsafe import mask_ids
from hcode.validate import Validated, validate

CST = dt.timezone(dt.timedelta(hours=8), "CST")  # China Standard Time: UTC+8, no daylight saving since 1991
SUFFIXES = (".csv", ".parquet", ".pq")


def now_cst() -> dt.datetime:
    """The current moment in China Standard Time, naive (as every stored timestamp)."""
    return dt.datetime.now(CST).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class LoadResult:
    feed: str | None
    file: str
    sha256: str | None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    duplicate: bool = False
    rejected: bool = False
    error: str | None = None
    load_id: int | None = None
    rows_new: int = 0

    def __post_init__(self) -> None:
        if self.error is not None:  # parser messages quote the file's text: no id leaves masked-less
            object.__setattr__(self, "error", mask_ids(self.error))

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("rows_new")
        d["file"] = mask_ids(d["file"])
        return d


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders as their export files (sorted by name, not recursive). A
    symbolic link or a non-regular entry (FIFO, device) with an export's suffix is listed
    too, so that ingest refuses it with a message instead of passing over it in silence."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not p.is_symlink():
            out += sorted(f for f in p.iterdir()
                          if f.suffix.lower() in SUFFIXES and (f.is_symlink() or not f.is_dir()))
        else:
            out.append(p)
    return out


def require_paths(paths: Iterable[str | Path]) -> None:
    """Refuse (a usage error) paths that do not exist, naming them all."""
    missing = [str(p) for p in paths if not (Path(p).exists() or Path(p).is_symlink())]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")


@dataclass(frozen=True)
class IngestResult:
    """What one ingest session did: one `LoadResult` per file, in the order loaded."""

    files: tuple[LoadResult, ...]

    @property
    def rejected(self) -> tuple[LoadResult, ...]:
        return tuple(r for r in self.files if r.rejected)

    @property
    def duplicates(self) -> tuple[LoadResult, ...]:
        return tuple(r for r in self.files if r.duplicate)

    @property
    def rows_read(self) -> int:
        return sum(r.rows_read for r in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(r.rows_loaded for r in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(r.rows_quarantined for r in self.files)

    def as_json(self) -> dict[str, Any]:
        """What `hcode ingest --json` prints."""
        return {"files": [r.as_json() for r in self.files]}


def ingest_paths(wh: Warehouse, paths: Iterable[str | Path], *, feed: str | None = None,
                 now: dt.datetime | None = None, batch_date: dt.date | None = None, operator: str | None = None,
                 on_file: Callable[[Path], None] | None = None,
                 on_loaded: Callable[[int, Path, LoadResult], None] | None = None,
                 max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> IngestResult:
    """Load every export file of `paths` (files, or folders of them: `expand`) in one session:
    ids are validated and mapped to persons once per session (one `PersonIndex` shared by
    every file). Files are independent: a rejected file does not stop the others.
    `on_file(path)` is called before a file is loaded, `on_loaded(n, path, result)` after
    (n counts from 1): progress bars, archiving, crash points. A file over `max_bytes`
    (`[ingest] max_file_bytes`), a symbolic link or a non-regular file is rejected unread."""
    now = now or now_cst()
    operator = operator or getpass.getuser()
    people = PersonIndex(wh.key, load_config(wh.path).memory_limit)
    keep_lake(wh.con, wh.path)
    results = []
    for n, path in enumerate(expand(paths), start=1):
        if on_file:
            on_file(path)
        result = ingest_file(wh, path, feed=feed, now=now, batch_date=batch_date, operator=operator, people=people,
                             max_bytes=max_bytes)
        results.append(result)
        if on_loaded:
            on_loaded(n, path, result)
    return IngestResult(tuple(results))


def ingest(wh: Warehouse, paths: Iterable[str | Path], *, feed: str | None = None,
           now: dt.datetime | None = None, batch_date: dt.date | None = None, operator: str | None = None,
           on_file: Callable[[Path], None] | None = None,
           max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> list[LoadResult]:
    """`ingest_paths` as a list of `LoadResult`s."""
    return list(ingest_paths(wh, paths, feed=feed, now=now, batch_date=batch_date, operator=operator,
                             on_file=on_file, max_bytes=max_bytes).files)


def _validated_ahead(batches: Iterator[tuple[pl.DataFrame, pl.Series]], contract: Feed, now: dt.datetime,
                     people: PersonIndex) -> Generator[tuple[pl.DataFrame, pl.Series, Validated, int], None, None]:
    """(rows as read, their locations, `validate`'s verdict, how many ids the session had
    mapped when it was validated) of each batch, the next batch read and validated on a
    thread while the caller writes this one: validation is Polars work and writing is
    mostly DuckDB's, and each alone keeps two cores busy only part of the time. The next
    batch is validated against the ids mapped before this one's persons were added, so its
    new ids may include some of them: the caller filters them again against the later
    mappings (`PersonIndex.unknown`). The reading thread stops with the generator.

    No Polars object is used by both threads: the thread is handed the known ids as frames of
    its own (`PersonIndex.known_ids`, clones of the map's runs), and the caller touches a
    batch only once the thread is done with it (two threads calling one Polars frame can
    deadlock: pola-rs/polars#27472)."""

    def next_validated(known: KnownRuns) -> tuple[pl.DataFrame, pl.Series, Validated, int] | None:
        item = next(batches, None)
        if item is None:
            return None
        raw, location = item
        return raw, location, validate(raw, contract, now, known), known.size

    with ThreadPoolExecutor(1, thread_name_prefix="hcode-validate") as pool:
        pending = pool.submit(next_validated, people.known_ids)
        try:
            while (done := pending.result()) is not None:
                pending = pool.submit(next_validated, people.known_ids)
                yield done
        finally:
            pending.cancel()


def ingest_file(wh: Warehouse, path: Path, *, feed: str | None = None, now: dt.datetime,
                batch_date: dt.date | None = None, operator: str | None = None,
                people: PersonIndex | None = None, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> LoadResult:
    """Load one file (see the module docstring). A rejected file leaves a `reject` entry in
    the audit log (file, feed, content hash, the reason, the batch date): the night's report
    derives its rejected-file warnings from them, so a rerun after a crash still names them."""
    result = _ingest_file(wh, path, feed=feed, now=now, batch_date=batch_date, operator=operator, people=people,
                          max_bytes=max_bytes)
    if result.rejected:
        with wh.transaction() as con:
            audit.record(con, "reject", operator, {
                "file": mask_ids(path.name), "feed": result.feed, "sha256": result.sha256, "error": result.error,
                "batch_date": (batch_date or now.date()).isoformat()})
    elif not result.duplicate and result.feed is not None:
        keep_lake(wh.con, wh.path, [result.feed])
    return result


def _ingest_file(wh: Warehouse, path: Path, *, feed: str | None, now: dt.datetime, batch_date: dt.date | None,
                 operator: str | None, people: PersonIndex | None, max_bytes: int) -> LoadResult:
    name = mask_ids(path.name)  # as stored in loads, quarantine and the audit log
    feed_name = feed or feed_for_file(path.name)
    try:
        scanned = scan_file(path, max_bytes)
    except FileRejected as exc:
        return LoadResult(feed_name, str(path), None, rejected=True, error=f"{name}: {exc}")
    sha = scanned.sha256
    if feed_name not in FEEDS:
        msg = (f"unknown feed {feed_name!r}" if feed else
               f"cannot tell the feed from the file name {name!r}: name it <feed>.csv "
               f"(one of {', '.join(FEEDS)}) or pass --feed")
        return LoadResult(feed_name, str(path), sha, rejected=True, error=msg)
    contract = FEEDS[feed_name]
    # The same bytes again are a duplicate, except a file without rows sent on another day:
    # it says "nothing to send" for that day, and the feed is not late (docs/configuration.md).
    prior = one(wh.con,
        "SELECT load_id FROM loads WHERE sha256 = ? AND retracted_at IS NULL "
        "AND (rows_read > 0 OR coalesce(batch_date, CAST(clock AS DATE)) = ?) ORDER BY load_id LIMIT 1",
        [sha, batch_date or now.date()]
    )
    if prior:
        return LoadResult(feed_name, str(path), sha, duplicate=True, load_id=prior[0])
    batches = read_export(path, scanned, contract, max_bytes=max_bytes,
                          batch_rows=load_config(wh.path).ingest_batch_rows)  # the memory knob
    try:
        first = next(batches)  # the header/schema check happens here, before any write
    except FileRejected as exc:
        return LoadResult(feed_name, str(path), sha, rejected=True, error=f"{name}: {exc}")
    read = loaded = n_bad = n_new = 0
    s = Stages(f"ingest {feed_name}")
    people = people or PersonIndex(wh.key, load_config(wh.path).memory_limit)
    people.begin()
    stage = Stage(contract)
    con = wh.con
    try:
        with private_files():  # (the stage spills to DuckDB's temporary folder)
            load_id = scalar(con, "SELECT coalesce(max(load_id), 0) + 1 FROM loads")  # (one writer: the lock)
            stage.create(con)
            written = WrittenHashes(wh.key)  # row hashes of this load's earlier batches
            with closing(_validated_ahead(itertools.chain([first], batches), contract, now, people)) as checked_batches:
                for raw, location, checked, mapped in checked_batches:
                    s.tick("read, validate (waiting for it)")
                    bad = checked.bad
                    batch_bad = write_quarantine(con, raw, checked, bad, location, contract, load_id, name,
                                                 into=stage.quarantine)
                    good = checked.values.filter(~bad) if batch_bad else checked.values
                    ids = ids_of_good_rows(checked, bad, good) if batch_bad else checked.ids
                    s.tick(f"quarantine ({batch_bad:,} rows; {0 if ids is None else ids.len():,} ids not seen before)")
                    if contract.has_person and ids is not None:  # a person feed always has ids
                        people.add(con, people.unknown(ids, since=mapped), load_id, into=stage.persons)
                    s.tick("persons")
                    pids = people.for_batch(checked.known, since=mapped) if contract.has_person else EMPTY
                    n_new += write_rows(con, pids, good, stage, load_id, written)
                    s.tick("rows")
                    n_bad += batch_bad
                    read += raw.height
                    loaded += good.height
        with wh.transaction() as con:
            moved = stage.move(con)
            s.tick("move")
            con.execute(
                "INSERT INTO loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                [load_id, feed_name, name, sha, read, loaded, n_new, n_bad, now_cst(), now, batch_date, operator],
            )
            audit.record(con, "load", operator, {
                "load_id": load_id, "feed": feed_name, "file": name, "sha256": sha, "rows_read": read,
                "rows_loaded": loaded, "rows_new": n_new, "rows_quarantined": n_bad,
            }, audit.load_content(con, feed_name, load_id, empty=[t for t, n in moved.items() if not n]))
    except FileRejected as exc:  # a parse error deep in the file: nothing of it was kept
        people.rollback()
        return LoadResult(feed_name, str(path), sha, rejected=True, error=f"{name}: {exc}")
    except BaseException:
        people.rollback()
        raise
    finally:
        stage.drop(wh.con)
    s.tick("digest, commit")
    assert read == loaded + n_bad
    return LoadResult(feed_name, str(path), sha, read, loaded, n_bad, load_id=load_id, rows_new=n_new)
