"""ingest: department exports into the warehouse.

`read` (one export file streamed in batches: only regular files within the size limit),
`load` (validating and storing, one transaction per file; `ingest_paths` loads
a session of files sharing one person index), `normalise`
(vectorised validation against the feed contracts), `quarantine` (what was rejected and why).
May import `hcode.store` and the root vocabulary.
"""
