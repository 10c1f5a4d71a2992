"""YAML with line numbers: ruleset errors must name the line a rule author has to fix.

`load_located` composes the document (`yaml.compose`, safe tags only) and builds plain dicts
and lists that remember where each value sits. Scalars are constructed by PyYAML's safe
constructor (so dates are dates), and their raw text is kept too (a version such as
``2022.06`` must stay text, not become a float).

Bounded: a document may nest at most `MAX_DEPTH` levels and build at most `MAX_NODES`
values, and an alias (`*name`) may stand only for a scalar: an "alias bomb" (aliases of
lists of aliases...) would otherwise expand to billions of values, and deep nesting would
exhaust the stack. Each limit fails fast with the line where it was crossed.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 50
MAX_NODES = 100_000
MAX_TEXT = 1_000_000  # characters of one ruleset file


def _line(node: Node) -> int:
    line = node.start_mark.line + 1
    if isinstance(node, ScalarNode) and node.style in ("|", ">"):
        line += 1  # block scalars start on the line after their indicator
    return line


class Located:
    class Map(dict[Any, Any]):
        """A YAML mapping (values are any YAML data) that knows the line of each value."""

        line: int = 1

        def __init__(self, line: int):
            super().__init__()
            self.line = line
            self._lines: dict[Any, int] = {}
            self._raw: dict[Any, str] = {}

        def line_of(self, key: Any) -> int:
            return self._lines.get(key, self.line)

        def raw(self, key: Any) -> str:
            return self._raw.get(key, str(self.get(key)))

    class List(list[Any]):
        def __init__(self, line: int):
            super().__init__()
            self.line = line
            self._lines: list[int] = []

        def line_at(self, i: int) -> int:
            return self._lines[i] if i < len(self._lines) else self.line


class _Budget:
    """What one document may still build: nodes left, and the collections already built
    (a collection met twice is an alias of it)."""

    def __init__(self) -> None:
        self.nodes = MAX_NODES
        self.seen: set[int] = set()

    def take(self, node: Node, depth: int) -> None:
        self.nodes -= 1
        if self.nodes < 0:
            raise ValueError(f"{_line(node)}: the document has more than {MAX_NODES:,} values: refused")
        if depth > MAX_DEPTH:
            raise ValueError(f"{_line(node)}: nested more than {MAX_DEPTH} levels deep: refused")
        if isinstance(node, MappingNode | SequenceNode):
            if id(node) in self.seen:
                raise ValueError(f"{_line(node)}: an alias (*name) of a list or mapping: refused "
                                 "(aliases may only repeat a single value)")
            self.seen.add(id(node))


def _build(node: Node, con: SafeConstructor, budget: _Budget | None = None, depth: int = 0) -> Any:
    budget = budget or _Budget()
    budget.take(node, depth)
    if isinstance(node, MappingNode):
        out = Located.Map(_line(node))
        for k, v in node.value:
            if not isinstance(k, ScalarNode):
                raise ValueError(f"{_line(k)}: a key must be a plain value, not a list or mapping")
            key = con.construct_object(k, deep=True)
            if key in out:
                raise ValueError(f"{k.start_mark.line + 1}: key {key!r} appears twice")
            out[key] = _build(v, con, budget, depth + 1)
            out._lines[key] = _line(v)
            if isinstance(v, ScalarNode):
                out._raw[key] = v.value
        return out
    if isinstance(node, SequenceNode):
        seq = Located.List(_line(node))
        for v in node.value:
            seq.append(_build(v, con, budget, depth + 1))
            seq._lines.append(_line(v))
        return seq
    return con.construct_object(node, deep=True)


def _nesting(text: str) -> int:
    """An upper bound of the flow nesting ([ and {) of `text`, found without parsing: the
    parsers recurse once per level, so a deep document must be refused before them."""
    depth = top = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            top = max(top, depth)
        elif ch in "]}" and depth:
            depth -= 1
    return top


def load_located(text: str) -> Any:
    """The document's data, with `Located.Map` / `Located.List` in place of dicts and lists.
    Raises ValueError("LINE: message") on a YAML syntax error or a document beyond the
    bounds of the module docstring."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"1: the file has {len(text):,} characters, more than {MAX_TEXT:,}: refused")
    if _nesting(text) > MAX_DEPTH:
        raise ValueError(f"1: brackets nested more than {MAX_DEPTH} levels deep: refused")
    try:  # libyaml's parser is 15x faster; a file it refuses is parsed again for the messages
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 1
            raise ValueError(f"{line}: YAML syntax error: {getattr(exc, 'problem', exc)}") from None
        except RecursionError:
            raise ValueError(f"1: nested too deep (more than {MAX_DEPTH} levels): refused") from None
    except RecursionError:
        raise ValueError(f"1: nested too deep (more than {MAX_DEPTH} levels): refused") from None
    if node is None:
        return None
    try:
        return _build(node, SafeConstructor(), _Budget())
    except RecursionError:
        raise ValueError(f"1: nested too deep (more than {MAX_DEPTH} levels): refused") from None
