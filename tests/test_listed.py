"""`Listed`: a diff's listed rows read back from per-bucket files give what the same rows in
memory give (head, batches, the whole frame), whether each district is sorted in memory or,
too large for the memory limit, by DuckDB; and the files go with the last holder."""

from __future__ import annotations

import gc

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from hcode.diff.listed import LISTED_ORDER, Listed, SpillDir, write_part


def rows(n: int, seed: int, districts: int = 3) -> pl.DataFrame:
    """n listed rows with a few null districts, texts and lists, in no particular order."""
    import random

    rnd = random.Random(seed)
    keys = rnd.sample(range(16**6), n)
    return pl.DataFrame({
        "person_key": [f"{k:064x}" for k in keys],
        "district_code": [None if rnd.random() < 0.1 else f"3101{rnd.randrange(districts):02d}" for _ in keys],
        "explanation": [f"rule {rnd.randrange(9)}: 红 → 绿" for _ in keys],
        "rules_after": [[f"R{j}" for j in range(rnd.randrange(3))] for _ in keys],
    }, schema={"person_key": pl.String, "district_code": pl.String, "explanation": pl.String,
               "rules_after": pl.List(pl.String)})


def spilled(frame: pl.DataFrame, parts: int, memory_limit: int = 64 << 20, group_rows: int = 100_000) -> Listed:
    """`frame` split into `parts` disjoint sorted files, as the bucketed diff leaves them."""
    spill = SpillDir()
    written = []
    part = frame.with_columns(b=pl.int_range(pl.len()) % parts)
    for b in range(parts):
        rows_b = part.filter(pl.col("b") == b).drop("b").sort(LISTED_ORDER, nulls_last=True)
        written.append(write_part(rows_b, spill.path / f"changes.{b:05d}.parquet", group_rows))
    return Listed.spilled(written, frame.schema, spill, memory_limit)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 120), parts=st.integers(1, 6), batch=st.integers(1, 50), head=st.integers(0, 40),
       seed=st.integers(0, 10**6), districts=st.sampled_from([1, 3, 40]), limit=st.sampled_from([1, 4_000, 64 << 20]),
       group_rows=st.sampled_from([3, 100_000]))
def test_files_read_back_give_the_rows_in_memory(n, parts, batch, head, seed, districts, limit, group_rows):
    """`limit`: 1 byte orders every district with DuckDB, 4 kB some (and sorts a few
    districts at a time), 64 MiB none (all at once). `group_rows` 3: parts of several row
    groups, a district's own; 100,000: one row group a part."""
    whole = rows(n, seed, districts).sort(LISTED_ORDER, nulls_last=True)
    mem, disk = Listed.of(whole), spilled(whole, parts, limit, group_rows)
    assert disk.height == mem.height == n and disk.is_empty() == (n == 0)
    assert disk.head(head).equals(mem.head(head))
    assert disk.frame().equals(whole)
    got, want = list(disk.batches(batch)), list(mem.batches(batch))
    assert [b.height for b in got] == [b.height for b in want]
    assert all(b.height == batch for b in got[:-1])
    assert all(g.equals(w) for g, w in zip(got, want, strict=True))
    assert pl.concat(got).equals(whole) if n else got[0].is_empty() and got[0].schema == whole.schema


def test_the_spill_folder_goes_with_its_last_holder():
    listed = spilled(rows(30, 1), 3)
    folder = listed.parts[0].path.parent
    assert folder.is_dir() and len(list(folder.glob("*.parquet"))) == 3
    assert folder.stat().st_mode & 0o077 == 0  # private, like every temporary file hcode writes
    del listed
    gc.collect()
    assert not folder.exists()


def test_ordering_the_files_draws_no_progress_bar(monkeypatch):
    """DuckDB draws its progress bar on stdout for a long query (here, ordering a province's
    listed rows), where `--json` output must stand alone: it broke `hcode nightly --json`
    at 10M residents."""
    import duckdb

    seen = []
    real = duckdb.connect

    class Spy:
        """The connection, noting the progress-bar setting when the ordering query starts."""

        def __init__(self, con):
            self.con = con

        def sql(self, query, **kwargs):
            seen.append(self.con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0])
            return self.con.sql(query, **kwargs)

        def __getattr__(self, name):
            return getattr(self.con, name)

    def connect(*args, **kwargs):
        con = real(*args, **kwargs)
        con.execute("SET enable_progress_bar = true")  # its default where stdout is not a terminal
        return Spy(con)

    monkeypatch.setattr(duckdb, "connect", connect)
    listed = spilled(rows(40, 2, districts=1), 2, memory_limit=1)  # too large for memory: DuckDB orders it
    assert sum(b.height for b in listed.batches(10)) == 40
    assert seen and not any(seen)


def test_a_large_part_keeps_each_district_in_row_groups_of_its_own():
    """A bucket file of more than a batch of rows (a first night's) has row groups that never
    hold two districts, so that a district is read without its neighbours; a smaller one is
    one row group. Either way the part says where each district's rows are and their size."""
    import pyarrow.parquet as pq

    spill = SpillDir()
    for n, aligned in ((250_000, True), (5_000, False)):
        whole = rows(n, 3, districts=2).sort(LISTED_ORDER, nulls_last=True)  # more than a batch a district
        part = write_part(whole, spill.path / f"p{n}.parquet")
        f = pq.ParquetFile(part.path)
        assert part.rows == f.metadata.num_rows == whole.height
        assert list(part.districts) == whole.get_column("district_code").unique(maintain_order=True).to_list()
        assert len(part.group_starts) == f.num_row_groups == (1 if not aligned else
                                                              sum(-(-k // 100_000) for _, k, _ in part.districts.values()))
        for district, (start, k, size) in part.districts.items():
            assert whole.slice(start, k).get_column("district_code").unique().to_list() == [district]
            assert size > 0
            if aligned:
                first = part.group_starts.index(start)
                got = pl.DataFrame(f.read_row_groups(list(range(first, first + -(-k // 100_000)))))
                assert got.equals(whole.slice(start, k))
