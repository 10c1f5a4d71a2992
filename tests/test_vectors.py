"""The rule language's test vectors (tests/vectors/*.yaml, format in docs/rulesets.md, "Test
vectors"), run against every implementation hcode has:

* the compiled Polars engine (`evaluate` on frames),
* the plain-Python reference engine (`reference_codes`, `Interp`),
* the warehouse path (`evaluate` on a `WarehouseSource`: facts read through DuckDB with the
  filters `pushdown.translate` pushed), plus each pushed filter run on its own in DuckDB.

A condition over a feed's columns becomes three facts of a small ruleset — `exists F where
(E)`, `exists F where not (E)`, `exists F where (E) is null` — and each row of the vector is
one person, so the engines' matched rules say whether E was true, false or null for it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from populations import warehouse_of

from hcode.engine.compile import Ctx, compile_expr
from hcode.engine.evaluate import evaluate
from hcode.engine.pushdown import translate
from hcode.engine.reference import Interp, reference_codes
from hcode.engine.sources import WarehouseSource, feed_schema
from hcode.feeds import FEEDS, Kind
from hcode.rules.check import CheckError, Scope, Type, resolve, resolve_fact
from hcode.rules.examples import to_value
from hcode.rules.load import load_ruleset
from hcode.rules.parse import ParseError, parse_expr, parse_fact
from hcode.rules.ruleset import Ruleset

VECTORS = Path(__file__).resolve().parent / "vectors"
PALETTE = ["green", "yellow", "red"]
REGISTERED = {"registered_at": dt.datetime(2000, 1, 1), "district_code": "000000"}
KEYS = {
    "condition": {"name", "as_of", "feed", "facts", "expr", "rows"},
    "ruleset": {"name", "as_of", "palette", "facts", "rules", "shared", "persons"},
    "error": {"name", "expr", "fact", "facts", "syntax_error", "check_error"},
}
# a condition over a feed: which of these facts holds says what the condition was for the row
VALUE_OF = {"vec_true": True, "vec_false": False, "vec_null": None}


def _kind(v: dict[str, Any]) -> str:
    if "syntax_error" in v or "check_error" in v:
        return "error"
    return "ruleset" if "rules" in v else "condition"


def _vectors() -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"condition": [], "ruleset": [], "error": []}
    for path in sorted(VECTORS.glob("*.yaml")):
        for i, v in enumerate(yaml.safe_load(path.read_text(encoding="utf-8"))):
            name = v.get("name") or v.get("expr") or v.get("fact")
            out[_kind(v)].append(pytest.param(v, id=f"{path.stem}[{i}] {name}"))
    return out


ALL = _vectors()


def _cutoff(as_of: dt.date) -> dt.datetime:
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())


def test_the_vector_files_are_well_formed():
    files = sorted(VECTORS.glob("*.yaml"))
    assert {p.stem for p in files} == {"conditions", "errors", "rulesets"}
    assert all(yaml.safe_load(p.read_text(encoding="utf-8")) for p in files)
    for kind, params in ALL.items():
        assert params, f"no {kind} vectors"
        for p in params:
            v = p.values[0]
            assert set(v) <= KEYS[kind], (p.id, set(v) - KEYS[kind])
            if kind == "condition":
                assert ("feed" in v) != ("facts" in v), p.id
                assert v["rows"] and all("expect" in r for r in v["rows"]), p.id


# ---------------------------------------------------------------- frames and engines


def _typed(feed: str, row: dict[str, Any]) -> dict[str, Any]:
    """A vector's row typed as the feed stores it; a missing boolean is false, a missing
    nullable column null (as in a ruleset's examples)."""
    cols = {c.name: c for c in FEEDS[feed].stored_columns}
    assert set(row) <= set(cols), f"{feed} has no column {sorted(set(row) - set(cols))}"
    out = {}
    for name, c in cols.items():
        if name in row:
            out[name] = to_value(row[name], c.kind)
        elif c.kind is Kind.BOOL or c.nullable:
            out[name] = False if c.kind is Kind.BOOL else None
        else:
            raise AssertionError(f"a {feed} row lacks {name!r}")
    return out


def _frames(persons: list[dict[str, list[dict[str, Any]]]], shared: dict[str, list[dict[str, Any]]]
            ) -> dict[str, pl.DataFrame]:
    """Person i+1 has the rows persons[i]; `shared` holds the rows of feeds without a person."""
    rows: dict[str, list[dict[str, Any]]] = {f: [] for f in FEEDS}
    for pid, events in enumerate(persons, start=1):
        events = {"registrations": [REGISTERED]} | events
        for feed, feed_rows in events.items():
            assert FEEDS[feed].has_person, f"{feed} rows are shared, not a person's"
            rows[feed] += [{"pid": pid} | _typed(feed, r) for r in feed_rows]
    for feed, feed_rows in shared.items():
        assert not FEEDS[feed].has_person, f"{feed} rows belong to a person"
        rows[feed] += [_typed(feed, r) for r in feed_rows]
    return {f: pl.DataFrame(r, schema=feed_schema(f), orient="row") for f, r in rows.items()}


def _outcomes(codes: pl.DataFrame) -> dict[int, dict[str, Any]]:
    return {r["pid"]: {"color": r["color"], "rule": r["rule"], "rules": sorted(r["matched_rules"])}
            for r in codes.iter_rows(named=True)}


def _three_engines(rs: Ruleset, frames: dict[str, pl.DataFrame], as_of: dt.date) -> dict[str, Any]:
    con = warehouse_of(frames)
    try:
        via_sql = evaluate(rs, WarehouseSource(con, _cutoff(as_of), 1), as_of).codes
    finally:
        con.close()
    return {"polars": _outcomes(evaluate(rs, frames, as_of).codes),
            "reference": _outcomes(reference_codes(rs, frames, as_of)),
            "warehouse": _outcomes(via_sql)}


def _ruleset(tmp_path: Path, v: dict[str, Any]) -> Ruleset:
    doc = {"province": "vectors", "version": "v1", "effective_from": "2000-01-01",
           "title": {"zh": "测试向量", "en": "test vectors"}, "basis": "tests/vectors",
           "palette": v.get("palette", PALETTE), "facts": v["facts"],
           "rules": [{"title": {"zh": r["id"], "en": r["id"]}} | r for r in v["rules"]]}
    path = tmp_path / "v1.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_ruleset(path)


# ---------------------------------------------------------------- the three kinds of vectors


@pytest.mark.parametrize("v", ALL["ruleset"])
def test_ruleset_vector(v, tmp_path):
    rs = _ruleset(tmp_path, v)
    frames = _frames([p["events"] for p in v["persons"]], v.get("shared", {}))
    for engine, got in _three_engines(rs, frames, v["as_of"]).items():
        for pid, person in enumerate(v["persons"], start=1):
            want, out = person["expect"], got[pid]
            where = f"{engine}: {person['name']}"
            assert out["color"] == want["color"], where
            if "rules" in want:
                assert out["rules"] == sorted(want["rules"]), where
            if "rule" in want:
                assert out["rule"] == want["rule"], where


def _condition_over_feed(v: dict[str, Any], tmp_path: Path) -> None:
    feed, expr, cutoff = v["feed"], v["expr"], _cutoff(v["as_of"])
    t = FEEDS[feed].event_time
    for r in v["rows"]:  # a row at or after the cut-off is no fact's row: the vector would test nothing
        assert to_value(r[t], Kind.TIMESTAMP) < cutoff, f"{v['name']}: {t} must be before the cut-off"
    facts = {"vec_true": f"exists {feed} where ({expr})", "vec_false": f"exists {feed} where not ({expr})",
             "vec_null": f"exists {feed} where ({expr}) is null"}
    rules = [{"id": name, "color": "red", "when": name} for name in VALUE_OF]
    rs = _ruleset(tmp_path, {"facts": facts, "rules": rules})
    rows = [{k: x for k, x in r.items() if k != "expect"} for r in v["rows"]]
    frames = _frames([{feed: [r]} for r in rows], {})
    for engine, got in _three_engines(rs, frames, v["as_of"]).items():
        for pid, r in enumerate(v["rows"], start=1):
            assert [VALUE_OF[n] for n in got[pid]["rules"]] == [r["expect"]], f"{engine}: row {pid}: {r}"
    # the filter the warehouse applies on its own: never loses a true row, and exact when it says so
    node, _ = resolve(parse_expr(expr), Scope(feed, {}, tuple(PALETTE), in_where=True))
    pushed = translate(node, feed, cutoff)
    if pushed is not None:
        con = warehouse_of(frames)
        try:
            kept = {p for (p,) in con.execute(f"SELECT pid FROM {FEEDS[feed].table} WHERE {pushed.sql}",
                                              list(pushed.params)).fetchall()}
        finally:
            con.close()
        true = {pid for pid, r in enumerate(v["rows"], start=1) if r["expect"] is True}
        assert true <= kept
        if pushed.exact:
            assert kept == true


_DTYPES = {Type.TIMESTAMP: pl.Datetime("us"), Type.BOOL: pl.Boolean, Type.NUMBER: pl.Int64}


def _condition_over_facts(v: dict[str, Any]) -> None:
    types = {n: Type(t) for n, t in v["facts"].items()}
    cutoff = _cutoff(v["as_of"])
    node, typ = resolve(parse_expr(v["expr"]), Scope(None, types, tuple(PALETTE)))
    assert typ == Type.BOOL
    rows = [{n: (to_value(r[n], Kind.TIMESTAMP) if t == Type.TIMESTAMP else r[n]) for n, t in types.items()}
            for r in v["rows"]]
    want = [r["expect"] for r in v["rows"]]
    frame = pl.DataFrame(rows, schema={n: _DTYPES[t] for n, t in types.items()}, orient="row")
    polars = frame.select(compile_expr(node, Ctx(cutoff, tuple(PALETTE))).alias("x"))["x"].to_list()
    reference = [Interp(cutoff, [], env=r)(node) for r in rows]
    assert polars == want
    assert reference == want


@pytest.mark.parametrize("v", ALL["condition"])
def test_condition_vector(v, tmp_path):
    if "feed" in v:
        _condition_over_feed(v, tmp_path)
    else:
        _condition_over_facts(v)  # a rule's condition is never pushed to the warehouse


@pytest.mark.parametrize("v", ALL["error"])
def test_error_vector(v):
    types = {n: Type(t) for n, t in (v.get("facts") or {}).items()}

    def check() -> None:
        if "fact" in v:
            resolve_fact(parse_fact(v["fact"]), types, tuple(PALETTE))
        else:
            resolve(parse_expr(v["expr"]), Scope(None, types, tuple(PALETTE)))

    if "syntax_error" in v:
        with pytest.raises(ParseError) as exc:
            check()
        assert v["syntax_error"] in str(exc.value)
    else:
        with pytest.raises(CheckError) as exc:
            check()
        assert v["check_error"] in str(exc.value)
