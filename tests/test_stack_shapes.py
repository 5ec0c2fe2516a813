"""Stacks have the shapes the target's code allows, under every CPython here.

Each target knows its call graph, so every sampled stack can be checked whole: a frame appears
only under its real callers, plumbing frames (the `__init__` shim CPython pushes for `cls()`,
entry frames of C calling back into Python) never show, and a stack that changed while it was
read is retried or counted as an error, never reported cut short. Proportions are checked where
the target splits its time evenly by construction.
"""

from __future__ import annotations

import re
import struct

import pytest

from conftest import heatline, parse_collapsed, target, wait_ready
from sampler.cpython.unwinder import CHUNK_DATA, TornStack, Unwinder

# Torn copies are retried twice before a sample counts as an error; a loaded machine (a CPU hog
# on every core) makes them more likely, but never common.
MAX_ERROR_RATE = 10.0


def _attach(tmp_path, pid: int, *opts: str, duration: str = "1.5") -> tuple[list, float, int]:
    """(rows, error rate in %, samples captured) of a collapsed profile of the running target."""
    out = tmp_path / "out.txt"
    res = heatline("attach", str(pid), "-d", duration, "--collapsed", "-o", str(out), *opts)
    assert res.returncode == 0, res.stderr
    rate = re.search(r"Error rate: ([0-9.]+)", res.stdout)
    captured = re.search(r"Captured ([0-9,]+) samples", res.stdout)
    assert rate and captured, res.stdout
    return parse_collapsed(str(out)), float(rate.group(1)), int(captured.group(1).replace(",", ""))


def _names(frames: list[str], script: str) -> list[str]:
    """Function names root first; a frame from another file keeps its file to stand out."""
    out = []
    for frame in frames:
        file, func, _line = frame.rsplit(":", 2)
        out.append(func if file == script else f"{file}:{func}")
    return out


def _init_name(names: list[str]) -> str | None:
    # 3.9/3.10 code objects have no qualified name
    return next((n for n in names if n in ("Heavy.__init__", "__init__")), None)


def test_init_hot_path(interpreter, tmp_path, spawn):
    """Half the time in `Heavy.__init__` (via `cls()`), half in a plain function: `__init__`
    shows under build() with its half, and the shim frame below it never does."""
    p = spawn(interpreter, target("init_hot.py"))
    wait_ready(p)
    rows, error_rate, captured = _attach(tmp_path, p.pid, duration="2")
    assert error_rate <= MAX_ERROR_RATE
    in_init = in_plain = 0
    for _tid, frames, count in rows:
        names = _names(frames, "init_hot.py")
        assert names[:2] == ["<module>", "main"], names
        init = _init_name(names)
        if init is not None:
            # the shim sits between build() and __init__ and must be left out, not shown
            assert names[:4] == ["<module>", "main", "build", init], names
            assert names[4:] in ([], ["spin"]), names
            in_init += count * (names[-1] == "spin")
        else:
            assert not any("__init__" in n for n in names), names
            assert names[2:] in ([], ["build"], ["plain"], ["plain", "spin"]), names
            in_plain += count * (names[-1] == "spin")
    spinning = in_init + in_plain
    # The rest is in main()'s sleeps, which a loaded machine stretches (12% spinning measured at
    # load 8): enough spinning samples to judge the split is what matters.
    assert spinning >= 100, (spinning, captured)
    # Half by construction; wide bounds, since on a loaded machine a few long waits for a CPU
    # (counted in wall-clock samples) fall in one half or the other. Losing __init__ gives 0.
    assert 0.3 <= in_init / spinning <= 0.7, (in_init, in_plain)


def test_exception_mode(interpreter, tmp_path, spawn):
    """Exception mode keeps the handler's samples (about half the target's time) and only them."""
    p = spawn(interpreter, target("exceptions.py"))
    wait_ready(p)
    rows, error_rate, captured = _attach(tmp_path, p.pid, "--mode", "exception", duration="2")
    assert error_rate <= MAX_ERROR_RATE
    kept = 0
    for _tid, frames, count in rows:
        names = _names(frames, "exceptions.py")
        assert names[:2] == ["<module>", "handling"], names
        assert names[2:] in ([], ["work"]), names
        kept += count
    # a sample is kept only when the exception is seen in flight both before and after the stack
    # copy, so exception mode keeps part of those moments: at least a fifth of them
    assert kept >= 0.1 * captured, (kept, captured)
    assert any(f[1] == "exceptions.py:handling:12" for _t, f, _c in rows if len(f) >= 2)


def test_callback_from_c_keeps_its_callers(interpreter, tmp_path, spawn):
    """Python that C calls back (a sort key) is always shown under the Python that called C."""
    p = spawn(interpreter, target("callback_from_c.py"))
    wait_ready(p)
    rows, error_rate, captured = _attach(tmp_path, p.pid, duration="2.5")
    assert error_rate <= MAX_ERROR_RATE
    in_key = 0
    impossible = []
    for _tid, frames, count in rows:
        names = _names(frames, "callback_from_c.py")
        if "keyf" in names:
            if names != ["<module>", "main", "caller", "keyf"]:
                impossible.append((names, count))
            in_key += count
        elif names not in (["<module>", "main"], ["<module>", "main", "caller"]):
            impossible.append((names, count))
    assert not impossible
    assert in_key >= 0.1 * captured


# -- the rule that catches a copy taken while the top frame was pushed again -------------------


def _root_chunk(used_slots: int) -> tuple[int, bytes]:
    """A thread's oldest stack chunk: no previous chunk, `used_slots` words in use."""
    header = struct.pack("<QQQ", 0, 16 << 10, 0)
    return 0x7F0000000000, header + bytes(8 * used_slots)


def test_walk_must_reach_the_bottom_of_the_data_stack():
    chunk, data = _root_chunk(40)
    base = chunk + CHUNK_DATA
    # the bottom frame sits in the second slot (the first is kept), or the first
    Unwinder._check_bottom([(chunk, data)], base + 8)
    Unwinder._check_bottom([(chunk, data)], base)
    # a chain that stops at a frame higher up (its `previous` not linked yet) is torn
    with pytest.raises(TornStack):
        Unwinder._check_bottom([(chunk, data)], base + 8 + 10 * 8)
    # and so is one that never met the data stack although frames are on it
    with pytest.raises(TornStack):
        Unwinder._check_bottom([(chunk, data)], 0)
    # an empty data stack holds no frame to reach
    empty_chunk, empty = _root_chunk(1)
    Unwinder._check_bottom([(empty_chunk, empty)], 0)
    # a newer chunk above the root: the bottom is still the root's
    newer = (0x7F0000100000, struct.pack("<QQQ", chunk, 16 << 10, 0) + bytes(64))
    Unwinder._check_bottom([newer, (chunk, data)], base + 8)
    with pytest.raises(TornStack):
        Unwinder._check_bottom([newer, (chunk, data)], newer[0] + CHUNK_DATA)
    # chunks not read down to the root: nothing to check against
    Unwinder._check_bottom([newer], newer[0] + CHUNK_DATA + 16)
