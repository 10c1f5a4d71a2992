"""The shipped rulesets, each loaded (or the reason it does not load): `catalogue`.

What `hcode rules list` shows; `catalogue_json` is what `hcode rules list --json` prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcode.errors import HcodeError
from hcode.rules.load import Shipped, load_ruleset, shipped
from hcode.rules.ruleset import Ruleset


@dataclass(frozen=True)
class CatalogueEntry:
    shipped: Shipped
    ruleset: Ruleset | None  # None: it does not load, `error` says why
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.shipped.province}@{self.shipped.version}"

    def as_json(self) -> dict[str, Any]:
        s, rs = self.shipped, self.ruleset
        if rs is None:
            return {"province": s.province, "version": s.version, "ruleset": self.name, "path": str(s.path),
                    "error": self.error}
        return {"province": rs.province, "version": rs.version, "ruleset": rs.name,
                "effective_from": rs.effective_from.isoformat(), "rules": len(rs.rules), "extends": rs.extends,
                "title": dict(rs.title), "content_hash": rs.content_hash, "path": str(s.path), "error": None}


def catalogue(root: Path | None = None) -> tuple[CatalogueEntry, ...]:
    """Every shipped ruleset (under `root`, default the bundled rulesets/), loaded."""
    entries = []
    for s in shipped(root):
        try:
            entries.append(CatalogueEntry(s, load_ruleset(s.path)))
        except HcodeError as exc:
            entries.append(CatalogueEntry(s, None, str(exc)))
    return tuple(entries)


def catalogue_json(entries: tuple[CatalogueEntry, ...]) -> dict[str, Any]:
    return {"rulesets": [e.as_json() for e in entries]}
