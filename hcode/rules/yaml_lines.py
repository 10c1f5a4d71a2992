"""YAML with line numbers: ruleset errors must name the line a rule author has to fix.

`load_located` composes the document (`yaml.compose`, safe tags only) and builds plain dicts
and lists that remember where each value sits. Scalars are constructed by PyYAML's safe
constructor (so dates are dates), and their raw text is kept too (a version such as
``2022.06`` must stay text, not become a float).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


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


def _build(node: Node, con: SafeConstructor) -> Any:
    if isinstance(node, MappingNode):
        out = Located.Map(_line(node))
        for k, v in node.value:
            key = con.construct_object(k, deep=True)
            if key in out:
                raise ValueError(f"{k.start_mark.line + 1}: key {key!r} appears twice")
            out[key] = _build(v, con)
            out._lines[key] = _line(v)
            if isinstance(v, ScalarNode):
                out._raw[key] = v.value
        return out
    if isinstance(node, SequenceNode):
        seq = Located.List(_line(node))
        for v in node.value:
            seq.append(_build(v, con))
            seq._lines.append(_line(v))
        return seq
    return con.construct_object(node, deep=True)


def load_located(text: str) -> Any:
    """The document's data, with `Located.Map` / `Located.List` in place of dicts and lists.
    Raises ValueError("LINE: message") on a YAML syntax error."""
    try:  # libyaml's parser is 15x faster; a file it refuses is parsed again for the messages
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 1
            raise ValueError(f"{line}: YAML syntax error: {getattr(exc, 'problem', exc)}") from None
    if node is None:
        return None
    return _build(node, SafeConstructor())
