"""`hcode demo`: the whole job, end to end, on sample data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hcode.cli.common import LangOption, err, handle_errors, out, t_
from hcode.cli.companions import render_companions
from hcode.cli.nightly import ADVICE
from hcode.colors import check_lang

if TYPE_CHECKING:
    from hcode.ops.demo import StationScene


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @handle_errors
    def demo_cmd(
        dir: Annotated[Path, typer.Option("--dir", help="Where the demo warehouse, inbox and reports go "
                                          "(its earlier demo files are replaced).")] = Path("hcode-demo"),
        residents: Annotated[int | None, typer.Option(help="Generate a night of N residents instead of "
                                                      "using the bundled sample night.")] = None,
        seed: Annotated[int, typer.Option(help="Seed for --residents.")] = 1,
        lang: LangOption = "en",
    ) -> None:
        """The whole job on sample data: load a night, evaluate, publish, diff two ruleset versions, report.

        Uses the bundled night in sample_data/ (about 3,000 residents with planted cases for
        every rule), or --residents N generated on the spot. Then the article's scene, in a
        Henan warehouse of its own (DIR/henan): two generated nights with place scans run
        with henan@2022.06.01, where the companions test flags the depositors at the station
        exit whose scans showed red while hcode had published green, and not a control
        gathering whose red person the rules explain. Everything lands in --dir.

        Example:

            hcode demo --dir /tmp/hcode-demo
        """
        from hcode.ops.demo import run_demo
        from hcode.report.terminal import print_diff

        check_lang(lang)
        res = run_demo(dir, residents=residents, seed=seed, lang=lang, notify=lambda m: err.print(m))
        n = res.nightly
        out.rule("1. the nightly batch")
        out.print(t_(n.full_message(ADVICE)))
        loads = n.ingested
        out.print(f"{len(loads.files)} files, {loads.rows_read:,} rows read, "
                  f"{loads.rows_loaded:,} loaded, {loads.rows_quarantined:,} "
                  "quarantined (see `hcode quarantine`)")
        for w in n.warnings:
            out.print(f"  warning: {t_(w)}", highlight=False)
        out.print(f"report: {n.report_dir}/report.html")
        out.rule("2. the auditor's dry run: shanghai 2022.05.23 → 2022.06.28 on the same data")
        print_diff(res.rules_diff, out, lang=lang)
        out.print(f"report: {res.rules_report}/report.html")
        if res.explained:
            e = res.explained
            out.rule("3. one person explained")
            out.print(t_(f"{e.source}: {e.color} — {e.explanation}"), highlight=False)
        if res.scene:
            _scene(res.scene)
        out.rule()
        db = res.dir / "hcode.duckdb"
        out.print(f"next: hcode runs --db {db}  ·  hcode quarantine --db {db}  ·  "
                  f"hcode audit verify --db {db}")


def _scene(s: StationScene) -> None:
    out.rule("4. the station scene: henan@2022.06.01 and the companions test")
    for n in s.nights:
        out.print(t_(n.full_message(ADVICE)), highlight=False)
    render_companions(s.found)
    verdict = "flagged" if s.control_flagged else "not flagged: its red person is red by the rules"
    out.print(t_(f"control gathering at {s.control_name} ({s.control_place}): {verdict}"), highlight=False)
    last = s.nights[-1]
    out.print(f"report: {last.report_dir}/report.html  ·  members: hcode companions --db {s.dir / 'hcode.duckdb'} "
              f"--run {last.run_id}", highlight=False)
