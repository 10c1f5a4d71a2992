"""The public Python API: the names a program needs to do what the `hcode` command does.

    from hcode.api import Warehouse, init, ingest_paths, find_ruleset, compute_run, diff, load_side

Open (or create) a warehouse, ingest a folder of exports, evaluate a ruleset as a run,
compare two runs or two rulesets, write the reports. docs/api.md shows them at work (and a
test runs that example). Everything returns frozen results with an `as_json()` giving the
same plain data as the matching `hcode ... --json`. `import hcode` stays light: only this
module imports the stages.
"""

from __future__ import annotations

from hcode.colors import LANGS, color_label
from hcode.diff.changes import Diff, Side, diff
from hcode.diff.sides import evaluate_side, load_side
from hcode.errors import HcodeError, UsageError
from hcode.feeds import FEEDS, Feed
from hcode.ingest.load import IngestResult, LoadResult, ingest_paths
from hcode.ops.nightly import NightlyResult, run_nightly
from hcode.report.files import summary_dict, write_diff
from hcode.rules.catalogue import CatalogueEntry, catalogue
from hcode.rules.diff import RulesDiff, rules_diff
from hcode.rules.load import find_ruleset, load_ruleset
from hcode.rules.ruleset import Ruleset
from hcode.runs.compute import ComputedRun, compute_run
from hcode.runs.explain import Explanation, explain
from hcode.runs.store import RunInfo, get_run, list_runs
from hcode.sample.night import WrittenNight, generate_and_write
from hcode.store.audit import Verification, verify
from hcode.store.audit_log import AuditLog, audit_log
from hcode.store.warehouse import InitResult, Warehouse, init

__all__ = [
    "LANGS", "color_label", "Diff", "Side", "diff", "evaluate_side", "load_side", "HcodeError", "UsageError",
    "FEEDS", "Feed", "IngestResult", "LoadResult", "ingest_paths", "NightlyResult", "run_nightly", "summary_dict",
    "write_diff", "CatalogueEntry", "catalogue", "RulesDiff", "rules_diff", "Ruleset", "find_ruleset", "load_ruleset", "ComputedRun",
    "compute_run", "Explanation", "explain", "RunInfo", "get_run", "list_runs", "WrittenNight",
    "generate_and_write", "Verification", "verify", "AuditLog", "audit_log", "InitResult", "Warehouse", "init",
]
