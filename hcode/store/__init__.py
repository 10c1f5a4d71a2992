"""store: the DuckDB warehouse and what it keeps about persons.

`warehouse` (opening), `keys` (the key, its checks and fingerprint), `schema` (the tables, as DDL, and the
optional columns added to an older warehouse), `audit` (the hash chain),
`audit_log` (reading the log back), `lock` (the nightly lock), `persons` (id number -> pid),
`pseudonym` (keyed HMAC).
May import only the root vocabulary (`hcode.feeds`, `hcode.errors`, `hcode.idnumber`, ...).
"""
