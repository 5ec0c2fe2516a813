"""The `--live` screen's data model (`sampler.tui.table`), without curses: real targets sampled
into a `Profile` whose deltas are fed to a `LiveTable` in steps, held to `LineIndex.from_profile`
of the whole profile; sorting, filtering, threads, reset, trends, source views and export."""

from __future__ import annotations

import ast
import glob
import os
import subprocess
import sys

import pytest

from conftest import favoured, target, wait_ready
from sampler.collectors import COLLECTORS
from sampler.cpython.walkers import open_source
from sampler.lineindex import LineIndex
from sampler.model import (GC_FRAME, GIL_REQUESTED, HAS_EXCEPTION, HAS_GIL, ON_CPU, Frame, Profile, RunStats,
                           ThreadSample, task_frame)
from sampler.sampling import SamplingLoop
from sampler.tui.table import DEFAULT_SORT, SORT_KEYS, SORT_TITLES, LiveTable, Row

HOSTILE = glob.glob(target("hostile_<script>*_names.py"))[0]
LEAF_NAME = "<script>alert(1)</script>"
OUTER_NAME = "\"><img src=x onerror=alert(2)>'&amp;💥"
STEPS = 4


class Sampled:
    """A real target's profile and the deltas it grew by, one per sampling step."""

    def __init__(self, profile: Profile, deltas: list) -> None:
        self.profile = profile
        self.deltas = deltas

    def table(self) -> LiveTable:
        table = LiveTable(self.profile.stats.interval_usec)
        for delta in self.deltas:
            table.apply(delta)
        return table


def sample_target(script: str, *args: str, all_threads: bool = False, mode: str = "wall", step_s: float = 0.4,
                  prefix: list[str] | None = None) -> Sampled:
    proc = subprocess.Popen([*(prefix or []), sys.executable, script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(proc)
        source = open_source(proc.pid, all_threads=all_threads, mode=mode)
        try:
            profile = Profile(RunStats(pid=proc.pid, mode=mode, all_threads=all_threads, interval_usec=1000))
            mark = profile.mark()
            deltas = []
            for _ in range(STEPS):
                SamplingLoop(source, profile, interval_usec=1000, duration_s=step_s).run()
                deltas.append(profile.delta_since(mark))
                mark = profile.mark()
        finally:
            source.close()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert profile.total_weight > 200, "too few samples to judge shares"  # 1,600 on an idle machine
    return Sampled(profile, deltas)


@pytest.fixture(scope="module")
def known() -> Sampled:
    # inner()'s loop, line 8 its body, takes nearly all the time; favoured, so that a loaded
    # machine does not freeze it elsewhere for long.
    return sample_target(target("known_lines.py"), "60", prefix=favoured())


@pytest.fixture(scope="module")
def threads() -> Sampled:
    return sample_target(target("threads.py"), all_threads=True)


@pytest.fixture(scope="module")
def gc_heavy() -> Sampled:
    return sample_target(target("gc_heavy.py"))


@pytest.fixture(scope="module")
def hostile() -> Sampled:
    return sample_target(HOSTILE, "60", step_s=0.25)


def heat_of(rows: list[Row]) -> dict:
    return {(r.filename, r.lineno, r.funcname): (r.direct, r.cumulative) for r in rows}


def index_heat(index: LineIndex) -> dict:
    return {spot: tuple(heat) for spot, heat in index.spot_heat()}


def synthetic(*samples: tuple[int, int, tuple[Frame, ...], int], stats: RunStats | None = None) -> Profile:
    """A profile of (tid, status, frames leaf first, weight) samples."""
    profile = Profile(stats or RunStats())
    for tid, status, frames, weight in samples:
        profile.add(ThreadSample(tid, status, frames), weight)
    return profile


# -- real targets ---------------------------------------------------------------------------------


def test_known_hottest_line_tops_the_table_with_its_share(known):
    table = known.table()
    total = LineIndex.from_profile(known.profile).total
    rows = table.rows()
    assert table.sort_key == DEFAULT_SORT == "tottime"
    top = rows[0]
    assert (os.path.basename(top.filename), top.funcname) == ("known_lines.py", "inner"), rows[:3]
    assert top.lineno in (7, 8)  # the loop's body, or its header
    assert top.location == f"known_lines.py:{top.lineno}"
    assert top.direct_pct == pytest.approx(top.direct / total * 100)
    assert top.self_s == pytest.approx(top.direct * 0.001) and top.cumulative_s == pytest.approx(top.cumulative * 0.001)
    # As test_sampling_e2e measures it: inner() >95% of the samples, its loop >80%.
    assert sum(r.direct_pct for r in rows if r.funcname == "inner") > 95
    assert sum(r.direct_pct for r in rows if r.funcname == "inner" and r.lineno in (7, 8)) > 80
    # main() is on every stack, at one of its lines each time (no recursion: the rows add up).
    assert sum(r.cumulative_pct for r in rows if r.funcname == "main") > 99
    assert max(r.cumulative_pct for r in rows) <= 100
    assert table.rows(limit=2) == rows[:2]


def test_incremental_rows_equal_the_whole_profile_index(known, threads):
    for sampled in (known, threads):
        expected = index_heat(LineIndex.from_profile(sampled.profile))
        assert heat_of(sampled.table().rows()) == expected
        once = LiveTable(1000)
        once.apply(sampled.profile.delta_since(None))  # the same samples in one delta
        assert heat_of(once.rows()) == expected


def test_header_figures_follow_the_profile(threads):
    table = threads.table()
    stats = threads.profile.stats
    figures = table.figures(stats, now=stats.start_monotonic_us / 1e6 + 2.0)
    assert (figures.good, figures.failed, figures.samples) == (stats.samples, stats.errors, stats.samples + stats.errors)
    assert figures.asked_rate == 1000.0
    assert figures.uptime_s == stats.duration_s  # the run ended: its duration
    assert figures.rate == pytest.approx(stats.samples / stats.duration_s)
    profile = threads.profile
    for name, flag in (("gil_held", HAS_GIL), ("gil_waiting", GIL_REQUESTED), ("on_cpu", ON_CPU),
                       ("exception", HAS_EXCEPTION)):
        assert getattr(figures, name) == pytest.approx(profile.status_share(flag)), name
    assert figures.gil_released == pytest.approx(1 - figures.gil_held)
    rows = table.rows()
    assert figures.functions == len(rows) == figures.shown
    assert figures.executing == sum(1 for r in rows if r.direct) and figures.executing > 0
    assert figures.on_stack_only == sum(1 for r in rows if not r.direct) > 0  # main_loop, thread bootstrap...
    # Top 3: functions, each one's lines summed (a function hot on two lines is one entry).
    per_function: dict[tuple[str, str], float] = {}
    for r in rows:
        per_function[(r.filename, r.funcname)] = per_function.get((r.filename, r.funcname), 0.0) + r.direct_pct
    hottest = sorted(per_function.values(), reverse=True)[:3]
    assert [pct for _name, pct in figures.top] == pytest.approx(hottest)  # ties may come in any order
    by_name = {funcname: pct for (_f, funcname), pct in per_function.items()}
    assert all(by_name[name] == pytest.approx(pct) for name, pct in figures.top)
    assert len({name for name, _pct in figures.top}) == len(figures.top)  # the workers' one function, once
    assert figures.thread_label == "ALL"


def test_thread_views_sum_to_all_and_carry_names(threads):
    table = threads.table()
    profile = threads.profile
    all_rows = heat_of(table.rows())
    tids = table.thread_ids()
    assert sorted(tids) == sorted(profile.status_counts)
    assert len(tids) == 9  # the main thread and eight workers
    names = {table.thread_name(tid) for tid in tids}
    assert {f"worker-{i}" for i in range(8)} <= names and "MainThread" in names
    summed: dict = {}
    table.toggle_threads()
    assert table.selected_thread == tids[0]
    for k, tid in enumerate(tids):
        assert table.selected_thread == tid
        figures = table.figures(profile.stats)
        assert figures.thread_label == f"{table.thread_name(tid)} (TID {tid})  {k + 1}/{len(tids)}"
        counts = profile.status_counts[tid]
        on_cpu = sum(n for bits, n in counts.items() if bits & ON_CPU) / sum(counts.values())
        assert figures.on_cpu == pytest.approx(on_cpu)
        rows = table.rows()
        total = sum(w for (t, ids), w in profile.stacks.items() if t == tid and ids)
        for r in rows:
            assert r.direct_pct == pytest.approx(r.direct / total * 100)  # of the thread's samples
            d, c = summed.get((r.filename, r.lineno, r.funcname), (0, 0))
            summed[(r.filename, r.lineno, r.funcname)] = (d + r.direct, c + r.cumulative)
        worker = [r for r in rows if r.funcname.startswith("worker_")]
        if table.thread_name(tid).startswith("worker-"):
            assert {r.funcname for r in worker} == {"worker_" + table.thread_name(tid).split("-")[1]}
        else:
            assert not worker
        table.step_thread(+1)
    assert table.selected_thread == tids[0]  # wrapped
    assert summed == all_rows
    table.step_thread(-1)
    assert table.selected_thread == tids[-1]
    table.toggle_threads()
    assert table.selected_thread is None and table.figures(profile.stats).thread_label == "ALL"
    table.step_thread(+1)
    assert table.selected_thread is None  # no-op in the ALL view
    table.toggle_threads()
    assert table.selected_thread == tids[-1]  # the one last shown


def test_a_thread_view_looked_at_early_keeps_up(threads):
    table = LiveTable(1000)
    table.apply(threads.deltas[0])
    table.toggle_threads()
    table.step_thread(+1)
    tid = table.selected_thread
    before = table.rows()
    assert before
    for delta in threads.deltas[1:]:
        table.apply(delta)
    frames = threads.profile.frames
    expected = LineIndex((t, tuple(frames[i] for i in ids), w) for (t, ids), w in threads.profile.stacks.items()
                         if t == tid)
    assert heat_of(table.rows()) == index_heat(expected)
    assert sum(r.direct for r in table.rows()) > sum(r.direct for r in before)


def test_each_sort_key_orders_its_column_both_ways(threads):
    table = threads.table()
    column = {"nsamples": "direct", "sample_pct": "direct_pct", "tottime": "self_s",
              "cumul_pct": "cumulative_pct", "cumtime": "cumulative_s"}
    start = SORT_KEYS.index(DEFAULT_SORT)
    for step in (+1, -1):
        seen = []
        for n in range(len(SORT_KEYS)):
            assert table.sort_key == SORT_KEYS[(start + n * step) % len(SORT_KEYS)]
            assert SORT_TITLES[table.sort_key]
            rows = table.rows()
            values = [getattr(r, column[table.sort_key]) for r in rows]
            assert values == sorted(values, reverse=True), table.sort_key
            other = "cumulative" if table.sort_key in ("nsamples", "sample_pct", "tottime") else "direct"
            first = "direct" if other == "cumulative" else "cumulative"
            for a, b in zip(rows, rows[1:]):  # ties broken by the other count
                if getattr(a, first) == getattr(b, first):
                    assert getattr(a, other) >= getattr(b, other)
            seen.append(table.sort_key)
            table.cycle_sort(step)
        assert sorted(seen) == sorted(SORT_KEYS) and table.sort_key == DEFAULT_SORT
    table.cycle_sort(+1)
    by_cumulative = table.rows()
    assert by_cumulative[0].cumulative == max(r.cumulative for r in by_cumulative)


def test_filter_by_file_function_and_file_func(threads):
    table = threads.table()
    everything = table.rows()
    files = {os.path.basename(r.filename) for r in everything}
    assert {"threads.py", "threading.py"} <= files
    table.set_filter("THREADING.py")  # any case
    rows = table.rows()
    assert rows and all(r.filename.endswith("threading.py") for r in rows)
    assert table.figures(threads.profile.stats).shown == len(rows) < len(everything)
    assert table.figures(threads.profile.stats).functions == len(everything)
    table.set_filter("worker_3")
    assert {r.funcname for r in table.rows()} == {"worker_3"}
    table.set_filter("threads.py:main_loop")
    rows = table.rows()
    assert rows and {r.funcname for r in rows} == {"main_loop"}
    table.set_filter("threading.py:main_loop")
    assert table.rows() == []
    assert table.figures(threads.profile.stats).top == []
    table.set_filter("")
    assert table.filter_text is None and table.rows() == everything
    table.set_filter("nothing-is-called-this")
    assert table.rows() == []
    table.set_filter(None)
    assert heat_of(table.rows()) == heat_of(everything)


def test_reset_forgets_and_the_view_restarts(known):
    sampled = known
    table = LiveTable(1000)
    table.apply(sampled.deltas[0])
    stats = RunStats(samples=500, errors=3, attempts=503, start_monotonic_us=1_000_000)
    table.figures(stats, now=2.0)
    table.toggle_threads()
    table.reset(now=2.0)
    assert table.rows() == [] and table.thread_ids() == [] and table.selected_thread is None
    figures = table.figures(stats, now=2.0)
    assert (figures.samples, figures.good, figures.failed, figures.functions, figures.rate) == (0, 0, 0, 0, 0.0)
    assert figures.uptime_s == 1.0  # the run's uptime goes on
    assert table.profile().total_weight == 0
    for delta in sampled.deltas[1:]:
        table.apply(delta)
    frames = sampled.profile.frames
    expected = LineIndex((tid, tuple(frames[i] for i in ids), w)
                         for delta in sampled.deltas[1:] for (tid, ids), w in delta.stacks.items())
    assert heat_of(table.rows()) == index_heat(expected)
    stats.samples, stats.errors = 1500, 4
    figures = table.figures(stats, now=4.0)
    assert (figures.good, figures.failed, figures.samples, figures.rate) == (1000, 1, 1001, 500.0)
    assert table.thread_ids() == list(sampled.profile.status_counts)


def test_thread_names_outlive_a_reset_and_files_do_not():
    # A name comes once, in the delta it first appears in (or changes in).
    profile = synthetic((5, HAS_GIL, (Frame("/app/a.py", "a", 1),), 1))
    profile.thread_names[5] = "worker"
    mark = profile.mark()
    table = LiveTable(1000)
    table.apply(profile.delta_since(None))
    assert [r.location for r in table.rows()] == ["a.py:1"]
    table.reset()
    profile.add(ThreadSample(5, HAS_GIL, (Frame("/app/b.py", "b", 2),)))
    table.apply(profile.delta_since(mark))
    assert table.thread_ids() == [5] and table.thread_name(5) == "worker"
    assert table.profile().thread_names == {5: "worker"}
    assert [r.location for r in table.rows()] == ["b.py:2"]


def test_profile_round_trips(known, threads, tmp_path):
    for sampled in (known, threads):
        table = sampled.table()
        out = table.profile()
        assert index_heat(LineIndex.from_profile(out)) == heat_of(table.rows())
        assert out.status_counts == sampled.profile.status_counts
        assert out.thread_names == sampled.profile.thread_names
        assert out.stats.interval_usec == 1000
        for tid in table.thread_ids():
            table.selected_thread = tid
            mine = LineIndex((t, frames, w) for t, frames, w in out.iter_stacks() if t == tid)
            assert index_heat(mine) == heat_of(table.rows())
        written = COLLECTORS["collapsed"](out).write(str(tmp_path / "live.txt"))
        assert os.path.getsize(written) > 0
    table = threads.table()
    table.reset()
    table.apply(threads.profile.delta_since(threads.profile.mark()))  # nothing new: still empty
    assert table.profile().total_weight == 0


def test_source_view_shows_the_def_with_line_heat(known):
    table = known.table()
    row = next(r for r in table.rows() if r.funcname == "inner" and r.lineno == 8)
    view = table.source_view(row)
    tree = ast.parse(open(row.filename).read())
    inner = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "inner")
    assert view.first_line == inner.lineno and view.focus == 8 and view.note is None
    assert [n for n, *_ in view.lines] == list(range(inner.lineno, inner.end_lineno + 1))
    heat = LineIndex.from_profile(known.profile).lines(row.filename)
    by_line = {n: (text, d, c) for n, text, d, c in view.lines}
    assert by_line[8] == ("        x += i * i  # line 8: the hot line", *heat[8])
    assert by_line[8][1:] == (row.direct, row.cumulative)  # one function on the line
    module = next(r for r in table.rows() if r.funcname == "<module>")
    whole = table.source_view(module)
    assert whole.first_line == 1 and len(whole.lines) == len(open(row.filename).read().splitlines())


def test_source_view_without_a_readable_definition(tmp_path):
    gone = str(tmp_path / "gone.py")
    edited = tmp_path / "edited.py"
    edited.write_text("def other():\n    pass\n" + "\n" * 20 + "x = 1\n")
    stats = RunStats(start_time=0.0)
    profile = synthetic(
        (1, HAS_GIL, (Frame(gone, "work", 12), Frame(gone, "<module>", 3)), 5),
        (1, HAS_GIL, (Frame(str(edited), "work", 10), Frame(gone, "<module>", 3)), 4),
        (1, HAS_GIL, (Frame("<string>", "f", 2),), 2),
        (1, HAS_GIL, (GC_FRAME, Frame(gone, "<module>", 3)), 1),
    )
    table = LiveTable(1000)
    table.apply(profile.delta_since(None))
    table.figures(stats)
    rows = {(r.filename, r.funcname): r for r in table.rows()}
    view = table.source_view(rows[(gone, "work")])
    assert view.lines == [(12, "", 5, 5)] and view.note.startswith("source not readable")
    view = table.source_view(rows[(str(edited), "work")])
    assert "no definition of work holds line 10" in view.note
    assert "changed since the run started" in view.note
    assert [n for n, *_ in view.lines] == list(range(7, 14))  # the sampled line, 3 either side
    assert view.lines[3] == (10, "", 4, 4)
    view = table.source_view(rows[("<string>", "f")])
    assert view.lines == [(2, "", 2, 2)] and "not a file" in view.note
    assert table.source_view(rows[("~", "<GC>")]) is None


def test_gc_rows_and_share(gc_heavy):
    table = gc_heavy.table()
    rows = table.rows()
    gc_row = next(r for r in rows if r.funcname == "<GC>")
    assert (gc_row.filename, gc_row.lineno, gc_row.location) == ("~", 0, "-")
    assert gc_row.direct == gc_row.cumulative > 0
    figures = table.figures(gc_heavy.profile.stats)
    samples = sum(sum(c.values()) for c in gc_heavy.profile.status_counts.values())
    assert figures.gc == pytest.approx(gc_row.direct / samples)
    assert figures.gc > 0.2  # as test_sampling_e2e's test_gc_frames
    assert table.source_view(gc_row) is None
    table.set_filter("<gc>")
    assert [r.funcname for r in table.rows()] == ["<GC>"]


def test_hostile_names_pass_through_untouched(hostile):
    table = hostile.table()
    rows = table.rows()
    leaf = rows[0]
    assert (leaf.filename, leaf.funcname) == (HOSTILE, LEAF_NAME)
    assert leaf.location == f"{os.path.basename(HOSTILE)}:{leaf.lineno}"
    assert OUTER_NAME in {r.funcname for r in rows}
    table.set_filter("<script>alert")
    assert {r.funcname for r in table.rows()} == {LEAF_NAME}
    table.set_filter("<script>'")  # the file's name
    assert table.rows() == [r for r in rows if r.filename == HOSTILE]
    table.set_filter("onerror=alert(2)>'&amp;💥")
    assert {r.funcname for r in table.rows()} == {OUTER_NAME}
    table.set_filter(None)
    # The code was renamed after its def: no def of that name, so the sampled lines and a note.
    view = table.source_view(leaf)
    assert f"no definition of {LEAF_NAME}" in view.note
    assert any(n == leaf.lineno and text.strip().startswith("x += i * i") for n, text, _d, _c in view.lines)


def test_a_function_called_script():
    hostile = Frame("/tmp/<script>'\"💥.py", "<script>", 4)
    profile = synthetic((7, HAS_GIL | ON_CPU, (hostile, Frame("/tmp/<script>'\"💥.py", "<module>", 9)), 3))
    profile.thread_names[7] = "<b>x</b>"
    table = LiveTable(1000)
    table.apply(profile.delta_since(None))
    row = table.rows()[0]
    assert (row.funcname, row.location, row.direct_pct) == ("<script>", "<script>'\"💥.py:4", 100.0)
    table.toggle_threads()
    assert table.figures(RunStats()).thread_label == "<b>x</b> (TID 7)  1/1"
    table.set_filter("<SCRIPT>'")
    assert len(table.rows()) == 2


def test_task_rows_say_they_are_tasks():
    """--async-aware's task markers have no file or line: their rows say "asyncio task" and open no
    source; a filter on `<task>` finds them all."""
    leaf = Frame("/app/aio.py", "crunch", 21)
    profile = synthetic((7, HAS_GIL | ON_CPU, (leaf, task_frame("heavy"), Frame("/app/aio.py", "main", 9),
                                                 task_frame("Task-1")), 3))
    table = LiveTable(1000)
    table.apply(profile.delta_since(None))
    tasks = {r.funcname: r for r in table.rows() if r.filename == "<task>"}
    assert set(tasks) == {"heavy", "Task-1"}
    assert all(r.location == "asyncio task" and r.cumulative == 3 for r in tasks.values())
    assert table.source_view(tasks["heavy"]) is None
    table.set_filter("<task>")
    assert {r.funcname for r in table.rows()} == {"heavy", "Task-1"}


# -- trends ----------------------------------------------------------------------------------------


def test_trends_flip_when_a_share_moves():
    a, b = Frame("/app/a.py", "a", 1), Frame("/app/b.py", "b", 2)
    profile = synthetic((1, HAS_GIL, (a,), 10), (1, HAS_GIL, (b,), 10))
    mark = profile.mark()
    table = LiveTable(1000)
    table.apply(profile.delta_since(None))
    assert {r.trends for r in table.rows()} == {(0, 0, 0, 0, 0)}  # nothing to compare with yet
    profile.add(ThreadSample(1, HAS_GIL, (a,)), 30)
    table.apply(profile.delta_since(mark))
    mark = profile.mark()
    trends = {r.funcname: r.trends for r in table.rows()}
    assert trends == {"a": (1, 1, 1, 1, 1), "b": (0, -1, 0, -1, 0)}
    assert {r.funcname: r.trends for r in table.rows()} == trends  # a redraw shows the same
    assert table.trends_enabled
    table.toggle_trends()
    assert not table.trends_enabled and {r.funcname: r.trends for r in table.rows()} == trends
    c = Frame("/app/c.py", "c", 3)
    profile.add(ThreadSample(1, HAS_GIL, (b,)), 40)
    profile.add(ThreadSample(1, HAS_GIL, (c,)), 1)
    table.apply(profile.delta_since(mark))
    trends = {r.funcname: r.trends for r in table.rows()}
    assert trends == {"a": (0, -1, 0, -1, 0), "b": (1, 1, 1, 1, 1), "c": (1, 1, 1, 1, 1)}


# -- edges -----------------------------------------------------------------------------------------


def test_an_empty_view():
    table = LiveTable(1000)
    assert table.rows() == [] and table.rows(limit=5) == [] and table.thread_ids() == []
    figures = table.figures(RunStats())
    assert figures.samples == figures.good == figures.functions == figures.shown == 0
    assert figures.rate == figures.gil_held == figures.gil_released == figures.gc == figures.uptime_s == 0.0
    assert figures.top == [] and figures.thread_label == "ALL"
    table.toggle_threads()
    table.step_thread(1)
    assert table.selected_thread is None
    table.apply(Profile().delta_since(None))
    assert table.rows() == [] and table.profile().total_weight == 0
    # Samples whose stacks were all launcher plumbing: a state, but no row.
    plumbing = synthetic((3, HAS_GIL, (Frame("/x/sampler/_coordinator.py", "main", 60),), 4))
    table.apply(plumbing.delta_since(None))
    assert table.rows() == []
    figures = table.figures(RunStats())
    assert figures.gil_held == 1.0 and figures.functions == 0
    table.toggle_threads()
    assert table.selected_thread == 3 and table.rows() == []
    table.selected_thread = 99  # a thread the view never saw
    assert table.rows() == [] and table.figures(RunStats()).thread_label == "TID 99  -/1"


def test_deltas_must_come_in_order(known):
    table = LiveTable(1000)
    with pytest.raises(ValueError):
        table.apply(known.deltas[1])
