"""hcode: explainable health codes from department exports.

A library first, in packages by stage: `hcode.store` (the DuckDB warehouse), `hcode.ingest`
(loading exports), `hcode.rules` (the rule language), `hcode.engine` (its Polars engine),
`hcode.runs`, `hcode.diff` and `hcode.report` (explained changes), `hcode.ops` (the nightly
batch); `hcode.feeds` and `hcode.colors` are the vocabulary. `hcode.api` re-exports the
public names (docs/api.md); `hcode.cli` is a thin Typer shell over them. Importing `hcode`
imports none of them.
"""

__version__ = "0.1.0"
