"""Writing a file's checked rows into the warehouse: its quarantine rows (ids masked), and
its good rows with `id_number` replaced by `pid` inside DuckDB, each event stored once (a
row identical to a stored one, or to an earlier row of the same file, is not written again).
A row identical to one an earlier load stored is recorded in `repeats` instead (so that
retracting the earlier load keeps it: `hcode.ops.retract`). Called by `hcode.ingest.load`
for each batch, writing into the file's `Stage`, which its transaction moves into the
warehouse.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from hcode.feeds import Feed
from hcode.idnumber import id_key
from hcode.ingest.stage import Stage
from hcode.store.pseudonym import mask_expr
from hcode.store.schema import row_sha_sql
from hcode.store.warehouse import arrow, one, scalar, view
from hcode.textsafe import mask_ids_expr
from hcode.validate import Validated


def write_quarantine(con: duckdb.DuckDBPyConnection, raw: pl.DataFrame, checked: Validated, bad: pl.Series, location: pl.Series,
                      feed: Feed, load_id: int, name: str, into: str = "quarantine") -> int:
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
        con.execute(f"INSERT INTO {into} SELECT * FROM _hcode_quarantine")
    return n_bad


def ids_of_good_rows(checked: Validated, bad: pl.Series, good: pl.DataFrame) -> pl.Series | None:
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
    keys run without random access). In memory, Polars searches on every core (2M hashes in
    32M: 0.12 s, numpy 0.26 s); a spilled run (mapped) is searched by numpy, which reads
    only the pages it needs."""
    if not sorted_a.size:
        return np.zeros(sorted_b.size, dtype=bool)
    if isinstance(sorted_a, np.memmap):
        at = np.searchsorted(sorted_a, sorted_b)
    else:
        at = pl.Series(sorted_a).search_sorted(pl.Series(sorted_b), side="left").to_numpy()
    found: np.ndarray = sorted_a[np.minimum(at, sorted_a.size - 1)] == sorted_b
    return found


def _merged(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two sorted runs as one: numpy's "stable" sort (a timsort) of the two side by side
    finds the two runs and merges them once, with galloping. Measured on 2026-12-08 (numpy
    2.4, Polars 2.2, AMD EPYC): 16M + 16M hashes 0.33 s, against 0.75 s for Polars'
    `merge_sorted` of two frames, both on one core. (With the machine, numpy and Polars of
    2026-12-07 morning, Polars' merge had been the faster: 0.54 against 1.18 s.)"""
    run = np.concatenate([a, b])
    run.sort(kind="stable")
    return run


class WrittenHashes:
    """The row hashes of a file's batches written so far, as a few sorted runs of growing
    size: a new batch's run is merged with the last runs while they hold no more batches (a
    binary counter), so there are at most log2(batches) + 1 runs to look a batch up in and
    each hash is merged as often. One run a batch made that quadratic in the batches: 120 batches for
    the 500M-row NAT file of 100M residents. A merge stops at `MERGE_CAP` hashes (512 MB):
    merging two runs holds both and the result at once, 12 GB for the last merges of that
    file, while runs of the cap add only a lookup each (eight for that file).

    A run that can no longer merge (more than half the cap) goes to a file of a private
    temporary folder and is mapped only while a batch is looked up in it, so the process
    holds less than one cap of hashes however long the file (the NAT file's 4 GB of hashes
    sat outside the memory limit). The hashes are keyed (Polars' seed derived from the
    pseudonymisation key): a spilled hash of a row with a raw id cannot be tested against a
    guessed row without the key. The folder goes with the object.

    From FILTER_MIN hashes to 2^FILTER_BITS of them, a byte per 2^-FILTER_BITS of the hash
    space (128 MB) marks where written hashes fall, and a batch is searched for only where
    its hashes fall on a mark: a first night's rows are nearly all new (24 batches of 2M
    hashes, as the NAT file of 10M residents: 6.2 s of lookups without it, 3.1 to 3.8 s
    with it). Beyond that it is too full to help, and it is dropped."""

    MERGE_CAP = 1 << 26
    FILTER_BITS = 27  # the filter: a byte for each 2^-27 of the hash space (128 MB)
    FILTER_MIN = 1 << 22  # hashes written before the filter is worth its memory

    def __init__(self, key: str = "") -> None:
        self.runs: list[np.ndarray] = []
        self._batches: list[int] = []  # how many batches each run holds
        self.spilled: list[Path] = []
        self._folder: Path | None = None
        self._filter: np.ndarray | None = None
        self._written = 0
        mac = hmac.new(key.encode("utf-8"), b"hcode ingest row hashes", hashlib.sha256).digest()
        self.seed = int.from_bytes(mac[:8], "little")

    def __bool__(self) -> bool:
        return bool(self.runs or self.spilled)

    def hash(self, frame: pl.DataFrame) -> pl.Series:
        """The keyed hash of each row of `frame`."""
        return frame.hash_rows(self.seed)

    def found(self, h: np.ndarray) -> np.ndarray:
        """Which of `h` (sorted) an earlier batch wrote. Once many hashes are written, a
        filter of their leading bits answers "not written" for most of `h` (a first night's
        rows are nearly all new), and only the others are searched in the runs."""
        if self._filter is None and self.FILTER_MIN <= self._written <= 1 << self.FILTER_BITS:
            self._filter = np.zeros(1 << self.FILTER_BITS, dtype=np.uint8)
            for run in self._all_runs():
                self._filter[run >> np.uint64(64 - self.FILTER_BITS)] = 1
        if self._filter is None:
            return self._searched(h)
        maybe = np.flatnonzero(self._filter[h >> np.uint64(64 - self.FILTER_BITS)])
        mask = np.zeros(h.size, dtype=bool)
        mask[maybe] = self._searched(h[maybe])
        return mask

    def _searched(self, h: np.ndarray) -> np.ndarray:
        """Which of `h` (sorted) are in some run."""
        found = np.zeros(h.size, dtype=bool)
        for run in self._all_runs():
            found |= _found(run, h)
        return found

    def _all_runs(self) -> Iterator[np.ndarray]:
        yield from self.runs
        for path in self.spilled:  # (mapped for this lookup only)
            yield np.load(path, mmap_mode="r")

    def add(self, h: np.ndarray) -> None:
        self._written += h.size
        if self._filter is not None:
            if self._written > 1 << self.FILTER_BITS:  # (too full to filter: dropped)
                self._filter = None
            else:
                self._filter[h >> np.uint64(64 - self.FILTER_BITS)] = 1
        run = h
        batches = 1  # (counted in batches, not hashes: batches of falling sizes merge too)
        while self.runs and self._batches[-1] <= batches and self.runs[-1].size + run.size <= self.MERGE_CAP:
            run = _merged(self.runs.pop(), run)
            batches += self._batches.pop()
        if 2 * run.size > self.MERGE_CAP:
            self._spill(run)
        else:
            self.runs.append(run)
            self._batches.append(batches)

    def _spill(self, run: np.ndarray) -> None:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="hcode-hashes-"))  # (mode 0700)
            weakref.finalize(self, shutil.rmtree, self._folder, True)
        path = self._folder / f"run-{len(self.spilled)}.npy"
        np.save(path, run)
        self.spilled.append(path)


def write_rows(con: duckdb.DuckDBPyConnection, pids: pl.DataFrame, good: pl.DataFrame, stage: Stage, load_id: int,
                written: WrittenHashes) -> int:
    """Insert the rows not already stored; returns how many were new.

    Identical rows have identical event times, so only stored rows within this batch's
    event-time range can repeat one of its rows. When no earlier load has a row in that
    range (a first load, or a night of new events), the batch is inserted as it is, minus
    its own repeats and rows that repeat an earlier batch of this file (found by row hash,
    then compared exactly). Otherwise the batch is compared, by EXCEPT, with the stored rows
    of its persons within its range: a night's increment is checked against the few rows it
    could repeat, not against the whole history, and the rows it drops because an earlier
    load stored them are recorded in `repeats`. `written` collects the row hashes of the
    file's batches. Rows go to the file's `stage`, which holds its earlier batches. `pids`:
    the `id_key`, `pid` of every id of `good` (`PersonIndex.for_batch`; empty for a feed
    without persons)."""
    if good.is_empty():
        return 0
    feed = stage.feed
    t = feed.event_time
    lo, hi = good.select(pl.col(t).min().alias("lo"), pl.col(t).max().alias("hi")).row(0)
    hashes = written.hash(good)
    h = hashes.sort().to_numpy()  # (Polars sorts on every core: 0.12 s for 5M hashes, numpy 0.38 s)
    earlier = one(con, f"SELECT 1 FROM {feed.table} WHERE {t} BETWEEN ? AND ? AND load_id <> ? LIMIT 1",
                  [lo, hi, load_id])
    if earlier:
        n = _insert(con, stage, pids, good, feed, load_id, dedupe=(lo, hi), others=True)
    else:
        keep = _first_of_each(good, hashes, h)
        again = None
        if written:  # rows whose hash an earlier batch of this file wrote: compare them exactly
            seen = np.unique(h[written.found(h)])
            if seen.size:
                again = hashes.is_in(pl.Series(seen).implode())
        if again is None:
            n = _insert(con, stage, pids, good if keep is None else good.filter(keep), feed, load_id)
        else:
            keep = ~again if keep is None else keep & ~again
            n = _insert(con, stage, pids, good.filter(keep), feed, load_id)
            rest = good.filter(again)
            r_lo, r_hi = rest.select(pl.col(t).min().alias("lo"), pl.col(t).max().alias("hi")).row(0)
            n += _insert(con, stage, pids, rest, feed, load_id, dedupe=(r_lo, r_hi))  # (no other load's rows there)
    written.add(h)
    return n


def _insert(con: duckdb.DuckDBPyConnection, stage: Stage, pids: pl.DataFrame, rows: pl.DataFrame, feed: Feed,
            load_id: int, dedupe: tuple[Any, ...] | None = None, others: bool = False) -> int:
    """INSERT `rows` (with `id_number` → `pid` joined inside DuckDB, by `idnumber.id_key`);
    with `dedupe` = (lo, hi), only those not already stored among the rows of the same persons with event times in
    [lo, hi] (EXCEPT is a set operation: it also drops repeats within `rows`). `others`:
    other loads have rows in [lo, hi], so when some rows were dropped, those that repeat
    another load's (INTERSECT, a set operation too: nulls match) go into `repeats`."""
    if rows.is_empty():
        return 0
    cols = ", ".join(c.name for c in feed.stored_columns)
    if feed.has_person:  # ids are joined to pids by `idnumber.id_key` (the map's key)
        # (good rows only: their ids passed validation, so they have the pattern's shape)
        # (lazily: the plan runs the key's string slices once and on every core, 0.09 s for
        # 3.2M ids against 0.34 s for the same `with_columns` on the frame)
        rows = rows.lazy().with_columns(id_key(pl.col("id_number"), shaped=True).alias("id_key")).drop(
            "id_number").collect()
        # (a LEFT JOIN: a row whose id the map lacked would fail the stored NOT NULL pid
        # loudly, never be dropped)
        source = f"SELECT m.pid, {cols} FROM _hcode_good LEFT JOIN _hcode_pids m USING (id_key)"
        keycols, same_persons = f"pid, {cols}", "AND pid IN (SELECT pid FROM _hcode_pids WHERE id_key IN " \
                                                "(SELECT id_key FROM _hcode_good))"
    else:
        source, keycols, same_persons = f"SELECT {cols} FROM _hcode_good", cols, ""
    # Registrations are stored in pid order: every run reads all of them to build its
    # population, which is 8x faster from rows (nearly) in pid order (evaluate.population).
    # New persons get new, higher pids, so a night's rows land after the earlier ones.
    order = " ORDER BY pid" if feed.name == "registrations" else ""
    # columns by name: a warehouse made before an optional column existed has it last (ALTER TABLE)
    into = f"INSERT INTO {stage.rows} ({keycols}, load_id)"
    stored = f"(SELECT * FROM {feed.table} UNION ALL SELECT * FROM {stage.rows})"  # (this file's earlier batches)
    if dedupe is None:
        sql, params = f"{into} SELECT *, {load_id} FROM ({source}){order}", []
    else:
        sql = (f"{into} SELECT *, {load_id} FROM ({source} EXCEPT SELECT {keycols} "
               f"FROM {stored} WHERE {feed.event_time} BETWEEN ? AND ? {same_persons}){order}")
        params = list(dedupe)
    with ExitStack() as views:
        if feed.has_person:
            views.enter_context(view(con, "_hcode_pids", arrow(pids)))
        views.enter_context(view(con, "_hcode_good", arrow(rows)))
        n = int(scalar(con, sql, params))
        if dedupe is not None and others and n < rows.height:  # (nothing dropped: nothing repeated)
            con.execute(f"INSERT INTO {stage.repeats} SELECT {load_id}, '{feed.name}', {row_sha_sql(feed)} "
                        f"FROM ({source} INTERSECT SELECT {keycols} FROM {feed.table} WHERE {feed.event_time} "
                        f"BETWEEN ? AND ? AND load_id <> {load_id} {same_persons}) "
                        f"EXCEPT SELECT load_id, feed, row_sha FROM {stage.repeats}", params)
        return n
