"""hcode: explainable health codes from department exports.

A library first, in packages by stage: `hcode.store` (the DuckDB warehouse), `hcode.ingest`
(loading exports), `hcode.rules` (the rule language), `hcode.engine` (its Polars engine),
`hcode.runs`, `hcode.diff` and `hcode.report` (explained changes), `hcode.ops` (the nightly
batch); `hcode.feeds` and `hcode.colors` are the vocabulary. `hcode.api` re-exports the
public names (docs/api.md); `hcode.cli` is a thin Typer shell over them. Importing `hcode`
imports none of them.

It does set one thing before any of them loads Polars: how long Polars' allocator
(jemalloc) keeps freed memory for reuse (`ALLOCATOR`, unless `$_RJEM_MALLOC_CONF` is set).
Polars ships it set to half a second, for notebooks; hcode frees and allocates a batch's
memory again every few seconds, and pages handed back to the system are faulted in and
zeroed again each time (a 10M first night: 10.5-10.8M page faults and 35-43 s of system
time, against 5.6-6.0M and 22-29 s; its report 33-36 s against, mostly, 28-30 s). Ten seconds is
jemalloc's own default; ingest's batches are sized for what it keeps (`INGEST_ROW_BYTES`).
See docs/configuration.md and benchmarks/RESULTS.md.
"""

import os

ALLOCATOR = "dirty_decay_ms:10000"
os.environ.setdefault("_RJEM_MALLOC_CONF", ALLOCATOR)  # (read once, when Polars' library loads)

__version__ = "0.1.0"
