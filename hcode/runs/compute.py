"""One evaluation of a ruleset on the warehouse, stored as a run or not: `compute_run`.

What `hcode evaluate` does, as one library call returning a frozen `ComputedRun`
(`as_json` is what `hcode evaluate --json` prints)."""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcode.engine.spark import DEFAULT_MASTER
from hcode.rules.ruleset import Ruleset, not_in_force
from hcode.runs.bucketed import evaluate_run
from hcode.runs.store import Totals
from hcode.store.warehouse import Warehouse


@dataclass(frozen=True)
class ComputedRun:
    ruleset: Ruleset
    as_of: dt.date
    run_id: int | None  # None: computed, not stored
    evaluation: Totals = field(repr=False)  # counts summed over the person buckets

    @property
    def persons(self) -> int:
        return self.evaluation.persons

    @property
    def colors(self) -> dict[str, int]:
        return self.evaluation.colors

    def as_json(self) -> dict[str, Any]:
        rs, ev = self.ruleset, self.evaluation
        return {"run_id": self.run_id, "ruleset": rs.province, "version": rs.version,
                "ruleset_hash": rs.content_hash, "as_of": self.as_of.isoformat(), "persons": ev.persons,
                "colors": ev.colors, "overrides_applied": ev.overrides_applied,
                "overrides_not_applied": ev.overrides_not_applied,
                "warnings": [w for w in [not_in_force(rs, self.as_of)] if w]}


def compute_run(wh: Warehouse, ruleset: Ruleset, as_of: dt.date, *, lang: str = "en", store: bool = True,
                operator: str | None = None, codes_file: Path | None = None, engine: str = "embedded",
                spark_master: str = DEFAULT_MASTER) -> ComputedRun:
    """Evaluate `ruleset` as of `as_of` on the warehouse's current data; store it as a run
    (by `operator`, default the login name) unless `store` is false; write the codes with
    their person keys to `codes_file` (.parquet or .csv) when given. Persons are evaluated
    bucket by bucket (runs/bucketed.py), on the `embedded` engine or on `spark`."""
    totals, run_id = evaluate_run(wh, ruleset, as_of, lang=lang, store=store, operator=operator or getpass.getuser(),
                                  out=codes_file, engine=engine, spark_master=spark_master)
    return ComputedRun(ruleset, as_of, run_id, totals)
