"""Site settings read from `hcode.toml` beside the warehouse (docs/configuration.md).

Only what an operator must be able to tune without touching code lives here: how often each
feed is expected (`[freshness]`) and when the publish guard refuses a run (`[guard]`). The
file is optional; a missing key keeps its default. Every value is checked when the file is
read, and a mistake names the file and the key, so that a typo never silently turns a
check off on the night it matters.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

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
    max_red_change: float = 0.50  # red count may move by at most this share, up or down
    min_persons: int = 100  # ... unless it moved by fewer persons than this


@dataclass(frozen=True)
class RetentionConfig:
    """How long personal data with a retention limit is kept (`[retention]`)."""

    place_scans_days: int = 28  # scans before the night's cut-off minus this many days are purged


@dataclass(frozen=True)
class Config:
    cadence: Mapping[str, int | None] = field(default_factory=lambda: MappingProxyType(dict(DEFAULT_CADENCE)))
    guard: GuardConfig = field(default_factory=GuardConfig)
    source: Path | None = None  # the file read, if any
    retention: RetentionConfig = field(default_factory=RetentionConfig)


def _retention(path: Path, table: Mapping) -> RetentionConfig:
    for k, v in table.items():
        if k not in DEFAULT_RETENTION:
            raise ConfigError(f"{path}: [retention] {k}: unknown key (known: {', '.join(DEFAULT_RETENTION)})")
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{path}: [retention] {k} = {v!r}: give a whole number of days (1 or more)")
    return RetentionConfig(**table)


def config_path(db: str | Path) -> Path:
    return Path(db).resolve().parent / CONFIG_NAME


def _cadence(path: Path, table: Mapping) -> dict[str, int | None]:
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


def _guard(path: Path, table: Mapping) -> GuardConfig:
    known = {"max_shrink": float, "max_red_change": float, "min_persons": int}
    values: dict = {}
    for k, v in table.items():
        if k not in known:
            raise ConfigError(f"{path}: [guard] {k}: unknown key (known: {', '.join(known)})")
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            raise ConfigError(f"{path}: [guard] {k} = {v!r}: give a number, 0 or more")
        if known[k] is int and not isinstance(v, int):
            raise ConfigError(f"{path}: [guard] {k} = {v!r}: give a whole number of persons")
        values[k] = known[k](v)
    return GuardConfig(**values)


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
    unknown = set(doc) - {"freshness", "guard", "retention"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))} "
                          "(known: freshness, guard, retention)")
    return Config(MappingProxyType(_cadence(path, doc.get("freshness", {}))),
                  _guard(path, doc.get("guard", {})), path, _retention(path, doc.get("retention", {})))
