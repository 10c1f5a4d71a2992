"""One idiom on Polars Series shared by every layer: work done on the few rows that need it.

Most values of a column are already clean (ids normalised, timestamps in the first format,
no id-shaped text, empty rule lists, no override), and a Polars expression over a column
computes every row, both branches of a `when` included. So validation, the id mask and the
CSV writers pick the rows that need the work, do it on those, and scatter the results back.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl


def fix_where(s: pl.Series, where: pl.Series, fix: Callable[[pl.Series], pl.Series],
              into: pl.Series | None = None) -> pl.Series:
    """`into` (default `s`) with `fix` of the rows of `s` where `where` is true put in their
    place; `fix` sees those rows only, and is not called when there are none (a null in
    `where` counts as false). Neither `s` nor `into` is changed (`Series.scatter` works in
    place, so it is given a clone: a column's scatter builds a new one anyway, and measured
    no slower)."""
    rows = where.arg_true()
    base = s if into is None else into
    return base.clone().scatter(rows, fix(s.gather(rows))) if rows.len() else base
