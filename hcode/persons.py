"""Id numbers → person surrogates (`pid`) during one ingest session.

Each distinct id is pseudonymised once per session, however many files and batches it
appears in: the HMAC is computed inside DuckDB for ids not yet seen, looked up in
`persons`, and new persons get the next pids. The id → pid map lives only in this
process's memory (a Polars frame), never in the warehouse. A file whose transaction is
rolled back rolls the map back too, so it never holds a pid that was not committed.
"""

from __future__ import annotations

import polars as pl

from .pseudonym import _pads, hmac_sql

EMPTY = pl.DataFrame(schema={"id_number": pl.String, "pid": pl.Int32})


class PersonIndex:
    def __init__(self, key: str):
        self._ipad, self._opad = _pads(key)
        self._known = EMPTY
        self._saved = EMPTY

    @property
    def known_ids(self) -> pl.Series:
        """Ids already validated and mapped in this session."""
        return self._known.get_column("id_number")

    def begin(self) -> None:
        self._saved = self._known

    def rollback(self) -> None:
        self._known = self._saved

    def pids(self, con, ids: pl.Series) -> pl.DataFrame:
        """`id_number`, `pid` for every distinct id of `ids` (valid, normalised), creating
        persons that are new to the warehouse."""
        distinct = ids.unique().to_frame("id_number")
        unseen = distinct.join(self._known, on="id_number", how="anti")
        if unseen.height:
            con.register("_hcode_ids", unseen)
            mapped = con.sql(
                f"SELECT k.id_number, p.pid, k.person_key FROM (SELECT id_number, {hmac_sql('id_number')} "
                "AS person_key FROM _hcode_ids) k "
                "LEFT JOIN persons p USING (person_key)", params=[self._opad, self._ipad]).pl()
            con.unregister("_hcode_ids")
            new = mapped.filter(pl.col("pid").is_null()).sort("person_key")
            if new.height:
                top = con.execute("SELECT coalesce(max(pid), 0) FROM persons").fetchall()[0][0]
                new = new.with_columns(pl.int_range(top + 1, top + 1 + new.height, dtype=pl.Int32).alias("pid"))
                con.register("_hcode_new_persons", new.select("pid", "person_key"))
                con.execute("INSERT INTO persons SELECT pid, person_key FROM _hcode_new_persons")
                con.unregister("_hcode_new_persons")
            found = pl.concat([mapped.filter(pl.col("pid").is_not_null()), new], how="vertical")
            self._known = pl.concat([self._known, found.select("id_number", pl.col("pid").cast(pl.Int32))])
        return distinct.join(self._known, on="id_number", how="inner")


def find_person(con, key: str, id_number: str) -> tuple[str, int | None]:
    """(person_key, pid or None) for an id number typed by a person (explain, history).
    An id that could never have been loaded is refused with the reason, rather than
    reported as "no code"."""
    import datetime as dt

    from .errors import UsageError
    from .idnumber import invalid_reason
    from .pseudonym import normalise_id, person_key

    norm = normalise_id(id_number)
    reason = invalid_reason(pl.Series([norm]), dt.datetime.now() + dt.timedelta(days=1))[0]
    if reason is not None:
        raise UsageError(f"{id_number!r} is not a valid id number ({reason})")
    pk = person_key(norm, key)
    rows = con.execute("SELECT pid FROM persons WHERE person_key = ?", [pk]).fetchall()
    return pk, (rows[0][0] if rows else None)
