"""LineIndex: incremental updates equal a build from scratch, recursion counts once, and a real
target's known lines get their known shares. sourcefiles: classification and definitions."""

from __future__ import annotations

import random

import pytest

from conftest import favoured, heatline, target
from sampler import sourcefiles
from sampler.lineindex import LineIndex
from sampler.loaders import load_profile
from sampler.model import GC_FRAME, HAS_GIL, Frame, Profile, RunStats, ThreadSample

KNOWN_LINES = target("known_lines.py")


def record(tmp_path_factory, script: str, *args: str, duration: str = "1.5") -> Profile:
    path = tmp_path_factory.mktemp("lineindex") / "p.bin"
    result = heatline("run", "-a", "-d", duration, "--binary", "-o", str(path), script, *args, prefix=favoured())
    assert result.returncode == 0, result.stderr
    return load_profile(str(path)).profile


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> Profile:
    """Three threads, hundreds of distinct stacks 3-24 deep, over 12 functions."""
    return record(tmp_path_factory, target("varied_stacks.py"), "30")


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> Profile:
    """known_lines.py: inner() loops at line 8, called from main() at line 21."""
    return record(tmp_path_factory, KNOWN_LINES, "30")


def snapshot(index: LineIndex) -> dict:
    """Everything a reader can ask, orders included (pstats files keep first-seen order)."""
    files = index.filenames()
    spots = index.spots

    def by_line(spot: int):
        filename, lineno, _funcname = spots[spot]
        return (filename, lineno) if lineno > 0 and filename != "~" else None

    return {
        "total": index.total,
        "spots": list(index.spot_heat()),
        "pairs": list(index.spot_pairs()),
        "files": files,
        "file_heat": [index.file_heat(f) for f in files],
        "lines": [sorted(index.lines(f).items()) for f in files],
        "functions": [sorted(index.functions(f).items()) for f in files],
        "all_functions": list(index.all_functions()),
        "synthetic": list(index.synthetic_leaves.items()),
        "scripts": list(index.script_files),
        "max": index.max_line_heat(),
        "grouped": index.grouped(by_line),
        "calls": index.pairs(lambda s: spots[s], by_line),
        "stacks": sorted((tuple(spots[s] for s in stack), w) for stack, w in index.stacks()),
    }


def split(items: list, rng: random.Random) -> list[list]:
    """`items` in order, cut into 1-20 runs of random lengths."""
    cuts = sorted(rng.sample(range(1, len(items)), min(len(items) - 1, rng.randint(0, 19))))
    return [items[a:b] for a, b in zip([0] + cuts, cuts + [len(items)])]


def test_incremental_updates_equal_a_build_from_scratch(varied):
    stacks = list(varied.iter_stacks())
    assert len(stacks) > 100
    whole = snapshot(LineIndex(stacks))
    assert whole == snapshot(LineIndex.from_profile(varied))
    for seed in range(8):
        rng = random.Random(seed)
        # a stack's weight may arrive in several updates, as it does over a live run's deltas
        pieces = []
        for tid, frames, weight in stacks:
            first = rng.randint(1, weight)
            pieces.append((tid, frames, first))
            if weight > first:
                pieces.append((tid, frames, weight - first))
        index = LineIndex()
        for number, run in enumerate(split(pieces, rng)):
            index.update(run)
            if number == seed % 3:  # call pairs are counted from the first ask on
                list(index.spot_pairs())
        assert snapshot(index) == whole, seed


def test_profile_deltas_applied_in_turn_equal_the_whole_profile(varied):
    stacks = list(varied.iter_stacks())
    rng = random.Random(1)
    profile = Profile()
    index = LineIndex()
    mark = None
    for run in split(stacks, rng):
        for tid, frames, weight in run:
            profile.add(ThreadSample(tid, HAS_GIL, frames), weight)
        index.apply(profile.delta_since(mark))
        mark = profile.mark()
    assert snapshot(index) == snapshot(LineIndex.from_profile(profile)) == snapshot(LineIndex(stacks))
    with pytest.raises(ValueError):
        LineIndex().apply(profile.delta_since(mark))  # a delta of a profile it never saw whole


def test_an_update_touches_only_the_files_it_names(varied):
    index = LineIndex.from_profile(varied)
    before = {f: index.file_generation(f) for f in index.filenames()}
    index.update([(1, (Frame("/elsewhere/new.py", "f", 3),), 2)])
    assert index.file_generation("/elsewhere/new.py") == index.generation
    assert all(index.file_generation(f) == g for f, g in before.items())
    assert index.lines("/elsewhere/new.py") == {3: (2, 2)}


def test_recursion_counts_once_per_stack():
    path = "/p/r.py"
    rec = [Frame(path, "rec", 10, col=c) for c in range(5)]  # columns differ: one spot
    leaf = Frame(path, "rec", 6)
    main = Frame(path, "<module>", 20)
    index = LineIndex([
        (1, (leaf, *rec, main), 3),
        (2, (leaf, *rec[:2], main), 2),
        (1, (*rec, main), 1),
        (1, (GC_FRAME, *rec, main), 4),
    ])
    assert index.total == 10
    assert index.lines(path) == {6: (5, 5), 10: (1, 10), 20: (0, 10)}
    assert index.functions(path)["rec"] == (6, 10, 6)
    assert index.file_heat(path) == (6, 10)
    assert index.synthetic_leaves == {"<GC>": 4}
    assert list(index.script_files) == [path]
    pairs = {(callee[1], caller[1]): (n, leaf_n) for callee, caller, n, leaf_n in index.spot_pairs()}
    assert pairs == {(6, 10): (5, 5), (10, 10): (10, 1), (10, 20): (10, 0), (0, 10): (4, 4)}
    self_w, total_w = index.grouped(lambda s: index.spots[s][2])
    assert self_w == {"rec": 6, "<GC>": 4} and total_w == {"rec": 10, "<module>": 10, "<GC>": 4}
    assert index.line_spots(path, 10) == [((path, 10, "rec"), 10)]


def test_known_target_proportions(known):
    index = LineIndex.from_profile(known)
    lines = index.lines(KNOWN_LINES)
    assert index.total > 500
    assert max(lines, key=lambda n: lines[n].self_samples) == 8  # the hot line
    assert lines[7].self_samples + lines[8].self_samples >= 0.9 * index.total  # inner()'s loop
    assert lines[21].total_samples >= 0.9 * index.total  # main() calls inner() from line 21
    assert lines[21].self_samples <= 0.1 * index.total
    assert index.functions(KNOWN_LINES)["inner"].total_samples >= 0.9 * index.total
    assert "outer" not in index.functions(KNOWN_LINES)  # defined, never called
    callers = {caller: n for callee, caller, n, _leaf in index.spot_pairs() if callee[1] == 8}
    assert callers == {(KNOWN_LINES, 21, "main"): lines[8].total_samples}


# -- sourcefiles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name, real", [
    ("/p/a.py", True), ("a.py", True), ("~", False), ("", False), ("<string>", False),
    ("<frozen posixpath>", False), ("<script>alert(3)</script>", False),
])
def test_source_file_names(name, real):
    assert sourcefiles.is_source_file(name) is real


def test_library_files_by_path_shape():
    assert sourcefiles.library_kind("/usr/lib64/python3.9/json/decoder.py") == sourcefiles.STDLIB
    assert sourcefiles.library_kind("/opt/pypy/lib/pypy3.10/os.py") == sourcefiles.STDLIB
    assert sourcefiles.library_kind("C:\\Python311\\Lib\\os.py") == sourcefiles.STDLIB
    assert sourcefiles.library_kind("<frozen os>") == sourcefiles.STDLIB
    assert sourcefiles.library_kind("/v/lib/python3.12/site-packages/a/b.py") == sourcefiles.SITE
    assert sourcefiles.library_kind("/home/me/app.py") is None
    assert sourcefiles.module_name("/usr/lib64/python3.9/json/decoder.py") == "json.decoder"
    assert sourcefiles.display_path("/v/lib/python3.12/site-packages/a/b.py", sourcefiles.SITE, ()) == "a/b.py"


SOURCE = '''\
import functools


class Worker:
    @functools.lru_cache
    def run(self):
        def inner():
            return [x for x in range(3)]
        return inner()


square = lambda n: n * n
'''


def test_definitions_and_def_lines():
    defs = sourcefiles.definitions(SOURCE)
    assert defs is sourcefiles.definitions(SOURCE)  # parsed once
    assert [(d.qualname, d.def_line, d.end_line, d.first_line) for d in defs.functions] == [
        ("Worker.run", 6, 9, 5), ("Worker.run.<locals>.inner", 7, 8, 7),
    ]
    assert defs.def_line("Worker.run", 9) == 6
    assert defs.def_line("run", 5) == 6  # a call's first instruction can sit on a decorator
    assert defs.def_line("inner", 8) == 7
    assert defs.def_line("<listcomp>", 8) == 8
    assert defs.def_line("<lambda>", 12) == 12
    assert defs.def_line("<module>", 12) == 1
    assert defs.def_line("missing", 3) is None
    assert defs.innermost("inner", 8, kinds=(sourcefiles.FUNCTION,)).qualname == "Worker.run.<locals>.inner"
    broken = sourcefiles.definitions("def later(:\n    pass\ndef  other():\n    x = 1\n")
    assert not broken.parsed and broken.functions == []
    assert broken.def_line("other", 4) == 3  # found in the text when it does not parse


def test_read_source_is_cached_until_the_file_changes(tmp_path):
    path = tmp_path / "m.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\r\nx = '\xe9'\rdef f():\n    pass\n")
    first = sourcefiles.read_source(str(path))
    assert first.lines == ["# -*- coding: latin-1 -*-", "x = 'é'", "def f():", "    pass"]
    assert sourcefiles.read_source(str(path)) is first
    assert first.definitions.def_line("f", 4) == 3
    path.write_text("def f():\n    pass\n\n\n")
    assert sourcefiles.read_source(str(path)).lines == ["def f():", "    pass", "", ""]
    with pytest.raises(sourcefiles.SourceUnreadable) as err:
        sourcefiles.read_source(str(tmp_path))
    assert err.value.reason == "it is not a regular file"
