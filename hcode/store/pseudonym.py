"""Keyed pseudonyms: `person_key` = lower-case hex HMAC-SHA256(key text, id number).

Python's `hmac` module is the reference (`person_key`). The bulk path (`person_key_expr`)
is polars-hash's `hmac_sha256`, Rust's `hmac` and `sha2` crates (SHA extensions where the
CPU has them) on every core: 0.27 s for 2M ids on two cores, against 1.3 s for the same
RFC 2104 construction written as two `sha256` calls in DuckDB SQL and 2.5 s for a
`hashlib` loop.
"""

from __future__ import annotations

import hashlib
import hmac

import polars as pl
from polars_hash import CryptographicHashingNameSpace


def normalise_id(id_number: str) -> str:
    """ASCII white space trimmed, upper-cased: the message that is hashed."""
    return id_number.strip(" \t\n\r\f\v").upper()


def person_key(id_number: str, key: str) -> str:
    """The reference: Python's `hmac` over one id number."""
    return hmac.new(key.encode("utf-8"), normalise_id(id_number).encode("ascii"), hashlib.sha256).hexdigest()


def person_key_expr(col: pl.Expr, key: str) -> pl.Expr:
    """`person_key` of every (already normalised) id of `col`, vectorised; null stays null."""
    return CryptographicHashingNameSpace(col).hmac_sha256(key=key)


def person_keys(ids: pl.Series, key: str) -> pl.Series:
    """`person_key` of every (already normalised) id of `ids`, order kept, on every core
    (the streaming engine hands the rows to the threads in morsels)."""
    frame = ids.cast(pl.String).to_frame("id")
    return frame.lazy().select(person_key_expr(pl.col("id"), key).alias("person_key")).collect(
        engine="streaming").to_series()


def mask_id(raw: str | None) -> str | None:
    """What quarantine keeps of an id: first 6 and last 2 characters, the rest `*`."""
    if raw is None:
        return None
    if len(raw) <= 8:
        return "*" * len(raw)
    return raw[:6] + "*" * (len(raw) - 8) + raw[-2:]


def mask_expr(col: pl.Expr) -> pl.Expr:
    """Vectorised `mask_id`. Both branches of a `when` are computed for every row, so the
    count of hidden characters is never negative: `len_chars` is unsigned, and an empty id's
    `len - 8` wrapped to 4,294,967,288 asterisks (Polars 2.2 allocates them: 24 GB)."""
    n = col.str.len_chars().cast(pl.Int64)
    short = n <= 8
    stars = pl.lit("*").repeat_by(pl.when(short).then(n).otherwise(n - 8)).list.join("")
    return pl.when(short).then(stars).otherwise(col.str.head(6) + stars + col.str.tail(2))
