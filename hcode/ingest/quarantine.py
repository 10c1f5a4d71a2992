"""Reading back what ingest recorded: quarantined rows grouped by file and reason, and the
load history. (Writing them is `hcode.ingest`'s job.)"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import duckdb


@dataclass(frozen=True)
class QuarantineGroup:
    file_name: str
    feed: str
    column: str
    reason: str
    rows: int
    lines: tuple[int, ...]  # the first few lines (CSV) or row indexes (Parquet)

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["lines"] = list(self.lines)
        return d


def summary(con: duckdb.DuckDBPyConnection, file_name: str | None = None, examples: int = 5) -> list[QuarantineGroup]:
    """One group per (file, column, reason); a row failing two columns counts in both."""
    rows = con.execute(
        """
        SELECT file_name, feed, e.column, e.reason, count(*) AS n,
               list(line ORDER BY load_id, line)[1:?] AS lines
        FROM (SELECT load_id, file_name, feed, line, unnest(errors) AS e FROM quarantine
              WHERE ? IS NULL OR file_name = ?)
        GROUP BY ALL ORDER BY file_name, n DESC, e.column, e.reason
        """,
        [examples, file_name, file_name],
    ).fetchall()
    return [QuarantineGroup(f, fd, c, r, n, tuple(ls)) for f, fd, c, r, n, ls in rows]


def loads(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cur = con.execute("SELECT * FROM loads ORDER BY load_id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def summary_json(groups: list[QuarantineGroup]) -> dict[str, Any]:
    """What `hcode quarantine --json` prints."""
    return {"groups": [g.as_json() for g in groups]}


def loads_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What `hcode loads --json` prints."""
    return {"loads": rows}
