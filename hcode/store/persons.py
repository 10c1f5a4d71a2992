"""Id numbers → person surrogates (`pid`) during one ingest session.

Each distinct id is pseudonymised once per session, however many files and batches it
appears in: the HMAC is computed inside DuckDB for ids not yet seen, looked up in
`persons`, and new persons get the next pids. The id → pid map lives only in this
process's memory, never in the warehouse, and holds each id as its `idnumber.id_key` (8
bytes; 1.2 GB with the pids for 100M residents, against 3.8 GB as text), in a few runs
sorted by key (`KeyIndex`): a batch's ids are looked up by binary search, in time of the
batch, not of the map. A file whose transaction is rolled back rolls the map back too, so
it never holds a pid that was not committed.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from hcode.idnumber import id_key
from hcode.store.pseudonym import _pads, hmac_sql
from hcode.store.warehouse import arrow, scalar, to_polars, view


class KeyIndex:
    """`id_key` → pid as runs sorted by key, immutable, in a tuple (saving the index is
    keeping the tuple). A batch's run merges with the last runs while they hold no more
    batches (a binary counter: log2(batches) + 1 runs, each key merged as often), up to
    MERGE_CAP keys (400 MB with the pids). Probing the whole map for each batch (a hash
    join, `is_in`) made a file's batches slower as the map grew: 100M ids at 100M residents."""

    MERGE_CAP = 1 << 25

    def __init__(self) -> None:
        self.runs: tuple[tuple[np.ndarray, np.ndarray, int], ...] = ()  # (keys, pids, batches)

    def add(self, keys: np.ndarray, pids: np.ndarray) -> None:
        """Add distinct keys not in the index, with their pids."""
        if not keys.size:
            return
        order = pl.Series(keys).arg_sort().to_numpy()
        run, runs = pl.DataFrame({"k": keys[order], "p": pids[order]}), list(self.runs)
        batches = 1
        while runs and runs[-1][2] <= batches and runs[-1][0].size + run.height <= self.MERGE_CAP:
            k, p, b = runs.pop()
            run, batches = pl.DataFrame({"k": k, "p": p}).merge_sorted(run, key="k"), batches + b
        runs.append((run.get_column("k").to_numpy(), run.get_column("p").to_numpy(), batches))
        self.runs = tuple(runs)

    def __len__(self) -> int:
        return sum(k.size for k, _, _ in self.runs)

    def pids(self, keys: np.ndarray) -> np.ndarray:
        """The pid of each key (-1 where the index has none). The keys are searched in sorted
        order: consecutive searches then read nearby memory (2M keys in a 10M run: 0.2 s,
        against 5 s unsorted)."""
        order = pl.Series(keys).arg_sort().to_numpy()  # (Polars sorts on every core)
        wanted = keys[order]
        found = np.full(keys.size, -1, dtype=np.int32)
        for k, p, _ in self.runs:
            at = pl.Series(k).search_sorted(pl.Series(wanted), side="left").to_numpy()
            at = np.minimum(at, k.size - 1)
            hit = k[at] == wanted
            found[hit] = p[at[hit]]
        out = np.empty_like(found)
        out[order] = found
        return out


class PersonIndex:
    def __init__(self, key: str):
        self._ipad, self._opad = _pads(key)
        self._index = KeyIndex()
        self._saved = self._index.runs

    def __len__(self) -> int:
        """How many ids the session mapped."""
        return len(self._index)

    def known(self, keys: pl.Series) -> pl.Series:
        """Which of `keys` (`idnumber.id_key`s; null for none) were validated and mapped in
        this session."""
        return pl.Series(self._index.pids(keys.fill_null(-1).to_numpy()) >= 0)

    def pairs(self, keys: pl.Series) -> pl.DataFrame:
        """`id_key`, `pid` of the distinct `keys` mapped in this session."""
        k = keys.unique().drop_nulls().to_numpy()
        p = self._index.pids(k)
        return pl.DataFrame({"id_key": k, "pid": p}).filter(pl.col("pid") >= 0)

    def begin(self) -> None:
        self._saved = self._index.runs

    def rollback(self) -> None:
        self._index.runs = self._saved

    def add(self, con: duckdb.DuckDBPyConnection, ids: pl.Series, load_id: int, into: str = "persons") -> None:
        """Map every id of `ids` (distinct, valid, normalised, none `known`) to its
        pid, creating the persons that are new to the warehouse (recorded as created by
        load `load_id`), numbered in `person_key` order (so that a pid says nothing about
        the id number). New persons are written into `into` (a file's stage of `persons`,
        whose pids count as taken)."""
        unseen = ids.to_frame("id_number")
        if not unseen.height:
            return
        with view(con, "_hcode_ids", arrow(unseen)):
            mapped = to_polars(con.sql(
                f"SELECT id_number, person_key, pid FROM (SELECT id_number, {hmac_sql('id_number')} AS person_key "
                "FROM _hcode_ids) LEFT JOIN persons USING (person_key)", params=[self._opad, self._ipad]))
        n_new = mapped.get_column("pid").null_count()
        if n_new:
            new = mapped if n_new == mapped.height else mapped.filter(pl.col("pid").is_null())
            top = scalar(con, "SELECT coalesce(max(pid), 0) FROM (SELECT pid FROM persons UNION ALL "
                              f"SELECT pid FROM {into})" if into != "persons" else
                         "SELECT coalesce(max(pid), 0) FROM persons")
            # written in pid order: a load's new persons are then digested as stored (store.digest)
            new = new.with_columns(_numbered(new.get_column("person_key"), top + 1).alias("pid")).sort("pid")
            with view(con, "_hcode_new_persons", arrow(new)):
                con.execute(f"INSERT INTO {into} SELECT pid, person_key, ? FROM _hcode_new_persons", [load_id])
            mapped = new if n_new == mapped.height else pl.concat([mapped.filter(pl.col("pid").is_not_null()), new])
        pairs = mapped.select(id_key(pl.col("id_number"), shaped=True).alias("id_key"), pl.col("pid").cast(pl.Int32))
        self._index.add(pairs.get_column("id_key").to_numpy(), pairs.get_column("pid").to_numpy())


def _numbered(keys: pl.Series, first: int) -> pl.Series:
    """first, first + 1, ... given to `keys` (distinct hex strings) in sorted order. Sorts the
    keys' first 16 hex digits as 8-byte integers, which is their order unless two share
    those digits (then the whole keys are sorted)."""
    prefix = keys.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64)
    order = prefix.arg_sort()
    p = prefix.gather(order).to_numpy()
    if (p[1:] == p[:-1]).any():
        order = keys.arg_sort()
    numbers = pl.int_range(first, first + keys.len(), dtype=pl.Int32, eager=True)
    return pl.Series(np.zeros(keys.len(), dtype=np.int32)).scatter(order, numbers)


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
