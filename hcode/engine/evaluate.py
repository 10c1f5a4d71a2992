"""The Polars engine: every registered person's code, the rules that matched, and why.

The plan follows docs/rulesets.md and docs/architecture.md (performance choices): feeds
are cut at C = as_of + 1 day; each fact is one group-by on the Int32 `pid` (facts that read other facts first reduce the
big feed to the few persons who have those facts); the rules are boolean columns over the
*touched* persons (anyone with a fact or an active override, a few percent); the colour is
the highest palette rank among matched rules; matched rules, evidence and explanations are
built only for the persons some rule matched or an override names, and everyone else gets
the constant result of a person with no events. Overrides are applied here, not by rules
(docs/rulesets.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import polars as pl

from hcode.colors import color_label
from hcode.engine.compile import (
    TS,
    Ctx,
    companion_key,
    companion_seeds,
    compile_expr,
    compile_fact,
    null_rejecting,
    severity,
)
from hcode.engine.pushdown import any_of, translate
from hcode.engine.sentences import (
    WORDS,
    evidence_detail,
    evidence_text,
    explanation_expr,
    nonempty,
    rule_fragment,
)
from hcode.engine.sources import FeedSource, FrameSource, feed_rows
from hcode.feeds import EVIDENCE, LISTINGS, OVERRIDE, codes_schema
from hcode.profiling import Stages
from hcode.rules.check import Type
from hcode.rules.lang import Companion, RiskArea, walk
from hcode.rules.ruleset import PLACE_TOKEN, Fact, Ruleset

CODES_SCHEMA = codes_schema("pid")


@dataclass(frozen=True)
class Evaluation:
    """A run's result, kept in two parts: `population` (every registered person's pid and
    district, the 6-digit code as an Int32: `codes` has it as text) and `results` (the full
    code of every person whom a rule matched or an override names, a few percent); every other
    person has the code of a person with no events (`default_*`). `codes` assembles the
    one-row-per-person frame when a caller needs it; the warehouse stores the parts as they
    are (runs.store_run)."""

    population: pl.DataFrame
    results: pl.DataFrame
    default_color: str
    default_rule: str | None
    default_explanation: str
    persons: int
    colors: dict[str, int]
    overrides_applied: int
    overrides_not_applied: int
    ruleset: Ruleset
    as_of: dt.date
    cutoff: dt.datetime

    @cached_property
    def codes(self) -> pl.DataFrame:
        """One row per registered person (sorted by pid), CODES_SCHEMA."""
        return assemble_codes(self.population, self.results, self.default_color, self.default_rule,
                              self.default_explanation)


def assemble_codes(population: pl.DataFrame, results: pl.DataFrame, color: str, rule: str | None,
                   explanation: str) -> pl.DataFrame:
    untouched = pl.col("color").is_null()
    # population is sorted by pid and the left join keeps its order: no sort of nested columns
    return (population.join(results, on="pid", how="left", maintain_order="left")
            .with_columns(district_text(pl.col("district")).alias("district_code"),
                          pl.when(untouched).then(pl.lit(rule, pl.String)).otherwise(pl.col("rule")).alias("rule"),
                          pl.col("color").fill_null(color),
                          pl.col("matched_rules").fill_null(pl.lit([], pl.List(pl.String))),
                          pl.col("evidence").fill_null(pl.lit([], pl.List(EVIDENCE))),
                          pl.col("explanation").fill_null(explanation))
            .select([pl.col(c).cast(t) for c, t in CODES_SCHEMA.items()]))


def cutoff_of(as_of: dt.date) -> dt.datetime:
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())


def district_text(district: pl.Expr) -> pl.Expr:
    """A district held as a number (population) back to its 6-digit code."""
    return district.cast(pl.String).str.zfill(6)


def population(regs: pl.LazyFrame) -> pl.DataFrame:
    """Every distinct pid registered before C, sorted by pid, with the district of its latest
    registration (ties: the greatest district code), from the rows of
    `FeedSource.registrations`: `pid`, `district` (Int32), `registered_at`.

    The rows are sorted by pid alone (the registrations are stored nearly in pid order);
    most persons have one registration, and only the rows of persons with several (about
    1 %) are sorted by time to find the latest."""
    s = regs.select("pid", "district", "registered_at").collect().sort("pid")
    p = s["pid"]
    many = ((p == p.shift(1)) | (p == p.shift(-1))).fill_null(False)
    if not many.any():
        return s.select("pid", "district")
    m = pl.col("pid")
    pos = pl.int_range(0, s.height, dtype=pl.Int64, eager=True).alias("__pos").filter(many)
    latest = (s.filter(many).with_columns(pos)
              .sort(["pid", "registered_at", "district"], maintain_order=True)
              .filter(m.shift(-1).ne_missing(m))["__pos"])  # the last row of each pid
    return s.select("pid", "district").filter((~many).scatter(latest, True))


def registered(pop: pl.DataFrame, pids: pl.Series) -> pl.Series:
    """The pids (sorted, unique) that are in the population, which is sorted by pid: a binary
    search per pid, in order (nearby searches share cache lines), instead of a hash join that
    would hash all 10M registered pids."""
    p = pop["pid"]
    if p.len() == 0 or pids.len() == 0:
        return pids.clear()
    found = p.gather(p.search_sorted(pids).clip(upper_bound=p.len() - 1)) == pids
    return pids if found.all() else pids.filter(found)


def widen(keys: pl.Series, frames: list[pl.DataFrame]) -> pl.DataFrame:
    """One row per pid of `keys` (sorted, unique) with the columns of every frame (unique
    pids), null where a frame has no row for the pid: a left join of each frame, done as a
    binary search of its pids among the keys and one gather of its rows (a hash join per
    frame took twice the CPU). Rows of pids not among the keys are left out."""
    cols = [keys.alias("pid")]
    if keys.len() == 0:
        return pl.DataFrame(cols + [c for df in frames for c in df.drop("pid").clear().get_columns()])
    for df in frames:
        pos = keys.search_sorted(df["pid"])
        rows = pl.int_range(0, df.height, dtype=pl.Int64, eager=True)
        found = keys.gather(pos.clip(upper_bound=keys.len() - 1)) == df["pid"]
        if not found.all():
            pos, rows = pos.filter(found), rows.filter(found)
        at = pl.repeat(None, keys.len(), dtype=pl.Int64, eager=True).scatter(pos, rows)
        cols.extend(df.drop("pid").select(pl.all().gather(at)).get_columns())
    return pl.DataFrame(cols)


def compute_facts(rs: Ruleset, source: FeedSource, ctx: Ctx, lang: str) -> dict[str, pl.DataFrame]:
    """Every fact as a small per-person DataFrame, level by level (a fact's level is one more
    than its deepest dependency), all facts of a level collected together.

    Per level, the facts reading a feed share one read of it: narrowed by the pushable part of
    their filters (pushdown.py) and, for facts that only hold for persons having the facts they
    read (`_inner`), to those persons."""
    done: dict[str, pl.DataFrame] = {}
    level = {n: 0 for n in rs.facts}
    for n, f in rs.facts.items():  # dependency order
        level[n] = 1 + max((level[d] for d in f.deps), default=-1)
    risk = side_frames(rs, source, ctx)
    for lv in sorted(set(level.values())):
        names = [n for n in rs.facts if level[n] == lv]
        groups: dict[tuple[str, bool], list[str]] = {}
        for n in names:
            groups.setdefault((rs.facts[n].feed, _inner(rs, rs.facts[n])), []).append(n)
        reads = {}
        for (feed, inner), members in groups.items():
            where = any_of([None if rs.facts[n].expr.per else translate(rs.facts[n].expr.where, feed, ctx.cutoff)
                            for n in members])
            pids = (pl.concat([done[d].select("pid") for n in members for d in rs.facts[n].deps]).unique()
                    if inner else None)
            reads[(feed, inner)] = source.rows(feed, where, pids)
        plans = []
        for n in names:
            f = rs.facts[n]
            deps, inner = _deps_frame(rs, f, done)
            plans.append(compile_fact(n, f.expr, reads[(f.feed, inner)], deps, inner, risk,
                                      f.evidence.get(lang, f.evidence["en"]), ctx))
        for n, df in zip(names, pl.collect_all(plans, engine=source.engine), strict=True):
            done[n] = df
    return done


def side_frames(rs: Ruleset, source: FeedSource, ctx: Ctx,
                listing: Callable[[str], pl.LazyFrame] | None = None) -> dict[str, pl.LazyFrame]:
    """What the facts' joins read besides their own feed: the listings they name, `places`
    when an evidence text names ``{place}``, and each companion's seed scans (the scans of the
    persons having the companion's feed rows: few, read for those persons only). `listing`
    gives a listing's rows when the caller already holds them (a backtest's range)."""
    read = listing or source.rows
    out: dict[str, pl.LazyFrame] = {"risk_areas": read("risk_areas")}
    for f in rs.facts.values():
        for node in walk(f.expr):
            if isinstance(node, RiskArea):
                name = LISTINGS[node.listing][0]
                if name not in out:
                    out[name] = read(name)
            if isinstance(node, Companion) and companion_key(node) not in out:
                given = source.seeds.get(companion_key(node))
                out[companion_key(node)] = (given.lazy() if given is not None
                                            else seeds_of(node, source.everyone(), ctx).lazy())
        if "places" not in out and any(PLACE_TOKEN in t for t in f.evidence.values()):
            out["places"] = read("places")
    return out


def seeds_of(node: Companion, everyone: FeedSource, ctx: Ctx) -> pl.DataFrame:
    """A companion's seed scans: the scans of every person having the companion's feed rows."""
    feed = everyone.rows(node.feed, translate(node.where, node.feed, ctx.cutoff))
    if node.where is not None:
        feed = feed.filter(compile_expr(node.where, ctx))
    who = feed.select("pid").unique().collect()
    scans = everyone.rows("place_scans", None, who)
    return companion_seeds(node, feed, scans, ctx).collect()


def all_seeds(rs: Ruleset, everyone: FeedSource, as_of: dt.date) -> dict[str, pl.DataFrame]:
    """Every companion's seed scans, by `companion_key`, read from a source of every person:
    what an engine evaluating one bucket of persons at a time on other machines (Spark) is
    given, since a companion's seeds are other persons, in any bucket."""
    ctx = Ctx(cutoff_of(as_of), rs.palette)
    return {companion_key(n): seeds_of(n, everyone, ctx) for f in rs.facts.values() for n in walk(f.expr)
            if isinstance(n, Companion)}


def _inner(rs: Ruleset, f: Fact) -> bool:
    where = f.expr.where  # a fact reads other facts only in its where
    return bool(f.deps) and where is not None and all(
        rs.facts[d].type == Type.TIMESTAMP and null_rejecting(where, d) for d in f.deps)


def _deps_frame(rs: Ruleset, f: Fact, done: Mapping[str, pl.DataFrame]) -> tuple[pl.LazyFrame | None, bool]:
    if not f.deps:
        return None, False
    inner = _inner(rs, f)
    frames = [done[d].lazy().select("pid", d) for d in f.deps]
    out = frames[0]
    for fr in frames[1:]:
        out = out.join(fr, on="pid", how="inner" if inner else "full", coalesce=True)
    if not inner:
        out = out.with_columns([_fill(rs, d) for d in f.deps])
    return out, inner


def _fill(rs: Ruleset, name: str) -> pl.Expr:
    typ = rs.facts[name].type
    if typ in (Type.BOOL, Type.NUMBER):
        return pl.col(name).fill_null(False if typ == Type.BOOL else 0)
    return pl.col(name)


def active_overrides(ov: pl.LazyFrame, rs: Ruleset, cutoff: dt.datetime) -> pl.DataFrame:
    """Per person the active override (issued before C, not expired at C; the latest; ties: the
    most severe colour, then the texts) and whether its colour is in the palette."""
    return (ov.filter(pl.col("expires_at").is_null() | (pl.col("expires_at") >= pl.lit(cutoff, dtype=TS)))
            .with_columns(severity("color", rs.palette).alias("__sev"))
            .sort(["pid", "issued_at", "__sev", "color", "authority", "basis", "operator", "reason", "expires_at"],
                  nulls_last=False)
            .unique(subset="pid", keep="last", maintain_order=True)
            .with_columns(pl.col("color").is_in(list(rs.palette)).alias("applied"))
            .select("pid", pl.struct(*OVERRIDE.to_schema().keys()).alias("override"))
            .collect())


def decide(frame: pl.LazyFrame, rs: Ruleset, ctx: Ctx, lang: str, *, only_matched: bool = False) -> pl.DataFrame:
    """Rule booleans, colour, deciding rule, matched rules, evidence and explanation.

    With `only_matched`, persons whom no rule matched and no override names are dropped once
    the booleans are known: their code is the one of a person with no events (the explanation
    depends only on the matched rules and the override), so it is not built again for each.

    Everything is a column expression over the wide frame (one boolean and one text fragment
    per rule), except the evidence: a list of structs built by `concat_list` is row-wise and
    ten times slower than the long form (one row per person, matched rule and evidence fact)
    grouped by pid."""
    ms = [compile_expr(r.condition, ctx).fill_null(False).alias(f"__m_{i}") for i, r in enumerate(rs.rules)]
    m = [pl.col(f"__m_{i}") for i in range(len(rs.rules))]
    rank = pl.max_horizontal([pl.lit(0, pl.Int16)] + [pl.when(mi).then(pl.lit(rs.rank(r.color), pl.Int16))
                                                      for mi, r in zip(m, rs.rules, strict=True)])
    decider = pl.coalesce([pl.when(mi & (pl.col("__rank") == rs.rank(r.color))).then(pl.lit(r.id))
                           for mi, r in zip(m, rs.rules, strict=True)] + [pl.lit(None, pl.String)])
    applied = pl.col("override").struct.field("applied").fill_null(False)
    w = WORDS["zh" if lang == "zh" else "en"]
    names = set(frame.collect_schema().names())
    cited = list(dict.fromkeys(f for r in rs.rules for f in r.evidence_facts))
    texts = [evidence_text(rs, fact, names, lang).alias(f"__x_{fact}") for fact in cited]
    frags = [pl.when(mi).then(rule_fragment(rs, r, lang)).alias(f"__f_{i}")
             for i, (mi, r) in enumerate(zip(m, rs.rules, strict=True))]
    f = [pl.col(f"__f_{i}") for i in range(len(rs.rules))]
    ids = pl.concat_str([pl.when(mi).then(pl.lit(r.id)) for mi, r in zip(m, rs.rules, strict=True)]
                        + [pl.lit(None, pl.String)], separator="\x1f", ignore_nulls=True)
    base = (frame.with_columns(ms).with_columns(rank.alias("__rank"))
            .with_columns(decider.alias("__decider"),
                          pl.col("__rank").replace_strict(list(range(len(rs.palette))), list(rs.palette),
                                                          return_dtype=pl.String).alias("__rule_color"))
            .with_columns(pl.when(applied).then(pl.col("override").struct.field("color"))
                          .otherwise(pl.col("__rule_color")).alias("color"),
                          pl.when(applied).then(pl.lit("override")).otherwise(pl.col("__decider")).alias("rule"))
            .filter(pl.col("__decider").is_not_null() | pl.col("override").is_not_null() if only_matched else True)
            .with_columns(texts)
            .with_columns(frags)
            .with_columns(
                pl.when(ids == "").then(pl.lit([], pl.List(pl.String))).otherwise(ids.str.split("\x1f"))
                .alias("matched_rules"),
                nonempty(pl.concat_str(f + [pl.lit(None, pl.String)], separator=w["join"], ignore_nulls=True))
                .alias("__all"),
                pl.coalesce([pl.when(pl.col("__decider") == r.id).then(f[i]) for i, r in enumerate(rs.rules)]
                            + [pl.lit(None, pl.String)]).alias("__first"),
                pl.concat_str([pl.when(pl.col("__decider") != r.id).then(f[i]) for i, r in enumerate(rs.rules)]
                              + [pl.lit(None, pl.String)], separator=w["join"], ignore_nulls=True).alias("__others"))
            .collect())
    ev_long = pl.concat([
        base.lazy().filter(m[i] & pl.col(f"__t_{fact}").is_not_null()).select(
            "pid", pl.lit(i, pl.Int32).alias("i"), pl.lit(j, pl.Int32).alias("j"), pl.lit(r.id).alias("rule"),
            pl.lit(rs.facts[fact].feed).alias("feed"), pl.col(f"__t_{fact}").cast(TS).alias("time"),
            evidence_detail(rs, fact, names, lang).alias("detail"))
        for i, r in enumerate(rs.rules) for j, fact in enumerate(r.evidence_facts)]
        + [pl.LazyFrame(schema={"pid": pl.Int32, "i": pl.Int32, "j": pl.Int32, "rule": pl.String, "feed": pl.String,
                                "time": TS, "detail": pl.String})])
    evidence = (ev_long.sort(["pid", "i", "j"]).group_by("pid", maintain_order=True)
                .agg(pl.struct("rule", "feed", "time", "detail").alias("evidence")))
    return (base.lazy().join(evidence, on="pid", how="left")
            .with_columns(pl.col("evidence").fill_null(pl.lit([], pl.List(EVIDENCE))))
            .with_columns(explanation_expr(rs, lang).alias("explanation"))
            .select("pid", "color", "rule", "matched_rules", "evidence", "override", "explanation")
            .collect())


def _null_person(rs: Ruleset, facts: Mapping[str, pl.DataFrame]) -> pl.LazyFrame:
    cols = {"pid": pl.Series([-(2**31)], dtype=pl.Int32)}  # not null: null keys never join
    for _n, df in facts.items():
        for c in df.columns[1:]:
            cols[c] = pl.Series([None], dtype=df.schema[c])
    cols["override"] = pl.Series([None], dtype=OVERRIDE)
    return pl.DataFrame(cols).lazy().with_columns([_fill(rs, n) for n in facts])


def evaluate(ruleset: Ruleset, frames: Mapping[str, pl.LazyFrame | pl.DataFrame] | FeedSource, as_of: dt.date,
             lang: str = "en") -> Evaluation:
    """Every registered person's code as of `as_of` (events before as_of + 1 day 00:00).

    `frames` are the feeds as Polars frames by name, or a source (sources.py) such as the
    warehouse's, which reads only the rows the facts can use."""
    rs = ruleset
    cutoff = cutoff_of(as_of)
    ctx = Ctx(cutoff, rs.palette)
    source = FrameSource(frames, cutoff) if isinstance(frames, Mapping) else frames
    stages = Stages("evaluate")
    # the population (10M rows read and deduplicated) is built on a second thread while the
    # facts are computed
    with ThreadPoolExecutor(1) as pool, source.concurrent() as side:
        pending = pool.submit(lambda: population(side.registrations()))
        facts = compute_facts(rs, source, ctx, lang)
        stages.tick("facts")
        pop = pending.result()
    stages.tick("population (what was left of it)")
    ov = active_overrides(source.rows("overrides"), rs, cutoff)
    stages.tick("overrides")

    default = decide(_null_person(rs, facts), rs, ctx, lang)
    stages.tick("default")
    everyone = default["matched_rules"][0].len() > 0  # a rule that matches people without events
    touched = pop["pid"] if everyone else registered(
        pop, pl.concat([df["pid"] for df in facts.values()] + [ov["pid"]]).unique().sort())
    frame = widen(touched, [*facts.values(), ov]).with_columns([_fill(rs, n) for n in facts])
    stages.tick(f"touched frame ({frame.height} persons)")
    res = decide(frame.lazy(), rs, ctx, lang, only_matched=not everyone).rechunk()  # gathers from many chunks are slow
    stages.tick("decide")
    ov_seen = frame.filter(pl.col("override").is_not_null())  # every registered person with an override

    d = default.row(0, named=True)
    results = res.select([pl.col(c).cast(t) for c, t in CODES_SCHEMA.items() if c != "district_code"])
    counts = dict(results.group_by("color").len().iter_rows())
    counts[d["color"]] = counts.get(d["color"], 0) + pop.height - results.height
    applied = ov_seen.filter(pl.col("override").struct.field("applied")).height
    stages.tick("results")
    return Evaluation(
        population=pop.select(pl.col("pid").cast(pl.Int32), pl.col("district").cast(pl.Int32)),
        results=results, default_color=d["color"], default_rule=d["rule"], default_explanation=d["explanation"],
        persons=pop.height, colors={c: counts.get(c, 0) for c in rs.palette},
        overrides_applied=applied,
        overrides_not_applied=ov_seen.height - applied,
        ruleset=rs, as_of=as_of, cutoff=cutoff)


__all__ = ["Evaluation", "evaluate", "cutoff_of", "feed_rows", "color_label", "CODES_SCHEMA", "FrameSource"]
