"""`hcode diff`: what changed between two runs, or between two rulesets on the same data."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from hcode.cli.common import (
    DbOption,
    EngineOption,
    JsonOption,
    LangOption,
    SparkMasterOption,
    err,
    handle_errors,
    out,
    parse_date,
    print_json,
)
from hcode.errors import UsageError


def register(app: typer.Typer) -> None:
    @app.command("diff")
    @handle_errors
    def diff_cmd(
        run_a: Annotated[int | None, typer.Argument(help="The before run id.", show_default=False)] = None,
        run_b: Annotated[int | None, typer.Argument(help="The after run id.", show_default=False)] = None,
        ruleset: Annotated[str | None, typer.Option(
            "--ruleset", help="The before ruleset (province@version, or a path), evaluated now.")] = None,
        against: Annotated[str | None, typer.Option(
            "--against", help="The after ruleset, evaluated now on the same data.")] = None,
        as_of: Annotated[str | None, typer.Option("--as-of", help="The as-of date of both rulesets.")] = None,
        out_dir: Annotated[Path | None, typer.Option(
            "--out", help="Write changes.parquet, changes.csv, summary.json, report.md, report.html here.")] = None,
        db: DbOption = None,
        lang: LangOption = "en",
        json_out: JsonOption = False,
        engine: EngineOption = "embedded",
        spark_master: SparkMasterOption = "local[*]",
    ) -> None:
        """What changed from A (before) to B (after): every colour change, explained.

        Either two stored runs, or the auditor's dry run: two rulesets evaluated on the
        warehouse's current data as of one date, nothing stored. Prints the transition matrix
        and the rules and districts that moved; --out writes the full list and the reports.

        Example:

            hcode diff 1 2 --out reports/2022-06-15
            hcode diff --ruleset shanghai@2022.05.23 --against shanghai@2022.06.28 --as-of 2022-06-14 --out audit
            hcode diff --ruleset shanghai@2022.05.23 --against shanghai@2022.06.28 --as-of 2022-06-14 --engine spark
        """
        from hcode.cli.runs import pick_ruleset
        from hcode.colors import check_lang
        from hcode.diff.buckets import diff_runs
        from hcode.diff.changes import diff
        from hcode.diff.sides import evaluate_side
        from hcode.report.files import summary_dict, write_diff
        from hcode.report.terminal import print_diff
        from hcode.rules.ruleset import not_in_force_all as ruleset_warnings
        from hcode.store.warehouse import Warehouse

        check_lang(lang)
        by_runs = run_a is not None or run_b is not None
        by_rules = ruleset is not None or against is not None or as_of is not None
        if by_runs == by_rules or (by_runs and (run_a is None or run_b is None)) or (
                by_rules and None in (ruleset, against, as_of)):
            raise UsageError("give two run ids (hcode diff RUN_A RUN_B), or --ruleset A --against B --as-of D")
        if by_runs and engine != "embedded":
            raise UsageError("--engine evaluates --ruleset and --against; two stored runs are read from the warehouse")
        warnings: list[str] = []
        with Warehouse.open(db) as wh:
            if by_runs:
                assert run_a is not None and run_b is not None  # checked above
                result = diff_runs(wh, run_a, run_b, lang)  # bucket by bucket
            else:
                assert ruleset is not None and against is not None and as_of is not None  # checked above
                day = parse_date(as_of)
                rs_a, rs_b = pick_ruleset(ruleset, day, quiet=json_out), pick_ruleset(against, day, quiet=json_out)
                warnings = ruleset_warnings(day, rs_a, rs_b)
                status = err.status(f"evaluating {rs_a.name} and {rs_b.name} as of {day}", spinner="dots") \
                    if err.is_terminal else contextlib.nullcontext()
                with status:
                    before = evaluate_side(wh, rs_a, day, lang, engine=engine, spark_master=spark_master)
                    after = evaluate_side(wh, rs_b, day, lang, engine=engine, spark_master=spark_master)
                result = diff(before, after, lang=lang)
        if out_dir is not None:
            write_diff(result, out_dir, lang, warnings)
            err.print(f"report written to {out_dir}", highlight=False)
        if json_out:
            print_json(summary_dict(result, warnings))
            return
        print_diff(result, out, lang)
        for text in result.changes.head(10)["explanation"]:
            out.print(f"  {text}", highlight=False, markup=False)
        if result.n_changes > 10:
            out.print(f"  … {result.n_changes - 10:,} more" + (f" in {out_dir}/changes.csv" if out_dir else
                                                             " (use --out DIR for the full list)"), highlight=False)
