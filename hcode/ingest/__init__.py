"""ingest: department exports into the warehouse.

`load` (reading CSV/Parquet in batches, one transaction per file), `normalise`
(vectorised validation against the feed contracts), `quarantine` (what was rejected and why).
May import `hcode.store` and the root vocabulary.
"""
