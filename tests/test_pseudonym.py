from __future__ import annotations

import hashlib
import hmac

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from hcode.store.pseudonym import mask_expr, mask_id, person_key, person_keys


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="0123456789X", min_size=18, max_size=18), min_size=1, max_size=20),
       st.text(min_size=1, max_size=100))
def test_bulk_keys_equal_python_hmac(ids, key):
    expected = [hmac.new(key.encode("utf-8"), i.encode(), hashlib.sha256).hexdigest() for i in ids]
    assert person_keys(pl.Series(ids), key).to_list() == expected
    assert [person_key(i, key) for i in ids] == expected


def test_person_key_trims_and_upper_cases():
    assert person_key(" 31010119800101107x\t", "k") == person_key("31010119800101107X", "k")


@given(st.text(max_size=30))
def test_mask_expr_equals_mask_id(s):
    assert pl.DataFrame({"a": [s]}).select(mask_expr(pl.col("a"))).item() == mask_id(s)
