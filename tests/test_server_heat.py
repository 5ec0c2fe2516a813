"""server.heat: per-line and per-function heat, on hand-built profiles and on a real one."""

from __future__ import annotations

import os
import textwrap

import pytest

from conftest import heatline, target
from sampler.model import GC_FRAME, Frame, Profile, ThreadSample
from sampler.replay import open_binary_profile
from server.heat import FunctionHeat, HeatIndex, LineHeat, Neighbor

A = "/p/a.py"


def make_profile(*stacks: tuple[list[Frame], int], tid: int = 1, profile: Profile | None = None) -> Profile:
    """Stacks given root first (as they read), stored leaf first (as the unwinder makes them)."""
    profile = profile or Profile()
    for frames, weight in stacks:
        profile.add(ThreadSample(tid, 0, tuple(reversed(frames))), weight)
    return profile


def f(funcname: str, lineno: int, filename: str = A) -> Frame:
    return Frame(filename, funcname, lineno)


@pytest.fixture
def recursive_index() -> HeatIndex:
    profile = make_profile(
        ([f("main", 10), f("f", 3)], 5),
        ([f("main", 10), f("f", 4), f("f", 4), f("f", 3)], 2),  # f:4 twice: recursion
        ([f("main", 11)], 3),
        ([f("main", 10), f("f", 3), GC_FRAME], 1),
    )
    return HeatIndex(profile)


def test_lines_count_self_and_total_once_per_stack(recursive_index: HeatIndex) -> None:
    h = recursive_index
    assert h.total_samples == 11
    assert h.filenames() == [A]  # the <GC> frame's "~" is no file
    assert h.lines(A) == {
        3: LineHeat(3, 7, 8),
        4: LineHeat(4, 0, 2),  # on the stack twice in 2 samples: total 2, not 4
        10: LineHeat(10, 0, 8),
        11: LineHeat(11, 3, 3),
    }
    assert h.lines("/p/other.py") == {}
    assert all(heat.total_samples <= h.total_samples for heat in h.lines(A).values())


def test_callers_and_callees(recursive_index: HeatIndex) -> None:
    h = recursive_index
    assert h.callers(A, 3) == [Neighbor("main", A, 10, 6), Neighbor("f", A, 4, 2)]
    assert h.callers(A, 3, limit=1) == [Neighbor("main", A, 10, 6)]
    # f:4 is called by main:10 and by itself, each in the same 2 samples
    assert h.callers(A, 4) == [Neighbor("f", A, 4, 2), Neighbor("main", A, 10, 2)]
    assert h.callers(A, 10) == []  # top of the stack: nobody called it
    assert h.callees(A, 10) == [Neighbor("f", A, 3, 6), Neighbor("f", A, 4, 2)]
    assert h.callees(A, 4) == [Neighbor("f", A, 3, 2), Neighbor("f", A, 4, 2)]
    assert h.callees(A, 3) == [Neighbor("<GC>", "~", 0, 1)]
    assert h.callees(A, 11) == []
    assert h.callers(A, 99) == [] and h.callers("/nowhere.py", 3) == []


def test_hottest_lines_and_functions(recursive_index: HeatIndex) -> None:
    h = recursive_index
    assert h.hottest_lines(2) == [(A, LineHeat(3, 7, 8), "f"), (A, LineHeat(11, 3, 3), "main")]
    # a tie on total goes by line
    assert [heat.line for _, heat, _ in h.hottest_lines(4, by="total")] == [3, 10, 11, 4]
    assert len(h.hottest_lines(100)) == 2  # lines without self weight are no hot self line
    assert h.hottest_functions(5) == [(A, "f", 3, 7, 8), (A, "main", 10, 3, 11)]
    assert h.hottest_functions(1, by="total") == [(A, "main", 10, 3, 11)]
    with pytest.raises(ValueError):
        h.hottest_lines(1, by="wall")


def test_threads_add_up_and_launcher_frames_are_stripped() -> None:
    launcher = Frame("/site/sampler/_coordinator.py", "main", 50)
    profile = make_profile(([launcher, f("main", 10), f("work", 20)], 4), tid=1)
    make_profile(([f("main", 10), f("work", 20)], 6), tid=2, profile=profile)
    make_profile(([launcher], 5), tid=1, profile=profile)  # plumbing only: dropped
    h = HeatIndex(profile)
    assert h.total_samples == 10
    assert h.filenames() == [A]
    assert h.lines(A) == {10: LineHeat(10, 0, 10), 20: LineHeat(20, 10, 10)}
    assert h.callers(A, 10) == []


WORKER_SOURCE = textwrap.dedent(
    """\
    import functools


    def deco(fn):
        return fn


    class Worker:
        @deco
        @deco
        def run(self):
            total = 0
            for i in range(10):
                total += self.step(i)
            return total

        def step(self, i):
            return i * 2


    def outer():
        def inner():
            return sum(range(100))
        return inner() + inner()


    def run():
        return Worker().run()


    def unsampled():
        pass


    if __name__ == "__main__":
        run()
        outer()
    """
)
W = "/p/worker.py"


def worker_profile(qualnames: bool) -> Profile:
    """Samples of WORKER_SOURCE named as 3.11+ (co_qualname) or 3.9/3.10 (co_name) name them."""

    def name(qualname: str) -> str:
        return qualname if qualnames else qualname.rsplit(".", 1)[-1]

    mod = f("<module>", 36, W)
    mod2 = f("<module>", 37, W)
    run = f("run", 28, W)
    return make_profile(
        ([mod, run, f(name("Worker.run"), 14, W), f(name("Worker.step"), 18, W)], 4),
        ([mod, run, f(name("Worker.run"), 12, W)], 1),
        ([mod, run, f(name("Worker.run"), 9, W)], 1),  # a call starting on its first decorator
        ([mod2, f("outer", 24, W), f(name("outer.<locals>.inner"), 23, W)], 6),
        ([mod2, f("outer", 24, W)], 2),
    )


EXPECTED_WORKER = [
    FunctionHeat("run", "Worker.run", 11, 15, 2, 6),
    FunctionHeat("step", "Worker.step", 17, 18, 4, 4),
    FunctionHeat("outer", "outer", 21, 24, 2, 8),
    FunctionHeat("inner", "outer.<locals>.inner", 22, 23, 6, 6),
    FunctionHeat("run", "run", 27, 28, 0, 6),
]


@pytest.mark.parametrize("qualnames", [True, False], ids=["qualname-3.11+", "plain-name-3.9"])
def test_functions_methods_nested_and_decorated(qualnames: bool) -> None:
    h = HeatIndex(worker_profile(qualnames))
    # the method and the module-level function are both "run": line spans tell them apart
    assert h.functions(W, WORKER_SOURCE) == EXPECTED_WORKER
    assert h.functions(W, WORKER_SOURCE) == EXPECTED_WORKER  # cached: same answer
    assert h.total_samples == 14


def test_functions_follow_the_source_given() -> None:
    h = HeatIndex(worker_profile(True))
    renamed = WORKER_SOURCE.replace("def ", "def x_")
    assert h.functions(W, renamed) == []  # no def named like any sampled frame
    assert h.functions(W, "def broken(:\n    pass\n") == []  # syntax error: line heat only
    assert h.functions(W, "x = 1\0\n") == []
    assert h.functions("/p/unsampled.py", WORKER_SOURCE) == []
    assert h.functions(W, WORKER_SOURCE) == EXPECTED_WORKER


def test_recursive_function_counted_once_per_stack() -> None:
    source = "def fact(n):\n    if n <= 1:\n        return 1\n    return n * fact(n - 1)\n\n\nfact(5)\n"
    F = "/p/fact.py"
    profile = make_profile(
        ([f("<module>", 7, F), f("fact", 4, F), f("fact", 4, F), f("fact", 3, F)], 3),
        ([f("<module>", 7, F), f("fact", 4, F), f("fact", 2, F)], 1),
        ([f("<module>", 7, F)], 1),
    )
    h = HeatIndex(profile)
    assert h.functions(F, source) == [FunctionHeat("fact", "fact", 1, 4, 4, 4)]
    assert h.lines(F)[4] == LineHeat(4, 0, 4)
    assert h.hottest_functions(2, by="total") == [(F, "<module>", 7, 1, 5), (F, "fact", 2, 4, 4)]


@pytest.mark.parametrize("inner_name", ["helper.<locals>.helper", "helper"], ids=["qualname", "plain-name"])
def test_nested_def_of_the_same_name_is_the_innermost(inner_name: str) -> None:
    source = "def helper():\n    def helper():\n        return 1\n    return helper()\n\n\nhelper()\n"
    F = "/p/same.py"
    profile = make_profile(([f("<module>", 7, F), f("helper", 4, F), f(inner_name, 3, F)], 5))
    assert HeatIndex(profile).functions(F, source) == [
        FunctionHeat("helper", "helper", 1, 4, 0, 5),
        FunctionHeat("helper", "helper.<locals>.helper", 2, 3, 5, 5),
    ]


def test_real_profile_of_known_lines(tmp_path) -> None:
    out = tmp_path / "known.bin"
    result = heatline("run", "--binary", "-o", str(out), target("known_lines.py"), "1.5")
    assert result.returncode == 0, result.stderr
    reader = open_binary_profile(out)
    profile = Profile(reader.run_stats())
    for timestamp_us, threads, weight in reader.samples(batch=True):
        profile.collect(timestamp_us, threads, weight)

    h = HeatIndex(profile)
    assert h.total_samples > 500
    (filename,) = [name for name in h.filenames() if name.endswith("known_lines.py")]
    hot_file, hot_line, hot_func = h.hottest_lines(1)[0]
    assert (hot_file, hot_line.line, hot_func) == (filename, 8, "inner")

    with open(target("known_lines.py"), encoding="utf-8") as fh:
        functions = {fn.qualname: fn for fn in h.functions(filename, fh.read())}
    assert functions["inner"].def_line == 5
    assert functions["inner"].self_samples > 0.5 * h.total_samples
    assert functions["main"].total_samples > 0.9 * h.total_samples
    assert "outer" not in functions  # never called
    assert os.path.basename(h.callers(filename, 8)[0].filename) == "known_lines.py"
    assert h.callers(filename, 8)[0].line == 21


# -- live updates --------------------------------------------------------------------------------


def answers(h: HeatIndex) -> tuple:
    """Everything the editor can ask of an index about A and W (W's functions from its text)."""
    per_file = tuple(
        (name, h.lines(name), [(n, h.callers(name, n, 100), h.callees(name, n, 100)) for n in sorted(h.lines(name))])
        for name in h.filenames()
    )
    return (h.total_samples, h.filenames(), per_file, h.functions(W, WORKER_SOURCE),
            h.hottest_lines(100), h.hottest_lines(100, by="total"),
            h.hottest_functions(100), h.hottest_functions(100, by="total"))


def test_update_counts_what_the_profile_gained_as_a_fresh_index_would() -> None:
    profile = Profile()
    h = HeatIndex(profile)
    assert h.total_samples == 0 and h.filenames() == [] and h.update() == []
    steps = [
        [([f("<module>", 0, "/p/late.py")], 2)],  # a file with no line yet: no file with heat
        [([f("main", 10), f("f", 3)], 5)],
        [([f("<module>", 0, "/p/late.py"), f("g", 7, "/p/late.py")], 1), ([f("main", 11)], 3)],
    ]
    new_files = []
    for stacks in steps:
        make_profile(*stacks, profile=profile)
        new_files.append(h.update())
        assert answers(h) == answers(HeatIndex(profile))
    assert new_files == [[], [A], ["/p/late.py"]]
    assert h.update() == []  # nothing gained: nothing to do
    # the worker's stacks arrive in two deltas; its functions follow
    worker = list(worker_profile(True).iter_stacks())
    for part, files in ((worker[:2], [W]), (worker[2:], [])):
        for tid, frames, weight in part:
            profile.add(ThreadSample(tid, 0, frames), weight)
        assert h.update() == files
        assert answers(h) == answers(HeatIndex(profile))
    assert h.functions(W, WORKER_SOURCE) == EXPECTED_WORKER


def test_per_file_views_are_recomputed_only_when_their_file_changed() -> None:
    profile = worker_profile(True)
    h = HeatIndex(profile)
    groupings = []
    grouped = h.index.grouped
    h.index.grouped = lambda key, filename=None: groupings.append(filename) or grouped(key, filename)
    assert h.functions(W, WORKER_SOURCE) == EXPECTED_WORKER
    assert groupings == [W]
    make_profile(([f("main", 10)], 3), profile=profile)  # a delta that does not touch W
    h.update()
    assert h.functions(W, WORKER_SOURCE) == EXPECTED_WORKER and groupings == [W]
    make_profile(([f("<module>", 37, W), f("outer", 24, W)], 2), profile=profile)  # one that does
    h.update()
    expected = [fn if fn.qualname != "outer" else FunctionHeat("outer", "outer", 21, 24, 4, 10)
                for fn in EXPECTED_WORKER]
    assert h.functions(W, WORKER_SOURCE) == expected and groupings == [W, W]


def test_the_view_follows_a_live_profile_without_rebuilding(tmp_path) -> None:
    from server.paths import PathMatcher
    from server.profile_view import ProfileView

    here = tmp_path / "proj"
    here.mkdir()
    for name in ("a.py", "b.py"):
        (here / name).write_text("x = 1\n")
    profile = make_profile(([f("main", 1, "a.py")], 2))
    profile.stats.cwd = str(here)
    view = ProfileView(profile=profile, source="run", label="t", started_at=0.0, live=True)
    assert view.cwd == str(here)  # from the run's RunStats
    index, matcher = view.index(), view.matcher(())
    assert matcher.filename_for(str(here / "b.py")) is None
    make_profile(([f("main", 1, "a.py"), f("g", 1, "b.py")], 1), ([f("<GC>", 0, "~")], 1), profile=profile)
    view.changed()
    assert view.index() is index and view.matcher(()) is matcher  # updated, not rebuilt
    assert matcher.filename_for(str(here / "b.py")) == "b.py"
    fresh = PathMatcher(HeatIndex(profile).filenames(), cwd=str(here))
    assert matcher.filenames == fresh.filenames == ["a.py", "b.py"]
    assert matcher._realpath_index() == fresh._realpath_index()
    assert index.total_samples == 4 and index.lines("b.py") == {1: LineHeat(1, 1, 1)}
    assert view.matcher((str(tmp_path),)) is not matcher  # other roots: another matcher
