"""A synthetic night of department exports: `hcode sample` and the demo's data.

One file per feed with the contract's raw export columns (all text, as a department's
export would carry them), for a random population at the contract's rates
(`sample_random`), plus planted persons whose codes are known in advance for every rule
of every shipped ruleset (`sample_scenarios`, `sample_planted`), plus a few deliberately bad
rows and some harmless messiness (`sample_defects`). `planted.json` beside the files lists
the planted persons with their expected codes, and every bad row with its place.

Deterministic: the same (residents, seed, as_of, scans_per_day) gives byte-identical files.
`generate` makes the whole night in memory (fine up to a few million residents).
`generate_and_write`, what `hcode sample` runs, is the one for large nights: it generates
and writes `BLOCK` residents at a time, feed by feed, so memory is bounded by a block, not
by the population (benchmarks/RESULTS.md, "Sample"). Each feed has its own random
stream per block, block 0's being the night's own, so a night of at most `BLOCK` residents
is byte for byte what `write(generate())` writes. In a larger night, blocks >= 1 have their
own streams, ids (`Context.ids`), messiness and random bad rows at the same rates; planted
persons, guaranteed bad rows and the night-wide tables (risk areas, place registry, risk
places) are in block 0 only, and the manifest's row counts and bad rows' lines cover every
block. The files then depend on the block size too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from hcode.errors import UsageError
from hcode.feeds import FEEDS, PLACE_FEEDS, Kind
from hcode.sample import DEFAULT_AS_OF, DEFAULT_SCANS, defects
from hcode.sample.defects import BadRow
from hcode.sample.places import GENERATORS as PLACE_GENERATORS
from hcode.sample.places import place_ids, place_persons, scene
from hcode.sample.planted import RULESETS, manifest_persons, planted_ids, planted_rows
from hcode.sample.random_events import GENERATORS, Context
from hcode.sample.writers import FeedWriter

FORMATS = ("csv", "parquet")
ENCODINGS = ("utf-8", "utf-8-sig", "gbk")
MANIFEST = "planted.json"
BLOCK = 1_000_000  # residents generated and written at a time by `generate_and_write`


@dataclass(frozen=True)
class SampleNight:
    """A generated night: one frame of raw export text per feed, the planted persons, the bad rows."""

    residents: int
    seed: int
    as_of: dt.date
    feeds: Mapping[str, pl.DataFrame]
    persons: tuple[dict[str, Any], ...]
    bad_rows: tuple[BadRow, ...]
    messy_values: Mapping[str, int]
    places: bool = True  # whether the night has place feeds (and the place persons)

    def manifest(self, fmt: str = "csv", encodings: Mapping[str, str] | None = None) -> dict[str, Any]:
        return _manifest(self.residents, self.seed, self.as_of, fmt, encodings, self.persons,
                         self.bad_rows, {f: df.height for f, df in self.feeds.items()}, self.messy_values,
                         self.places)


@dataclass(frozen=True)
class WrittenFile:
    feed: str
    path: Path
    rows: int


@dataclass(frozen=True)
class WrittenNight:
    """What `generate_and_write` wrote: one file per feed and the manifest."""

    out: Path
    residents: int
    seed: int
    as_of: dt.date
    fmt: str
    files: tuple[WrittenFile, ...]
    manifest: Path

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def as_json(self) -> dict[str, Any]:
        """What `hcode sample --json` prints."""
        return {"out": str(self.out), "residents": self.residents, "seed": self.seed,
                "as_of": self.as_of.isoformat(), "format": self.fmt, "manifest": str(self.manifest),
                "files": [{"feed": f.feed, "file": str(f.path), "rows": f.rows} for f in self.files]}


def _context(residents: int, seed: int, as_of: dt.date, scans_per_day: float = DEFAULT_SCANS,
             block: int = 0, first: int = 0, population: int = -1) -> Context:
    if residents < 0:
        raise UsageError("must be 0 or more", option="residents")
    if scans_per_day < 0:
        raise UsageError("must be 0 or more", option="scans_per_day")
    return Context(residents, seed, as_of, tuple(planted_ids() + (place_ids() if scans_per_day else [])),
                   scans_per_day, block, first, population)


def block_sizes(residents: int, block: int = BLOCK) -> list[int]:
    """The residents of each block of a night (at least one block, maybe of 0 residents)."""
    if block < 1:
        raise UsageError("must be 1 or more", option="block")
    return [min(block, residents - start) for start in range(0, residents, block)] or [0]


def per_person(feed: str) -> bool:
    """Whether a feed has a row per event of a person (generated block by block); the others
    (risk areas, places, risk places) are night-wide tables, generated once in block 0."""
    return any(c.kind is Kind.ID_NUMBER for c in FEEDS[feed].columns)


def night_feeds(ctx: Context) -> list[str]:
    """The feeds a night has: every feed, the place feeds only when residents scan."""
    return [f for f in FEEDS if ctx.scans_per_day or f not in PLACE_FEEDS]


def build_feed(ctx: Context, feed: str) -> tuple[pl.DataFrame, list[BadRow], int]:
    """One feed's frame (random rows, planted rows and bad rows), its bad rows, its messy values.

    For the block of `ctx`: planted rows and guaranteed bad rows only in block 0; bad rows'
    `row` counts from the block's first row.
    """
    stream = list(FEEDS).index(feed) + 1
    body = (GENERATORS | PLACE_GENERATORS)[feed](ctx, ctx.rng(stream, 0))
    body, messy = defects.messy(feed, body, ctx.rng(stream, 1))
    planted = planted_rows(feed, ctx.cutoff, places=bool(ctx.scans_per_day))
    if ctx.block:
        planted = planted.clear()
    bad_df, bad_meta = defects.bad_rows(ctx, feed, body.height, ctx.rng(stream, 2), guaranteed=not ctx.block)
    frame, final = defects.insert(body, pl.concat([planted, bad_df]), ctx.rng(stream, 3))
    bad = [BadRow(feed, int(final[planted.height + k]), col, kind, reason, value)
           for k, (col, kind, reason, value) in enumerate(bad_meta)]
    return frame, bad, messy


def generate(residents: int = 10_000, seed: int = 1, as_of: dt.date = DEFAULT_AS_OF,
             scans_per_day: float = DEFAULT_SCANS) -> SampleNight:
    """The whole night in memory (fine up to a few million residents). For large nights use
    `generate_and_write`, which writes the same bytes as `write(generate(...))` for nights of
    at most `BLOCK` residents."""
    ctx = _context(residents, seed, as_of, scans_per_day)
    frames, bad, messy = {}, [], {}
    for feed in night_feeds(ctx):
        frames[feed], feed_bad, messy[feed] = build_feed(ctx, feed)
        bad.extend(feed_bad)
    return SampleNight(residents, seed, as_of, frames, tuple(manifest_persons()), tuple(bad), messy,
                       bool(scans_per_day))


def _check(fmt: str, encodings: Mapping[str, str] | None) -> dict[str, str]:
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}: use csv or parquet")
    encodings = dict(encodings or {})
    for feed, enc in encodings.items():
        if feed not in FEEDS:
            raise UsageError(f": unknown feed {feed!r}", option="encodings")
        if enc not in ENCODINGS:
            raise UsageError(f": {enc!r} is not one of {', '.join(ENCODINGS)}", option="encodings")
        if fmt != "csv":
            raise UsageError("applies to CSV files only", option="encodings")
    return {f: e for f, e in encodings.items() if e != "utf-8"}


def write_feed(frame: pl.DataFrame, out_dir: Path, feed: str, fmt: str, encoding: str = "utf-8") -> Path:
    """Write one feed's frame as `<feed>.csv` (in `encoding`) or `<feed>.parquet`."""
    path = out_dir / f"{feed}.{fmt}"
    with FeedWriter(path, fmt, encoding, one_block=True) as w:
        w.write(frame)
    return path


def write(night: SampleNight, out_dir: str | Path, fmt: str = "csv",
          encodings: Mapping[str, str] | None = None) -> list[Path]:
    """Write a generated night: one file per feed plus `planted.json`; returns the paths."""
    enc = _check(fmt, encodings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_feed(df, out, feed, fmt, enc.get(feed, "utf-8")) for feed, df in night.feeds.items()]
    paths.append(_write_manifest(out, night.manifest(fmt, enc)))
    return paths


def generate_and_write(out_dir: str | Path, residents: int = 10_000, seed: int = 1,
                       as_of: dt.date = DEFAULT_AS_OF, fmt: str = "csv",
                       encodings: Mapping[str, str] | None = None,
                       progress: Callable[[str], None] | None = None,
                       scans_per_day: float = DEFAULT_SCANS, *, block: int = BLOCK) -> WrittenNight:
    """Generate and write `block` residents at a time, feed by feed, each feed's file appended
    block by block: memory is bounded by a block, not by the night. For a night of at most
    `block` residents, the same bytes as `write(generate(...))`. `progress(feed)` is called
    after each feed of each block (`len(night_feeds) * len(block_sizes)` calls)."""
    enc = _check(fmt, encodings)
    sizes = block_sizes(residents, block)
    feeds = night_feeds(_context(residents, seed, as_of, scans_per_day))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writers = {f: FeedWriter(out / f"{f}.{fmt}", fmt, enc.get(f, "utf-8"), one_block=len(sizes) == 1)
               for f in feeds}
    bad: list[BadRow] = []
    rows, messy = dict.fromkeys(feeds, 0), dict.fromkeys(feeds, 0)
    try:
        for b, n in enumerate(sizes):
            ctx = _context(n, seed, as_of, scans_per_day, b, b * block, residents)
            for feed in feeds:
                if b == 0 or per_person(feed):
                    frame, feed_bad, feed_messy = build_feed(ctx, feed)
                    bad.extend(replace(x, row=x.row + rows[feed]) for x in feed_bad)
                    rows[feed] += frame.height
                    messy[feed] += feed_messy
                    writers[feed].write(frame)
                    del frame
                if progress is not None:
                    progress(feed)
    finally:
        for w in writers.values():
            w.close()
    bad.sort(key=lambda x: feeds.index(x.feed))  # stable: by feed, then block
    files = tuple(WrittenFile(f, w.path, rows[f]) for f, w in writers.items())
    manifest = _manifest(residents, seed, as_of, fmt, enc, tuple(manifest_persons()), tuple(bad), rows, messy,
                         bool(scans_per_day))
    if len(sizes) > 1:
        manifest["block"] = block
    return WrittenNight(out, residents, seed, as_of, fmt, files, _write_manifest(out, manifest))


def _manifest(residents: int, seed: int, as_of: dt.date, fmt: str, encodings: Mapping[str, str] | None,
              persons: tuple[dict[str, Any], ...], bad: tuple[BadRow, ...], rows: Mapping[str, int],
              messy: Mapping[str, int], places: bool = False) -> dict[str, Any]:
    cutoff = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    return {
        "generator": "hcode.sample",
        "residents": residents,
        "seed": seed,
        "as_of": as_of.isoformat(),
        "cutoff": cutoff.isoformat(sep=" "),
        "loaded_at": (cutoff + dt.timedelta(hours=6)).isoformat(sep=" "),
        "format": fmt,
        "encodings": {f: e for f, e in (encodings or {}).items() if e != "utf-8"},
        "rows": dict(rows),
        "messy_values": dict(messy),
        "expected_note": "expected[ruleset] = {color, rules: every matching rule id in ruleset order, rule: the "
                         "deciding rule ('override' when an override decides, null when none matched)}; "
                         "color 'absent' = not registered before the cut-off, so no code",
        "rulesets": {rs: list(order) for rs, order in RULESETS.items()},
        "persons": list(persons),
        "bad_rows": [b.as_json(fmt) for b in bad],
    } | ({"place_persons": place_persons(), "scene": scene()} if places else {})


def _write_manifest(out: Path, manifest: dict[str, Any]) -> Path:
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path
