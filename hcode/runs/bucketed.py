"""Runs evaluated and stored person bucket by person bucket (store/buckets.py).

`evaluate_buckets` yields one bucket's evaluation at a time; `RunWriter` stores them in one
transaction (details as they come, the population through a temporary table whose digest is
taken in pid order once every bucket is in); `CodesFile` writes `--out` per bucket and sorts
the parts by person key at the end; `evaluate_run` ties the three together for `hcode
evaluate`. With one bucket every piece takes the path a whole-population evaluation always
took, so the common case is not slowed; with more, no more than one bucket's codes is ever
in memory, and every stored row, digest and file is the same as with one.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, nullcontext, suppress
from pathlib import Path

import duckdb
import polars as pl

from hcode.config import load_config
from hcode.engine import spark
from hcode.engine.evaluate import Evaluation, all_seeds, cutoff_of, evaluate
from hcode.engine.sources import WarehouseSource
from hcode.errors import HcodeError
from hcode.rules.ruleset import Ruleset
from hcode.runs.store import (
    Totals,
    current_loads,
    store_details,
    store_population,
    store_run,
    store_run_row,
    with_person_keys,
    write_codes,
)
from hcode.store import audit
from hcode.store.buckets import bucket_count, person_ranges, persons_in_warehouse
from hcode.store.lake import lake_buckets, lake_path, sync_lake
from hcode.store.warehouse import ArrowStream, Warehouse, private_files, to_polars, view


def evaluate_buckets(wh: Warehouse, ruleset: Ruleset, as_of: dt.date, buckets: int, lang: str = "en",
                     ) -> tuple[Iterator[Evaluation], int, tuple[int, ...]]:
    """The evaluations of each person bucket in turn (buckets.py), read on a connection of their
    own (a run's write transaction may be open on the warehouse's): only one bucket's rows and
    codes are in memory at a time. With one bucket, exactly `evaluate_warehouse`'s evaluation."""
    max_load_id, loads = current_loads(wh.con)
    cutoff = cutoff_of(as_of)

    def each() -> Iterator[Evaluation]:
        cursor = wh.con.cursor()
        try:
            for pids in person_ranges(cursor, buckets) if buckets > 1 else [None]:
                yield evaluate(ruleset, WarehouseSource(cursor, cutoff, max_load_id, pid_range=pids), as_of, lang=lang)
        finally:
            cursor.close()

    return each(), max_load_id, loads


def buckets_for(wh: Warehouse) -> int:
    """The bucket count of an evaluation on this warehouse (buckets.bucket_count)."""
    return bucket_count(persons_in_warehouse(wh.con), load_config(wh.path))


class RunWriter:
    """Stores a run bucket by bucket in one transaction: `add` each bucket's evaluation (its
    details go to the warehouse and its population to a temporary table, then the frames can
    go), read `totals`, then `finish` (or leave the block: nothing is stored). The population's
    digest is computed from the temporary table in pid order, so a run's stored rows and
    digests are the same whatever the bucket count. With one bucket it is `store_run`."""

    def __init__(self, wh: Warehouse, buckets: int, *, store: bool = True):
        self.wh = wh
        self.buckets = buckets
        self.store = store  # False: only the totals (a dry run)
        self.totals: Totals | None = None
        self._single: Evaluation | None = None
        self._run_id: int | None = None
        self._private = ExitStack()  # from BEGIN to the end: the write-ahead log DuckDB creates is private

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._run_id is not None:  # not finished: nothing is stored
            self._run_id = None
            # (a COMMIT that failed, e.g. on a full disk, has ended the transaction already)
            with suppress(duckdb.TransactionException):
                self.wh.con.execute("ROLLBACK")
            with suppress(duckdb.Error):
                self.wh.con.execute("RESET preserve_insertion_order")
        self._private.close()

    def add(self, ev: Evaluation) -> None:
        self.totals = Totals.of(ev) if self.totals is None else self.totals.plus(ev)
        if not self.store:
            return
        if self.buckets == 1:
            self._single = ev
            return
        con = self.wh.con
        if self._run_id is None:
            self._private.enter_context(private_files())
            con.execute("BEGIN TRANSACTION")
            self._run_id = int(con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchall()[0][0])
            con.execute("CREATE TEMP TABLE _hcode_new_population (pid INTEGER NOT NULL, district INTEGER)")
        store_details(con, self._run_id, ev.results)
        with view(con, "_hcode_bucket_population", ArrowStream(ev.population)):
            con.execute("INSERT INTO _hcode_new_population SELECT pid, district FROM _hcode_bucket_population")

    def finish(self, max_load_id: int, loads: tuple[int, ...], operator: str | None, *, publish: bool = False,
               batch: dict[str, object] | None = None) -> int:
        if self.totals is None:
            raise AssertionError("no evaluation to store")
        if self._single is not None:
            ev, self._single = self._single, None
            return store_run(self.wh, ev, max_load_id, loads, operator, publish=publish, batch=batch)
        con, run_id = self.wh.con, self._run_id
        assert run_id is not None
        digest = audit.population_digest_of_table(con, "_hcode_new_population")
        population_id = store_population(con, digest, self.totals.persons,
                                          lambda: nullcontext("_hcode_new_population"))
        con.execute("DROP TABLE _hcode_new_population")
        store_run_row(con, run_id, self.totals, population_id, digest, max_load_id, loads, operator, publish, batch)
        con.execute("COMMIT")
        self._run_id = None
        self._private.close()
        return run_id


class CodesFile:
    """The `--out` codes file (store.write_codes: person_key, color, rule, matched_rules,
    explanation, sorted by person key), written bucket by bucket: each bucket's codes go to a
    Parquet part, and the parts are merged in person-key order by Polars' streaming engine
    when the block ends. With one bucket, `write_codes` as always."""

    def __init__(self, wh: Warehouse, path: Path | None, buckets: int):
        self.wh, self.path, self.buckets = wh, path, buckets
        if path is not None and path.suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise HcodeError(f"--out {path}: write .parquet or .csv")
        self._dir: Path | None = None
        self._parts: list[Path] = []

    def __enter__(self) -> CodesFile:
        return self

    def add(self, ev: Evaluation) -> None:
        if self.path is None:
            return
        if self.buckets == 1:
            write_codes(with_person_keys(self.wh.con, ev.codes), self.path)
            return
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=".hcode-codes-", dir=self.path.parent.resolve()
                                              if self.path.parent.exists() else None))
        with view(self.wh.con, "_hcode_bucket_pids", ArrowStream(ev.population.select("pid"))):
            keys = to_polars(self.wh.con.sql("SELECT pid, person_key FROM persons "
                                             "WHERE pid IN (SELECT pid FROM _hcode_bucket_pids)"))
        part = self._dir / f"part-{len(self._parts):05d}.parquet"
        (ev.codes.join(keys, on="pid", how="left")
         .select("person_key", "color", "rule", "matched_rules", "explanation")
         .write_parquet(part, compression="lz4"))
        self._parts.append(part)

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None and self._parts and self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                merged = pl.scan_parquet(self._parts).sort("person_key")
                if self.path.suffix.lower() == ".csv":
                    merged.with_columns(pl.col("matched_rules").list.join(";")).sink_csv(self.path)
                else:
                    merged.sink_parquet(self.path, compression="zstd", compression_level=1)
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)


def check_engine(engine: str) -> None:
    """Refuse an unknown engine, or Spark without pyspark or Java, before anything is done."""
    if engine not in ("embedded", "spark"):
        raise HcodeError(f"--engine {engine!r}: use embedded or spark")
    if engine == "spark":
        spark.check_spark()


def evaluations_on(wh: Warehouse, ruleset: Ruleset, as_of: dt.date, lang: str, engine: str = "embedded",
                   spark_master: str = spark.DEFAULT_MASTER, buckets: int | None = None,
                   ) -> tuple[int, Iterator[Evaluation], int, tuple[int, ...]]:
    """The bucket count, the buckets' evaluations (one at a time), and the loads they saw, on
    the `embedded` engine (this process) or on `spark` (the lake synced first, with its bucket
    count unless `buckets` asks for another: store/lake.py)."""
    check_engine(engine)
    if engine == "spark":
        config = load_config(wh.path)
        lake = lake_path(wh.path, config.lake)
        n = buckets or lake_buckets(wh.con, config, lake)
        max_load_id, loads = current_loads(wh.con)
        folder = sync_lake(wh.con, lake, n).lake
        seeds = all_seeds(ruleset, WarehouseSource(wh.con, cutoff_of(as_of), max_load_id), as_of)
        return (n, spark.evaluate_on_spark(folder, ruleset, as_of, n, lang, spark_master, max_load_id, seeds),
                max_load_id, loads)
    if engine == "embedded":
        n = buckets or buckets_for(wh)
        evaluations, max_load_id, loads = evaluate_buckets(wh, ruleset, as_of, n, lang)
        return n, evaluations, max_load_id, loads
    raise AssertionError(engine)


def evaluate_run(wh: Warehouse, ruleset: Ruleset, as_of: dt.date, *, lang: str = "en", store: bool = True,
                 operator: str | None = None, out: Path | None = None, buckets: int | None = None,
                 engine: str = "embedded", spark_master: str = spark.DEFAULT_MASTER) -> tuple[Totals, int | None]:
    """`hcode evaluate`: evaluate bucket by bucket (here, or on Spark from the lake), store the
    run (unless not `store`), write the codes to `out` (when given); the run's totals and id
    (None when not stored)."""
    n, evaluations, max_load_id, loads = evaluations_on(wh, ruleset, as_of, lang, engine, spark_master, buckets)
    with RunWriter(wh, n, store=store) as writer, CodesFile(wh, out, n) as codes:
        for ev in evaluations:
            writer.add(ev)
            codes.add(ev)
        del ev
        run_id = writer.finish(max_load_id, loads, operator) if store else None
    assert writer.totals is not None
    return writer.totals, run_id
