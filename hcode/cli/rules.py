"""Commands for rule authors and auditors: `hcode rules list` and `hcode rules check`."""

from __future__ import annotations

from typing import Annotated

import typer

from hcode.cli.common import JsonOption, err, handle_errors, out, parse_date, print_json, t_
from hcode.errors import HcodeError, RulesetError, RulesetProblem

AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", help="With a bare province: the version in force on this date (YYYY-MM-DD); with a version "
                    "that takes effect later, a warning.")]


def register(app: typer.Typer) -> None:
    rules = typer.Typer(help="List and check rulesets.", no_args_is_help=True)
    app.add_typer(rules, name="rules")

    @rules.command("list")
    @handle_errors
    def list_cmd(json_out: JsonOption = False) -> None:
        """List the shipped rulesets: province, version, effective date, rule count, title.

        Example:

            hcode rules list --json
        """
        from hcode.rules.catalogue import catalogue, catalogue_json

        entries = catalogue()
        items = [e.as_json() for e in entries]
        if json_out:
            print_json(catalogue_json(entries))
            return
        for i in items:
            if i["error"]:
                out.print(f"{t_(i['ruleset']):<24} [red]does not load[/]: {t_(i['error'])}", highlight=False)
                continue
            ext = f" (extends {i['extends']})" if i["extends"] else ""
            out.print(f"{i['ruleset']:<24} from {i['effective_from']}  {i['rules']:>2} rules  "
                      f"{i['title']['en']}{ext}", highlight=False, markup=False)

    @rules.command("check")
    @handle_errors
    def check_cmd(ruleset: Annotated[str, typer.Argument(help="province@version, a bare province, or a path.")],
                  as_of: AsOfOption = None, json_out: JsonOption = False) -> None:
        """Validate a ruleset, show which feeds and columns it reads, and run its embedded examples.

        Exit 1 when the ruleset does not load (each error names file, line and rule) or an
        example fails. With --json, one JSON object whatever happens: `ok`, `errors` (file,
        line, rule, fact, message), `warnings`, and what the ruleset reads and its examples
        when it loads.

        Example:

            hcode rules check shanghai@2022.06.28
            hcode rules check shanghai --as-of 2022-06-14
            hcode rules check ./my-province/2022.07.01.yaml --json
        """
        if json_out:
            _check_json(ruleset, as_of)
            return
        from hcode.engine.examples import check_ruleset
        from hcode.rules.load import find_ruleset

        rs = find_ruleset(ruleset, parse_date(as_of))
        check = check_ruleset(rs, parse_date(as_of))
        for warning in check.warnings:
            err.print(f"warning: {warning}", highlight=False, markup=False)
        if "@" not in ruleset and not ruleset.endswith((".yaml", ".yml")) and "/" not in ruleset:
            when = f"in force on {as_of}" if as_of else "the latest version"
            err.print(f"picked {rs.name} ({when}, effective from {rs.effective_from})", highlight=False)
        out.print(f"{rs.name}: loads and type-checks ({len(rs.rules)} rules, {len(rs.facts)} facts, "
                  f"palette {' < '.join(rs.palette)}, hash {rs.content_hash[:12]})", highlight=False, markup=False)
        out.print("reads:", highlight=False)
        for feed, cols in rs.reads().items():
            out.print(f"  {feed}: {', '.join(cols)}", highlight=False, markup=False)
        out.print(f"examples: {check.passed} passed, {len(check.failed)} failed", highlight=False)
        for o in check.failed:
            out.print(f"  FAIL {o.example.file}:{o.example.line}: {o.example.name}: {'; '.join(o.problems)}",
                      highlight=False, markup=False)
            out.print(f"       got: {o.explanation}", highlight=False, markup=False)
        if not check.ok:
            raise typer.Exit(1)


def _check_json(spec: str, as_of: str | None) -> None:
    """`rules check --json`: one JSON object on stdout whatever the failure (a file that does
    not parse or does not exist, a bad `extends`, a wrong date, a failing example)."""
    from hcode.engine.examples import check_failure_json, check_ruleset
    from hcode.rules.load import find_ruleset

    try:
        day = parse_date(as_of)
        check = check_ruleset(find_ruleset(spec, day), day)
    except RulesetError as exc:
        print_json(check_failure_json(spec, exc.problems))
        raise typer.Exit(1) from None
    except HcodeError as exc:
        print_json(check_failure_json(spec, (RulesetProblem(str(exc)),)))
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:  # noqa: BLE001 - still one JSON object; the traceback goes to stderr
        err.print_exception()
        print_json(check_failure_json(spec, (RulesetProblem(f"internal error: {type(exc).__name__}: {exc}"),)))
        raise typer.Exit(1) from None
    for warning in check.warnings:
        err.print(f"warning: {warning}", highlight=False, markup=False)
    print_json(check.as_json())
    if not check.ok:
        raise typer.Exit(1)
