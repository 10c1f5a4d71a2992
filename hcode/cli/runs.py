"""Commands that compute and read codes: evaluate, runs, explain."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from hcode.cli.common import (
    DbOption,
    EngineOption,
    IdArgument,
    IdFileOption,
    JsonOption,
    LangOption,
    SparkMasterOption,
    command_line,
    err,
    handle_errors,
    out,
    parse_date,
    print_json,
    read_id,
    t_,
)
from hcode.colors import check_lang
from hcode.errors import UsageError
from hcode.store.lock import warehouse_lock

if TYPE_CHECKING:
    from hcode.rules.ruleset import Ruleset

RulesetOption = Annotated[str, typer.Option("--ruleset", help="province@version, a bare province (the version in "
                                             "force on the as-of date), or a path to a ruleset file.")]
AsOfOption = Annotated[str, typer.Option("--as-of", help="The as-of date D (events before D+1 00:00 count).")]



def pick_ruleset(spec: str, as_of: dt.date, quiet: bool = False) -> Ruleset:
    """The ruleset named by `spec` for `as_of`: says which version a bare province picked
    (unless `quiet`), and warns on stderr, always, when a version is not in force yet."""
    from hcode.rules.load import find_ruleset
    from hcode.rules.ruleset import not_in_force_all as ruleset_warnings

    rs = find_ruleset(spec, as_of=as_of)
    if "@" not in spec and "/" not in spec and not spec.endswith((".yaml", ".yml")) and not quiet:
        err.print(f"using {rs.name} (in force on {as_of}: effective from {rs.effective_from})")
    for warning in ruleset_warnings(as_of, rs):
        err.print(f"warning: {warning}", highlight=False, markup=False)
    return rs


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    @handle_errors
    def evaluate_cmd(
        ruleset: RulesetOption,
        as_of: AsOfOption,
        db: DbOption = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute and report; store nothing.")] = False,
        out_file: Annotated[Path | None, typer.Option("--out", help="Write the codes to .parquet or .csv.")] = None,
        operator: Annotated[str | None, typer.Option(help="Who runs it (default: the login name).")] = None,
        lang: LangOption = "en",
        json_out: JsonOption = False,
        engine: EngineOption = "embedded",
        spark_master: SparkMasterOption = "local[*]",
    ) -> None:
        """Compute every registered person's code and store it as a run (unless --dry-run).

        Persons are evaluated in buckets (HCODE_BUCKETS or [engine] buckets in hcode.toml,
        else as many as the memory limit needs); the result never depends on their number.

        With --engine spark the lake ([lake] path, default <db>.lake; kept by ingest once it
        exists) is brought in step with the warehouse and each bucket is evaluated by the same
        engine in a Spark task; the codes come back and are stored as a run like any other.

        Example:

            hcode evaluate --ruleset shanghai@2022.05.23 --as-of 2022-06-14 --out codes.parquet
            hcode evaluate --ruleset shanghai --as-of 2022-06-14 --engine spark --spark-master yarn
        """
        from hcode.runs.compute import compute_run
        from hcode.store.warehouse import Warehouse, db_path

        day = parse_date(as_of)
        rs = pick_ruleset(ruleset, day, quiet=json_out)
        check_lang(lang)
        with warehouse_lock(db_path(db), command_line(), notify=err.print), Warehouse.open(db) as wh:
            with err.status(f"evaluating {rs.name} as of {day}", spinner="dots") if err.is_terminal else _null():
                run = compute_run(wh, rs, day, lang=lang, store=not dry_run, operator=operator, codes_file=out_file,
                                  engine=engine, spark_master=spark_master)
            from hcode.ops.freshness import never_arrived

            for line in never_arrived(wh.con, rs):
                err.print(f"warning: {line}", highlight=False, markup=False)
        if json_out:
            print_json(run.as_json())
            return
        ev, run_id = run.evaluation, run.run_id
        colors = ", ".join(f"{c} {n:,}" for c, n in ev.colors.items())
        what = "dry run, nothing stored" if dry_run else f"run {run_id}"
        out.print(f"{rs.name} as of {day}: {ev.persons:,} persons — {colors} ({what})")
        if ev.overrides_not_applied:
            err.print(f"{ev.overrides_not_applied} active override(s) not applied: colour outside the palette")
        if out_file is not None:
            err.print(f"codes written to {out_file}")

    @app.command("runs")
    @handle_errors
    def runs_cmd(db: DbOption = None, json_out: JsonOption = False) -> None:
        """List runs: id, ruleset@version, content hash, as-of date, created, counts per colour.

        Example:

            hcode runs --json
        """
        from hcode.runs import store as runs_mod
        from hcode.store.warehouse import Warehouse

        with Warehouse.open(db, read_only=True) as wh:
            runs = runs_mod.list_runs(wh.con)
        if json_out:
            print_json(runs_mod.runs_json(runs))
            return
        table = Table(title="runs", title_justify="left")
        for c in ("run", "ruleset", "hash", "as of", "created", "published", "persons", "colors"):
            table.add_column(c)
        for r in runs:
            table.add_row(str(r.run_id), t_(r.ruleset), r.ruleset_hash[:12], str(r.as_of), str(r.created_at),
                          "yes" if r.published else "", f"{r.persons:,}",
                          " ".join(f"{c}={n:,}" for c, n in r.colors.items()))
        out.print(table if runs else "no runs yet")

    @app.command("explain")
    @handle_errors
    def explain_cmd(
        id_number: IdArgument = None,
        id_file: IdFileOption = None,
        run: Annotated[int | None, typer.Option("--run", help="A stored run.")] = None,
        ruleset: Annotated[str | None, typer.Option("--ruleset", help="Evaluate this ruleset now instead.")] = None,
        as_of: Annotated[str | None, typer.Option("--as-of", help="With --ruleset: the as-of date.")] = None,
        db: DbOption = None,
        lang: LangOption = "en",
        json_out: JsonOption = False,
    ) -> None:
        """One person's code, every rule that matched with its evidence, overrides, history.

        The id number is an argument, or read with --id-file from a file or (with '-') from
        standard input, so that it need not appear in the shell history.

        Example:

            hcode explain 310101198008080019 --run 1
            hcode explain 310101198008080019 --ruleset shanghai --as-of 2022-06-14 --lang zh
            hcode explain --id-file - --run 1 < id.txt
        """
        from hcode.rules.ruleset import not_in_force_all as ruleset_warnings
        from hcode.runs import explain as explain_mod
        from hcode.store.warehouse import Warehouse

        id_number = read_id(id_number, id_file)
        check_lang(lang)
        day = parse_date(as_of) if as_of else None
        rs = pick_ruleset(ruleset, day, quiet=json_out) if ruleset and day else None
        if ruleset and not day:
            raise UsageError("--ruleset needs --as-of")
        if (run is None) == (rs is None):
            raise UsageError("give either --run RUN or --ruleset R --as-of D")
        with Warehouse.open(db, read_only=True) as wh:
            exp = explain_mod.explain(wh, id_number, run_id=run, ruleset=rs, as_of=day, lang=lang)
        if json_out:
            print_json(exp.as_json() | {"warnings": ruleset_warnings(day, rs) if rs else []})
            return
        out.print(f"[bold]{t_(exp.source)}[/] — person {t_(exp.person_key[:16])}…")
        out.print(f"code: [bold]{t_(exp.color or 'none')}[/]   deciding rule: {t_(exp.rule or '-')}")
        out.print(t_(exp.explanation), highlight=False)
        for m in exp.matched_rules:
            out.print(f"  • {t_(m.id)} ({t_(m.color)}) {t_(m.title)}", highlight=False)
            for e in m.evidence:
                out.print(f"      {t_(e['feed'])} {t_(e['time'])}  {t_(e['detail'])}", highlight=False)
        if exp.override:
            o = exp.override
            out.print(t_(f"override: {o['color']} by {o['authority']}, basis {o['basis']}, operator {o['operator']}, "
                         f"reason {o['reason']}, expires {o['expires_at'] or 'never'}"
                         f"{'' if o['applied'] else ' (NOT applied: colour outside the palette)'}"), highlight=False)
        prev = explain_mod.previous_differs(exp, run)
        if prev:
            out.print(t_(f"previously: {prev['color']} ({prev['rule'] or 'default'}) in run {prev['run_id']}, "
                         f"{prev['ruleset']} as of {prev['as_of']}"), highlight=False)


class _null:
    def __enter__(self) -> _null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
