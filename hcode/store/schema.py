"""The warehouse's schema: its tables, as DDL, and the columns added to an older warehouse.

Tables (all created by `hcode.store.warehouse.init`, idempotently):

- `meta(k, v)`: schema version, the key's fingerprint (HMAC-SHA256 under the key of a fixed
  text: it tells keys apart without being a hash anyone could test guesses against offline
  faster than with the key itself).
- `persons(pid, person_key, load_id)`: one row per pseudonymised person. `person_key` is
  the HMAC of the id number (see `hcode.store.pseudonym`); `pid` is a compact integer surrogate
  that every other table uses, so joins and group-bys run on 4-byte integers; `load_id`
  is the load that created the person (its audit entry holds the digest of those rows).
- `loads`: one row per file loaded (feed, name, sha256, counts, clock, batch date,
  retraction).
- `quarantine`: one row per bad input row: load, file, line, the failing columns with
  reasons, and the raw contract values (id masked).
- `repeats(load_id, feed, row_sha)`: the rows a load sent that an earlier load had already
  stored (each event is stored once, under the first load that sent it): one row per such
  row, `row_sha` being `row_sha_sql` of it. A retraction moves a row it would delete to the
  earliest live load that repeated it (`hcode.ops.retract`); a table added after schema 5
  first shipped, so an older warehouse gets it when opened for writing (`add_missing`).
- `feed_<name>`: one table per feed of `hcode.feeds.FEEDS`: `pid` (for person feeds),
  the contract columns except the id number, and `load_id`.
- `runs`, `populations`, `population_rows`, `code_details`, `code_defaults` and the view
  `codes`: evaluation runs and one code per person per run (see the DDL below).
- `audit`: the hash-chained audit log.
"""

from __future__ import annotations

import duckdb

from hcode.feeds import FEEDS, Feed

SCHEMA_VERSION = "5"


def _feed_ddl() -> list[str]:
    out = []
    for feed in FEEDS.values():
        cols = ["pid INTEGER NOT NULL"] if feed.has_person else []
        cols += [f"{c.name} {c.sql_type}" for c in feed.stored_columns]
        cols.append("load_id INTEGER NOT NULL")
        out.append(f"CREATE TABLE IF NOT EXISTS {feed.table} ({', '.join(cols)})")
    return out


def add_optional_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Add to a warehouse made before them the optional feed columns it lacks (nullable, so
    its rows simply have none): `feed_table.column` of each column added."""
    have = {(t, c) for t, c in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_name LIKE 'feed_%'").fetchall()}
    added = []
    for feed in FEEDS.values():
        for c in feed.stored_columns:
            if c.optional and (feed.table, c.name) not in have:
                con.execute(f"ALTER TABLE {feed.table} ADD COLUMN {c.name} {c.sql_type}")
                added.append(f"{feed.table}.{c.name}")
    return added


def add_missing(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Bring a warehouse made by an earlier hcode of this schema up to date: the `repeats`
    table, then `add_optional_columns` (what was added, as `table` or `table.column`)."""
    had = has_table(con, "repeats")
    con.execute(REPEATS_DDL)
    return ([] if had else ["repeats"]) + add_optional_columns(con)


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [name]).fetchall()[0][0])


def row_sha_sql(feed: Feed, prefix: str = "") -> str:
    """The SQL expression of a stored row's `row_sha` (`repeats`): SHA-256 of its pid (person
    feeds) and stored columns, `load_id` excluded, in the order of `Feed.stored_columns`, each
    cast to its warehouse type then to text and written as `<bytes>:<text>`, or as nothing
    when null, joined by commas: an injective text (a comma or colon inside a value cannot
    make two rows alike, nor can a null and an empty text). `prefix`: a table alias and dot.
    Ingest (which records repeats) and retract (which looks them up) both use this one."""
    cols = ([("pid", "INTEGER")] if feed.has_person else []) + [(c.name, c.sql_type) for c in feed.stored_columns]
    parts = []
    for name, sql_type in cols:
        text = f"CAST(CAST({prefix}{name} AS {sql_type}) AS VARCHAR)"
        parts.append(f"coalesce(CAST(strlen({text}) AS VARCHAR) || ':' || {text}, '')")
    return f"sha256(concat_ws(',', {', '.join(parts)}))"


REPEATS_DDL = ("CREATE TABLE IF NOT EXISTS repeats (load_id INTEGER NOT NULL, feed VARCHAR NOT NULL, "
               "row_sha VARCHAR NOT NULL)")

EVIDENCE_SQL = 'STRUCT(rule VARCHAR, feed VARCHAR, "time" TIMESTAMP, detail VARCHAR)'
OVERRIDE_SQL = ("STRUCT(color VARCHAR, authority VARCHAR, basis VARCHAR, operator VARCHAR, reason VARCHAR, "
                "issued_at TIMESTAMP, expires_at TIMESTAMP, applied BOOLEAN)")

DDL = [
    "CREATE TABLE IF NOT EXISTS meta (k VARCHAR PRIMARY KEY, v VARCHAR)",
    "CREATE TABLE IF NOT EXISTS persons (pid INTEGER NOT NULL, person_key VARCHAR NOT NULL, load_id INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS loads (
        load_id INTEGER NOT NULL, feed VARCHAR NOT NULL, file_name VARCHAR NOT NULL,
        sha256 VARCHAR NOT NULL, rows_read BIGINT NOT NULL, rows_loaded BIGINT NOT NULL,
        rows_new BIGINT NOT NULL, rows_quarantined BIGINT NOT NULL,
        loaded_at TIMESTAMP NOT NULL, clock TIMESTAMP NOT NULL, batch_date DATE,
        operator VARCHAR, retracted_at TIMESTAMP, retract_reason VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        load_id INTEGER NOT NULL, feed VARCHAR NOT NULL, file_name VARCHAR NOT NULL,
        line BIGINT NOT NULL, errors STRUCT("column" VARCHAR, reason VARCHAR)[] NOT NULL,
        raw VARCHAR NOT NULL)""",
    REPEATS_DDL,
    """CREATE TABLE IF NOT EXISTS runs (
        run_id INTEGER NOT NULL, province VARCHAR NOT NULL, version VARCHAR NOT NULL,
        ruleset_hash VARCHAR NOT NULL, as_of DATE NOT NULL, cutoff TIMESTAMP NOT NULL,
        created_at TIMESTAMP NOT NULL, max_load_id INTEGER NOT NULL, persons BIGINT NOT NULL,
        colors VARCHAR NOT NULL, overrides_applied BIGINT NOT NULL,
        overrides_not_applied BIGINT NOT NULL, operator VARCHAR,
        published BOOLEAN NOT NULL DEFAULT false, published_at TIMESTAMP, info VARCHAR,
        population_id INTEGER NOT NULL)""",
    # A run's codes, in three parts (the view `codes` joins them back into one row per person):
    # the run's population (every person's pid and district), shared by the runs that saw the
    # same one; the full code (colour, deciding rule, matched rules, evidence, override,
    # explanation) of the persons some rule matched or an override names, a few percent; and
    # the run's code of a person with no events, which every other person has. Writing and
    # digesting 10M rows of colours and nested details per run cost more than evaluating them.
    """CREATE TABLE IF NOT EXISTS populations (
        population_id INTEGER NOT NULL, persons BIGINT NOT NULL, digest VARCHAR NOT NULL)""",
    # the district's 6-digit code (validated at ingest) as a number: half the cost of text to
    # write and digest; `codes` gives it back as text (10M codes as text: 0.17 s to read
    # stored, 0.29 s to make; lpad on all of them, 0.49 s, only pads the few below 100000)
    """CREATE TABLE IF NOT EXISTS population_rows (
        population_id INTEGER NOT NULL, pid INTEGER NOT NULL, district INTEGER)""",
    f"""CREATE TABLE IF NOT EXISTS code_details (
        run_id INTEGER NOT NULL, pid INTEGER NOT NULL, color VARCHAR NOT NULL, rule VARCHAR,
        matched_rules VARCHAR[] NOT NULL, evidence {EVIDENCE_SQL}[] NOT NULL, override {OVERRIDE_SQL},
        explanation VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS code_defaults (
        run_id INTEGER NOT NULL, color VARCHAR NOT NULL, rule VARCHAR, explanation VARCHAR NOT NULL)""",
    f"""CREATE VIEW IF NOT EXISTS codes AS
        SELECT r.run_id, p.pid,
               CASE WHEN p.district >= 100000 THEN CAST(p.district AS VARCHAR)
                    ELSE lpad(CAST(p.district AS VARCHAR), 6, '0') END AS district_code,
               CASE WHEN d.pid IS NULL THEN x.color ELSE d.color END AS color,
               CASE WHEN d.pid IS NULL THEN x.rule ELSE d.rule END AS rule,
               coalesce(d.matched_rules, CAST([] AS VARCHAR[])) AS matched_rules,
               coalesce(d.evidence, CAST([] AS {EVIDENCE_SQL}[])) AS evidence,
               d.override, coalesce(d.explanation, x.explanation) AS explanation
        FROM runs r
        JOIN population_rows p ON p.population_id = r.population_id
        LEFT JOIN code_details d ON d.run_id = r.run_id AND d.pid = p.pid
        LEFT JOIN code_defaults x ON x.run_id = r.run_id""",
    """CREATE TABLE IF NOT EXISTS ruleset_texts (
        ruleset_hash VARCHAR NOT NULL, province VARCHAR NOT NULL, version VARCHAR NOT NULL,
        text VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER NOT NULL, happened_at TIMESTAMP NOT NULL, action VARCHAR NOT NULL,
        operator VARCHAR, detail VARCHAR NOT NULL, prev_hash VARCHAR NOT NULL,
        entry_hash VARCHAR NOT NULL)""",
    *_feed_ddl(),
]
