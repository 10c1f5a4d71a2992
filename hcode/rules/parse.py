"""The rule language's surface syntax: tokenizer and recursive-descent parser.

`parse_expr`, `parse_fact` and `parse_duration` turn text (grammar in docs/rulesets.md) into
the *unresolved* IR of `hcode.rules.lang` (names are `Name` nodes); a mistake is a
`ParseError` that carries the character offset. The parser builds only the nodes it knows:
names are plain lower-case identifiers (``__import__`` is a parse error), and there is no way
to reach Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import NoReturn

from hcode.rules.lang import (
    AggKind,
    Aggregate,
    And,
    Arith,
    ArithOp,
    CmpOp,
    Companion,
    Compare,
    Cutoff,
    Duration,
    InList,
    IsNull,
    Lit,
    Name,
    Node,
    Not,
    Or,
    RiskArea,
    Unit,
    Within,
)

# ---------------------------------------------------------------- tokenizer


class ParseError(ValueError):
    """A syntax error; `pos` is the character offset in the expression text."""

    def __init__(self, msg: str, pos: int, text: str) -> None:
        super().__init__(msg)
        self.msg, self.pos, self.text = msg, pos, text

    @property
    def line_offset(self) -> int:
        return self.text.count("\n", 0, self.pos)


KEYWORDS = {
    "and", "or", "not", "is", "null", "in", "within", "true", "false", "cutoff",
    "latest", "earliest", "count", "exists", "where", "current", "per",
}
MAX_DURATION = {Unit.DAYS: 36_500, Unit.HOURS: 36_500 * 24, Unit.MINUTES: 36_500 * 24 * 60}  # a hundred years
UNITS = {"day": Unit.DAYS, "days": Unit.DAYS, "hour": Unit.HOURS, "hours": Unit.HOURS,
         "minute": Unit.MINUTES, "minutes": Unit.MINUTES}
FUNCTIONS = {"risk_area", "risk_place", "companion"}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<str>'(?:[^']|'')*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|[=<>+\-(),.])
""", re.VERBOSE)


class TokKind(StrEnum):
    """A token's kind; the values are the group names of `_TOKEN`."""

    WS = "ws"
    NUM = "num"
    STR = "str"
    NAME = "name"
    KW = "kw"
    OP = "op"
    END = "end"


@dataclass(frozen=True)
class Tok:
    kind: TokKind
    text: str
    pos: int


def tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ParseError(f"unexpected character {text[pos]!r}", pos, text)
        kind, val = TokKind(m.lastgroup or ""), m.group()  # every alternative is a named group
        if kind is TokKind.NAME:
            if val.startswith("_") or val != val.lower():
                raise ParseError(f"invalid name {val!r} (names are lower-case and do not start with '_')",
                                 pos, text)
            kind = TokKind.KW if val in KEYWORDS else TokKind.NAME
        if kind is not TokKind.WS:
            toks.append(Tok(kind, "!=" if val == "<>" else val, pos))
        pos = m.end()
    toks.append(Tok(TokKind.END, "", len(text)))
    return toks


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def fail(self, msg: str, tok: Tok | None = None) -> NoReturn:
        t = tok or self.tok
        raise ParseError(f"{msg}, found {t.text or 'end of expression'!r}", t.pos, self.text)

    def accept(self, *texts: str) -> Tok | None:
        t = self.tok
        if t.kind in (TokKind.KW, TokKind.OP) and t.text in texts:
            self.i += 1
            return t
        return None

    def expect(self, text: str) -> Tok:
        return self.accept(text) or self.fail(f"expected {text!r}")

    def ident(self, what: str) -> str:
        t = self.tok
        if t.kind is not TokKind.NAME:
            self.fail(f"expected {what}")
        self.i += 1
        return t.text

    def done(self) -> None:
        if self.tok.kind is not TokKind.END:
            self.fail("unexpected text after the expression")

    # fact := (latest|earliest) feed '.' column [current per col] [where expr]
    #       | (count|exists) feed [current per col] [where expr]
    def fact(self) -> Aggregate:
        t = self.accept(*AggKind)
        if not t:
            self.fail("a fact starts with latest, earliest, count or exists")
        kind = AggKind(t.text)
        feed = self.ident("a feed name")
        column = None
        if kind in (AggKind.LATEST, AggKind.EARLIEST):
            self.expect(".")
            column = self.ident("a column name")
        per = None
        if self.accept("current"):
            self.expect("per")
            per = self.ident("a column name")
        where = self.expr() if self.accept("where") else None
        return Aggregate(kind, feed, column, per, where)

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
        if t := self.accept(*CmpOp):
            return Compare(CmpOp(t.text), left, self.sum())
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
        while t := self.accept(*ArithOp):
            node = Arith(ArithOp(t.text), node, self.atom())
        return node

    def duration(self) -> Duration:
        t = self.tok
        if t.kind is not TokKind.NUM:
            self.fail("expected a duration such as '14 days'")
        self.i += 1
        unit = self.tok
        if unit.text not in UNITS:
            self.fail("expected a unit (days, hours, minutes)")
        amount, most = float(t.text), MAX_DURATION[UNITS[unit.text]]
        if not 0 <= amount <= most:
            self.fail(f"a duration of at most {most:,} {UNITS[unit.text]} (a hundred years)", t)
        self.i += 1
        return Duration(amount, UNITS[unit.text])

    def literal(self) -> Lit:
        t = self.tok
        if t.kind is TokKind.STR:
            self.i += 1
            return Lit(t.text[1:-1].replace("''", "'"))
        if t.kind is TokKind.NUM:
            self.i += 1
            return Lit(float(t.text) if "." in t.text else int(t.text))
        if self.accept("true"):
            return Lit(True)
        if self.accept("false"):
            return Lit(False)
        self.fail("expected a literal value")

    def atom(self) -> Node:
        t = self.tok
        if t.kind is TokKind.NUM:
            if self.toks[self.i + 1].text in UNITS:
                return self.duration()
            return self.literal()
        if t.kind is TokKind.STR or t.text in ("true", "false"):
            return self.literal()
        if self.accept("cutoff"):
            return Cutoff()
        if self.accept("("):
            e = self.expr()
            self.expect(")")
            return e
        if t.kind is TokKind.NAME:
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
        levels: list[str] = []
        while self.accept(","):
            lit = self.literal()
            if not isinstance(lit.value, str):
                self.fail(f"{t.text} levels are quoted words")
            levels.append(lit.value)
        self.expect(")")
        if not levels:
            self.fail(f"{t.text} needs at least one level")
        return RiskArea(region, time, tuple(levels), t.text)

    def signed_duration(self) -> Duration:
        neg = bool(self.accept("-"))
        if not neg:
            self.accept("+")
        d = self.duration()
        return Duration(-d.amount, d.unit) if neg else d

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
