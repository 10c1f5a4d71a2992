"""The colours of a health code and the two languages hcode speaks, defined once.

A ruleset names its palette in English (green, yellow, red, ...); Chinese text reads a
colour as 绿码, 黄码, 红码. `ABSENT` stands for a side of a diff that lacks the person.
Reports draw each colour in `COLOR_HEX` (HTML) or `TERMINAL_STYLE` (rich); a colour
outside these tables keeps its name and a neutral shade.
"""

from __future__ import annotations

from hcode.errors import UsageError

LANGS = ("en", "zh")  # the languages of explanations and reports
ABSENT = "absent"  # a diff side without the person

COLOR_ZH = {"green": "绿码", "yellow": "黄码", "orange": "橙码", "red": "红码", "blue": "蓝码",
            "purple": "紫码", "gray": "灰码", "grey": "灰码", ABSENT: "无记录"}
COLOR_HEX = {"green": "#1b7f3b", "yellow": "#c99a06", "orange": "#dd6b10", "red": "#c0262d", ABSENT: "#8a94a3"}
FALLBACK_HEX = "#5b6b7f"
TERMINAL_STYLE = {"green": "bold green", "yellow": "bold yellow", "orange": "bold dark_orange", "red": "bold red",
                  ABSENT: "dim"}


def check_lang(lang: str) -> str:
    """`lang` when it is one of `LANGS`; otherwise a usage error."""
    if lang not in LANGS:
        raise UsageError(f"language {lang!r}: use {' or '.join(LANGS)}", option="lang")
    return lang


def color_label(color: str | None, lang: str = "en") -> str:
    """A colour as read out in `lang`: the palette name in English, 绿码/黄码/红码 in Chinese;
    None is `ABSENT`."""
    color = color or ABSENT
    return COLOR_ZH.get(color, color) if lang == "zh" else color


def color_hex(color: str | None) -> str:
    return COLOR_HEX.get(color or ABSENT, FALLBACK_HEX)
