"""hcode: explainable health codes from department exports.

A library first: `hcode.warehouse` (the DuckDB warehouse), `hcode.ingest` (loading
exports), `hcode.ruleset` / `hcode.compile` / `hcode.evaluate` (the rule language and its
Polars engine), `hcode.diff` and `hcode.report` (explained changes). `hcode.cli` is a
thin Typer shell over them.
"""

__version__ = "0.1.0"
