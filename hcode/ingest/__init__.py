"""ingest: department exports into the warehouse.

`load` (reading CSV/Parquet in batches, one transaction per file; `ingest_paths` loads
a session of files sharing one person index), `read` (one export's bytes, bounded, its
header checked, decoded and read in batches), `normalise`
(vectorised validation against the feed contracts), `quarantine` (what was rejected and why).
May import `hcode.store` and the root vocabulary.
"""
