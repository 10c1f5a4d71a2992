"""Text from data made inert for each place a report puts it, one function per target.

Every function also masks id-shaped values (`hcode.textsafe.mask_ids`): a rule id, an
override's reason or a file name written for people never shows a raw id number.

- `markdown`: a Markdown table cell or line: backslash-escapes the characters that make
  emphasis, code, links, tables, headings and HTML (`\\ | * _ ` [ ] < > #`), and turns line
  breaks and other control characters into spaces, so one value stays one cell.
- `html`: HTML text or attribute value (`html.escape`, quotes included); control
  characters other than tab and newline are dropped.
- `terminal`: text for a rich console: markup brackets escaped (`rich.markup.escape`) and
  every control character (ANSI escape sequences start with ESC) shown as `?`, so a value
  can neither style the terminal nor move its cursor.
"""

from __future__ import annotations

import html as _html
import re

from rich.markup import escape as _rich_escape

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_HTML_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_HEX = re.compile(r"[0-9a-f]*")
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\|*_`[]<>#"})


def _text(value: object) -> str:
    from hcode.textsafe import mask_ids  # (imports Polars: not at the start of every command)

    return mask_ids("" if value is None else str(value))


def markdown(value: object) -> str:
    """`value` as inert Markdown text on one line (see the module docstring)."""
    return _CONTROL.sub(" ", _text(value)).translate(_MD_SPECIAL)


def html(value: object) -> str:
    """`value` as inert HTML text (see the module docstring)."""
    return _html.escape(_HTML_CONTROL.sub("", _text(value)), quote=True)


def key(value: object) -> str:
    """A person key (an HMAC in hex) as it is, for any target; anything not hex is escaped
    and masked like data (a key is never masked: its hex may hold 18 decimal digits)."""
    text = "" if value is None else str(value)
    return text if _HEX.fullmatch(text) else html(text)


def terminal(value: object) -> str:
    """`value` as inert text for a rich console (see the module docstring)."""
    return _rich_escape(_CONTROL.sub("?", _text(value)))
