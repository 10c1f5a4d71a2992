"""What a new rule author tripped over (issue 16, point 3): errors as JSON, the version checked
with the rest, example rows validated like ingested rows, a warning before a version takes
effect, one name per feed, `hcode --version`."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest
from conftest import ID_A
from typer.testing import CliRunner

from hcode import __version__
from hcode.cli.app import app
from hcode.engine.examples import example_frames, run_example
from hcode.errors import RulesetError
from hcode.rules.load import load_ruleset
from hcode.rules.ruleset import not_in_force

runner = CliRunner()

HEAD = """\
province: testland
version: {version}
effective_from: 2022-01-01
title: {{zh: 测试, en: Test}}
basis: test notice
"""
BODY = """\
palette: [green, yellow, red]
facts:
  contact_at: latest contacts.identified_at where contact_level = 'close'
  red_elsewhere: exists inbound_codes current per province where color = 'red'
rules:
  - {id: T-1, color: red, title: {zh: 一, en: one}, trigger: contact_at, window: 14 days}
  - {id: T-2, color: red, title: {zh: 二, en: two}, when: red_elsewhere}
"""


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / "testland" / f"{name}.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def check_json(*args: str) -> tuple[int, dict]:
    res = runner.invoke(app, ["rules", "check", *args, "--json"])
    return res.exit_code, json.loads(res.stdout)  # the whole of stdout is one JSON object


# ---------------------------------------------------------------- rules check --json


@pytest.mark.parametrize("case", ["yaml syntax", "missing file", "missing parent", "broken parent", "not a mapping",
                                  "unknown version", "bad date"])
def test_rules_check_json_prints_one_object_whatever_the_failure(tmp_path, case):
    good = write(tmp_path, "2022.01.01", HEAD.format(version="2022.01.01") + BODY)
    if case == "yaml syntax":
        args, file, line = [str(write(tmp_path, "x", "province: [unclosed\nversion: x\n"))], "x.yaml", 2
    elif case == "missing file":
        args, file, line = [str(tmp_path / "testland" / "nope.yaml")], "nope.yaml", None
    elif case == "missing parent":
        p = write(tmp_path, "2022.02.01", HEAD.format(version="2022.02.01") + "extends: 2021.12.31\n")
        args, file, line = [str(p)], "2022.02.01.yaml", 6
    elif case == "broken parent":
        good.write_text(good.read_text().replace("color: red, title: {zh: 二", "color: rouge, title: {zh: 二"))
        p = write(tmp_path, "2022.02.01", HEAD.format(version="2022.02.01") + "extends: 2022.01.01\n")
        args, file, line = [str(p)], "2022.01.01.yaml", 12
    elif case == "not a mapping":
        args, file, line = [str(write(tmp_path, "y", "- a\n- b\n"))], "y.yaml", 1
    elif case == "unknown version":
        args, file, line = ["shanghai@2030.01.01"], None, None
    else:
        args, file, line = [str(good), "--as-of", "2022-13-01"], None, None
    code, doc = check_json(*args)
    assert code == (2 if case == "bad date" else 1)
    assert doc["ok"] is False and doc["errors"], doc
    first = doc["errors"][0]
    assert set(first) == {"file", "line", "rule", "fact", "message"} and first["message"]
    assert (first["file"] or "").endswith(file) if file else first["file"] is None
    assert first["line"] == line


def test_rules_check_json_on_a_good_ruleset_has_no_errors(tmp_path):
    code, doc = check_json(str(write(tmp_path, "2022.01.01", HEAD.format(version="2022.01.01") + BODY)))
    assert code == 0 and doc["ok"] and doc["errors"] == [] and doc["warnings"] == []
    assert doc["rules"] == ["T-1", "T-2"]


def test_load_errors_in_json_name_file_line_and_rule(tmp_path):
    p = write(tmp_path, "2022.01.01", HEAD.format(version="2022.01.01") + BODY.replace("color: red, title: {zh: 二",
                                                                                       "color: rouge, title: {zh: 二"))
    code, doc = check_json(str(p))
    assert code == 1
    assert doc["errors"] == [{"file": str(p.resolve()), "line": 12, "rule": "T-2", "fact": None,
                              "message": "unknown colour 'rouge' (palette: green, yellow, red)"}]


# ---------------------------------------------------------------- the version with the other errors


def test_a_version_unlike_the_file_name_is_reported_with_the_other_errors(tmp_path):
    p = write(tmp_path, "2022.01.01", HEAD.format(version="2022.01.02") + BODY.replace("window: 14 days",
                                                                                       "window: 14 dayz"))
    with pytest.raises(RulesetError) as exc:
        load_ruleset(p)
    messages = [(pr.line, pr.message) for pr in exc.value.problems]
    assert (2, "version 2022.01.02 differs from the file name 2022.01.01.yaml") in messages
    assert any(m.startswith("window:") for _, m in messages), messages
    # and with an unknown top-level key, the first errors reported before this fix
    q = write(tmp_path, "z", HEAD.format(version="w") + "palette: [green]\nrules: []\nextra: 1\n")
    with pytest.raises(RulesetError) as exc:
        load_ruleset(q)
    assert "version w differs from the file name z.yaml" in str(exc.value) and "unknown key 'extra'" in str(exc.value)


def test_a_bad_effective_date_and_title_are_reported_together(tmp_path):
    p = write(tmp_path, "2022.01.01", HEAD.format(version="2022.01.01").replace("2022-01-01", "someday")
              .replace("{zh: 测试, en: Test}", "{en: Test}") + BODY)
    with pytest.raises(RulesetError) as exc:
        load_ruleset(p)
    assert {pr.line for pr in exc.value.problems} == {3, 4}


# ---------------------------------------------------------------- example rows, as ingest sees them


def example(events: str, expect: str = "{color: red}") -> str:
    return HEAD.format(version="2022.01.01") + BODY + textwrap.dedent("""\
        examples:
          - name: one
            as_of: 2022-06-14
            events:
        """) + textwrap.indent(textwrap.dedent(events).rstrip("\n") + "\n", "      ") + f"    expect: {expect}\n"


@pytest.mark.parametrize(("row", "message"), [
    ("contacts: [{identified_at: 2022-06-10 10:00, contact_level: closee}]",
     "contacts.contact_level 'closee': not one of close, secondary"),
    ("contacts: [{identified_at: 2022-06-31 10:00, contact_level: close}]",
     "contacts.identified_at '2022-06-31 10:00': not a timestamp"),
    ("contacts: [{identified_at: 2022-06-20 10:00, contact_level: close}]",
     "contacts.identified_at '2022-06-20 10:00': more than a day after the moment of loading"),
    (f"contacts: [{{identified_at: 2022-06-10 10:00, contact_level: close, id_number: '{ID_A[:-1]}0'}}]",
     "contacts.id_number: bad check character"),
    ("nat_results: [{sampled_at: 2022-06-10 10:00, result: negative, pooled: maybe}]",
     "nat_results.pooled 'maybe': not a boolean"),
    ("inbound_codes: [{province: '32', color: 'dark red', since: 2022-06-10 08:00}]",
     "inbound_codes.color 'dark red': not a colour word"),
])
def test_a_value_ingest_would_quarantine_is_an_error_on_its_line(tmp_path, row, message):
    p = write(tmp_path, "2022.01.01", example(row))
    with pytest.raises(RulesetError) as exc:
        load_ruleset(p)
    (problem,) = exc.value.problems
    assert problem.message.startswith(f"example 'one': {message}"), problem.message
    assert problem.line == 17  # the row's line
    assert ID_A[:12] not in str(exc.value)  # an id number is never echoed


def test_values_ingest_normalises_are_normalised_in_examples(tmp_path):
    p = write(tmp_path, "2022.01.01", example(f"""\
        contacts: [{{identified_at: '2022-06-10T10:00:00', contact_level: ' Close ', id_number: '{ID_A}'}}]
        inbound_codes: [{{province: 32, color: Red, since: 2022-06-10}}]
        """, "{color: red, rules: [T-1, T-2]}"))
    rs = load_ruleset(p)
    (ex,) = rs.examples
    assert ex.events["contacts"] == ({"identified_at": dt.datetime(2022, 6, 10, 10), "contact_level": "close"},)
    assert ex.events["inbound_codes"] == (
        {"province": "32", "color": "red", "since": dt.datetime(2022, 6, 10), "pushed_at": None},)
    assert "id_number" not in example_frames(ex)["contacts"].columns
    outcome = run_example(rs, ex)
    assert outcome.passed, outcome.problems  # `Red` means red: T-2 matches


def test_unknown_keys_of_an_example_are_errors(tmp_path):
    p = write(tmp_path, "2022.01.01", example("contacts: []", "{color: red, rulez: [T-1]}")
              .replace("    as_of:", "    as-of: 2022-06-14\n    as_of:"))
    with pytest.raises(RulesetError) as exc:
        load_ruleset(p)
    text = str(exc.value)
    assert "example 'one': unknown key 'as-of'" in text and "example 'one': expect: unknown key 'rulez'" in text


# ---------------------------------------------------------------- a version before it takes effect


def test_a_version_before_its_effective_date_warns(tmp_path):
    from hcode.rules.load import find_ruleset

    rs = find_ruleset("shanghai@2022.06.28")
    assert not_in_force(rs, dt.date(2022, 6, 28)) is None
    assert not_in_force(rs, dt.date(2022, 6, 14)) == \
        "shanghai@2022.06.28 is not in force on 2022-06-14: it takes effect on 2022-06-28"
    res = runner.invoke(app, ["rules", "check", "shanghai@2022.06.28", "--as-of", "2022-06-14", "--json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["warnings"] == [not_in_force(rs, dt.date(2022, 6, 14))]
    assert "warning: shanghai@2022.06.28 is not in force on 2022-06-14" in res.stderr


def test_evaluate_and_diff_warn_before_the_effective_date(db, tmp_path):
    base = ["--db", str(db), "--as-of", "2022-06-14", "--json"]
    res = runner.invoke(app, ["evaluate", "--ruleset", "shanghai@2022.06.28", "--dry-run", *base])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["warnings"] == [
        "shanghai@2022.06.28 is not in force on 2022-06-14: it takes effect on 2022-06-28"]
    assert "warning: shanghai@2022.06.28 is not in force" in res.stderr
    res = runner.invoke(app, ["evaluate", "--ruleset", "shanghai@2022.05.23", "--dry-run", *base])
    assert json.loads(res.stdout)["warnings"] == [] and "warning" not in res.stderr
    res = runner.invoke(app, ["diff", "--ruleset", "shanghai@2022.05.23", "--against", "shanghai@2022.06.28", *base,
                              "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["warnings"] == [
        "shanghai@2022.06.28 is not in force on 2022-06-14: it takes effect on 2022-06-28"]
    assert json.loads((tmp_path / "rep" / "summary.json").read_text(encoding="utf-8")) == json.loads(res.stdout)


# ---------------------------------------------------------------- one name per feed


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_diff_and_explain_name_a_feed_alike(lang):
    from diff_fixtures import ruleset_pair

    from hcode.diff.changes import diff
    from hcode.feeds import FEEDS
    from hcode.rules.load import find_ruleset

    d = diff(*ruleset_pair(), lang=lang)
    texts = "\n".join(d.changes.frame()["explanation"].to_list())
    assert "(inbound_codes" in texts or "（inbound_codes" in texts
    for other in ("inbound codes", "NAT results", "外省健康码，", "核酸，"):
        assert other not in texts
    # the engine's explanation (what explain prints) names the same feed the same way
    rs = find_ruleset("shanghai@2022.05.23")
    ex = next(e for e in rs.examples if "inbound_codes" in e.events and e.color == "red")
    outcome = run_example(rs, ex)
    assert "inbound_codes" in outcome.explanation and "inbound_codes" in FEEDS


# ---------------------------------------------------------------- hcode --version


def test_version_flag_prints_the_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.stdout.strip() == f"hcode {__version__}"


# ---------------------------------------------------------------- help examples and the sample night


def test_help_examples_use_ids_of_the_sample_night():
    """Every id number, run id and load id in a command's example exists after the README's
    session on the bundled night: its registrations, runs 1 and 2, one load per file."""
    import re

    from hcode.cli.doc import render

    root = Path(__file__).resolve().parent.parent
    examples = "\n".join(re.findall(r"```sh\n(.*?)```", render(), re.S))
    registered = (root / "sample_data" / "registrations.csv").read_text(encoding="utf-8-sig")
    ids = re.findall(r"\b\d{17}[\dX]\b", examples)
    assert ids and all(i in registered for i in ids), ids
    runs = [int(a or b) for a, b in re.findall(r"--run (\d+)|hcode guard (\d+)", examples)]
    runs += [int(n) for pair in re.findall(r"hcode diff (\d+) (\d+)", examples) for n in pair]
    assert runs and set(runs) <= {1, 2}, runs
    loads = [int(n) for n in re.findall(r"hcode retract (\d+)", examples)]
    assert loads and all(1 <= n <= len(list((root / "sample_data").glob("*.csv"))) for n in loads)
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "(run 1)" in readme and "(run 2)" in readme and "hcode sample --out sample_data" in readme
    assert readme.index("-m venv") < readme.index("hcode sample --out sample_data") < readme.index(
        "hcode ingest sample_data/")


# ---------------------------------------------------------------- pitfalls (docs/rulesets.md), as the engine has them

PIT_HEAD = HEAD.format(version="2022.01.01") + "palette: [green, yellow, red]\n"


def color_of(rs, events: dict, as_of: dt.date = dt.date(2022, 6, 14)) -> tuple[str, tuple[str, ...]]:
    from hcode.engine.evaluate import evaluate
    from hcode.engine.examples import example_frames
    from hcode.rules.ruleset import Example

    ex = Example("x", as_of, events, "green", None, None, "x", 1)
    row = evaluate(rs, example_frames(ex), as_of).codes.row(0, named=True)
    return row["color"], tuple(row["matched_rules"])


CONTACT = {"contacts": ({"identified_at": dt.datetime(2022, 6, 10, 10), "contact_level": "close"},)}


def negative(day: int) -> dict:
    return {"sampled_at": dt.datetime(2022, 6, day, 10), "result": "negative", "pooled": False}


def test_pitfall_null_under_not(tmp_path):
    facts = """facts:
  contact_at: latest contacts.identified_at where contact_level = 'close'
  last_negative_at: latest nat_results.sampled_at where result = 'negative'
rules:
"""
    naive = write(tmp_path, "2022.01.01", PIT_HEAD + facts + "  - {id: N, color: red, title: {zh: a, en: a}, "
                  "when: contact_at is not null and not (last_negative_at > contact_at)}\n")
    said = write(tmp_path / "b", "2022.01.01", PIT_HEAD + facts + "  - {id: N, color: red, title: {zh: a, en: a}, "
                 "when: contact_at is not null and (last_negative_at is null or last_negative_at <= contact_at)}\n")
    for p, untested in ((naive, "green"), (said, "red")):
        rs = load_ruleset(p)
        assert color_of(rs, CONTACT)[0] == untested  # a contact with no test: null under not
        assert color_of(rs, CONTACT | {"nat_results": (negative(5),)})[0] == "red"  # negative before contact
        assert color_of(rs, CONTACT | {"nat_results": (negative(12),)})[0] == "green"


def test_pitfall_commas_in_titles(tmp_path):
    rule = "rules:\n  - id: C\n    color: red\n    title: {zh: 密接居家, en: %s}\n    when: contact_at is not null\n"
    facts = "facts:\n  contact_at: latest contacts.identified_at\n"
    p = write(tmp_path, "2022.01.01", PIT_HEAD + facts + rule % "Close contact, home monitoring")
    with pytest.raises(RulesetError, match="title needs exactly a zh and an en text"):
        load_ruleset(p)
    p.write_text(PIT_HEAD + facts + rule % '"Close contact, home monitoring"', encoding="utf-8")
    assert load_ruleset(p).rule("C").title["en"] == "Close contact, home monitoring"


def test_pitfall_window_and_release(tmp_path):
    facts = """facts:
  contact_at: latest contacts.identified_at where contact_level = 'close'
  any_negative: exists nat_results where result = 'negative'
  negative_after: exists nat_results where result = 'negative' and sampled_at > contact_at
rules:
"""
    rule = "  - {id: W, color: yellow, title: {zh: a, en: a}, trigger: contact_at, release: %s%s}\n"
    old_negative = CONTACT | {"nat_results": (negative(1),)}
    new_negative = CONTACT | {"nat_results": (negative(11),)}
    loose = load_ruleset(write(tmp_path, "2022.01.01", PIT_HEAD + facts + rule % ("any_negative", "")))
    assert color_of(loose, old_negative)[0] == "green"  # released at once by a test before the contact
    tied = load_ruleset(write(tmp_path / "b", "2022.01.01", PIT_HEAD + facts + rule % ("negative_after", "")))
    assert color_of(tied, old_negative)[0] == "yellow"
    assert color_of(tied, new_negative)[0] == "green"
    window = load_ruleset(write(tmp_path / "c", "2022.01.01",
                                PIT_HEAD + facts + rule % ("negative_after", ", window: 7 days")))
    assert color_of(window, new_negative)[0] == "yellow"  # inside the window, whatever the release says
    assert color_of(window, new_negative, dt.date(2022, 6, 18))[0] == "green"  # after it, released


def test_pitfall_absence_rules_match_everyone_without_the_event_and_decide_everyone(tmp_path):
    import polars as pl

    from hcode.engine.evaluate import evaluate

    facts = "facts:\n  tested_lately: exists nat_results where sampled_at within 3 days\n"
    absent = load_ruleset(write(tmp_path, "2022.01.01", PIT_HEAD + facts + "rules:\n  - {id: A, color: yellow, "
                                "title: {zh: a, en: a}, when: not tested_lately}\n"))
    present = load_ruleset(write(tmp_path / "b", "2022.01.01", PIT_HEAD + facts + "rules:\n  - {id: A, color: yellow, "
                                 "title: {zh: a, en: a}, when: tested_lately}\n"))
    assert color_of(absent, {}) == ("yellow", ("A",))  # a person with no event at all
    n = 50
    frames = {"registrations": pl.DataFrame({"pid": range(1, n + 1), "registered_at": [dt.datetime(2020, 1, 1)] * n,
                                             "district_code": ["310101"] * n}),
              "nat_results": pl.DataFrame({"pid": [1], "sampled_at": [dt.datetime(2022, 6, 13)],
                                           "result": ["negative"], "pooled": [False]})}
    few = evaluate(present, frames, dt.date(2022, 6, 14))
    everyone = evaluate(absent, frames, dt.date(2022, 6, 14))
    assert few.colors["yellow"] == 1 and everyone.colors["yellow"] == n - 1
    assert few.results.height == 1 and everyone.results.height == n  # every person decided and stored in full
