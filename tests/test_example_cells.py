"""A ruleset file's examples have their cells validated together (`rules.examples.Cells`):
the examples built, and the problems found (each with its line, in order), are those of
checking each example's rows alone, as ingest would check them."""

from __future__ import annotations

from conftest import ID_A
from hypothesis import given, settings
from hypothesis import strategies as st

from hcode.rules.examples import check_example, check_examples
from hcode.rules.yaml_lines import load_located

PALETTE = ("green", "yellow", "red")
RULES = ("r1", "r2")
# cells that pass, cells ingest would normalise, and cells it would quarantine
SAMPLED = ["2022-06-01 08:00:00", "2022-06-13", " 2022-06-02 09:30 ", "2022-06-20 08:00:00", "yesterday", "''"]
RESULT = ["positive", "negative", " Positive ", "maybe", "''"]
POOLED = ["true", "0", " FALSE ", "perhaps"]
REGION = ["'310101'", "'31010'", "310101", "'abcdef'"]
IDS = [f"'{ID_A}'", "'110101199003071230'", "'12345'"]
AS_OF = ["2022-06-01", "2022-06-14", "2022-06-19"]


class Recorded:
    def __init__(self) -> None:
        self.items: list[tuple[str, int, str]] = []

    def add(self, file: str, line: int, msg: str, rule: str | None = None, fact: str | None = None) -> None:
        self.items.append((file, line, msg))


def _row(draw: st.DrawFn, columns: dict[str, list[str]]) -> str:
    cells = {name: draw(st.sampled_from(values)) for name, values in columns.items()
             if draw(st.booleans()) or name != "id_number" and draw(st.integers(0, 5))}
    return "{" + ", ".join(f"{k}: {v}" for k, v in cells.items()) + "}"


@st.composite
def examples_text(draw: st.DrawFn) -> str:
    out = ["examples:"]
    for i in range(draw(st.integers(1, 6))):
        nat = [_row(draw, {"id_number": IDS, "sampled_at": SAMPLED, "result": RESULT, "pooled": POOLED})
               for _ in range(draw(st.integers(0, 3)))]
        trips = [_row(draw, {"region_code": REGION, "visited_at": SAMPLED, "source": ["'telecom'", "'sky'"]})
                 for _ in range(draw(st.integers(0, 2)))]
        out += [f"  - name: e{i}", f"    as_of: {draw(st.sampled_from(AS_OF))}", "    events:"]
        out += [f"      nat_results: [{', '.join(nat)}]"] if nat or not trips else []
        out += [f"      trips: [{', '.join(trips)}]"] if trips else []
        out += ["    expect: {color: green}"]
    return "\n".join(out) + "\n"


@settings(max_examples=60, deadline=None)
@given(examples_text())
def test_examples_checked_together_are_those_checked_one_by_one(text):
    examples = load_located(text)["examples"]
    together, alone = Recorded(), Recorded()
    got = check_examples(examples, "f.yaml", PALETTE, RULES, together)
    want = [check_example(e, "f.yaml", examples.line_at(i), PALETTE, RULES, alone)
            for i, e in enumerate(examples)]
    assert got == want
    assert together.items == alone.items
    assert ID_A not in repr(together.items)  # (an id number is never echoed)
