"""server.line_tracking: heat follows its lines through edits, and never lands on a wrong one."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.line_tracking import LineTracker

DOC = "import time\n\ndef inner():\n    x = 0\n    return x\n\ninner()\n"
#      0            1 2               3          4           5 6


def mapping(tracker: LineTracker, n: int) -> list[tuple[int | None, bool]]:
    return [tracker.map(i) for i in range(n)]


def test_untouched_document_maps_every_line_to_itself() -> None:
    t = LineTracker(DOC)
    assert mapping(t, 8) == [(i, False) for i in range(8)]  # line 7: the "" after the last \n
    assert t.map(8) == (None, True)
    assert not t.all_stale
    assert t.text == DOC


def test_enter_at_the_end_of_a_line() -> None:
    t = LineTracker(DOC)
    t.apply((3, 9, 3, 9), "\n    ")  # Enter after "x = 0", auto-indented
    assert t.map(3) == (3, False)
    assert t.map(4) == (5, False)
    assert t.map(6) == (7, False)
    assert t.origin(4) == (None, True)  # the new line has no heat
    assert t.text == DOC.replace("x = 0\n", "x = 0\n    \n")


def test_enter_at_the_end_of_a_last_line_without_line_end() -> None:
    t = LineTracker("a = 1\nb = 2")
    t.apply((1, 5, 1, 5), "\n")
    assert mapping(t, 2) == [(0, False), (1, False)]
    assert t.text == "a = 1\nb = 2\n"


def test_lines_inserted_above_at_column_zero() -> None:
    t = LineTracker(DOC)
    t.apply((2, 0, 2, 0), "import os\nimport sys\n")
    assert mapping(t, 7) == [(0, False), (1, False), (4, False), (5, False), (6, False), (7, False), (8, False)]


def test_whole_lines_deleted_above() -> None:
    t = LineTracker(DOC)
    t.apply((0, 0, 2, 0), "")  # "import time" and the blank line
    assert mapping(t, 7) == [(None, True), (None, True), (0, False), (1, False), (2, False), (3, False), (4, False)]


def test_duplicated_lines_keep_heat_on_the_original() -> None:
    t = LineTracker(DOC)
    t.apply((3, 0, 3, 0), "    x = 0\n")  # "copy line up": the copy is above, the original moves
    assert t.map(3) == (4, False) and t.origin(3) == (None, True)
    t = LineTracker(DOC)
    t.apply((3, 9, 3, 9), "\n    x = 0")  # "copy line down": the original stays
    assert t.map(3) == (3, False) and t.origin(4) == (None, True)


def test_typing_inside_a_line_makes_it_stale_in_place() -> None:
    t = LineTracker(DOC)
    t.apply((3, 8, 3, 9), "42")  # x = 0 -> x = 42
    assert t.map(3) == (3, True)
    assert t.map(4) == (4, False) and t.map(2) == (2, False)
    t.apply((3, 8, 3, 10), "0")  # typed back (or undone): the profiled text, the heat is back
    assert t.map(3) == (3, False)
    t.apply((3, 0, 3, 9), "")  # everything deleted, the line stays (empty)
    assert t.map(3) == (3, True)


def test_splitting_a_line_keeps_it_stale_where_it_starts() -> None:
    t = LineTracker(DOC)
    t.apply((4, 10, 4, 10), "\n        ")  # "    return" | " x"
    assert t.map(4) == (4, True)
    assert t.map(6) == (7, False)


def test_joining_lines() -> None:
    t = LineTracker(DOC)
    t.apply((3, 9, 4, 4), "; ")  # "    x = 0; return x"
    assert t.map(3) == (3, True)
    assert t.map(4) == (None, True)  # merged into line 3: its heat has no line of its own
    assert t.map(6) == (5, False)


def test_multi_line_replacement() -> None:
    t = LineTracker(DOC)
    t.apply((3, 6, 4, 12), "= 1\n    z = 2\n    w = 3")  # "    x " kept of line 3
    assert t.map(3) == (3, True)
    assert t.map(4) == (None, True)  # replaced to its end: nowhere to be found
    assert t.map(6) == (7, False)
    t = LineTracker(DOC)
    t.apply((3, 4, 4, 8), "y = 1\n    z = 2\n    w")  # only indentation left of line 3
    assert t.map(3) == (None, True)
    assert t.map(4) == (5, True)  # " x" of "    return x" ends the last new line


def test_replaced_region_keeps_lines_whose_text_comes_back() -> None:
    t = LineTracker(DOC)
    # a formatter rewriting lines 2-5 in one edit, changing only line 3
    t.apply((2, 0, 6, 0), "def inner():\n    x = 1\n    return x\n\n")
    assert mapping(t, 7) == [(0, False), (1, False), (2, False), (None, True), (4, False), (5, False), (6, False)]


def test_full_replacement() -> None:
    t = LineTracker(DOC)
    t.apply(None, DOC)  # the same text: nothing changes
    assert mapping(t, 8) == [(i, False) for i in range(8)]
    assert not t.all_stale
    t.apply((0, 0, 0, 0), "# hi\n")
    t.apply(None, "x = 1\ny = 2\n")
    assert mapping(t, 3) == [(1, True), (2, True), (None, True)]
    assert t.all_stale
    assert t.text == "x = 1\ny = 2\n"


def test_several_changes_in_order() -> None:
    t = LineTracker(DOC)
    for change in [((0, 0, 0, 0), "# a\n"), ((0, 3, 0, 3), "\n# b"), ((2, 0, 3, 0), "")]:
        t.apply(*change)  # each against the result of the previous
    assert t.text == "# a\n# b\n\ndef inner():\n    x = 0\n    return x\n\ninner()\n"
    assert t.map(0) == (None, True)
    assert t.map(2) == (3, False)


@pytest.mark.parametrize(
    "encoding, start, end",
    [("utf-16", 7, 9), ("utf-8", 9, 13), ("utf-32", 6, 7)],
)
def test_position_units(encoding: str, start: int, end: int) -> None:
    t = LineTracker("s = '😀😀'\nnext\n", encoding=encoding)
    t.apply((0, start, 0, end), "")  # the second emoji, in the encoding's units
    assert t.text == "s = '😀'\nnext\n"
    assert t.map(0) == (0, True) and t.map(1) == (1, False)


def test_crlf_and_lone_cr_line_ends() -> None:
    t = LineTracker("a\r\nb\rc\n")
    assert mapping(t, 4) == [(i, False) for i in range(4)]
    t.apply((1, 1, 1, 1), "\n")  # Enter at the end of "b": its \r and the new \n stay two ends
    assert t.text == "a\r\nb\n\rc\n"
    t2 = LineTracker("a\rb\n")
    t2.apply((1, 0, 1, 0), "\n")  # \r + \n become one line end: "b" moves up to line 1
    assert t2.text == "a\r\nb\n"
    assert mapping(t2, 3) == [(0, False), (1, False), (2, False)]


def test_positions_past_the_end_are_clamped() -> None:
    t = LineTracker("ab\ncd\n")
    t.apply((0, 99, 0, 99), "!")
    t.apply((99, 0, 99, 0), "tail")
    assert t.text == "ab!\ncd\ntail"
    with pytest.raises(ValueError):
        LineTracker("", encoding="latin-1")


# -- the property: fresh means the profiled text, wherever the line went ------------------------

UNITS = {"utf-16": lambda ch: 2 if ord(ch) > 0xFFFF else 1, "utf-8": lambda ch: len(ch.encode("utf-8")),
         "utf-32": lambda ch: 1}


def ref_lines(text: str) -> list[str]:
    """LSP lines with their ends, written without regular expressions."""
    lines, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\r" and text[i + 1 : i + 2] == "\n":
            lines.append(text[start : i + 2])
            i += 2
            start = i
        elif text[i] in "\r\n":
            lines.append(text[start : i + 1])
            i += 1
            start = i
        else:
            i += 1
    lines.append(text[start:])
    return lines


def content(line: str) -> str:
    return line.rstrip("\r\n")


def units_of(s: str, encoding: str) -> int:
    return sum(UNITS[encoding](ch) for ch in s)


class Reference:
    """The document as a plain string, and for every profiled line that no edit touched (in the
    ways a tracker must recognise) its current line."""

    def __init__(self, text: str) -> None:
        self.text = text
        # Blank lines are left out: Enter on one is as much "above" as "below" it, and profiles
        # never point at them. With content, a line never starts with a \n a \r could join.
        self.untouched = {i: i for i, line in enumerate(ref_lines(text)) if content(line)}

    def offset(self, line: int, index: int) -> int:
        return sum(len(x) for x in ref_lines(self.text)[:line]) + index

    def apply(self, sl: int, si: int, el: int, ei: int, text: str) -> None:
        lines = ref_lines(self.text)
        before = len(lines)
        new_text = self.text[: self.offset(sl, si)] + text + self.text[self.offset(el, ei) :]
        delta = len(ref_lines(new_text)) - before
        ends_with_eol = text.endswith(("\n", "\r"))
        for orig, cur in list(self.untouched.items()):
            if sl > cur:
                continue  # after the line
            if el < cur or ((el, ei) == (cur, 0) and (ends_with_eol or (text == "" and si == 0))):
                self.untouched[orig] = cur + delta  # before the line
            elif (sl, si) == (cur, len(content(lines[cur]))) and text[:1] in ("\n", "\r"):
                continue  # Enter at its end
            else:
                del self.untouched[orig]
        self.text = new_text


PIECES = ["a", " ", "\n", "\n", "\r\n", "\r", "\r", "😀", "é", "x\n"]
text_piece = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)


@st.composite
def position(draw, lines: list[str], after: tuple[int, int] | None = None) -> tuple[int, int]:
    """(line, str index) on a character boundary, often a line's start or end."""
    lo_line = after[0] if after else 0
    line = draw(st.integers(lo_line, len(lines) - 1))
    n = len(content(lines[line]))
    lo = after[1] if after and line == after[0] else 0
    kind = draw(st.sampled_from(["start", "end", "any"]))
    if kind == "any":
        return line, draw(st.integers(lo, n))
    return line, lo if kind == "start" else n


@st.composite
def scenario(draw):
    n = draw(st.integers(1, 12))
    # unique lines, half of them with characters of 2 UTF-16 units and 2 and 4 UTF-8 bytes
    original = [f"a😀{i}é" + "x" * (i % 3) if i % 2 == 0 else f"L{i}xx" for i in range(n)]
    doc = "\n".join(original) + draw(st.sampled_from(["", "\n"]))
    encoding = draw(st.sampled_from(["utf-16", "utf-8", "utf-32"]))
    batches = []
    ref_text = doc
    for _ in range(draw(st.integers(1, 4))):
        batch = []
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.integers(0, 29)) == 0:
                new = draw(st.sampled_from([ref_text, ref_text + "x", "\n".join(original[:2])]))
                batch.append((None, new))
                ref_text = new
                continue
            lines = ref_lines(ref_text)
            start = draw(position(lines))
            end = draw(position(lines, after=start)) if draw(st.booleans()) else start
            text = draw(text_piece)
            batch.append(((start, end), text))
            ref = Reference(ref_text)
            ref.apply(*start, *end, text)
            ref_text = ref.text
        batches.append(batch)
    return doc, encoding, batches


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_fresh_lines_hold_their_profiled_text(case) -> None:
    doc, encoding, batches = case
    original = ref_lines(doc)
    tracker = LineTracker(doc, encoding=encoding)
    ref = Reference(doc)
    for batch in batches:
        for change, text in batch:
            if change is None:
                if text != ref.text:
                    ref.untouched.clear()
                ref.text = text
                tracker.apply(None, text)
                continue
            (sl, si), (el, ei) = change
            lines = ref_lines(ref.text)
            lsp_range = (sl, units_of(lines[sl][:si], encoding), el, units_of(lines[el][:ei], encoding))
            ref.apply(sl, si, el, ei, text)
            tracker.apply(lsp_range, text)
        assert tracker.text == ref.text
        current = ref_lines(ref.text)
        seen: set[int] = set()
        for i, line in enumerate(original):
            cur, stale = tracker.map(i)
            if cur is not None:
                assert 0 <= cur < len(current)
                assert cur not in seen  # one profiled line per document line
                seen.add(cur)
                assert tracker.origin(cur) == (i, stale)
                if not stale:
                    assert content(current[cur]) == content(line)
            if i in ref.untouched:  # no edit touched it: it must still be there, fresh
                assert (cur, stale) == (ref.untouched[i], False)
        assert tracker.all_stale == (not any(not tracker.map(i)[1] for i in range(len(original))))
