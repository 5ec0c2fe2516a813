"""LineIndex's instruction and native views (--opcodes, --native): per line, the samples of each
instruction and of each column span, each once per stack however deep a recursion repeats them;
the stacks whose `<native>` leaf sits right inside a line; incremental counting (updates, profile
deltas) equal to a build from scratch. Synthetic stacks with known counts; the real targets'
instructions are checked where they are captured (test_opcode_capture and the formats' tests)."""

from __future__ import annotations

import random

from sampler.lineindex import LineIndex, OpcodeHeat, SpanHeat
from sampler.model import HAS_GIL, NATIVE_FRAME, Frame, Profile, ThreadSample

PATH = "/p/hot.py"
ADD, LOAD, CALL = 122, 45, 53  # opcode numbers: the index names none, it only counts them


def at(line: int, opcode: int, col: int, end_col: int, func: str = "f") -> Frame:
    return Frame(PATH, func, line, line, col, end_col, opcode)


CALLER = at(20, CALL, 4, 11, "main")
STACKS = [
    (1, (at(8, ADD, 8, 17), CALLER), 61),
    (1, (at(8, LOAD, 8, 13), CALLER), 22),
    (1, (at(8, ADD, 8, 17), at(8, ADD, 8, 17, "g"), CALLER), 5),  # recursion: the line once per stack
    (2, (at(9, LOAD, 4, 9), CALLER), 12),
    (2, (NATIVE_FRAME, at(10, CALL, 4, 20), CALLER), 30),
    (2, (NATIVE_FRAME, at(11, CALL, 4, 20), NATIVE_FRAME, CALLER), 7),  # C called back into Python
]


def views(index: LineIndex) -> dict:
    lines = range(1, 30)
    return {
        "ops": {n: index.line_opcodes(PATH, n) for n in lines},
        "spans": {n: index.line_spans(PATH, n) for n in lines},
        "native": {n: index.line_native(PATH, n) for n in lines},
        "has": index.has_opcodes,
        "lines": index.lines(PATH),
    }


def test_instructions_per_line_count_each_stack_once():
    index = LineIndex(STACKS)
    assert index.has_opcodes
    assert index.line_opcodes(PATH, 8) == [
        OpcodeHeat(ADD, 66, ((8, 8, 17),)),
        OpcodeHeat(LOAD, 22, ((8, 8, 13),)),
    ]
    assert index.line_spans(PATH, 8) == [SpanHeat((8, 8, 17), 66), SpanHeat((8, 8, 13), 22)]
    # every stack passes through main's call line: its CALL is counted once per stack
    assert index.line_opcodes(PATH, 20) == [OpcodeHeat(CALL, 137, ((20, 4, 11),))]
    assert index.line_opcodes(PATH, 7) == [] and index.line_spans(PATH, 7) == []
    assert index.line_opcodes("/elsewhere.py", 8) == []
    # opcodes never split a line: its heat is as without them
    assert index.lines(PATH)[8] == (88, 88)


def test_a_native_leaf_is_counted_on_the_line_right_under_it():
    index = LineIndex(STACKS)
    assert index.line_native(PATH, 10) == 30
    assert index.line_native(PATH, 11) == 7
    # the <native> between line 11 and main is C calling back into Python, not main's time in C
    assert index.line_native(PATH, 20) == 0 and index.line_native(PATH, 8) == 0
    assert index.synthetic_leaves == {"<native>": 37}
    assert index.lines(PATH)[10] == (0, 30)  # the leaf is the C code, not the line


def test_without_opcodes_nothing_is_counted():
    plain = [(t, tuple(f._replace(opcode=-1) for f in frames), w) for t, frames, w in STACKS]
    index = LineIndex(plain)
    assert not index.has_opcodes
    assert index.line_opcodes(PATH, 8) == [] and index.line_spans(PATH, 8) == []
    assert index.line_native(PATH, 10) == 30  # --native alone still says where C time went


def test_updates_and_deltas_equal_a_build_from_scratch():
    whole = views(LineIndex(STACKS))
    for seed in range(6):
        rng = random.Random(seed)
        # each stack's weight arrives in two pieces, in any order, as over a live run's deltas
        halves = [(t, frames, part) for t, frames, w in STACKS for part in (w // 2, w - w // 2)]
        rng.shuffle(halves)
        index = LineIndex()
        profile = Profile()
        deltas = LineIndex()
        mark = None
        for start in range(0, len(halves), 3):
            run = [h for h in halves[start:start + 3] if h[2] > 0]
            index.update(run)
            for tid, frames, weight in run:
                profile.add(ThreadSample(tid, HAS_GIL, frames), weight)
            deltas.apply(profile.delta_since(mark))
            mark = profile.mark()
        assert views(index) == whole, seed
        assert views(deltas) == whole, seed
        assert views(LineIndex.from_profile(profile)) == whole, seed
