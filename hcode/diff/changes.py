"""What changed between two sets of codes, as data: the auditor's and the night shift's diff.

A *side* is one set of codes (a stored run, or a ruleset evaluated without storing) with
its metadata. `diff(before, after)` compares two sides person by person and returns a
`Diff`: the transition matrix over every person compared, one explained row per person
whose colour changed or who is in only one side, the persons whose deciding rule changed
with the same colour (listed apart: they are not colour changes), per-rule started/stopped
counts and colour changes per district. Rendering lives in `hcode.report`.

Why it is shaped like this: at 10M persons per side the full outer join is the only step
that touches everyone, so it carries just `person_key`, `color` and `rule`. The heavy
columns (matched rules, evidence, overrides) are fetched only for the ~2 % of persons
that are listed, and the per-rule counts come from anti-joins of (person, rule) pairs,
which exist only for persons that match at least one rule. Two stored runs of one warehouse
are compared by pid (`Side.details`): each side is then read without its person keys,
evidence and overrides, which are fetched for the listed persons only (the 10M next night's
two sides: 8.3 s to read with every key, 2.0 s by pid).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl

from hcode.colors import ABSENT, LANGS
from hcode.diff.listed import Listed, listed_order
from hcode.diff.reasons import explain
from hcode.feeds import EVIDENCE, OVERRIDE, codes_schema

EVIDENCE_DTYPE = pl.List(EVIDENCE)
OVERRIDE_DTYPE = OVERRIDE
CODES_SCHEMA = codes_schema("person_key")
BY_PID_SCHEMA = {"pid": pl.Int32(), **{c: CODES_SCHEMA[c] for c in ("district_code", "color", "rule", "matched_rules")}}


class Details(Protocol):
    """What a side read by pid fetches for its listed persons only: their person keys, and
    their evidence and override (each aligned with `pids`; a pid without details: evidence
    [], override null)."""

    def keys(self, pids: pl.Series) -> pl.Series: ...

    def evidence(self, pids: pl.Series) -> pl.DataFrame: ...


@dataclass(frozen=True)
class SideMeta:
    """Everything about a side except its codes (what a `Diff` keeps and reports show)."""

    label: str
    run_id: int | None
    ruleset: str
    version: str
    as_of: dt.date
    palette: tuple[str, ...]
    rule_titles: Mapping[str, Mapping[str, str]]

    def title(self, rule: str, lang: str = "en") -> str:
        titles = self.rule_titles.get(rule) or {}
        return titles.get(lang) or titles.get("en") or ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "run_id": self.run_id,
            "ruleset": self.ruleset,
            "version": self.version,
            "as_of": self.as_of.isoformat(),
            "palette": list(self.palette),
        }


@dataclass(frozen=True, eq=False)
class Side(SideMeta):
    """One set of codes to compare: `codes` has the columns of `CODES_SCHEMA`; or, with
    `details` (a stored run compared with another run of its warehouse, where a pid is the
    same person), those of `BY_PID_SCHEMA`, the rest fetched for the listed persons."""

    codes: pl.DataFrame
    details: Details | None = None

    def meta(self) -> SideMeta:
        return SideMeta(self.label, self.run_id, self.ruleset, self.version, self.as_of,
                        tuple(self.palette), self.rule_titles)


@dataclass(frozen=True)
class Diff:
    """The comparison of two sides. Frames are small (rules, districts); the listed persons
    are a `Listed`, in memory or, from a bucketed diff, in files read back as needed."""

    before: SideMeta
    after: SideMeta
    lang: str
    palette: tuple[str, ...]  # the matrix's colour order, least severe first, without "absent"
    persons_compared: int
    changes: Listed  # one row per colour change or one-sided person
    rule_changes: Listed  # same colour, different deciding rule
    matrix: dict[str, dict[str, int]]  # before -> after -> persons, palette order + "absent"
    rules: pl.DataFrame  # rule, title, started, stopped (ruleset order)
    districts: pl.DataFrame  # district_code, changes, more_severe, less_severe, appeared, disappeared
    only_before: int
    only_after: int

    @property
    def n_changes(self) -> int:
        return self.changes.height


def merged_palette(before: tuple[str, ...], after: tuple[str, ...]) -> tuple[str, ...]:
    """Both palettes in one severity order: the after side's, with before-only colours
    placed right after their less severe neighbour in the before palette."""
    out = list(after)
    for i, c in enumerate(before):
        if c in out:
            continue
        prev = next((p for p in reversed(before[:i]) if p in out), None)
        out.insert(out.index(prev) + 1 if prev is not None else 0, c)
    return tuple(out)


def normalise_codes(codes: pl.DataFrame, schema: Mapping[str, pl.DataType] = CODES_SCHEMA) -> pl.DataFrame:
    """The codes with every column of `schema` (missing optional ones as nulls)."""
    key = next(iter(schema))
    missing = [pl.lit(None, dtype).alias(name) for name, dtype in schema.items() if name not in codes.columns]
    if key not in codes.columns or "color" not in codes.columns:
        raise ValueError(f"a side's codes need at least {key} and color")
    return codes.with_columns(missing).select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


_SEED, _CHECK_SEED = 0x6863_6F64, 0x6469_6666  # fixed: identities must agree across sides


def _identity(fast: bool) -> tuple[pl.Expr, pl.Expr]:
    """The join key and its check: a 64-bit hash of person_key (a u64 join is several times
    cheaper than one on 64-character strings) checked by a second, independent hash; or
    the string itself when a collision forces the slow path."""
    if fast:
        return pl.col("person_key").hash(_SEED), pl.col("person_key").hash(_CHECK_SEED)
    return pl.col("person_key"), pl.lit(0, pl.UInt64)


def _person(codes: pl.DataFrame, fast: bool) -> tuple[pl.Expr, pl.Expr]:
    """`_identity`, or for sides by pid the pid itself (exact: nothing to check)."""
    if "pid" in codes.columns:
        return pl.col("pid").cast(pl.UInt64), pl.lit(0, pl.UInt64)
    return _identity(fast)


def _compact(codes: pl.DataFrame, s: str, fast: bool, colors: pl.Enum) -> pl.LazyFrame:
    """person identity, colour code and a 64-bit hash of the deciding rule (rule names are a
    few dozen short ids: their hashes do not collide in practice) plus the row position."""
    ident, check = _person(codes, fast)
    return codes.lazy().select(
        id=ident,
        **{f"check_{s}": check,
           f"code_{s}": pl.col("color").cast(colors).to_physical(),
           f"rcode_{s}": pl.col("rule").hash(_SEED)},
    ).with_row_index(f"row_{s}")


def _join(b: pl.DataFrame, a: pl.DataFrame, colors: pl.Enum) -> tuple[pl.DataFrame, bool]:
    """The full outer join of both sides on person identity, in small integers only."""
    for fast in (True, False):
        joined = (_compact(b, "b", fast, colors)
                  .join(_compact(a, "a", fast, colors), on="id", how="full", coalesce=True)
                  .collect())
        both = joined.filter(pl.col("row_b").is_not_null() & pl.col("row_a").is_not_null())
        if fast and (both["check_b"] != both["check_a"]).any():
            continue  # a 64-bit collision: redo the join on the strings themselves
        if joined["row_b"].count() != b.height or joined["row_a"].count() != a.height:
            raise ValueError("a side lists the same person_key twice")
        return joined.drop("check_b", "check_a").rechunk(), fast
    raise AssertionError("unreachable")


def _rule_pairs(codes: pl.DataFrame, fast: bool) -> pl.LazyFrame:
    """(id, rule, pos) for every matching rule; pos keeps the ruleset order."""
    ident, _ = _person(codes, fast)
    return (
        codes.lazy().select(id=ident, rule="matched_rules")
        .filter(pl.col("rule").list.len() > 0)
        .with_columns(pos=pl.int_ranges(pl.col("rule").list.len(), dtype=pl.Int32))
        .explode("rule", "pos")
    )


def _rule_order(before: SideMeta, after: SideMeta) -> list[str]:
    order = list(before.rule_titles)
    order += [r for r in after.rule_titles if r not in order]
    return order


def _with_strays(b: pl.DataFrame, a: pl.DataFrame, palette: tuple[str, ...]) -> tuple[str, ...]:
    """The palette, plus (after it) any colour found in the codes that it lacks."""
    seen = set(b["color"].unique().drop_nulls()) | set(a["color"].unique().drop_nulls())
    return (*palette, *sorted(seen - set(palette)))


def diff(before: Side, after: Side, lang: str = "en") -> Diff:
    """Compare `before` and `after` person by person (A = before, B = after)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: en or zh")
    if (before.details is None) != (after.details is None):
        raise ValueError("a side by pid is compared only with another side by pid of its warehouse")
    schema = CODES_SCHEMA if after.details is None else BY_PID_SCHEMA
    b_codes, a_codes = normalise_codes(before.codes, schema), normalise_codes(after.codes, schema)
    palette = merged_palette(tuple(before.palette), tuple(after.palette))
    try:  # the colour cast is strict: a colour outside both palettes fails it (rare, then slower)
        joined, fast = _join(b_codes, a_codes, pl.Enum(palette))
    except pl.exceptions.InvalidOperationError:
        palette = _with_strays(b_codes, a_codes, palette)
        joined, fast = _join(b_codes, a_codes, pl.Enum(palette))

    transitions = joined.group_by("code_b", "code_a").agg(persons=pl.len())
    axis = [*palette, ABSENT]
    matrix = {r: dict.fromkeys(axis, 0) for r in axis}
    for cb, ca, n in transitions.iter_rows():
        matrix[ABSENT if cb is None else palette[cb]][ABSENT if ca is None else palette[ca]] += n
    color_changed = pl.col("code_b").ne_missing(pl.col("code_a"))
    rule_changed = (pl.col("code_b").is_not_null() & ~color_changed
                    & pl.col("rcode_b").ne_missing(pl.col("rcode_a")))
    listed = _in_listed_order(joined.filter(color_changed | rule_changed).with_columns(is_change=color_changed),
                              b_codes, a_codes, after.details)
    del joined

    pairs_b, pairs_a = _rule_pairs(b_codes, fast), _rule_pairs(a_codes, fast)
    started, stopped = pl.collect_all([pairs_a.join(pairs_b, on=["id", "rule"], how="anti"),
                                       pairs_b.join(pairs_a, on=["id", "rule"], how="anti")])
    rules = _rule_counts(before.meta(), after.meta(), started, stopped, lang)
    listed_rows = _listed_details(listed, (b_codes, before.details), (a_codes, after.details), started, stopped)
    cols = ["person_key", "district_code", "before", "after", "rule_before", "rule_after",
            "rules_before", "rules_after", "rules_started", "rules_stopped",
            "override_before", "override_after", "explanation"]
    listed_rows = explain(listed_rows, before.meta(), after.meta(), lang).select(*cols, "is_change")
    changes = listed_rows.filter(pl.col("is_change")).select(cols)
    rule_changes = listed_rows.filter(~pl.col("is_change")).select(cols)
    return Diff(
        before=before.meta(), after=after.meta(), lang=lang, palette=palette,
        persons_compared=sum(sum(r.values()) for r in matrix.values()), changes=Listed.of(changes),
        rule_changes=Listed.of(rule_changes), matrix=matrix, rules=rules,
        districts=district_counts(changes, palette),
        only_before=sum(matrix[c][ABSENT] for c in palette),
        only_after=sum(matrix[ABSENT][c] for c in palette),
    )


def _in_listed_order(listed: pl.DataFrame, b_codes: pl.DataFrame, a_codes: pl.DataFrame,
                     details: Details | None) -> pl.DataFrame:
    """`listed` (a few integers a row) with each person's key and district, in `LISTED_ORDER`:
    district, then person key, each the after side's, else the before side's (sides by pid:
    the keys fetched for these persons). Ordered now, the wide rows gathered from it come
    out in order; sorting them at the end gathered every text and list again (10.4 s of a
    10M first night's 41 s report, 2026-12-07)."""
    keys = ["district_code"] if details is not None else ["district_code", "person_key"]
    b = b_codes.select(keys)[listed["row_b"]]
    a = a_codes.select(keys)[listed["row_a"]]
    district = a["district_code"].fill_null(b["district_code"])
    key = details.keys(listed["id"]) if details is not None else a["person_key"].fill_null(b["person_key"])
    keyed = listed.with_columns(district_code=district, person_key=key)
    return keyed[listed_order(district, key)]


def _gather(codes: pl.DataFrame, details: Details | None, rows: pl.Series, pids: pl.Series,
            s: str) -> pl.DataFrame:
    """The listed persons' codes on one side, fetched by position (no join over 10M), and
    for a side by pid their evidence and override fetched by pid; a null position (absent
    on this side) gives a row of nulls, so the result aligns with `rows`."""
    heavy = ["color", "rule", "matched_rules"] if details is not None else \
        ["color", "rule", "matched_rules", "evidence", "override"]
    # Rechunked first: Polars gathers a list or struct column of several chunks (a run read
    # back in batches) row by row, 11 times slower for 700K persons than copying it whole and
    # gathering from one chunk.
    out = codes.select(heavy).rechunk()[rows]
    if details is not None:
        present = rows.is_not_null()
        at = pl.select(pl.when(present).then(present.cum_sum() - 1)).to_series()
        fetched = details.evidence(pids.filter(present)).select(
            pl.col("evidence").cast(EVIDENCE_DTYPE), pl.col("override").cast(OVERRIDE_DTYPE))
        out = pl.concat([out, fetched[at]], how="horizontal")
    return out.rename({c: f"{c}_{s}" for c in out.columns})


def _listed_details(listed: pl.DataFrame, before: tuple[pl.DataFrame, Details | None],
                    after: tuple[pl.DataFrame, Details | None],
                    started: pl.DataFrame, stopped: pl.DataFrame) -> pl.DataFrame:
    """The listed persons with both sides' columns and their started/stopped rule lists."""
    ids = listed.lazy().select("id")

    def as_lists(pairs: pl.DataFrame, name: str) -> pl.LazyFrame:
        return (pairs.lazy().join(ids, on="id", how="semi").sort("id", "pos")
                .group_by("id", maintain_order=True).agg(pl.col("rule").alias(name)))

    empty = pl.lit([], pl.List(pl.String))
    # The rule lists are joined onto the ids alone, then put beside the wide rows: a join
    # carrying the wide rows gathered every list and text again (a first night's bucket of
    # 768K persons: 0.2 s a join).
    lists = (ids.join(as_lists(started, "rules_started"), on="id", how="left", maintain_order="left")
             .join(as_lists(stopped, "rules_stopped"), on="id", how="left", maintain_order="left")
             .select("rules_started", "rules_stopped").collect())
    wide = pl.concat([listed.select("is_change", "person_key", "district_code"),
                      _gather(*before, listed["row_b"], listed["id"], "before"),
                      _gather(*after, listed["row_a"], listed["id"], "after"), lists], how="horizontal")
    out = (
        wide.lazy()  # (in listed order)
        .select(
            "person_key", "district_code",
            before="color_before", after="color_after",
            rule_before="rule_before", rule_after="rule_after", is_change="is_change",
            rules_before=pl.when(pl.col("color_before").is_not_null())
            .then(pl.col("matched_rules_before").fill_null(empty)),
            rules_after=pl.when(pl.col("color_after").is_not_null())
            .then(pl.col("matched_rules_after").fill_null(empty)),
            rules_started=pl.col("rules_started").fill_null(empty),
            rules_stopped=pl.col("rules_stopped").fill_null(empty),
            override_before="override_before", override_after="override_after",
            evidence_before="evidence_before", evidence_after="evidence_after",
        )
    )
    return out.collect()


def _rule_counts(before: SideMeta, after: SideMeta, started: pl.DataFrame, stopped: pl.DataFrame,
                 lang: str) -> pl.DataFrame:
    """Per rule, persons that started and stopped matching it (absent side = no rules)."""
    counts = (
        started.group_by("rule").agg(started=pl.len())
        .join(stopped.group_by("rule").agg(stopped=pl.len()), on="rule", how="full", coalesce=True)
    )
    return rule_table(before, after, counts, lang)


def rule_table(before: SideMeta, after: SideMeta, counts: pl.DataFrame, lang: str) -> pl.DataFrame:
    """`Diff.rules` from per-rule `started` and `stopped` counts: every rule of both rulesets
    in their order, then any other rule counted (sorted), with its title."""
    order = _rule_order(before, after)
    extra = sorted(set(counts["rule"]) - set(order))
    order += extra
    frame = pl.DataFrame(
        {
            "rule": order,
            "title": [after.title(r, lang) or before.title(r, lang) for r in order],
            "order": list(range(len(order))),
        },
        schema={"rule": pl.String, "title": pl.String, "order": pl.Int32},
    )
    return (
        frame.join(counts, on="rule", how="left")
        .with_columns(pl.col("started", "stopped").fill_null(0).cast(pl.Int64))
        .sort("order")
        .drop("order")
    )


def district_counts(changes: pl.DataFrame, palette: tuple[str, ...]) -> pl.DataFrame:
    """Colour changes per district, split by direction (more or less severe, appeared, gone),
    most changes first. (Severity is the colour's position in `palette`, read as an Enum's
    code: a first night's bucket of 767K changes in 0.03 s, against 0.19 s through a mapping
    of the texts; a colour outside `palette` has none.)"""
    colors = pl.Enum(palette)
    rb, ra = pl.col("rb"), pl.col("ra")
    return (
        changes.lazy()
        .select(pl.col("district_code").fill_null("unknown"), "before", "after",
                rb=pl.col("before").cast(colors, strict=False).to_physical(),
                ra=pl.col("after").cast(colors, strict=False).to_physical())
        .group_by("district_code")
        .agg(
            changes=pl.len(),
            more_severe=(ra > rb).sum(),
            less_severe=(ra < rb).sum(),
            appeared=pl.col("before").is_null().sum(),
            disappeared=pl.col("after").is_null().sum(),
        )
        .with_columns(pl.exclude("district_code").cast(pl.Int64))
        .collect()
        .pipe(by_changes)
    )


def by_changes(districts: pl.DataFrame) -> pl.DataFrame:
    """`Diff.districts`' order: most changes first, then by district."""
    return districts.sort(["changes", "district_code"], descending=[True, False])
