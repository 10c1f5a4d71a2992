"""The Spark engine: the same compiled Polars evaluation, one person bucket per Spark task.

The driver (this process) brings the lake in step with the warehouse (store/lake.py: its
rows as Parquet, one folder per feed, bucket and load), then runs one Spark task per
bucket: `mapInArrow` over the bucket numbers (`spark.range(buckets)`, one per partition)
hands each to `evaluate_buckets`, which reads that bucket's files of the loads the run saw
with Polars (the global tables whole: the broadcast) and runs `engine.evaluate.evaluate` on
them, exactly as the embedded engine does (one implementation of the rule semantics). Each
bucket's result (its details, its population and one row of totals, in one Arrow schema) is
written by the task itself as a Parquet file in the job's folder of the lake
(`_hcode_spark/<job>/`), through the same `pyarrow.fs` filesystem it reads the lake with,
and the task returns one row naming the file. The driver collects those rows, checks that
every bucket came back exactly once, reads the files bucket by bucket as `Evaluation`s,
which become a run like any other (runs/bucketed.py), and removes the folder.

Why the tasks write their results rather than Spark: the results then go where the driver
can read them on any cluster, since every node reaches the lake already (Spark's own
writer resolves a bare folder against the cluster's default filesystem, or each node's
disk, which the driver might not see); and the rows are not turned from Arrow into Spark's
rows and back (measured in benchmarks/RESULTS.md). A bucket whose row is missing fails
the job: a run is never stored with a bucket left out.

Why `mapInArrow` over buckets rather than `groupBy("bucket").applyInArrow` on the lake read
by Spark: the lake is bucketed already, so a shuffle would only move rows to where they
are; and `applyInArrow` needs one frame, so the feeds had to be unioned into one sparse row
of every feed's columns, sorted by bucket in the JVM and converted to Arrow. At 1M
residents that took 35 s of a 45 s evaluate on `local[2]`; reading the bucket's files
directly takes a fraction of it (benchmarks/RESULTS.md). The price: executors read (and
write their results into) the lake themselves, so on a cluster it must be where every node
reaches it: a folder every node mounts, or a URL (`s3://`, `hdfs://`, ...) that each opens
with `pyarrow.fs`.

The driver sets what executors need: `PYSPARK_PYTHON` (this interpreter) and `PYTHONPATH`
(where `hcode` is imported from), so that `--engine spark` needs nothing else from a user.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from hcode.engine.compile import TS
from hcode.engine.evaluate import CODES_SCHEMA, Evaluation, cutoff_of, evaluate
from hcode.engine.sources import FrameSource, feed_schema
from hcode.errors import HcodeError
from hcode.feeds import EVIDENCE, FEEDS, OVERRIDE
from hcode.rules.ruleset import Ruleset
from hcode.store.lake import Lake, lake_files, read_manifest

DEFAULT_MASTER = "local[*]"
JOBS = "_hcode_spark"  # the lake's folder of the jobs' results (a leading "_": readers of the lake skip it)
STALE_SECONDS = 24 * 3600  # a job's results left this long (a driver that died) are removed by the next job
RETURNED = "bucket int, file string"  # what a task returns per bucket: the file its result is in
OUT_COLUMNS: dict[str, Any] = {"bucket": pl.Int32, "kind": pl.String, "pid": pl.Int32, "district": pl.Int32,
               **{c: t for c, t in CODES_SCHEMA.items() if c not in ("pid", "district_code")}, "info": pl.String}


class SparkUnavailable(HcodeError):
    """`--engine spark` without pyspark or without Java."""


class SparkFailed(HcodeError):
    """The Spark job failed: no run is stored."""


def check_spark() -> None:
    """One clear sentence naming what to install, when pyspark or Java is missing."""
    missing = [m for m in ("pyspark", "pandas") if importlib.util.find_spec(m) is None]
    if missing:  # (Spark's Arrow functions need pyspark[sql]'s pandas too)
        raise SparkUnavailable(f"--engine spark needs {' and '.join(missing)}: install with "
                               "`pip install -e '.[spark]'` (pyspark[sql] 4.0 or later)")
    if java() is None:
        raise SparkUnavailable("--engine spark needs Java 17: install it (for example "
                               "`apt-get install openjdk-17-jre-headless`) or set JAVA_HOME")


def java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").is_file():
        return str(Path(home, "bin", "java"))
    return shutil.which("java")


def executor_env() -> dict[str, str]:
    """What Python workers need: this interpreter, and the folder `hcode` is imported from."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PYTHONPATH": root if not path else (path if root in path.split(os.pathsep) else root + os.pathsep + path)}


def session(master: str) -> Any:
    """The Spark session (an existing one is reused: tests share one), with the executors'
    environment set."""
    check_spark()
    env = executor_env()
    os.environ.update(env)
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.master(master).appName("hcode evaluate")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.parquet.inferTimestampNTZ.enabled", "true")
               .config("spark.executorEnv.PYTHONPATH", env["PYTHONPATH"])
               .config("spark.executorEnv.PYSPARK_PYTHON", sys.executable)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _feeds(rs: Ruleset) -> list[str]:
    """Every run reads the registrations and overrides, the facts' feeds, and the global tables."""
    global_tables = [name for name, feed in FEEDS.items() if not feed.has_person]
    return list(dict.fromkeys(["registrations", "overrides", *(f.feed for f in rs.facts.values()), *global_tables]))


def bucket_frames(lake: str, feeds: list[str], bucket: int, max_load_id: int) -> dict[str, pl.LazyFrame]:
    """One bucket's rows of the lake's loads up to `max_load_id`, per feed, as Polars scans (a
    feed with no file for the bucket is left out: `feed_rows` makes it empty with the
    contract's columns), and the global tables whole (every bucket reads them: the broadcast)."""
    where = Lake.at(lake)
    frames = {}
    for feed in feeds:
        files = lake_files(where, feed, bucket, max_load_id)
        if files:
            schema = feed_schema(feed)
            if where.local:
                lf = pl.scan_parquet(files, hive_partitioning=False)
            else:  # (an object store or HDFS, through the filesystem pyarrow opens for the URL)
                import pyarrow.parquet as pq

                lf = pl.DataFrame(pq.read_table(files, filesystem=where.fs, partitioning=None)).lazy()
            frames[feed] = lf.select([pl.col(c) for c in schema if c in lf.collect_schema()])
    return frames


def evaluate_buckets(rs: Ruleset, as_of: dt.date, lang: str, feeds: list[str], lake: str, max_load_id: int,
                     seeds: Mapping[str, pl.DataFrame] | None = None, out: str = ""
                     ) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The function Spark runs per task (`mapInArrow` over the bucket numbers): for each
    bucket, its rows read from the lake by Polars, `evaluate` on them, the evaluation written
    into the job's folder `out` (`write_result`) and one row of RETURNED naming the file.
    `seeds` are the companions' seed scans (evaluate.all_seeds, read by the driver from every
    person's rows), shipped with the function."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        for batch in batches:
            for b in batch.column(0).to_pylist():
                source = FrameSource(bucket_frames(lake, feeds, int(b), max_load_id), cutoff_of(as_of), seeds)
                ev = evaluate(rs, source, as_of, lang=lang)
                file = write_result(out, int(b), pack(ev, int(b)))
                yield pa.RecordBatch.from_pydict({"bucket": pa.array([int(b)], pa.int32()), "file": [file]})

    return run


def write_result(out: str, bucket: int, packed: pl.DataFrame) -> str:
    """Write one bucket's packed result into the job's folder `out` (a lake path or URL) under
    a name of its own, so that a task run twice (a retry, a speculative copy) never writes
    over the file the driver is told of; returns the file's path in the lake's filesystem."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = Lake.at(out)
    folder = where.path(f"bucket={bucket}")
    where.fs.create_dir(folder, recursive=True)
    file = f"{folder}/{uuid.uuid4().hex}.parquet"
    pq.write_table(packed.to_arrow().cast(_arrow_schema(pa)), file, filesystem=where.fs, compression="lz4")
    return file


def pack(ev: Evaluation, bucket: int) -> pl.DataFrame:
    """A bucket's evaluation as rows of OUT_COLUMNS: its details (`d`), its population (`p`)
    and its totals (`t`, as JSON)."""
    info = json.dumps({"persons": ev.persons, "colors": ev.colors, "overrides_applied": ev.overrides_applied,
                       "overrides_not_applied": ev.overrides_not_applied, "default_color": ev.default_color,
                       "default_rule": ev.default_rule, "default_explanation": ev.default_explanation})
    parts = [ev.results.with_columns(pl.lit("d").alias("kind")),
             ev.population.with_columns(pl.lit("p").alias("kind")),
             pl.DataFrame({"kind": ["t"], "info": [info]})]
    out = pl.concat(parts, how="diagonal_relaxed").with_columns(pl.lit(bucket, pl.Int32).alias("bucket"))
    return out.select([(pl.col(c) if c in out.columns else pl.lit(None)).cast(t).alias(c)
                       for c, t in OUT_COLUMNS.items()])


def _arrow_schema(pa: Any) -> Any:
    ts = pa.timestamp("us")
    return pa.schema([
        ("bucket", pa.int32()), ("kind", pa.string()), ("pid", pa.int32()), ("district", pa.int32()),
        ("color", pa.string()), ("rule", pa.string()), ("matched_rules", pa.list_(pa.string())),
        ("evidence", pa.list_(pa.struct([("rule", pa.string()), ("feed", pa.string()), ("time", ts),
                                         ("detail", pa.string())]))),
        ("override", pa.struct([("color", pa.string()), ("authority", pa.string()), ("basis", pa.string()),
                                ("operator", pa.string()), ("reason", pa.string()), ("issued_at", ts),
                                ("expires_at", ts), ("applied", pa.bool_())])),
        ("explanation", pa.string()), ("info", pa.string())])


def unpack(frame: pl.DataFrame, rs: Ruleset, as_of: dt.date) -> Evaluation:
    """One bucket's rows of OUT_COLUMNS back into the Evaluation `evaluate` gave on Spark."""
    info = json.loads(frame.filter(pl.col("kind") == "t")["info"][0])
    population = (frame.filter(pl.col("kind") == "p").select("pid", "district").sort("pid"))
    results = (frame.filter(pl.col("kind") == "d")
               .select([pl.col(c).cast(t) for c, t in CODES_SCHEMA.items() if c != "district_code"])
               .with_columns(pl.col("evidence").cast(pl.List(EVIDENCE)), pl.col("override").cast(OVERRIDE)))
    return Evaluation(population=population, results=results, default_color=info["default_color"],
                      default_rule=info["default_rule"], default_explanation=info["default_explanation"],
                      persons=info["persons"], colors={c: info["colors"].get(c, 0) for c in rs.palette},
                      overrides_applied=info["overrides_applied"],
                      overrides_not_applied=info["overrides_not_applied"],
                      ruleset=rs, as_of=as_of, cutoff=cutoff_of(as_of))


def evaluate_on_spark(lake: Path | Lake, rs: Ruleset, as_of: dt.date, buckets: int, lang: str, master: str,
                      max_load_id: int, seeds: Mapping[str, pl.DataFrame] | None = None) -> Iterator[Evaluation]:
    """Run the evaluation of every bucket of the lake (its loads up to `max_load_id`) on
    Spark, then yield the buckets' Evaluations one at a time (read back from the files the
    tasks wrote into the job's folder of the lake, which goes afterwards). The job finishes,
    and every bucket is found to have come back once, before the first is yielded; else
    SparkFailed is raised."""
    spark = session(master)
    lake = Lake.at(lake)
    held = (read_manifest(lake) or {}).get("loads", {})
    feeds = [f for f in _feeds(rs) if any(int(n) for n in held.get(f, {}).values())]
    if not feeds:
        raise SparkFailed(f"the lake {lake} holds no rows")
    _remove_stale_jobs(lake)
    job = f"{JOBS}/{uuid.uuid4().hex}"
    out = f"{lake.url.rstrip('/')}/{job}"
    tasks = spark.range(0, buckets, 1, numPartitions=buckets)  # one task per bucket
    try:
        try:
            returned = (tasks.mapInArrow(evaluate_buckets(rs, as_of, lang, feeds, lake.url, max_load_id, seeds,
                                                          out=out), RETURNED).collect())
        except Exception as exc:  # py4j and pyspark errors: no run is stored
            raise SparkFailed(f"the Spark job failed, nothing stored: {str(exc).splitlines()[0][:500]}") from exc
        files = returned_files([(r["bucket"], r["file"]) for r in returned], buckets)
        import pyarrow.parquet as pq

        for file in files:
            yield unpack(pl.DataFrame(pq.read_table(file, filesystem=lake.fs)), rs, as_of)
    finally:
        if lake.exists(job):
            lake.fs.delete_dir(lake.path(job))


def returned_files(returned: list[tuple[int, str]], buckets: int) -> list[str]:
    """The file of each bucket 0..buckets-1, from the rows the job's tasks returned; raises
    SparkFailed unless every bucket came back exactly once (a bucket left out would store a
    run without its persons)."""
    got: dict[int, list[str]] = {}
    for bucket, file in returned:
        got.setdefault(int(bucket), []).append(file)
    missing = [b for b in range(buckets) if b not in got]
    twice = sorted(b for b, files in got.items() if len(files) > 1)
    strange = sorted(b for b in got if not 0 <= b < buckets)
    if missing or twice or strange:
        what = "; ".join(f"{label} {', '.join(map(str, bs[:10]))}" for label, bs in
                         (("missing buckets", missing), ("buckets returned twice", twice),
                          ("unknown buckets", strange)) if bs)
        raise SparkFailed(f"the Spark job's results are incomplete, nothing stored: {what}")
    return [got[b][0] for b in range(buckets)]


def _remove_stale_jobs(lake: Lake) -> None:
    """Remove the results of jobs whose driver died before removing them (files older than
    STALE_SECONDS; a running job's are newer)."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(lake.path(JOBS), recursive=True, allow_not_found=True)
    limit = time.time() - STALE_SECONDS
    for info in lake.fs.get_file_info(selector):
        if info.type == pafs.FileType.File and info.mtime is not None and info.mtime.timestamp() < limit:
            lake.fs.delete_file(info.path)


__all__ = ["evaluate_on_spark", "check_spark", "SparkUnavailable", "SparkFailed", "DEFAULT_MASTER", "TS"]
