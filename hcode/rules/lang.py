"""The rule expression language: tokenizer, recursive-descent parser and typed, immutable IR.

Rule files hold two kinds of expressions (grammar in docs/rulesets.md):

* a **fact** — a per-person aggregation of one feed's rows before the cut-off:
  ``latest contacts.identified_at where contact_level = 'close'``;
* a **condition** — a boolean over columns (inside a fact's ``where``) or facts (in a rule).

The operator set is closed: the parser knows every node it can build, names are plain
lower-case identifiers (``__import__`` is a parse error), and there is no way to reach
Python. Parsing gives *unresolved* trees (`Name`); `hcode.rules.ruleset` resolves each name to a
`Column`, a `FactRef` or refuses it, and type-checks the result. Both engines
(`hcode.engine.compile` for Polars, `hcode.engine.reference` in plain Python) only see resolved trees.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

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
    unit: str  # 'days' | 'hours' | 'minutes'

    @property
    def delta(self) -> dt.timedelta:
        return dt.timedelta(**{self.unit: self.amount})

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
    op: str  # = != < <= > >=
    left: Node
    right: Node

    def src(self) -> str:
        return f"{_p(self.left)} {self.op} {_p(self.right)}"


@dataclass(frozen=True)
class Arith(Node):
    op: str  # + -
    left: Node
    right: Node

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
    `column` + `hi`. One hop only: the other person's scans are all their scans."""

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


AGG_KINDS = ("latest", "earliest", "count", "exists")


@dataclass(frozen=True)
class Aggregate(Node):
    """A fact: `kind` of `feed`'s rows before the cut-off that satisfy `where`.

    latest/earliest take a timestamp `column` (max/min); count counts distinct rows; exists is
    a boolean. `per` keeps only each person's current row per value of that column (the latest
    by event time; at the same instant the most severe colour).
    """

    kind: str
    feed: str
    column: str | None = None
    per: str | None = None
    where: Node | None = None

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
    """The direct sub-expressions of a node (for walks: names used, facts read, evidence)."""
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


def walk(n: Node):
    yield n
    for c in children(n):
        yield from walk(c)


# ---------------------------------------------------------------- tokenizer


class ParseError(ValueError):
    """A syntax error; `pos` is the character offset in the expression text."""

    def __init__(self, msg: str, pos: int, text: str):
        super().__init__(msg)
        self.msg, self.pos, self.text = msg, pos, text

    @property
    def line_offset(self) -> int:
        return self.text.count("\n", 0, self.pos)


KEYWORDS = {
    "and", "or", "not", "is", "null", "in", "within", "true", "false", "cutoff",
    "latest", "earliest", "count", "exists", "where", "current", "per",
}
UNITS = {"day": "days", "days": "days", "hour": "hours", "hours": "hours",
         "minute": "minutes", "minutes": "minutes"}
FUNCTIONS = {"risk_area", "risk_place", "companion"}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<str>'(?:[^']|'')*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|[=<>+\-(),.])
""", re.VERBOSE)


@dataclass(frozen=True)
class Tok:
    kind: str  # num str name kw op end
    text: str
    pos: int


def tokenize(text: str) -> list[Tok]:
    toks, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ParseError(f"unexpected character {text[pos]!r}", pos, text)
        kind, val = m.lastgroup, m.group()
        if kind == "name":
            if val.startswith("_") or val != val.lower():
                raise ParseError(f"invalid name {val!r} (names are lower-case and do not start with '_')",
                                 pos, text)
            kind = "kw" if val in KEYWORDS else "name"
        if kind != "ws":
            toks.append(Tok(kind, "!=" if val == "<>" else val, pos))
        pos = m.end()
    toks.append(Tok("end", "", len(text)))
    return toks


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def fail(self, msg: str, tok: Tok | None = None):
        t = tok or self.tok
        raise ParseError(f"{msg}, found {t.text or 'end of expression'!r}", t.pos, self.text)

    def accept(self, *texts: str) -> Tok | None:
        t = self.tok
        if t.kind in ("kw", "op") and t.text in texts:
            self.i += 1
            return t
        return None

    def expect(self, text: str) -> Tok:
        return self.accept(text) or self.fail(f"expected {text!r}")

    def ident(self, what: str) -> str:
        t = self.tok
        if t.kind != "name":
            self.fail(f"expected {what}")
        self.i += 1
        return t.text

    def done(self) -> None:
        if self.tok.kind != "end":
            self.fail("unexpected text after the expression")

    # fact := (latest|earliest) feed '.' column [current per col] [where expr]
    #       | (count|exists) feed [current per col] [where expr]
    def fact(self) -> Aggregate:
        t = self.accept(*AGG_KINDS)
        if not t:
            self.fail("a fact starts with latest, earliest, count or exists")
        feed = self.ident("a feed name")
        column = None
        if t.text in ("latest", "earliest"):
            self.expect(".")
            column = self.ident("a column name")
        per = None
        if self.accept("current"):
            self.expect("per")
            per = self.ident("a column name")
        where = self.expr() if self.accept("where") else None
        return Aggregate(t.text, feed, column, per, where)

    def expr(self) -> Node:
        items = [self.conj()]
        while self.accept("or"):
            items.append(self.conj())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conj(self) -> Node:
        items = [self.neg()]
        while self.accept("and"):
            items.append(self.neg())
        return items[0] if len(items) == 1 else And(tuple(items))

    def neg(self) -> Node:
        if self.accept("not"):
            return Not(self.neg())
        return self.pred()

    def pred(self) -> Node:
        left = self.sum()
        if t := self.accept("=", "!=", "<", "<=", ">", ">="):
            return Compare(t.text, left, self.sum())
        if self.accept("is"):
            neg = bool(self.accept("not"))
            self.expect("null")
            return IsNull(left, neg)
        if self.accept("within"):
            return Within(left, self.duration())
        neg = False
        if self.tok.text == "not" and self.toks[self.i + 1].text == "in":
            self.i += 1
            neg = True
        if self.accept("in"):
            self.expect("(")
            vals = [self.literal()]
            while self.accept(","):
                vals.append(self.literal())
            self.expect(")")
            return InList(left, tuple(vals), neg)
        return left

    def sum(self) -> Node:
        node = self.atom()
        while t := self.accept("+", "-"):
            node = Arith(t.text, node, self.atom())
        return node

    def signed_duration(self) -> Duration:
        neg = bool(self.accept("-"))
        if not neg:
            self.accept("+")
        d = self.duration()
        return Duration(-d.amount, d.unit) if neg else d

    def duration(self) -> Duration:
        t = self.tok
        if t.kind != "num":
            self.fail("expected a duration such as '14 days'")
        self.i += 1
        unit = self.tok
        if unit.text not in UNITS:
            self.fail("expected a unit (days, hours, minutes)")
        self.i += 1
        return Duration(float(t.text), UNITS[unit.text])

    def literal(self) -> Lit:
        t = self.tok
        if t.kind == "str":
            self.i += 1
            return Lit(t.text[1:-1].replace("''", "'"))
        if t.kind == "num":
            self.i += 1
            return Lit(float(t.text) if "." in t.text else int(t.text))
        if self.accept("true"):
            return Lit(True)
        if self.accept("false"):
            return Lit(False)
        self.fail("expected a literal value")

    def atom(self) -> Node:
        t = self.tok
        if t.kind == "num":
            if self.toks[self.i + 1].text in UNITS:
                return self.duration()
            return self.literal()
        if t.kind == "str" or t.text in ("true", "false"):
            return self.literal()
        if self.accept("cutoff"):
            return Cutoff()
        if self.accept("("):
            e = self.expr()
            self.expect(")")
            return e
        if t.kind == "name":
            self.i += 1
            if self.accept("("):
                return self.call(t)
            return Name(t.text)
        self.fail("expected a value, a name or '('")

    def call(self, t: Tok) -> Node:
        if t.text not in FUNCTIONS:
            raise ParseError(f"unknown function {t.text!r} (functions: {', '.join(sorted(FUNCTIONS))})",
                             t.pos, self.text)
        if t.text == "companion":
            return self.companion()
        region = self.sum()
        self.expect(",")
        time = self.sum()
        levels = []
        while self.accept(","):
            lit = self.literal()
            if not isinstance(lit.value, str):
                self.fail("risk_area levels are quoted words")
            levels.append(lit.value)
        self.expect(")")
        if not levels:
            self.fail(f"{t.text} needs at least one level")
        return RiskArea(region, time, tuple(levels), t.text)

    # companion '(' duration ',' feed '.' column [where expr] ',' [-]duration ',' [-]duration ')'
    def companion(self) -> Companion:
        window = self.duration()
        self.expect(",")
        feed = self.ident("a feed name")
        self.expect(".")
        column = self.ident("a column name")
        where = self.expr() if self.accept("where") else None
        self.expect(",")
        lo = self.signed_duration()
        self.expect(",")
        hi = self.signed_duration()
        self.expect(")")
        return Companion(window, feed, column, lo, hi, where)


def parse_expr(text: str) -> Node:
    p = _Parser(text)
    e = p.expr()
    p.done()
    return e


def parse_fact(text: str) -> Aggregate:
    p = _Parser(text)
    f = p.fact()
    p.done()
    return f


def parse_duration(text: str) -> Duration:
    p = _Parser(text)
    d = p.duration()
    p.done()
    return d
