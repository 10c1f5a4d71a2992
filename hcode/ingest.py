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
import io
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from . import audit
from .errors import FileRejected
from .feeds import FEEDS, Feed, feed_for_file
from .normalise import parquet_type_ok, validate
from .persons import PersonIndex
from .pseudonym import mask_expr
from .warehouse import Warehouse, one

CST = dt.timezone(dt.timedelta(hours=8), "CST")  # China Standard Time: UTC+8, no daylight saving since 1991
SUFFIXES = (".csv", ".parquet", ".pq")
BATCH_ROWS = 2_000_000  # rows validated and written at a time: bounds memory on 50M-row files


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

    def as_json(self) -> dict:
        d = asdict(self)
        d.pop("rows_new")
        return d


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders as their export files (sorted by name, not recursive)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
        else:
            out.append(p)
    return out


def _decode_csv(data: bytes) -> bytes:
    """UTF-8 (with or without BOM) or GBK → UTF-8 bytes without BOM."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030").encode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8 or GBK text (byte {exc.start})") from None


def _check_columns(columns: list[str], feed: Feed) -> dict[str, str]:
    """Map each contract column to the file's header name; reject the file when one is missing."""
    found = {c.strip().lower(): c for c in reversed(columns)}
    missing = [c.name for c in feed.columns if c.name not in found]
    if missing:
        raise FileRejected(
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"for feed {feed.name} (found: {', '.join(columns) or 'none'})"
        )
    return {c.name: found[c.name] for c in feed.columns}


def read_export(path: Path, data: bytes, feed: Feed, batch_rows: int | None = None
                ) -> Iterator[tuple[pl.DataFrame, pl.Series]]:
    """The contract columns as read (extra columns dropped), in batches of at most
    `batch_rows` rows, each with its rows' locations: CSV lines (header = line 1) or
    Parquet row indexes (from 0). The header (or Parquet schema) is checked before the
    first batch is yielded, so a file missing columns is rejected before anything is written."""
    batch_rows = batch_rows or BATCH_ROWS
    is_parquet = path.suffix.lower() in (".parquet", ".pq") or data[:4] == b"PAR1"
    kind = "Parquet" if is_parquet else "CSV"
    try:
        if is_parquet:
            schema = pl.read_parquet_schema(io.BytesIO(data))
            names = _check_columns(list(schema), feed)
            wrong = [f"{c.name} ({schema[names[c.name]]})" for c in feed.columns
                     if not parquet_type_ok(schema[names[c.name]], c)]
            if wrong:
                raise FileRejected(f"column type cannot hold the {feed.name} contract's values: {', '.join(wrong)}")
            frame = pl.read_parquet(io.BytesIO(data), columns=list(dict.fromkeys(names.values())))
            batches = (frame.slice(i, batch_rows) for i in range(0, max(frame.height, 1), batch_rows))
            first = 0
        else:
            text = _decode_csv(data)
            header = pl.read_csv(io.BytesIO(text), infer_schema=False, has_header=True, n_rows=0).columns
            names = _check_columns(header, feed)
            frame = pl.read_csv(io.BytesIO(text), infer_schema=False, has_header=True,
                                columns=list(dict.fromkeys(names.values())))
            del text
            batches = (frame.slice(i, batch_rows) for i in range(0, max(frame.height, 1), batch_rows))
            first = 2
        for batch in batches:
            assert isinstance(batch, pl.DataFrame)
            batch = batch.select([pl.col(names[c.name]).alias(c.name) for c in feed.columns])
            yield batch, pl.int_range(first, first + batch.height, eager=True, dtype=pl.Int64).alias("line")
            first += batch.height
    except FileRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure rejects the file with its message
        raise FileRejected(f"cannot read {kind}: {exc}".splitlines()[0]) from None


def ingest(wh: Warehouse, paths: Iterable[str | Path], *, feed: str | None = None,
           now: dt.datetime | None = None, batch_date: dt.date | None = None, operator: str | None = None,
           on_file: Callable[[Path], None] | None = None) -> list[LoadResult]:
    """Load every file of `paths`; files are independent (a rejected file does not stop the others)."""
    now = now or now_cst()
    operator = operator or getpass.getuser()
    people = PersonIndex(wh.key)
    results = []
    for path in expand(paths):
        if on_file:
            on_file(path)
        results.append(ingest_file(wh, path, feed=feed, now=now, batch_date=batch_date, operator=operator,
                                   people=people))
    return results


def ingest_file(wh: Warehouse, path: Path, *, feed: str | None = None, now: dt.datetime,
                batch_date: dt.date | None = None, operator: str | None = None,
                people: PersonIndex | None = None) -> LoadResult:
    name = path.name
    feed_name = feed or feed_for_file(name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return LoadResult(feed_name, str(path), None, rejected=True, error=f"cannot read file: {exc.strerror}")
    sha = hashlib.sha256(data).hexdigest()
    if feed_name not in FEEDS:
        msg = (f"unknown feed {feed_name!r}" if feed else
               f"cannot tell the feed from the file name {name!r}: name it <feed>.csv "
               f"(one of {', '.join(FEEDS)}) or pass --feed")
        return LoadResult(feed_name, str(path), sha, rejected=True, error=msg)
    contract = FEEDS[feed_name]
    prior = one(wh.con,
        "SELECT load_id FROM loads WHERE sha256 = ? AND retracted_at IS NULL ORDER BY load_id LIMIT 1", [sha]
    )
    if prior:
        return LoadResult(feed_name, str(path), sha, duplicate=True, load_id=prior[0])
    batches = read_export(path, data, contract)
    try:
        first = next(batches)  # the header/schema check happens here, before any write
    except FileRejected as exc:
        return LoadResult(feed_name, str(path), sha, rejected=True, error=f"{name}: {exc}")
    read = loaded = n_bad = n_new = 0
    people = people or PersonIndex(wh.key)
    people.begin()
    try:
        with wh.transaction() as con:
            load_id = one(con, "SELECT coalesce(max(load_id), 0) + 1 FROM loads")[0]
            for raw, location in itertools.chain([first], batches):
                checked = validate(raw, contract, now, people.known_ids)
                bad = checked.bad
                n_bad += _write_quarantine(con, raw, checked, bad, location, contract, load_id, name)
                good = checked.values.filter(~bad)
                n_new += _write_rows(con, people, good, contract, load_id)
                read += raw.height
                loaded += good.height
            con.execute(
                "INSERT INTO loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                [load_id, feed_name, name, sha, read, loaded, n_new, n_bad, now_cst(), now, batch_date, operator],
            )
            audit.record(con, "load", operator, {
                "load_id": load_id, "feed": feed_name, "file": name, "sha256": sha, "rows_read": read,
                "rows_loaded": loaded, "rows_new": n_new, "rows_quarantined": n_bad,
            })
    except FileRejected as exc:  # a parse error deep in the file: nothing of it was kept
        people.rollback()
        return LoadResult(feed_name, str(path), sha, rejected=True, error=f"{name}: {exc}")
    except BaseException:
        people.rollback()
        raise
    assert read == loaded + n_bad
    return LoadResult(feed_name, str(path), sha, read, loaded, n_bad, load_id=load_id, rows_new=n_new)


def _write_quarantine(con, raw: pl.DataFrame, checked, bad: pl.Series, location: pl.Series,
                      feed: Feed, load_id: int, name: str) -> int:
    n_bad = int(bad.sum())
    if not n_bad:
        return 0
    reasons = checked.reasons.filter(bad)
    raw_bad = raw.filter(bad).with_columns(pl.all().cast(pl.String))
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
        "errors": reasons.select(errors.alias("errors")).to_series(),
        "raw": raw_bad.select(pl.struct(pl.all()).struct.json_encode()).to_series(),
    })
    con.register("_hcode_quarantine", q)
    con.execute("INSERT INTO quarantine SELECT * FROM _hcode_quarantine")
    con.unregister("_hcode_quarantine")
    return n_bad


def _write_rows(con, people: PersonIndex, good: pl.DataFrame, feed: Feed, load_id: int) -> int:
    """Insert the rows not already stored; returns how many were new.

    Identical rows have identical event times, so the stored rows compared against are only
    those of this batch's persons within its event-time range: a night's increment is
    checked against the few rows it could repeat, not against the whole history."""
    if good.is_empty():
        return 0
    cols = [c.name for c in feed.stored_columns]
    collist = ", ".join(cols)
    if feed.has_person:
        ids = people.pids(con, good.get_column("id_number"))
        good = good.join(ids, on="id_number", how="inner").select("pid", *cols)
        keycols, same_persons = f"pid, {collist}", "AND pid IN (SELECT pid FROM _hcode_good)"
    else:
        keycols, same_persons = collist, ""
    t = feed.event_time
    lo, hi = good.select(pl.col(t).min().alias("lo"), pl.col(t).max().alias("hi")).row(0)
    con.register("_hcode_good", good)
    try:
        # EXCEPT is a set operation: it also drops duplicates within the batch.
        inserted = con.execute(
            f"INSERT INTO {feed.table} SELECT *, {load_id} FROM (SELECT {keycols} FROM _hcode_good EXCEPT "
            f"SELECT {keycols} FROM {feed.table} WHERE {t} BETWEEN ? AND ? {same_persons})", [lo, hi]
        ).fetchall()
    finally:
        con.unregister("_hcode_good")
    return inserted[0][0]
