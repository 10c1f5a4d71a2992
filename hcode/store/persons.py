"""Id numbers → person surrogates (`pid`) during one ingest session.

Each distinct id is pseudonymised once per session, however many files and batches it
appears in: the HMAC is computed (`pseudonym.person_keys`) for ids not yet seen, looked up
among the persons stored before the session (the session's own are in its map), and new
persons get the next pids. The session is the warehouse's one writer (the lock), so no
person appears that the map does not hold. The id → pid map lives only in this
process's memory (Polars frames: a few runs sorted by key, searched by a batch's keys),
never in the warehouse, and holds each id as its `idnumber.id_key` (8 bytes; 1.2 GB with
the pids for 100M residents, against 3.8 GB as text). A file whose transaction is rolled
back takes its new persons out of the map too, so it never holds a pid that was not
committed.

The persons stored before the session are searched in a table the session reads once: each
stored person's pid and DuckDB's 64-bit hash of its key (12 bytes a person, when that fits
within `STORED_SHARE` of the memory limit). A batch's keys are hashed by DuckDB alike, the
hashes that match name candidate pids, and only the candidates' keys are read back to keep
the exact matches. DuckDB itself reads, and decompresses, every stored key for each search
(0.65 s at 10M persons, for 93 ids as for 2M): a night's twelve files searched 10M persons
twelve times (9.8 s of the 10M next night's 23 s load); the table takes 0.7 s to read, a
small file's search 0.02 s, and a file of 1.5M known persons 0.4 s.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import duckdb
import polars as pl

from hcode.idnumber import id_key
from hcode.store.pseudonym import person_keys
from hcode.store.warehouse import arrow, rows_of_pids, scalar, to_polars, view

EMPTY = pl.DataFrame(schema={"id_key": pl.Int64, "pid": pl.Int32})
STORED_SHARE = 0.1  # of the memory limit, at most, for the table of the persons stored before a session
STORED_BYTES = 12  # a person in that table: the hash of its key (8 bytes) and its pid (4)
KEY_HASH = "hash(person_key)"  # DuckDB's, the same for a stored key and a batch's
RUN_CAP = 1 << 24  # entries of the map's largest run (two runs merged: 16M entries, 200 MB, at the most)
RECENT = 4  # the map's latest batches of entries kept apart (a batch is validated one ahead of its writing)


@dataclass(frozen=True)
class KnownRuns:
    """The session's map as a batch's validation sees it (`validate.KnownIds`): its entries
    (`id_key`, `pid`) in a few runs sorted by `id_key`, and how many there were (`size`)."""

    runs: tuple[pl.DataFrame, ...]
    size: int

    def find(self, keys: pl.Series) -> pl.DataFrame:
        """`id_key`, `pid` of those of `keys` (distinct) in the map: each run searched by the
        keys sorted (`search_sorted`), so the cost grows with the batch, not with the map."""
        if not self.runs or not keys.len():
            return EMPTY
        needles = keys.cast(pl.Int64).sort()
        found = []
        for run in self.runs:
            ids = run.get_column("id_key")
            at = ids.search_sorted(needles, side="left").clip(0, ids.len() - 1)
            found.append(run[at.filter(ids.gather(at) == needles)])
        return pl.concat(found)


class PersonIndex:
    """The ingest session's map of id numbers to pids (see the module docstring).

    The map is kept as runs sorted by `id_key`: a batch's new entries are one run, merged
    with the last runs while they hold no more batches (a binary counter: log2(batches) + 1
    runs at most), and merges stop at `RUN_CAP` entries so that a merge's copies stay small
    (a 100M session: six runs of the cap, and the counter's below them). A batch's ids are
    then found by binary searches: probing every entry of the map for each batch (`is_in`)
    made a session quadratic in its batches (10M persons: 0.18 s a batch of 400,000 ids at
    the end of the NAT file, 0.56 s for 2M ids; 100M: seconds)."""

    def __init__(self, key: str, memory_limit: int | None = None):
        """`memory_limit`: the table of stored persons is read when it fits within
        `STORED_SHARE` of it (None: always)."""
        self._key = key
        self._table_bytes = None if memory_limit is None else int(memory_limit * STORED_SHARE)
        self._table: pl.DataFrame | None = None  # (h, pid) of the persons stored before the session
        self._runs: list[pl.DataFrame] = []  # the map: (id_key, pid) runs sorted by id_key
        self._batches: list[int] = []  # how many added batches each run holds
        self._size = 0  # entries in the map
        self._recent: deque[tuple[int, pl.DataFrame]] = deque(maxlen=RECENT)  # (size before, entries) of the last adds
        self._stored: int | None = None  # the highest pid stored before this session mapped an id
        self._top = self._saved_top = 0  # the highest pid this session gave (0: none), saved with the map

    @property
    def known_ids(self) -> KnownRuns:
        """The ids already validated and mapped in this session, for a batch's validation
        (`validate.KnownIds`; a snapshot: later mappings are not in it)."""
        return KnownRuns(tuple(run.clone() for run in self._runs), self._size)  # (no frame shared by two threads)

    def begin(self) -> None:
        self._saved_top = self._top

    def rollback(self) -> None:
        """Forget the persons created since `begin` (their file was not loaded): the map's
        entries of higher pids go. Entries for persons stored before are kept: they are true."""
        self._top = self._saved_top
        self._recent.clear()
        if self._stored is None:
            return
        bound = max(self._stored, self._top)
        kept = [(run.filter(pl.col("pid") <= bound), n) for run, n in zip(self._runs, self._batches, strict=True)]
        self._runs, self._batches = [r for r, _ in kept if r.height], [n for r, n in kept if r.height]
        self._size = sum(r.height for r in self._runs)

    @property
    def stored_before(self) -> int | None:
        """The highest pid stored before this session first mapped an id: `add` searches the
        persons up to it (None until then)."""
        return self._stored

    @property
    def map(self) -> pl.DataFrame:
        """`id_key` (`idnumber.id_key`), `pid` of every id mapped in this session, by id_key."""
        return self._later(0).sort("id_key")

    def _later(self, since: int) -> pl.DataFrame:
        """The entries mapped after the map held `since` (0: every entry)."""
        if since == 0:
            return pl.concat([EMPTY, *self._runs])
        if since == self._size:
            return EMPTY
        if not self._recent or self._recent[0][0] > since:
            raise AssertionError(f"the map's entries since {since} are no longer kept apart")
        return pl.concat([EMPTY, *(frame for start, frame in self._recent if start >= since)])

    def for_batch(self, known: pl.DataFrame | None, since: int) -> pl.DataFrame:
        """The `id_key`, `pid` of the map that a batch validated against the map of `since`
        entries can need: `known` (its ids found there, `Validated.known`) and every entry
        mapped since (the batch's new persons among them). What the batch's rows are joined
        with, instead of the whole map: a few million rows rather than 100M."""
        later = self._later(since)
        return later if known is None or not known.height else pl.concat([known, later])

    def unknown(self, ids: pl.Series, since: int = 0) -> pl.Series:
        """`ids` (distinct, valid, normalised, none of the first `since` entries' ids) less
        those mapped after them: the ids of a batch validated against the map as it was
        `since` entries ago. Only the later mappings are probed (a batch's new persons, not
        the 100M ids of a province's session)."""
        if not ids.len():
            return ids
        later = self._later(since).get_column("id_key")
        if not later.len():
            return ids
        keys = ids.to_frame().select(id_key(pl.col(ids.name), shaped=True)).to_series()
        seen = later.filter(later.is_in(keys.implode()))
        return ids.filter(~keys.is_in(seen.implode())) if seen.len() else ids

    def add(self, con: duckdb.DuckDBPyConnection, ids: pl.Series, load_id: int, into: str = "persons") -> None:
        """Map every id of `ids` (distinct, valid, normalised, none of `known_ids`) to its
        pid, creating the persons that are new to the warehouse (recorded as created by
        load `load_id`), numbered in `person_key` order (so that a pid says nothing about
        the id number). New persons are written into `into` (a file's stage of `persons`,
        whose pids count as taken)."""
        if not ids.len():
            return
        if self._stored is None:
            self._stored = int(scalar(con, "SELECT coalesce(max(pid), 0) FROM persons"))
        keys = person_keys(ids, self._key)
        stored = self._stored_among(con, keys)
        mapped = pl.DataFrame([ids.alias("id_number"), keys]).join(stored, on="person_key", how="left")
        n_new = mapped.get_column("pid").null_count()
        if n_new:
            new = mapped if n_new == mapped.height else mapped.filter(pl.col("pid").is_null())
            # the highest pid taken: stored before the session, or given by it (all in the map,
            # staged or committed; a rolled-back file's pids left the map with its stage)
            top = max(self._stored, self._top)
            # written in pid order: a load's new persons are then digested as stored (store.digest)
            new = _in_key_order(new.drop("pid")).with_columns(
                pl.int_range(top + 1, top + 1 + n_new, dtype=pl.Int32).alias("pid"))
            with view(con, "_hcode_new_persons", arrow(new)):
                con.execute(f"INSERT INTO {into} SELECT pid, person_key, ? FROM _hcode_new_persons", [load_id])
            mapped = new if n_new == mapped.height else pl.concat([mapped.filter(pl.col("pid").is_not_null()), new])
            self._top = top + n_new  # (not the map's max read again each batch: 100M pids at 100M)
        self._append(mapped.lazy().select(
            id_key(pl.col("id_number"), shaped=True).alias("id_key"), pl.col("pid").cast(pl.Int32)).collect())

    def _append(self, entries: pl.DataFrame) -> None:
        """Put one batch's new entries into the map (see the class docstring)."""
        if not entries.height:
            return
        self._recent.append((self._size, entries))
        self._size += entries.height
        run, batches = entries.sort("id_key"), 1
        while self._runs and self._batches[-1] <= batches and self._runs[-1].height + run.height <= RUN_CAP:
            run = pl.concat([self._runs.pop(), run], rechunk=False).sort("id_key")  # (one copy: the sort's)
            batches += self._batches.pop()
        self._runs.append(run)
        self._batches.append(batches)

    def _stored_among(self, con: duckdb.DuckDBPyConnection, keys: pl.Series) -> pl.DataFrame:
        """`person_key`, `pid` of the persons among `keys` stored before this session. Only
        those are searched: the persons the session created since are all in the map (`keys`
        are not), and their pids are higher, so DuckDB skips their row groups unread (a
        province's first night: the 100M persons it creates are not read for each batch)."""
        assert self._stored is not None
        if not self._stored:  # (a warehouse's first load)
            return pl.DataFrame(schema={"person_key": pl.String, "pid": pl.Int32})
        if self._table is None and (self._table_bytes is None or self._stored * STORED_BYTES <= self._table_bytes):
            self._table = to_polars(con.sql(f"SELECT {KEY_HASH} AS h, pid FROM persons WHERE pid <= {self._stored}"))
        # (the keys only reach DuckDB: no id)
        if self._table is None:
            with view(con, "_hcode_keys", arrow(keys.to_frame())):
                return to_polars(con.sql(f"SELECT person_key, pid FROM persons WHERE pid <= {self._stored} "
                                         "AND person_key IN (SELECT person_key FROM _hcode_keys)"))
        with view(con, "_hcode_keys", arrow(keys.to_frame().with_row_index("i"))):
            hashed = to_polars(con.sql(f"SELECT i, {KEY_HASH} AS h FROM _hcode_keys"))
        found = hashed.join(self._table, on="h", how="inner")
        found = found.select(keys.gather(found.get_column("i")), "pid")
        # a hash that two keys share names both: each candidate's stored key decides
        return found.filter(stored_keys(con, found.get_column("pid")) == found.get_column("person_key"))


def stored_keys(con: duckdb.DuckDBPyConnection, pids: pl.Series) -> pl.Series:
    """The person key of each pid of `pids`, aligned with them (null for a pid not stored)."""
    return rows_of_pids(con, pids, "person_key", "persons").get_column("person_key")


def _in_key_order(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` (distinct `person_key`s: lower-case hex) sorted by `person_key`. Sorts by the
    keys' first 16 hex digits as 8-byte integers, which is their order unless two share
    those digits (then by the whole keys): 43 ms for 400,000 new persons, against 142 ms for
    sorting the texts and 77 ms for numbering them by that integer and then sorting by pid."""
    prefix = frame.get_column("person_key").str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64)
    out = frame.with_columns(prefix.alias("_prefix")).sort("_prefix")
    shared = out.get_column("_prefix")
    if (shared.slice(1) == shared.head(-1)).any():
        return frame.sort("person_key")
    return out.drop("_prefix")


def find_person(con: duckdb.DuckDBPyConnection, key: str, id_number: str) -> tuple[str, int | None]:
    """(person_key, pid or None) for an id number typed by a person (explain, history).
    An id that could never have been loaded is refused with the reason, rather than
    reported as "no code"."""
    import datetime as dt

    from hcode.errors import UsageError
    from hcode.idnumber import invalid_reason
    from hcode.store.pseudonym import normalise_id, person_key

    norm = normalise_id(id_number)
    reason = invalid_reason(pl.Series([norm]), dt.datetime.now() + dt.timedelta(days=1))[0]
    if reason is not None:
        raise UsageError(f"{id_number!r} is not a valid id number ({reason})")
    pk = person_key(norm, key)
    rows = con.execute("SELECT pid FROM persons WHERE person_key = ?", [pk]).fetchall()
    return pk, (rows[0][0] if rows else None)
