"""The input contracts: which columns each department feed must carry and what they mean.

This module is data only. `hcode.ingest` enforces it, `hcode.sample` produces it,
the rule language (`hcode.ruleset`) type-checks rules against it, and the warehouse
creates one table per feed from it. See docs/feeds.md for the prose version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """How a contract column is parsed, validated and stored."""

    ID_NUMBER = "id_number"  # 18-char resident id; stored only as a pseudonym (pid)
    TIMESTAMP = "timestamp"  # China Standard Time, naive; stored as TIMESTAMP
    ENUM = "enum"  # lower-case word from a closed list; stored as VARCHAR
    BOOL = "bool"  # true/false/1/0; stored as BOOLEAN
    CODE6 = "code6"  # 6-digit GB/T 2260 code; stored as VARCHAR
    CODE2 = "code2"  # 2-digit province code; stored as VARCHAR
    COLOR = "color"  # any word, lower-cased; judged against a ruleset's palette at run time
    ORIGIN = "origin"  # ISO 3166-1 alpha-2, upper-cased
    TEXT = "text"  # free text, trimmed


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    values: tuple[str, ...] = ()  # for ENUM
    nullable: bool = False  # may be empty
    future_ok: bool = False  # may lie after the moment of loading

    @property
    def sql_type(self) -> str:
        return {
            Kind.TIMESTAMP: "TIMESTAMP",
            Kind.BOOL: "BOOLEAN",
        }.get(self.kind, "VARCHAR")


@dataclass(frozen=True)
class Feed:
    name: str
    sent_by: str
    columns: tuple[Column, ...]
    meaning: str

    @property
    def has_person(self) -> bool:
        return any(c.kind is Kind.ID_NUMBER for c in self.columns)

    @property
    def table(self) -> str:
        """The warehouse table holding this feed's loaded rows."""
        return f"feed_{self.name}"

    @property
    def stored_columns(self) -> tuple[Column, ...]:
        """Contract columns as stored: everything but the raw id number."""
        return tuple(c for c in self.columns if c.kind is not Kind.ID_NUMBER)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"feed {self.name!r} has no column {name!r}")

    @property
    def event_time(self) -> str | None:
        """The column that dates the event (the first timestamp that may not lie in the future)."""
        for c in self.columns:
            if c.kind is Kind.TIMESTAMP and not c.future_ok:
                return c.name
        return None


def _c(name: str, kind: Kind, *values: str, nullable: bool = False, future_ok: bool = False) -> Column:
    return Column(name, kind, tuple(values), nullable, future_ok)


ID = _c("id_number", Kind.ID_NUMBER)

FEEDS: dict[str, Feed] = {
    f.name: f
    for f in (
        Feed("registrations", "health-code platform",
             (ID, _c("registered_at", Kind.TIMESTAMP), _c("district_code", Kind.CODE6)),
             "the person holds a health code here"),
        Feed("cases", "CDC",
             (ID, _c("case_type", Kind.ENUM, "confirmed", "asymptomatic", "suspected"),
              _c("reported_at", Kind.TIMESTAMP)),
             "the person was reported as a case"),
        Feed("discharges", "health commission",
             (ID, _c("discharged_at", Kind.TIMESTAMP)),
             "the case was cured and released"),
        Feed("contacts", "CDC epidemiological investigation",
             (ID, _c("contact_level", Kind.ENUM, "close", "secondary"), _c("identified_at", Kind.TIMESTAMP)),
             "the person was identified as a close or secondary-close contact"),
        Feed("nat_results", "nucleic-acid testing labs",
             (ID, _c("sampled_at", Kind.TIMESTAMP), _c("result", Kind.ENUM, "positive", "negative"),
              _c("pooled", Kind.BOOL)),
             "one test result; pooled=true is a mixed-tube result"),
        Feed("entries", "customs / immigration",
             (ID, _c("entered_at", Kind.TIMESTAMP), _c("origin", Kind.ORIGIN)),
             "the person entered the mainland"),
        Feed("trips", "telecom, railway, civil aviation",
             (ID, _c("region_code", Kind.CODE6), _c("visited_at", Kind.TIMESTAMP),
              _c("source", Kind.ENUM, "telecom", "railway", "aviation")),
             "the person was in that region at that time"),
        Feed("risk_areas", "health commission",
             (_c("region_code", Kind.CODE6), _c("level", Kind.ENUM, "high", "medium", "low"),
              _c("valid_from", Kind.TIMESTAMP), _c("valid_to", Kind.TIMESTAMP, nullable=True, future_ok=True)),
             "the region had that risk level from valid_from (inclusive) to valid_to (exclusive)"),
        Feed("isolation", "quarantine management",
             (ID, _c("kind", Kind.ENUM, "centralized", "home_quarantine", "home_health_observation"),
              _c("started_at", Kind.TIMESTAMP), _c("ended_at", Kind.TIMESTAMP, nullable=True, future_ok=True)),
             "the person is or was under that measure"),
        Feed("symptoms", "self-reports and fever clinics",
             (ID, _c("symptom", Kind.ENUM, "fever", "shortness_of_breath", "respiratory"),
              _c("reported_at", Kind.TIMESTAMP), _c("reporter", Kind.ENUM, "self", "clinic")),
             "the person reported, or a clinic recorded, a symptom"),
        Feed("inbound_codes", "national platform (other provinces)",
             (ID, _c("province", Kind.CODE2), _c("color", Kind.COLOR), _c("since", Kind.TIMESTAMP)),
             "another province set this person's code to color from since"),
        Feed("overrides", "administrative department (manual transcoding)",
             (ID, _c("color", Kind.COLOR), _c("authority", Kind.TEXT), _c("basis", Kind.TEXT),
              _c("operator", Kind.TEXT), _c("reason", Kind.TEXT), _c("issued_at", Kind.TIMESTAMP),
              _c("expires_at", Kind.TIMESTAMP, nullable=True, future_ok=True)),
             "a manual change of the person's code"),
    )
}

def feed_for_file(file_name: str) -> str | None:
    """The feed named by a file: the name's prefix up to the first `.` or `_<digits>`.

    >>> feed_for_file("nat_results_20220614.csv")
    'nat_results'
    >>> feed_for_file("risk_areas.parquet")
    'risk_areas'
    """
    base = file_name.rsplit("/", 1)[-1]
    stem = base.split(".", 1)[0]
    m = re.match(r"^(.*?)_\d+(?:_|$)", stem)
    name = m.group(1) if m else stem
    return name if name in FEEDS else None
