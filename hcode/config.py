"""Site settings read from `hcode.toml` beside the warehouse (docs/configuration.md).

Only what an operator must be able to tune without touching code lives here: how often each
feed is expected (`[freshness]`), when the publish guard refuses a run (`[guard]`), the
largest export file ingest reads (`[ingest]`), how many person buckets an evaluation is cut
into (`[engine] buckets`) and how much memory hcode may use (`[memory] limit`; environment
variables `HCODE_BUCKETS` and `HCODE_MEMORY` win). The
file is optional; a missing key keeps its default. Every value is checked when the file is
read, and a mistake names the file and the key, so that a typo never silently turns a
check off on the night it matters.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hcode.errors import HcodeError
from hcode.feeds import FEEDS

CONFIG_NAME = "hcode.toml"

# Expected cadence in days per feed; None = never late (sent only when something happens).
# place feeds are judged only when the ruleset reads them (hcode.ops.freshness)
DEFAULT_CADENCE: dict[str, int | None] = {f.name: f.cadence for f in FEEDS.values()}
DEFAULT_RETENTION = {"place_scans_days": 28}


class ConfigError(HcodeError):
    """`hcode.toml` does not parse or holds a value hcode cannot use."""


@dataclass(frozen=True)
class GuardConfig:
    """When the publish guard refuses a run (see `hcode.ops.guard`)."""

    max_shrink: float = 0.05  # population may shrink by at most this share
    max_color_change: float = 0.50  # each colour but the palette's first may move by at most this share
    max_red_change: float | None = None  # the older key: the palette's most severe colour's own share
    max_changed: float = 0.05  # persons whose colour changed, as a share of the previous population
    min_persons: int = 100  # ... unless it moved by fewer persons than this
    colors: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # per-colour shares

    def color_limit(self, color: str, severe: bool) -> float:
        """The share by which `color`'s count may move: its own (`[guard.colors]`), else
        `max_red_change` for the palette's most severe colour when set, else `max_color_change`."""
        if color in self.colors:
            return self.colors[color]
        if severe and self.max_red_change is not None:
            return self.max_red_change
        return self.max_color_change


DEFAULT_MAX_FILE_BYTES = 4 * 1024**3  # 4 GiB: a 50M-row export is about 2.5 GB


@dataclass(frozen=True)
class IngestConfig:
    """What ingest refuses to read (see `hcode.ingest.load`)."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES  # a larger file is rejected unread


@dataclass(frozen=True)
class RetentionConfig:
    """How long personal data with a retention limit is kept (`[retention]`)."""

    place_scans_days: int = 28  # scans before the night's cut-off minus this many days are purged


@dataclass(frozen=True)
class Config:
    cadence: Mapping[str, int | None] = field(default_factory=lambda: MappingProxyType(dict(DEFAULT_CADENCE)))
    guard: GuardConfig = field(default_factory=GuardConfig)
    source: Path | None = None  # the file read, if any
    ingest: IngestConfig = field(default_factory=IngestConfig)
    buckets: int | None = None  # [engine] buckets; None: derived from the population and the memory limit
    memory: int | None = None  # [memory] limit in bytes; None: a share of the machine's memory
    lake: str | None = None  # [lake] path: where --engine spark's lake is written (default <db>.lake)
    retention: RetentionConfig = field(default_factory=RetentionConfig)

    @property
    def memory_limit(self) -> int:
        """The memory hcode may use, in bytes: `$HCODE_MEMORY`, else `[memory] limit`, else
        `MEMORY_SHARE` of the machine's physical memory."""
        env = os.environ.get("HCODE_MEMORY")
        if env:
            return parse_size(env, "HCODE_MEMORY")
        return self.memory if self.memory is not None else int(machine_memory() * MEMORY_SHARE)

    @property
    def bucket_setting(self) -> int | None:
        """The bucket count asked for: `$HCODE_BUCKETS`, else `[engine] buckets`, else None."""
        env = os.environ.get("HCODE_BUCKETS")
        if env:
            return _positive(env.strip(), "HCODE_BUCKETS")
        return self.buckets

    @property
    def ingest_batch_rows(self) -> int:
        """The rows ingest validates and writes at a time: `INGEST_SHARE` of the memory limit
        at `INGEST_ROW_BYTES` a row, between 100,000 and 5M rows (2.9M with a 12 GiB limit)."""
        rows = int(self.memory_limit * INGEST_SHARE // INGEST_ROW_BYTES)
        return max(100_000, min(5_000_000, rows))


MEMORY_SHARE = 0.5  # of the machine's memory, when no limit is set
INGEST_SHARE = 0.4  # of the memory limit for one ingest batch
# ingest's peak per row of a batch: a batch is written while the next is read and validated,
# and Polars' allocator keeps what a batch freed for the next (hcode.ALLOCATOR); 1.8 kB, not
# the 1.6 kB measured, leaves room for the session's id map (12 bytes a person: 1.2 GB at 100M)
INGEST_ROW_BYTES = 1_800
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def machine_memory() -> int:
    """The machine's physical memory in bytes (8 GiB when the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def parse_size(text: str, where: str) -> int:
    """ "12GB", "512MiB", "3000000000" -> bytes (decimal units as DuckDB reads them)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).upper() if m else ""
    if not m or unit not in _UNITS or float(m.group(1)) <= 0:
        raise ConfigError(f"{where} = {text!r}: give a size such as 12GB, 512MB or 8GiB")
    return int(float(m.group(1)) * _UNITS[unit])


def _positive(value: object, where: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} = {value!r}: give a whole number of buckets, 1 or more")
    return value


def _retention(path: Path, table: Mapping[str, Any]) -> RetentionConfig:
    for k, v in table.items():
        if k not in DEFAULT_RETENTION:
            raise ConfigError(f"{path}: [retention] {k}: unknown key (known: {', '.join(DEFAULT_RETENTION)})")
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{path}: [retention] {k} = {v!r}: give a whole number of days (1 or more)")
    return RetentionConfig(**table)


def config_path(db: str | Path) -> Path:
    return Path(db).resolve().parent / CONFIG_NAME


def _cadence(path: Path, table: Mapping[str, Any]) -> dict[str, int | None]:
    out = dict(DEFAULT_CADENCE)
    for feed, value in table.items():
        if feed not in FEEDS:
            raise ConfigError(f"{path}: [freshness] {feed}: not a feed (feeds: {', '.join(FEEDS)})")
        if value == "never" or value == 0:
            out[feed] = None
        elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
            out[feed] = value
        else:
            raise ConfigError(f"{path}: [freshness] {feed} = {value!r}: give a whole number of days "
                              "(1 or more), or \"never\"")
    return out


def _share(path: Path, where: str, v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ConfigError(f"{path}: {where} = {v!r}: give a number, 0 or more")
    return float(v)


def _guard(path: Path, table: Mapping[str, Any]) -> GuardConfig:
    known = {"max_shrink": float, "max_color_change": float, "max_red_change": float, "max_changed": float,
             "min_persons": int, "colors": dict}
    values: dict[str, Any] = {}
    for k, v in table.items():
        if k not in known:
            raise ConfigError(f"{path}: [guard] {k}: unknown key (known: {', '.join(known)})")
        if known[k] is dict:
            if not isinstance(v, dict):
                raise ConfigError(f"{path}: [guard] {k}: give a table of colour = share ([guard.colors])")
            for color in v:
                if not isinstance(color, str) or not color.islower() or not color.isidentifier():
                    raise ConfigError(f"{path}: [guard.colors] {color}: not a colour name (lower-case words)")
            values[k] = MappingProxyType({c: _share(path, f"[guard.colors] {c}", x) for c, x in v.items()})
            continue
        share = _share(path, f"[guard] {k}", v)
        if known[k] is int and not isinstance(v, int):
            raise ConfigError(f"{path}: [guard] {k} = {v!r}: give a whole number of persons")
        values[k] = int(share) if known[k] is int else share
    return GuardConfig(**values)


def _ingest(path: Path, table: Mapping[str, Any]) -> IngestConfig:
    values: dict[str, Any] = {}
    for k, v in table.items():
        if k != "max_file_bytes":
            raise ConfigError(f"{path}: [ingest] {k}: unknown key (known: max_file_bytes)")
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{path}: [ingest] {k} = {v!r}: give a whole number of bytes, 1 or more")
        values[k] = v
    return IngestConfig(**values)


def load_config(db: str | Path | None = None, path: Path | None = None) -> Config:
    """The settings for the warehouse `db` (its `hcode.toml`, if any), or from `path`."""
    if path is None:
        if db is None:
            return Config()
        path = config_path(db)
    if not path.is_file():
        return Config()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    known = ("freshness", "guard", "ingest", "engine", "memory", "lake", "retention")
    unknown = set(doc) - set(known)
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    return Config(MappingProxyType(_cadence(path, doc.get("freshness", {}))),
                  _guard(path, doc.get("guard", {})), path, _ingest(path, doc.get("ingest", {})),
                  _section_value(path, doc, "engine", "buckets", lambda v, w: _positive(v, w)),
                  _section_value(path, doc, "memory", "limit", _size), _lake(path, doc.get("lake", {})),
                  _retention(path, doc.get("retention", {})))


def _lake(path: Path, table: Mapping[str, Any]) -> str | None:
    extra = set(table) - {"path"}
    if extra:
        raise ConfigError(f"{path}: [lake] {', '.join(sorted(extra))}: unknown key (known: path)")
    value = table.get("path")
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{path}: [lake] path = {value!r}: give a folder path or URL as text")
    return value


def _size(value: object, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        return parse_size(value, where)
    raise ConfigError(f"{where} = {value!r}: give a size such as \"12GB\"")


def _section_value(path: Path, doc: Mapping[str, Any], section: str, key: str,
                   check: Callable[[object, str], int]) -> int | None:
    table = doc.get(section, {})
    extra = set(table) - {key}
    if extra:
        raise ConfigError(f"{path}: [{section}] {', '.join(sorted(extra))}: unknown key (known: {key})")
    return check(table[key], f"{path}: [{section}] {key}") if key in table else None
