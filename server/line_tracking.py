"""Keeping heat on the right lines while the document is edited.

A profile's line numbers describe the text as it was when profiled. `LineTracker` keeps its own
copy of the document's lines, each tagged with the profiled line it came from (if any) and
whether its text has changed since, and applies the editor's LSP content changes to both. A line
is only ever reported fresh when its text is exactly the profiled text; a line an edit changed
but that still stands where it stood is reported stale; a line that cannot be found any more is
reported gone (None). Heat on a wrong line is worse than no heat.
"""

from __future__ import annotations

import difflib
import re
import sys

# LSP line ends: \r\n, \r and \n (not the other separators str.splitlines knows)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_NONE = -1  # origin of a line that was not in the profiled text
_ENCODINGS = ("utf-16", "utf-8", "utf-32")


def split_lines(text: str) -> list[str]:
    """`text` as LSP lines, each with its line end; the last one (maybe "") has none."""
    lines = _LINE.findall(text)
    if not lines or lines[-1].endswith(("\n", "\r")):
        lines.append("")
    return lines


def _content(line: str) -> str:
    return line.rstrip("\r\n")


def _index(line: str, units: int, encoding: str) -> int:
    """The str index of LSP character offset `units` in `line`'s content (clamped to it; an
    offset inside a character is taken to its start)."""
    content = _content(line)
    if units <= 0:
        return 0
    if encoding == "utf-32" or content.isascii():
        return min(units, len(content))
    count = 0
    for i, ch in enumerate(content):
        width = (2 if ord(ch) > 0xFFFF else 1) if encoding == "utf-16" else len(ch.encode("utf-8", "surrogatepass"))
        if count + width > units:
            return i
        count += width
    return len(content)


def units_at_byte(content: str, offset: int, encoding: str) -> int:
    """The LSP character offset of UTF-8 byte `offset` in `content` (CPython's column numbers
    count bytes), clamped to the content; an offset inside a character is taken to its start."""
    if encoding == "utf-8" or content.isascii():
        return max(0, min(offset, len(content.encode("utf-8", "surrogatepass"))))
    count = units = 0
    for ch in content:
        count += len(ch.encode("utf-8", "surrogatepass"))
        if count > offset:
            break
        units += (2 if ord(ch) > 0xFFFF else 1) if encoding == "utf-16" else 1
    return units


def _stale(code: int) -> int:
    return code | 1 if code >= 0 else _NONE


class LineTracker:
    """Maps 0-based lines of the text that was profiled to lines of the document as it is edited."""

    def __init__(self, text: str, *, encoding: str = "utf-16") -> None:
        if encoding not in _ENCODINGS:
            raise ValueError(f"unknown position encoding {encoding!r} (expected one of {', '.join(_ENCODINGS)})")
        self.encoding = encoding
        self._lines = split_lines(text)
        # Per current line: (profiled line << 1) | stale, or _NONE.
        self._codes = [i << 1 for i in range(len(self._lines))]
        # The profiled content of each line: a line is fresh exactly when it has it (so undoing
        # an edit brings the heat back). None once a full replacement made positions guesses.
        self._profiled: list[str | None] = [_content(line) for line in self._lines]
        self._inverse: dict[int, int] | None = None  # profiled line -> code position, when asked

    @property
    def text(self) -> str:
        """The tracker's copy of the document (what the editor has, if every change came in)."""
        return "".join(self._lines)

    @property
    def all_stale(self) -> bool:
        """No profiled line is left with its profiled text: every line's heat is stale or gone."""
        return not any(code >= 0 and not code & 1 for code in self._codes)

    def content(self, line: int) -> str:
        """The text of current 0-based `line` without its line end ("" past the end)."""
        return _content(self._lines[line]) if 0 <= line < len(self._lines) else ""

    def map(self, line: int) -> tuple[int | None, bool]:
        """(current 0-based line or None when it no longer exists, stale) of profiled `line`."""
        if self._inverse is None:
            self._inverse = {code >> 1: cur for cur, code in enumerate(self._codes) if code >= 0}
        cur = self._inverse.get(line)
        if cur is None:
            return None, True
        return cur, bool(self._codes[cur] & 1)

    def origin(self, current: int) -> tuple[int | None, bool]:
        """The reverse of `map`: (profiled line or None, stale) of current line `current`."""
        if not 0 <= current < len(self._codes) or self._codes[current] < 0:
            return None, True
        code = self._codes[current]
        return code >> 1, bool(code & 1)

    def apply(self, change_range: tuple[int, int, int, int] | None, text: str) -> None:
        """One LSP content change: (start line, start char, end line, end char), or None for a
        replacement of the whole document. Positions past a line's end or the document's end
        are clamped to it, as LSP asks."""
        self._inverse = None
        if change_range is None:
            self._replace_all(text)
            return
        sl, sc, el, ec = change_range
        last = len(self._lines) - 1
        if (sl, sc) > (el, ec):
            sl, sc, el, ec = el, ec, sl, sc
        sl, el = max(sl, 0), max(el, 0)
        if sl > last:
            sl, sc = last, sys.maxsize  # the end of the document
        if el > last:
            el, ec = last, sys.maxsize
        prefix = _content(self._lines[sl])[: _index(self._lines[sl], sc, self.encoding)]
        suffix = self._lines[el][_index(self._lines[el], ec, self.encoding) :]
        head = prefix
        # A line ending in a lone \r before new text starting with \n gets a \r\n line end: it
        # becomes part of the edit (its content is kept whole).
        if sl > 0 and not prefix and self._lines[sl - 1].endswith("\r") and (text + suffix)[:1] == "\n":
            sl -= 1
            head = self._lines[sl]
            prefix = _content(head)
        old = self._lines[sl : el + 1]
        new = split_lines(head + text + suffix)
        if el < last:
            new.pop()  # the "" after the suffix's line end is the next line, already there
        codes = self._remap(old, new, self._codes[sl : el + 1], prefix, suffix)
        for j, code in enumerate(codes):
            if code >= 0:
                codes[j] = (code & ~1) | (self._profiled[code >> 1] != _content(new[j]))
        self._lines[sl : el + 1] = new
        self._codes[sl : el + 1] = codes

    def _replace_all(self, text: str) -> None:
        if text == self.text:
            return
        self._lines = split_lines(text)
        n = len(self._lines)
        self._codes = [_stale(code) for code in self._codes[:n]] + [_NONE] * (n - len(self._codes))
        self._profiled = [None] * len(self._profiled)

    @staticmethod
    def _remap(old: list[str], new: list[str], codes: list[int], prefix: str, suffix: str) -> list[int]:
        """The codes of the `new` lines that replace the `old` ones (which carried `codes`):
        where each old line went, if anywhere (`apply` then sets the stale bits). `prefix` is the
        content of the first old line before the edit, `suffix` the rest of the last one."""
        old_text = [_content(line) for line in old]
        new_text = [_content(line) for line in new]
        if len(old) == 1 and len(new) == 1:  # an edit within one line: typing
            return [codes[0]]
        out = [_NONE] * len(new)
        placed = [False] * len(old)

        # The line the edit ended in is untouched if the edit ended at its start (lines inserted
        # or deleted above it); the line it started in, if the edit began at its end (Enter at
        # the end of a line). Their content must come out the same.
        if suffix == old[-1] and new_text[-1] == old_text[-1]:
            out[-1], placed[-1] = codes[-1], True
        if prefix == old_text[0] and new_text[0] == old_text[0] and not placed[0] and out[0] == _NONE:
            out[0], placed[0] = codes[0], True

        # Lines of the replaced region whose content comes back unchanged (a formatter rewriting
        # a block, the same lines pasted over themselves), found in order by difflib.
        a0, a1 = int(placed[0]), len(old) - int(placed[-1] and len(old) > 1)
        b0, b1 = int(out[0] != _NONE), len(new) - int(out[-1] != _NONE and len(new) > 1)
        if a1 > a0 and b1 > b0:
            matcher = difflib.SequenceMatcher(None, old_text[a0:a1], new_text[b0:b1], autojunk=False)
            for block in matcher.get_matching_blocks():
                for k in range(block.size):
                    out[b0 + block.b + k] = codes[a0 + block.a + k]
                    placed[a0 + block.a + k] = True

        # What the edit kept of its first and last line still stands where it stood (stale).
        kept_head = bool(prefix.strip())
        kept_tail = bool(_content(suffix).strip())
        if len(old) == 1:
            if not placed[0] and (kept_head or kept_tail):
                slot = 0 if kept_head else len(new) - 1
                if out[slot] == _NONE:
                    out[slot], placed[0] = codes[0], True
        else:
            if not placed[0] and kept_head and out[0] == _NONE:
                out[0], placed[0] = codes[0], True
            if not placed[-1] and kept_tail and out[-1] == _NONE:
                out[-1], placed[-1] = codes[-1], True
        return out
