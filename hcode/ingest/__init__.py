"""ingest: department exports into the warehouse.

`load` (one transaction per file; `ingest_paths` loads
a session of files sharing one person index), `read` (one export's bytes, bounded, its
header checked, decoded and streamed in batches; only regular files within the size limit), `write` (a file's checked rows into the
warehouse: quarantine, each event once), `quarantine` (what was rejected and why). The
validation of values against the feed contracts is `hcode.validate`, a layer below, which
ruleset examples share. May import `hcode.store`, `hcode.validate` and the root vocabulary.
"""
