"""The session's id → pid map (`store.persons.KeyIndex`): a few runs sorted by key, looked up
by binary search, answering exactly what a dict of every added key would."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from hcode.store.persons import KeyIndex, PersonIndex


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 2**62), max_size=20, unique=True), max_size=12),
       cap=st.sampled_from([4, 1 << 25]), probes=st.lists(st.integers(-1, 2**62), max_size=10))
def test_lookups_answer_as_a_dict_of_every_added_key(batches, cap, probes):
    index, truth = KeyIndex(), {}
    index.MERGE_CAP = cap
    for n, values in enumerate(batches, start=1):
        keys = np.array([v for v in values if v not in truth], dtype=np.int64)
        pids = np.arange(len(truth), len(truth) + keys.size, dtype=np.int32)
        index.add(keys, pids)
        truth.update(zip(keys.tolist(), pids.tolist(), strict=True))
        asked = np.array(list(truth)[:7] + probes, dtype=np.int64)
        assert index.pids(asked).tolist() == [truth.get(k, -1) for k in asked.tolist()]
        assert len(index) == len(truth)
        assert all(np.all(k[1:] > k[:-1]) for k, _, _ in index.runs)  # (sorted, each key once)
        if cap > 1000:
            assert len(index.runs) <= n.bit_length() + 1


def test_a_rolled_back_file_leaves_the_map_as_it_was():
    people = PersonIndex("k" * 32)
    people._index.add(np.array([5, 3], dtype=np.int64), np.array([1, 2], dtype=np.int32))
    people.begin()
    people._index.add(np.array([9], dtype=np.int64), np.array([3], dtype=np.int32))
    assert people.known(pl.Series([3, 9, None, 4])).to_list() == [True, True, False, False]
    people.rollback()
    assert people.known(pl.Series([3, 9, 5])).to_list() == [True, False, True]
    assert people.pairs(pl.Series([5, 5, 9, None])).rows() == [(5, 1)]
