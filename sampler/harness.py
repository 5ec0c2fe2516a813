"""A test runner's own frames, folded into one `<pytest>` frame so the user sees their code.

Profiling `python -m pytest path::test` samples pytest's collection, hook calls (pluggy) and
reporting around the user's test: dozens of frames under every stack, and on a short test a
good share of the time. When the target is pytest, `Profile` folds each run of those frames
into one synthetic `<pytest>` frame (no file, no line: it never gets line heat, a lens or a
hottest-line spot), so a flame graph shows a `<pytest>` block under the user's tests and every
line-level view shows the user's code only.

Which frames are the harness's is decided by path shape alone (the target may run any Python,
in any venv): a directory named `_pytest` anywhere (pytest's code, installed or a checkout), or
`pytest`, `pluggy`, a `pytest_*` plugin package or pytest's `py.py` shim directly inside a
`site-packages`/`dist-packages` directory. Once a stack (read from its root) is inside the
harness, the library frames it goes through on its way to the user's code are folded in too:
the standard library (importlib importing a test module, unittest running a TestCase) and
installed packages (plugins such as hypothesis's, and what they import). The first frame of the
user's code ends the fold, so what that code calls keeps its frames, installed or not. (A test
module that is itself installed, `pytest --pyargs`, is folded away with the harness.)
"""

from __future__ import annotations

import functools
import os
import re
from typing import Sequence

from .model import SYNTHETIC_FILENAME, Frame
from .sourcefiles import is_source_file, library_kind

HARNESS_NAME = "<pytest>"
HARNESS_FRAME = Frame(SYNTHETIC_FILENAME, HARNESS_NAME, 0)
_NATIVE_NAME = "<native>"

_HARNESS_RE = re.compile(
    r"(?:^|/)_pytest/"
    r"|(?:^|/)(?:site|dist)-packages/(?:pytest|pluggy|pytest_[A-Za-z0-9_]+|xdist)/"
    r"|(?:^|/)(?:site|dist)-packages/py\.py$"
)
_PYTEST_NAMES = ("pytest", "py.test")
_OPTIONS_WITH_VALUE = ("-X", "-W", "-Q", "--check-hash-based-pycs")  # the interpreter's

Stack = tuple[Frame, ...]


def runs_pytest(argv: Sequence[str]) -> bool:
    """Whether a command line runs pytest: `python [options] -m pytest ...`, or the `pytest` /
    `py.test` console script (as the program, or as the script a Python runs)."""
    if not argv:
        return False
    if os.path.basename(argv[0]) in _PYTEST_NAMES:
        return True
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return i + 1 < len(argv) and argv[i + 1] in _PYTEST_NAMES
        if arg.startswith("-m"):
            return arg[2:] in _PYTEST_NAMES
        if arg in ("-c", "-") or arg.startswith("-c"):
            return False
        if not arg.startswith("-"):  # the script
            return os.path.basename(arg) in _PYTEST_NAMES
        i += 2 if arg in _OPTIONS_WITH_VALUE else 1
    return False


@functools.lru_cache(maxsize=8192)
def is_harness_file(filename: str) -> bool:
    """A file of pytest itself, pluggy or a pytest plugin, by its path."""
    return _HARNESS_RE.search(filename.replace("\\", "/")) is not None


def _is_harness(frame: Frame) -> bool:
    if frame.is_synthetic:
        return frame.funcname == HARNESS_NAME
    return is_harness_file(frame.filename)


def _passes_through(frame: Frame) -> bool:
    """A frame the harness reaches the user's code through: a library's, C code, or code
    compiled from a string (`<string>`, attrs' generated methods)."""
    if frame.is_synthetic:
        return frame.funcname == _NATIVE_NAME
    return _not_users(frame.filename)


@functools.lru_cache(maxsize=8192)
def _not_users(filename: str) -> bool:
    return library_kind(filename) is not None or not is_source_file(filename)


def fold_harness(frames: Stack) -> Stack:
    """`frames` (leaf first) with each run of harness frames, and the library frames it calls
    on the way to the user's code, as one `<pytest>` frame. Returns `frames` itself
    when nothing is folded; folding a folded stack changes nothing."""
    root_first = frames[::-1]
    # Libraries at the root that lead into the harness (runpy's import of pytest) are its too.
    start = 0
    while start < len(root_first) and not _is_harness(root_first[start]) and _passes_through(root_first[start]):
        start += 1
    leads_in = 0 < start < len(root_first) and _is_harness(root_first[start])
    kept: list[Frame] = [HARNESS_FRAME] if leads_in else []  # root first
    inside = leads_in
    for frame in root_first[start if leads_in else 0:]:
        if _is_harness(frame):
            if not inside:
                kept.append(HARNESS_FRAME)
                inside = True
        elif not (inside and _passes_through(frame)):
            kept.append(frame)
            inside = False
    if len(kept) == len(frames) and all(a == b for a, b in zip(kept, root_first)):
        return frames
    kept.reverse()
    return tuple(kept)
