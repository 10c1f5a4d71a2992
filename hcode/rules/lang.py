"""The rule language's typed, immutable IR: operators and kinds as enums, one frozen dataclass
per node, and the one traversal (`children`, `walk`) that every user of the tree goes through.

Rule files hold two kinds of expressions (grammar in docs/rulesets.md), both parsed by
`hcode.rules.parse` into these nodes:

* a **fact** — a per-person aggregation of one feed's rows before the cut-off (`Aggregate`):
  ``latest contacts.identified_at where contact_level = 'close'``;
* a **condition** — a boolean over columns (inside a fact's ``where``) or facts (in a rule).

The node set is closed. Parsing gives *unresolved* trees (`Name`); `hcode.rules.check`
resolves each name to a `Column`, a `FactRef` or refuses it, and type-checks the result. The
engines (`hcode.engine.compile` for Polars, `hcode.engine.reference` in plain Python,
`hcode.engine.pushdown` for SQL) only see resolved trees.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

# ---------------------------------------------------------------- operators and kinds


class CmpOp(StrEnum):
    """A comparison operator, spelled as in the source (``<>`` is read as ``!=``)."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


class ArithOp(StrEnum):
    ADD = "+"
    SUB = "-"


class Unit(StrEnum):
    """A duration unit; the value is the `datetime.timedelta` keyword."""

    DAYS = "days"
    HOURS = "hours"
    MINUTES = "minutes"


class AggKind(StrEnum):
    """What a fact computes from its rows: a timestamp (latest, earliest), a count, a flag."""

    LATEST = "latest"
    EARLIEST = "earliest"
    COUNT = "count"
    EXISTS = "exists"


def _coerce(node: object, name: str, enum: type[StrEnum]) -> None:
    """Store a field given as a plain string (tests, hand-built trees) as its enum member."""
    value = getattr(node, name)
    if not isinstance(value, enum):
        object.__setattr__(node, name, enum(value))


# ---------------------------------------------------------------- IR nodes


class Node:
    """Base of every IR node. `src()` prints the canonical source text (used for hashing and diffs)."""

    def src(self) -> str:  # pragma: no cover - every node overrides
        raise NotImplementedError


@dataclass(frozen=True)
class Lit(Node):
    value: str | float | int | bool

    def src(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, str):
            return "'" + self.value.replace("'", "''") + "'"
        return repr(self.value)


@dataclass(frozen=True)
class Duration(Node):
    amount: float
    unit: Unit

    def __post_init__(self) -> None:
        _coerce(self, "unit", Unit)

    @property
    def delta(self) -> dt.timedelta:
        return dt.timedelta(**{self.unit.value: self.amount})

    def src(self) -> str:
        n = int(self.amount) if float(self.amount).is_integer() else self.amount
        return f"{n} {self.unit}"

    @property
    def micros(self) -> int:
        return int(self.delta / dt.timedelta(microseconds=1))


@dataclass(frozen=True)
class Name(Node):
    """An identifier before resolution (a column of the fact's feed, or a fact)."""

    name: str

    def src(self) -> str:
        return self.name


@dataclass(frozen=True)
class Column(Node):
    feed: str
    name: str

    def src(self) -> str:
        return self.name


@dataclass(frozen=True)
class FactRef(Node):
    name: str

    def src(self) -> str:
        return self.name


@dataclass(frozen=True)
class Cutoff(Node):
    def src(self) -> str:
        return "cutoff"


@dataclass(frozen=True)
class Compare(Node):
    op: CmpOp
    left: Node
    right: Node

    def __post_init__(self) -> None:
        _coerce(self, "op", CmpOp)

    def src(self) -> str:
        return f"{_p(self.left)} {self.op} {_p(self.right)}"


@dataclass(frozen=True)
class Arith(Node):
    op: ArithOp
    left: Node
    right: Node

    def __post_init__(self) -> None:
        _coerce(self, "op", ArithOp)

    def src(self) -> str:
        return f"{_p(self.left)} {self.op} {_p(self.right)}"


@dataclass(frozen=True)
class And(Node):
    items: tuple[Node, ...]

    def src(self) -> str:
        return " and ".join(_p(i) for i in self.items)


@dataclass(frozen=True)
class Or(Node):
    items: tuple[Node, ...]

    def src(self) -> str:
        return " or ".join(_p(i) for i in self.items)


@dataclass(frozen=True)
class Not(Node):
    item: Node

    def src(self) -> str:
        return f"not {_p(self.item)}"


@dataclass(frozen=True)
class IsNull(Node):
    item: Node
    negated: bool = False

    def src(self) -> str:
        return f"{_p(self.item)} is {'not ' if self.negated else ''}null"


@dataclass(frozen=True)
class InList(Node):
    item: Node
    values: tuple[Lit, ...]
    negated: bool = False

    def src(self) -> str:
        vals = ", ".join(v.src() for v in self.values)
        return f"{_p(self.item)} {'not ' if self.negated else ''}in ({vals})"


@dataclass(frozen=True)
class IsTrue(Node):
    """True when the condition is true; false when it is false *or unknown* (null).

    Not in the surface syntax: rules use it for their release, so that a release whose facts
    are missing never holds (a person stays matched rather than silently released)."""

    item: Node

    def src(self) -> str:
        return f"({self.item.src()}) is true"


@dataclass(frozen=True)
class Within(Node):
    """``x within N days``: cutoff - N <= x < cutoff."""

    item: Node
    span: Duration

    def src(self) -> str:
        return f"{_p(self.item)} within {self.span.src()}"


@dataclass(frozen=True)
class RiskArea(Node):
    """``risk_area(region, time, 'high', ...)``: a `risk_areas` row of one of these levels for the
    region is valid at the time (valid_from inclusive, valid_to exclusive).

    ``risk_place(place_code, time, ...)`` is the same join against the `risk_places` listing
    (`listing` names the function; `hcode.feeds.LISTINGS` maps it to the feed and its key)."""

    region: Node
    time: Node
    levels: tuple[str, ...]
    listing: str = "risk_area"

    def src(self) -> str:
        lv = ", ".join(Lit(v).src() for v in self.levels)
        return f"{self.listing}({self.region.src()}, {self.time.src()}, {lv})"


@dataclass(frozen=True)
class Companion(Node):
    """``companion(30 minutes, cases.reported_at [where ...], -4 days, 1 day)``, a term of a
    `place_scans` fact's where: the row's scan shares its place with a scan by **another**
    person, at most `window` apart (either order), and that person has a row of `feed`
    (before the cut-off, satisfying `where`) whose `column` + `lo` <= the other scan's time <
    `column` + `hi`. One hop only: the other person's scans are all their scans.

    Its sub-expression is the `where` over the other person's rows; the durations are constants."""

    window: Duration
    feed: str
    column: str
    lo: Duration
    hi: Duration
    where: Node | None = None

    def src(self) -> str:
        cond = f" where {self.where.src()}" if self.where is not None else ""
        return (f"companion({self.window.src()}, {self.feed}.{self.column}{cond}, "
                f"{self.lo.src()}, {self.hi.src()})")


@dataclass(frozen=True)
class Aggregate(Node):
    """A fact: `kind` of `feed`'s rows before the cut-off that satisfy `where`.

    latest/earliest take a timestamp `column` (max/min); count counts distinct rows; exists is
    a boolean. `per` keeps only each person's current row per value of that column (the latest
    by event time; at the same instant the most severe colour).
    """

    kind: AggKind
    feed: str
    column: str | None = None
    per: str | None = None
    where: Node | None = None

    def __post_init__(self) -> None:
        _coerce(self, "kind", AggKind)

    def src(self) -> str:
        s = f"{self.kind} {self.feed}" + (f".{self.column}" if self.column else "")
        if self.per:
            s += f" current per {self.per}"
        if self.where is not None:
            s += f" where {self.where.src()}"
        return s


def _p(n: Node) -> str:
    """Source of a child, parenthesised when it is a boolean combination."""
    return f"({n.src()})" if isinstance(n, And | Or) else n.src()


def children(n: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of a node: the one place that knows the shape of the tree.

    Every walk over the IR (names used, facts read, feeds read, risk areas, rules diff) goes
    through `walk`, which goes through this. A `Within`'s span and an `InList`'s values are
    constants, not sub-expressions."""
    match n:
        case Compare() | Arith():
            return (n.left, n.right)
        case And() | Or():
            return n.items
        case Not() | IsNull() | InList() | Within() | IsTrue():
            return (n.item,)
        case RiskArea():
            return (n.region, n.time)
        case Companion():
            return (n.where,) if n.where is not None else ()
        case Aggregate():
            return (n.where,) if n.where is not None else ()
    return ()


def walk(n: Node) -> Iterator[Node]:
    """`n` and every node below it, depth first, parents before children."""
    yield n
    for c in children(n):
        yield from walk(c)
