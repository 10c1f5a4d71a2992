"""The vocabulary: the department feeds, their columns and types, and the codes schema.

This module is data only, defined once and imported everywhere: `hcode.ingest` enforces
the feeds, `hcode.sample` produces them, the rule language (`hcode.rules`) type-checks
rules against them (`Kind.value_type`), the warehouse creates one table per feed
(`Column.sql_type`), the engine reads them as Polars frames (`Column.dtype`), and every
set of codes has the columns of `code_columns`. Colours and their labels are in
`hcode.colors`. See docs/feeds.md for the prose version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import polars as pl


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
    PLACE = "place"  # site code: 1-32 of A-Z, 0-9 and '-', trimmed and upper-cased

    @property
    def value_type(self) -> str:
        """The rule language's type of a column of this kind: timestamp, bool or text."""
        return "timestamp" if self is Kind.TIMESTAMP else "bool" if self is Kind.BOOL else "text"


TIMESTAMP = pl.Datetime("us")  # every stored timestamp: China Standard Time, naive, microseconds
# Each rule-language type as the warehouse stores it and as the engine holds it.
SQL_TYPES = {"timestamp": "TIMESTAMP", "bool": "BOOLEAN", "text": "VARCHAR"}
POLARS_TYPES: dict[str, pl.DataType] = {"timestamp": TIMESTAMP, "bool": pl.Boolean(), "text": pl.String()}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    values: tuple[str, ...] = ()  # for ENUM
    nullable: bool = False  # may be empty
    future_ok: bool = False  # may lie after the moment of loading
    optional: bool = False  # may be absent from a file (then empty); always nullable

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.kind.value_type]

    @property
    def dtype(self) -> pl.DataType:
        return POLARS_TYPES[self.kind.value_type]


@dataclass(frozen=True)
class Feed:
    name: str
    sent_by: str
    columns: tuple[Column, ...]
    meaning: str
    cadence: int | None = 1  # expected days between files; None: sent only when something happens
    # (start, end) columns whose end may not lie before the start (a bad row otherwise)
    ordered: tuple[str, str] | None = None

    @property
    def has_person(self) -> bool:
        return any(c.kind is Kind.ID_NUMBER for c in self.columns)

    @property
    def table(self) -> str:
        """The warehouse table holding this feed's loaded rows."""
        return f"feed_{self.name}"

    @property
    def required_columns(self) -> tuple[Column, ...]:
        """The columns every file of the feed must have (all but the optional ones)."""
        return tuple(c for c in self.columns if not c.optional)

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
    def event_time(self) -> str:
        """The column that dates the event (the first timestamp that may not lie in the future);
        every feed has one."""
        for c in self.columns:
            if c.kind is Kind.TIMESTAMP and not c.future_ok:
                return c.name
        raise ValueError(f"feed {self.name!r} has no event time")


def _c(name: str, kind: Kind, *values: str, nullable: bool = False, future_ok: bool = False,
       optional: bool = False) -> Column:
    return Column(name, kind, tuple(values), nullable or optional, future_ok, optional)


ID = _c("id_number", Kind.ID_NUMBER)

FEEDS: dict[str, Feed] = {
    f.name: f
    for f in (
        Feed("registrations", "health-code platform",
             (ID, _c("registered_at", Kind.TIMESTAMP), _c("district_code", Kind.CODE6)),
             "the person holds a health code here"),
        Feed("cases", "CDC",
             (ID, _c("case_type", Kind.ENUM, "confirmed", "asymptomatic", "suspected"),
              _c("reported_at", Kind.TIMESTAMP), _c("diagnosed_at", Kind.TIMESTAMP, optional=True)),
             "the person was reported as a case (diagnosed_at, when sent: the time of the diagnosis)"),
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
             "the region had that risk level from valid_from (inclusive) to valid_to (exclusive)", cadence=7),
        Feed("isolation", "quarantine management",
             (ID, _c("kind", Kind.ENUM, "centralized", "home_quarantine", "home_health_observation"),
              _c("started_at", Kind.TIMESTAMP), _c("ended_at", Kind.TIMESTAMP, nullable=True, future_ok=True)),
             "the person is or was under that measure"),
        Feed("symptoms", "self-reports and fever clinics",
             (ID, _c("symptom", Kind.ENUM, "fever", "shortness_of_breath", "respiratory"),
              _c("reported_at", Kind.TIMESTAMP), _c("reporter", Kind.ENUM, "self", "clinic")),
             "the person reported, or a clinic recorded, a symptom"),
        Feed("inbound_codes", "national platform (other provinces)",
             (ID, _c("province", Kind.CODE2), _c("color", Kind.COLOR), _c("since", Kind.TIMESTAMP),
              _c("pushed_at", Kind.TIMESTAMP, optional=True)),
             "another province set this person's code to color from since (pushed_at, when sent: the time "
             "the national platform pushed it)"),
        Feed("overrides", "administrative department (manual transcoding)",
             (ID, _c("color", Kind.COLOR), _c("authority", Kind.TEXT), _c("basis", Kind.TEXT),
              _c("operator", Kind.TEXT), _c("reason", Kind.TEXT), _c("issued_at", Kind.TIMESTAMP),
              _c("expires_at", Kind.TIMESTAMP, nullable=True, future_ok=True)),
             "a manual change of the person's code", cadence=None),
        Feed("places", "health-code platform (site-code registry)",
             (_c("place_code", Kind.PLACE), _c("name", Kind.TEXT), _c("district_code", Kind.CODE6),
              _c("registered_at", Kind.TIMESTAMP)),
             "a site code was issued for the place; the latest row per place_code gives its name and district",
             cadence=7),
        Feed("place_scans", "health-code platform (scan log)",
             (ID, _c("place_code", Kind.PLACE), _c("scanned_at", Kind.TIMESTAMP), _c("shown_color", Kind.COLOR)),
             "the person's code was scanned at that place at that time, and the platform showed shown_color"),
        Feed("risk_places", "CDC / health commission",
             (_c("place_code", Kind.PLACE), _c("level", Kind.ENUM, "high", "medium", "low"),
              _c("valid_from", Kind.TIMESTAMP), _c("valid_to", Kind.TIMESTAMP, nullable=True, future_ok=True)),
             "the place was listed at that level from valid_from (inclusive) to valid_to (exclusive)",
             cadence=7, ordered=("valid_from", "valid_to")),
    )
}

# Listings: feeds without persons that a rule joins by a key and a validity interval
# (`risk_area(...)` and `risk_place(...)` in the rule language).
LISTINGS: dict[str, tuple[str, str]] = {"risk_area": ("risk_areas", "region_code"),
                                        "risk_place": ("risk_places", "place_code")}
PLACE_FEEDS = ("places", "place_scans", "risk_places")

# The codes: one row per person, keyed by `pid` inside the engine and by `person_key`
# once stored or compared (`codes_schema`).
EVIDENCE = pl.Struct({"rule": pl.String, "feed": pl.String, "time": TIMESTAMP, "detail": pl.String})
OVERRIDE = pl.Struct({"color": pl.String, "authority": pl.String, "basis": pl.String, "operator": pl.String,
                      "reason": pl.String, "issued_at": TIMESTAMP, "expires_at": TIMESTAMP, "applied": pl.Boolean})
CODE_COLUMNS: dict[str, pl.DataType] = {
    "district_code": pl.String(), "color": pl.String(), "rule": pl.String(), "matched_rules": pl.List(pl.String),
    "evidence": pl.List(EVIDENCE), "override": OVERRIDE, "explanation": pl.String(),
}


def codes_schema(key: str) -> dict[str, pl.DataType]:
    """The codes' columns keyed by `key`: "pid" (Int32, the engine) or "person_key" (text)."""
    return {key: pl.Int32() if key == "pid" else pl.String(), **CODE_COLUMNS}


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
