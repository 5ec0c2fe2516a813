"""Text from the target made safe for the terminal, and fitted to a number of cells.

Function names, file paths and thread names come from the target's memory: any of them can hold
an escape sequence (which the terminal would obey), a newline (which breaks the layout) or a
bidirectional control (which reorders what follows). Everything drawn goes through `printable`.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

ELLIPSIS = "…"


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


@lru_cache(maxsize=4096)
def printable(text: str) -> str:
    """`text` with every character the terminal would not simply show (C0/C1 controls, DEL,
    format and bidi controls, line separators, lone surrogates, unassigned code points)
    written as a visible `\\xNN` / `\\uNNNN` escape. Ordinary text comes back as it is."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def char_cells(ch: str) -> int:
    """Terminal cells one character takes: 2 for wide (CJK, most emoji), 0 for combining marks."""
    if ch < "\u0300":  # the common case: Latin-1 and friends
        return 1
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cells(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(map(char_cells, text))


def fit(text: str, width: int, *, keep_end: bool = False) -> str:
    """`text` cut to at most `width` cells, with an ellipsis where it was cut: at the end, or
    at the start with `keep_end` (paths, whose end says the most)."""
    if width <= 0:
        return ""
    if text.isascii():  # the common case, drawn hundreds of times a refresh: one cell a character
        if len(text) <= width:
            return text
        return ELLIPSIS if width == 1 else ("…" + text[1 - width:] if keep_end else text[:width - 1] + "…")
    if cells(text) <= width:
        return text
    if width == 1:
        return ELLIPSIS
    room = width - 1
    chars = reversed(text) if keep_end else iter(text)
    taken: list[str] = []
    used = 0
    for ch in chars:
        w = char_cells(ch)
        if used + w > room:
            break
        taken.append(ch)
        used += w
    if keep_end:
        return ELLIPSIS + "".join(reversed(taken))
    return "".join(taken) + ELLIPSIS


def pad(text: str, width: int, *, right: bool = False, keep_end: bool = False) -> str:
    """`text` fitted to exactly `width` cells, left-aligned (or right-aligned with `right`)."""
    text = fit(text, width, keep_end=keep_end)
    gap = " " * (width - cells(text))
    return gap + text if right else text + gap
