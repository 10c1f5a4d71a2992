"""The vectorised id validator agrees with the reference of docs/feeds.md (stdnum.cn.ric)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from hcode.idnumber import id_key, invalid_reason, make_ids

NOW = dt.datetime(2022, 6, 15, 6)


def reference_valid(raw: str, now: dt.datetime = NOW) -> bool:
    """docs/feeds.md's reference: pattern after trim/upper, stdnum (KeyError = invalid), no future birth."""
    s = raw.strip(" \t\n\r\x0b\x0c").upper()
    import re

    if not re.fullmatch(r"[0-9]{17}[0-9X]", s):
        return False
    try:
        if not ric.is_valid(s):
            return False
    except KeyError:
        return False
    return ric.get_birth_date(s) <= now.date()


def ours(ids: list[str]) -> list[bool]:
    norm = pl.Series(ids, dtype=pl.String).str.strip_chars(" \t\n\r\x0b\x0c").str.to_uppercase()
    return [r is None for r in invalid_reason(norm, NOW).to_list()]


VALID = make_ids(400, np.random.default_rng(7), born_from=1930, born_to=2021).to_list()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789Xx １ \t", min_size=0, max_size=20), min_size=1, max_size=30))
def test_agrees_on_arbitrary_strings(ids):
    assert ours(ids) == [reference_valid(i) for i in ids]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.integers(0, 17), st.sampled_from(list("0123456789X")))
def test_agrees_on_mutated_valid_ids(valid, pos, char):
    mutated = valid[:pos] + char + valid[pos + 1:]
    assert ours([valid, mutated]) == [reference_valid(valid), reference_valid(mutated)]


def test_generated_ids_are_valid_and_known_edge_cases():
    assert all(reference_valid(i) for i in VALID)
    assert all(ours(VALID))
    edge = ["319999199001011231", "31999919900101123X", "110101202307077758", "11010119900230777X"]
    assert ours(edge) == [reference_valid(i) for i in edge]


def test_region_must_exist_in_the_birth_year():
    # 110103 (Chongwen district) was abolished in 2010: valid for someone born in 2005, not 2012.
    from hcode.idnumber import check_char

    old, new = "11010320050101001", "11010320120101001"
    assert ours([old + check_char(old), new + check_char(new)]) == [True, False]
    assert reference_valid(old + check_char(old)) and not reference_valid(new + check_char(new))


def test_indexed_ids_are_a_bijection_of_valid_ids_apart_from_make_ids():
    """`indexed_ids` (the sample's ids beyond its first block): distinct indices give distinct
    ids, every one valid (stdnum and ours), none in a county `make_ids` draws from, none in an
    excluded county; the same (index, key) gives the same id."""
    from hcode.idnumber import indexed_ids, indexed_space, lasting_counties

    size = indexed_space(excluded=frozenset({"310101"}))
    assert size > 10**10  # far more than a country's residents
    index = np.concatenate([np.arange(0, 50_000), np.arange(size - 50_000, size),
                            np.random.default_rng(1).choice(size, 50_000, replace=False)])
    index = np.unique(index)
    ids = indexed_ids(index, 987654321, excluded=frozenset({"310101"}))
    assert ids.n_unique() == len(index)
    assert invalid_reason(ids, NOW).null_count() == len(index)
    sample = ids.gather(np.random.default_rng(2).integers(0, ids.len(), 300)).to_list()
    assert all(reference_valid(i) for i in sample)
    regions = ids.str.slice(0, 6)
    assert not regions.is_in(lasting_counties() + ["310101"]).any()
    assert indexed_ids(index[:10], 987654321, excluded=frozenset({"310101"})).equals(ids.head(10))
    assert not indexed_ids(index[:10], 5, excluded=frozenset({"310101"})).equals(ids.head(10))
    with pytest.raises(ValueError):
        indexed_ids(np.array([size]), 1, excluded=frozenset({"310101"}))


SHAPED = st.text("0123456789", min_size=17, max_size=17).flatmap(
    lambda body: st.sampled_from("0123456789X").map(lambda check: body + check))


@settings(max_examples=200, deadline=None)
@given(st.lists(SHAPED, min_size=1, max_size=30))
def test_id_key_is_one_integer_per_shaped_id(ids: list[str]) -> None:
    keys = pl.DataFrame({"id": ids}).select(id_key(pl.col("id"))).to_series().to_list()
    # ids known to be shaped (validated rows) skip the pattern and get the same keys
    assert pl.DataFrame({"id": ids}).select(id_key(pl.col("id"), shaped=True)).to_series().to_list() == keys
    # the key spells the id back: its first 17 digits, then its check character (X is 10)
    assert [(k // 11, k % 11) for k in keys] == [(int(i[:17]), 10 if i[17] == "X" else int(i[17])) for i in ids]
    assert len(set(keys)) == len(set(ids))


def test_id_key_is_null_for_other_text() -> None:
    other = ["", "31010119800808060", "3101011980080806099", "31010119800808060x", "3101011980080806A9",
             " 310101198008080609", None]
    keys = pl.DataFrame({"id": other}, schema={"id": pl.String}).select(id_key(pl.col("id"))).to_series()
    assert keys.null_count() == len(other)


def test_the_shared_test_ids_are_valid():
    from conftest import ID_A, ID_B

    assert all(ric.is_valid(raw) for raw in (ID_A, ID_B))
    assert invalid_reason(pl.Series([ID_A, ID_B]), NOW).to_list() == [None, None]
