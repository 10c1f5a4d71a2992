"""`hcode rules diff A B`: two ruleset versions side by side.

Attached to the `rules` group that `hcode/cli/rules.py` registers (`cli.app.GROUPS` registers
`rules` first, so it exists by now); a top-level `rules-diff` command stands in if it does not.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hcode.cli.common import JsonOption, handle_errors, out, print_json


def _rules_group(app: typer.Typer) -> typer.Typer | None:
    for info in app.registered_groups:
        if info.name == "rules" and info.typer_instance is not None:
            return info.typer_instance
    return None


def register(app: typer.Typer) -> None:
    group = _rules_group(app)
    decorator = group.command("diff") if group is not None else app.command("rules-diff")

    @decorator
    @handle_errors
    def rules_diff_cmd(
        before: Annotated[str, typer.Argument(help="The before ruleset: province@version or a path.")],
        after: Annotated[str, typer.Argument(help="The after ruleset: province@version or a path.")],
        all_rules: Annotated[bool, typer.Option("--all", help="Also list unchanged rules.")] = False,
        json_out: JsonOption = False,
    ) -> None:
        """Rules added, removed and changed (colour, window, release, condition) from A to B,
        and palette changes, read from the resolved rulesets (extends applied).

        Example:

            hcode rules diff shanghai@2022.05.23 shanghai@2022.06.28
        """
        from hcode.report.rules import print_rules_diff
        from hcode.rules.diff import rules_diff, rules_diff_dict
        from hcode.rules.load import find_ruleset

        rd = rules_diff(find_ruleset(before), find_ruleset(after))
        if json_out:
            print_json(rules_diff_dict(rd))
        else:
            print_rules_diff(rd, out, show_unchanged=all_rules)
