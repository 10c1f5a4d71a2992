"""Load department exports into the warehouse: read, validate, pseudonymise, store.

One file = one transaction: either its good rows, its quarantine rows and its `loads`
record are all written, or nothing is. Rows read = rows loaded + rows quarantined, always.
A row identical (in every kept column) to a stored one is the same event and stored once;
the same bytes loaded twice are a no-op reported as a duplicate.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import itertools
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from hcode.config import DEFAULT_MAX_FILE_BYTES
from hcode.errors import FileRejected, UsageError
from hcode.feeds import FEEDS, Feed, feed_for_file
from hcode.ingest.normalise import Validated, validate
from hcode.ingest.read import read_bounded, read_export
from hcode.store import audit
from hcode.store.persons import PersonIndex
from hcode.store.pseudonym import mask_expr
from hcode.store.warehouse import Warehouse, arrow, one, scalar, view
from hcode.textsafe import mask_ids, mask_ids_expr

CST = dt.timezone(dt.timedelta(hours=8), "CST")  # China Standard Time: UTC+8, no daylight saving since 1991
SUFFIXES = (".csv", ".parquet", ".pq")
BATCH_ROWS = 5_000_000  # rows validated and written at a time: bounds memory on 50M-row files


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
    people = PersonIndex(wh.key)
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
    return result


def _ingest_file(wh: Warehouse, path: Path, *, feed: str | None, now: dt.datetime, batch_date: dt.date | None,
                 operator: str | None, people: PersonIndex | None, max_bytes: int) -> LoadResult:
    name = mask_ids(path.name)  # as stored in loads, quarantine and the audit log
    feed_name = feed or feed_for_file(path.name)
    try:
        data = read_bounded(path, max_bytes)
    except FileRejected as exc:
        return LoadResult(feed_name, str(path), None, rejected=True, error=f"{name}: {exc}")
    sha = hashlib.sha256(data).hexdigest()
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
    batches = read_export(path, data, contract, BATCH_ROWS)
    try:
        first = next(batches)  # the header/schema check happens here, before any write
    except FileRejected as exc:
        return LoadResult(feed_name, str(path), sha, rejected=True, error=f"{name}: {exc}")
    read = loaded = n_bad = n_new = 0
    people = people or PersonIndex(wh.key)
    people.begin()
    try:
        with wh.transaction() as con:
            load_id = scalar(con, "SELECT coalesce(max(load_id), 0) + 1 FROM loads")
            written: list[np.ndarray] = []  # sorted row hashes of this load's earlier batches
            for raw, location in itertools.chain([first], batches):
                checked = validate(raw, contract, now, people.known_ids)
                bad = checked.bad
                batch_bad = _write_quarantine(con, raw, checked, bad, location, contract, load_id, name)
                good = checked.values.filter(~bad) if batch_bad else checked.values
                ids = _ids_of_good_rows(checked, bad, good) if batch_bad else checked.ids
                if contract.has_person and ids is not None:  # a person feed always has ids
                    people.add(con, ids, load_id)
                n_new += _write_rows(con, people, good, contract, load_id, written)
                n_bad += batch_bad
                read += raw.height
                loaded += good.height
            con.execute(
                "INSERT INTO loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                [load_id, feed_name, name, sha, read, loaded, n_new, n_bad, now_cst(), now, batch_date, operator],
            )
            audit.record(con, "load", operator, {
                "load_id": load_id, "feed": feed_name, "file": name, "sha256": sha, "rows_read": read,
                "rows_loaded": loaded, "rows_new": n_new, "rows_quarantined": n_bad,
            }, audit.load_content(con, feed_name, load_id))
    except FileRejected as exc:  # a parse error deep in the file: nothing of it was kept
        people.rollback()
        return LoadResult(feed_name, str(path), sha, rejected=True, error=f"{name}: {exc}")
    except BaseException:
        people.rollback()
        raise
    assert read == loaded + n_bad
    return LoadResult(feed_name, str(path), sha, read, loaded, n_bad, load_id=load_id, rows_new=n_new)


def _write_quarantine(con: duckdb.DuckDBPyConnection, raw: pl.DataFrame, checked: Validated, bad: pl.Series, location: pl.Series,
                      feed: Feed, load_id: int, name: str) -> int:
    n_bad = int(bad.sum())
    if not n_bad:
        return 0
    reasons = checked.reasons.filter(bad)
    raw_bad = raw.filter(bad).with_columns(mask_ids_expr(pl.all().cast(pl.String)))  # an id in any column
    if "id_number" in raw_bad.columns:
        raw_bad = raw_bad.with_columns(mask_expr(pl.col("id_number").str.strip_chars()).alias("id_number"))
    errors = pl.concat_list(
        [pl.struct(pl.lit(c).alias("column"), pl.col(c).alias("reason")) for c in reasons.columns]
    ).list.eval(pl.element().filter(pl.element().struct.field("reason").is_not_null()))
    q = pl.DataFrame({
        "load_id": pl.Series([load_id] * n_bad, dtype=pl.Int32),
        "feed": [feed.name] * n_bad,
        "file_name": [name] * n_bad,
        "line": location.filter(bad),
        "errors": reasons.with_columns(mask_ids_expr(pl.all())).select(errors.alias("errors")).to_series(),
        "raw": raw_bad.select(pl.struct(pl.all()).struct.json_encode()).to_series(),
    })
    with view(con, "_hcode_quarantine", q):
        con.execute("INSERT INTO quarantine SELECT * FROM _hcode_quarantine")
    return n_bad


def _ids_of_good_rows(checked: Validated, bad: pl.Series, good: pl.DataFrame) -> pl.Series | None:
    """The valid ids that have a good row: an id seen only on quarantined rows (bad in
    another column) does not make a person."""
    ids = checked.ids
    if ids is None:
        return None
    only_bad = checked.values.get_column("id_number").filter(bad).drop_nulls().unique()
    if only_bad.len():
        in_good = good.get_column("id_number")
        only_bad = only_bad.filter(~only_bad.is_in(in_good.filter(in_good.is_in(only_bad.implode())).implode()))
        ids = ids.filter(~ids.is_in(only_bad.implode()))
    return ids


def _first_of_each(frame: pl.DataFrame, hashes: pl.Series, h: np.ndarray) -> pl.Series | None:
    """A mask keeping the first of identical rows, or None when no two rows are identical.
    Rows are compared exactly, but only those whose hash occurs twice (a sort of 8-byte
    hashes instead of a hash table of whole rows); `h` is `hashes` sorted."""
    twice = h[1:][h[1:] == h[:-1]]
    if not twice.size:
        return None
    idx = hashes.is_in(pl.Series(np.unique(twice)).implode()).arg_true()
    return pl.repeat(True, frame.height, eager=True).scatter(
        idx, frame[idx].select(pl.struct(pl.all()).is_first_distinct()).to_series())


def _found(sorted_a: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    """Which values of `sorted_b` are in `sorted_a` (both sorted: binary searches of sorted
    keys run without random access)."""
    at = np.minimum(np.searchsorted(sorted_a, sorted_b), max(sorted_a.size - 1, 0))
    return sorted_a[at] == sorted_b if sorted_a.size else np.zeros(sorted_b.size, dtype=bool)


def _write_rows(con: duckdb.DuckDBPyConnection, people: PersonIndex, good: pl.DataFrame, feed: Feed, load_id: int,
                written: list[np.ndarray]) -> int:
    """Insert the rows not already stored; returns how many were new.

    Identical rows have identical event times, so only stored rows within this batch's
    event-time range can repeat one of its rows. When no earlier load has a row in that
    range (a first load, or a night of new events), the batch is inserted as it is, minus
    its own repeats and rows that repeat an earlier batch of this file (found by row hash,
    then compared exactly). Otherwise the batch is compared, by EXCEPT, with the stored rows
    of its persons within its range: a night's increment is checked against the few rows it
    could repeat, not against the whole history. `written` collects the row hashes of the
    file's batches."""
    if good.is_empty():
        return 0
    t = feed.event_time
    lo, hi = good.select(pl.col(t).min().alias("lo"), pl.col(t).max().alias("hi")).row(0)
    hashes = good.hash_rows()
    h = np.sort(hashes.to_numpy())
    earlier = one(con, f"SELECT 1 FROM {feed.table} WHERE {t} BETWEEN ? AND ? AND load_id <> ? LIMIT 1",
                  [lo, hi, load_id])
    if earlier:
        n = _insert(con, people, good, feed, load_id, dedupe=(lo, hi))
    else:
        keep = _first_of_each(good, hashes, h)
        again = None
        if written:  # rows whose hash an earlier batch of this file wrote: compare them exactly
            seen = np.unique(np.concatenate([h[_found(before, h)] for before in written]))
            if seen.size:
                again = hashes.is_in(pl.Series(seen).implode())
        if again is None:
            n = _insert(con, people, good if keep is None else good.filter(keep), feed, load_id)
        else:
            keep = ~again if keep is None else keep & ~again
            n = _insert(con, people, good.filter(keep), feed, load_id)
            rest = good.filter(again)
            r_lo, r_hi = rest.select(pl.col(t).min().alias("lo"), pl.col(t).max().alias("hi")).row(0)
            n += _insert(con, people, rest, feed, load_id, dedupe=(r_lo, r_hi))
    written.append(h)
    return n


def _insert(con: duckdb.DuckDBPyConnection, people: PersonIndex, rows: pl.DataFrame, feed: Feed, load_id: int,
            dedupe: tuple[Any, ...] | None = None) -> int:
    """INSERT `rows` (with `id_number` → `pid` joined inside DuckDB); with `dedupe` = (lo, hi),
    only those not already stored among the rows of the same persons with event times in
    [lo, hi] (EXCEPT is a set operation: it also drops repeats within `rows`)."""
    if rows.is_empty():
        return 0
    cols = ", ".join(c.name for c in feed.stored_columns)
    if feed.has_person:
        source = f"SELECT m.pid, {cols} FROM _hcode_good JOIN _hcode_pids m USING (id_number)"
        keycols, same_persons = f"pid, {cols}", "AND pid IN (SELECT pid FROM _hcode_pids WHERE id_number IN " \
                                                "(SELECT id_number FROM _hcode_good))"
    else:
        source, keycols, same_persons = f"SELECT {cols} FROM _hcode_good", cols, ""
    # Registrations are stored in pid order: every run reads all of them to build its
    # population, which is 8x faster from rows (nearly) in pid order (evaluate.population).
    # New persons get new, higher pids, so a night's rows land after the earlier ones.
    order = " ORDER BY pid" if feed.name == "registrations" else ""
    if dedupe is None:
        sql, params = f"INSERT INTO {feed.table} SELECT *, {load_id} FROM ({source}){order}", []
    else:
        sql = (f"INSERT INTO {feed.table} SELECT *, {load_id} FROM ({source} EXCEPT SELECT {keycols} "
               f"FROM {feed.table} WHERE {feed.event_time} BETWEEN ? AND ? {same_persons}){order}")
        params = list(dedupe)
    with ExitStack() as views:
        if feed.has_person:
            views.enter_context(view(con, "_hcode_pids", arrow(people.map)))
        views.enter_context(view(con, "_hcode_good", arrow(rows)))
        return int(scalar(con, sql, params))
