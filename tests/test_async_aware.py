"""`--async-aware` (`--async-mode running`) on real asyncio targets, beside Tachyon.

tests/targets/async_split.py runs two tasks, `heavy` and `light`, gathered by a `supervisor`
task under asyncio.run's Task-1, with 70/30 of the work between them by construction, on every
CPython 3.11+ here. heatline (from the host) and, on 3.15, Tachyon (in the target's root and mount namespace) attach to it at
the same time (test_tachyon_accuracy's `profile`: both under real-time priority). Each stack must
read task-first, each task's coroutines under its own marker, and the split must be within 2
points of the truth and of Tachyon's. Also: the task frame through every format and back from
`--binary`, Tachyon's refusals word for word, and a version without task data refused in one
line.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import sid_root
from conftest import ALL_INTERPRETERS, heatline, parse_collapsed, target, wait_ready
from sampler.collectors import COLLECTORS
from sampler.model import HAS_GIL, Frame, Profile, RunStats, ThreadSample, task_frame
from sampler.replay import open_binary_profile, replay
from test_tachyon_accuracy import _start_target, check, check_same_threads, profile

TASKS = {  # each worker task's coroutines (outermost first) and what they call
    "heavy": ["heavy", "heavy_round", "heavy_units", "crunch"],
    "light": ["light", "light_round", "light_units", "crunch"],
}
# What a worker's `await asyncio.sleep(0)` runs on its own stack (asyncio.tasks.sleep, which
# awaits `__sleep0`, a bare yield) when a sample catches it there.
YIELD_FUNCS = {"sleep", "__sleep0"}
YIELDING_MAX = 0.005  # share of the samples that may fall there (measured: ~0.00025)
ROOT_TASKS = ["<task>:Task-1:0", "async_split.py:main:", "<task>:supervisor:0", "async_split.py:supervisor:"]


def _split(frames: list[str]) -> list[tuple[str, list[str]]]:
    """A collapsed stack (root first) as [(task name, its functions)], root task first."""
    out: list[tuple[str, list[str]]] = []
    for frame in frames:
        if frame.startswith("<task>:"):
            out.append((frame.split(":")[1], []))
        elif out:
            out[-1][1].append(frame.split(":")[1])
    return out


def _leaf_task(frames: list[str]) -> str:
    """The stack's leaf task, without the marker's '(N parents)'."""
    return re.sub(r" \(\d+ parents\)$", "", _split(frames)[-1][0])


def _work(run, task: str) -> int:
    """Samples in `task`'s units of work: its own units function under its own marker."""
    units = TASKS[task][2]
    return sum(c for _t, frames, c in run.rows
               for leaf, funcs in _split(frames)[-1:] if leaf == task and units in funcs)


def _minor(interp) -> tuple[int, int]:
    found = re.search(r"(\d+)\.(\d+)", interp.label)
    return (int(found[1]), int(found[2])) if found else (0, 0)


@pytest.fixture(params=[p for p in ALL_INTERPRETERS if _minor(p.values[0]) >= (3, 11)])
def readable(request):
    """Every interpreter whose tasks heatline reads (3.11 on), the sid root's included."""
    if request.param.rooted and shutil.which("nsenter") is None:
        pytest.skip("nsenter (util-linux) is missing")
    return request.param


def test_two_tasks_split_70_30(readable, spawn, tmp_path):
    p = _start_target(spawn, readable, "async_split.py")
    runs = profile(readable, p.pid, tmp_path, 8, "--async-aware")
    ours = runs["heatline"]
    assert ours.stacks > 2000, ours.stdout
    assert "pure-Python walker" not in ours.stdout  # the native core sampled it
    yielding = 0  # samples taken while a worker runs its `await asyncio.sleep(0)`
    for _tid, frames, count in ours.rows:
        # Root first: asyncio.run's task, main, the supervisor task and its gather, then a worker.
        assert [f if f.startswith("<task>") else f.rsplit(":", 1)[0] + ":" for f in frames[:4]] == ROOT_TASKS, frames
        tasks = _split(frames)
        assert [name for name, _f in tasks][:2] == ["Task-1", "supervisor"] and len(tasks) == 3, frames
        name, funcs = tasks[-1]
        if funcs[:1] == [name] and funcs[1:] and set(funcs[1:]) <= YIELD_FUNCS:
            yielding += count
            continue
        # The running task's own frames: a prefix of its coroutine chain (what it calls last).
        assert funcs == TASKS[name][: len(funcs)], frames
    # A worker's yield to the loop is a real moment on its thread's stack, but a short one: about
    # 1 sample in 4,000 (0.025%) was measured in it. Far more would mean the stacks are misread.
    assert yielding <= YIELDING_MAX * ours.stacks, f"{yielding} of {ours.stacks} samples in asyncio.sleep"
    if "tachyon" in runs:
        theirs = runs["tachyon"]
        leaf_tasks = lambda r: {_leaf_task(f) for _t, f, _c in r.rows}  # noqa: E731
        assert leaf_tasks(ours) == leaf_tasks(theirs) == {"heavy", "light"}
        assert {tuple(n for n, _f in _split(f)) for _t, f, _c in theirs.rows} == {("Task-1", "supervisor", t)
                                                                                 for t in TASKS}
    both = lambda r: _work(r, "heavy") + _work(r, "light")  # noqa: E731
    check(runs, "heavy's units of the work", 70.0, lambda r: 100.0 * _work(r, "heavy") / both(r))
    check(runs, "light's units of the work", 30.0, lambda r: 100.0 * _work(r, "light") / both(r))


# -- the task frame in every format ------------------------------------------------------------------

HEAVY = (Frame("/app/aio.py", "crunch", 21), Frame("/app/aio.py", "heavy", 49), task_frame("heavy"),
         Frame("/app/aio.py", "supervisor", 70), task_frame("supervisor"))


def _profile() -> Profile:
    profile = Profile(RunStats(pid=4242))
    profile.add(ThreadSample(7, HAS_GIL, HEAVY), 3)
    profile.add(ThreadSample(7, HAS_GIL, (task_frame("light (2 parents)"),) + HEAVY[3:]), 1)
    return profile


def _write(fmt: str, profile: Profile, path) -> str:
    collector = COLLECTORS[fmt](profile)
    if collector.streaming:
        for tid, frames, weight in profile.iter_stacks():
            collector.collect(0, [ThreadSample(tid, HAS_GIL, frames)], weight)
    return collector.write(str(path))


def test_task_frames_in_collapsed_pstats_flamegraph(tmp_path):
    collapsed = open(_write("collapsed", _profile(), tmp_path / "c.txt"), encoding="utf-8").read()
    assert "tid:7;<task>:supervisor:0;aio.py:supervisor:70;<task>:heavy:0;aio.py:heavy:49;aio.py:crunch:21 3" \
        in collapsed.splitlines()
    assert "tid:7;<task>:supervisor:0;aio.py:supervisor:70;<task>:light (2 parents):0 1" in collapsed.splitlines()
    import marshal

    with open(_write("pstats", _profile(), tmp_path / "p.pstats"), "rb") as fh:
        keys = set(marshal.load(fh))
    assert {("<task>", 0, "heavy"), ("<task>", 0, "supervisor"), ("<task>", 0, "light (2 parents)")} <= keys
    page = open(_write("flamegraph", _profile(), tmp_path / "f.html"), encoding="utf-8").read()
    assert "light (2 parents)" in page and "supervisor" in page


def test_task_frames_round_trip_through_binary(tmp_path):
    path = _write("binary", _profile(), tmp_path / "p.bin")
    back = Profile()
    replay(open_binary_profile(path), back)
    assert sorted(back.iter_stacks()) == sorted(_profile().iter_stacks())
    if sid_root.unavailable_reason() is None and sid_root.version_of("3.15"):
        # Tachyon reads them as its own `<task>` frames.
        inside = f"/tmp/heatline-async-{os.getpid()}.bin"
        os.makedirs(os.path.dirname(sid_root.host_path(inside)), exist_ok=True)
        with open(path, "rb") as src, open(sid_root.host_path(inside), "wb") as dst:
            dst.write(src.read())
        try:
            res = subprocess.run(sid_root.tachyon("replay", inside, "--collapsed", "-o", inside + ".txt"),
                                 capture_output=True, text=True, timeout=120)
            assert res.returncode == 0, res.stderr
            rows = parse_collapsed(sid_root.host_path(inside + ".txt"))
        finally:
            for leftover in (inside, inside + ".txt"):
                if os.path.exists(sid_root.host_path(leftover)):
                    os.unlink(sid_root.host_path(leftover))
        assert sorted((f, c) for _t, f, c in rows) == [
            (["<task>:supervisor:0", "aio.py:supervisor:70", "<task>:heavy:0", "aio.py:heavy:49", "aio.py:crunch:21"], 3),
            (["<task>:supervisor:0", "aio.py:supervisor:70", "<task>:light (2 parents):0"], 1),
        ]


# -- refusals ---------------------------------------------------------------------------------------

TACHYON_REFUSALS = [
    (["--async-aware", "--no-gc"],
     "Options --no-gc are incompatible with --async-aware. Async-aware profiling uses task-based stack "
     "reconstruction."),
    (["--async-aware", "--mode", "cpu", "-a"],
     "Options --mode=cpu, --all-threads are incompatible with --async-aware. Async-aware profiling uses "
     "task-based stack reconstruction."),
    (["--async-aware", "--no-gc", "--mode", "exception", "--all-threads"],
     "Options --no-gc, --mode=exception, --all-threads are incompatible with --async-aware. Async-aware "
     "profiling uses task-based stack reconstruction."),
    (["--async-mode", "all"], "--async-mode requires --async-aware to be enabled."),
]


@pytest.mark.parametrize("command", ["run", "attach"])
@pytest.mark.parametrize("options,message", TACHYON_REFUSALS)
def test_tachyon_refusals(command, options, message):
    where = ["nowhere.py"] if command == "run" else ["1"]
    res = heatline(command, *options, *where)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [f"heatline: error: {message}"]
    if command == "attach" and sid_root.unavailable_reason() is None and sid_root.version_of("3.15"):
        theirs = subprocess.run(sid_root.tachyon(command, *options, *where), capture_output=True, text=True,
                                timeout=120)
        assert theirs.returncode == 2 and theirs.stderr.strip().splitlines()[-1].endswith(f"error: {message}"), \
            theirs.stderr


def test_running_mode_shows_every_thread_running_a_task(readable, spawn, tmp_path):
    """async_tree.py's main thread runs Task-1 and its second thread's loop runs a task blocked in
    a plain call: running mode shows both, each under its own thread (as Tachyon does on 3.15)."""
    p = spawn(*readable.command(target("async_tree.py")))
    wait_ready(p)
    running = json.loads(p.stdout.readline())["running"]
    runs = profile(readable, p.pid, tmp_path, 1, "--async-aware")
    for who, run in runs.items():
        by_task = {_leaf_task(f): tid for tid, f, _c in run.rows}
        assert set(by_task) == set(running), (who, by_task, running)
        assert len(set(by_task.values())) == 2, (who, by_task)
    check_same_threads(runs)


def test_all_mode_every_leaf_task_every_sample(readable, spawn, tmp_path):
    """`--async-mode all` on tests/targets/async_tree.py, which holds still: each sample holds one
    stack per leaf task (a task awaiting no task), running or parked, so every leaf task has the
    same count; the task awaited by both watchers goes under each in turn (never counted twice);
    the five-deep chain reads root to leaf under its task. On 3.15 Tachyon, attached at the same
    time, shows the same leaf tasks with the same shares (within 2 points) and the same threads."""
    p = spawn(*readable.command(target("async_tree.py")))
    wait_ready(p)
    truth = json.loads(p.stdout.readline())["tasks"]
    awaiting = {a for t in truth.values() for a in t.get("awaited_by", ())}
    leaves = set(truth) - awaiting
    runs = profile(readable, p.pid, tmp_path, 3, "--async-aware", "--async-mode", "all")
    shares = {}
    for who, run in runs.items():
        per_leaf: dict[str, int] = {}
        for _tid, frames, count in run.rows:
            per_leaf[_leaf_task(frames)] = per_leaf.get(_leaf_task(frames), 0) + count
        shares[who] = {leaf: 100.0 * n / run.stacks for leaf, n in per_leaf.items()}
        assert set(per_leaf) == leaves, (who, sorted(per_leaf), sorted(leaves))
        if who == "heatline":
            assert len(set(per_leaf.values())) == 1, per_leaf  # every leaf in every sample
    ours = runs["heatline"]
    # The running main task shows what it runs (its thread's stack), not only its own line.
    assert {tuple(_split(f)[-1][1]) for _t, f, _c in ours.rows if _leaf_task(f) == "Task-1"} == {("main", "spin")}
    chains = [_split(f) for _t, f, _c in ours.rows if _leaf_task(f) == "shared-worker"]
    assert chains and all(c[-1][1] == truth["shared-worker"]["stack"] for c in chains), chains
    under = {}
    for _tid, frames, count in ours.rows:
        tasks = [name for name, _f in _split(frames)]
        if tasks[-1] == "shared-worker (2 parents)":
            under[tasks[-2]] = under.get(tasks[-2], 0) + count
    assert set(under) == {"watcher-1", "watcher-2"}, under
    assert abs(under["watcher-1"] - under["watcher-2"]) <= 0.1 * sum(under.values()), under
    if "tachyon" in runs:
        check_same_threads(runs)
        for leaf in leaves:
            assert abs(shares["heatline"][leaf] - shares["tachyon"][leaf]) <= 2.0, (leaf, shares)


def test_a_version_without_task_data_is_named(spawn):
    """3.10 has no asyncio data heatline can read: one line naming the version, exit 1, no profile."""
    py310 = os.path.expanduser("~/.pyenv/versions/3.10.13/bin/python3.10")
    if not os.path.exists(py310):
        pytest.skip("no CPython 3.10 on this machine to stand for a version without task data")
    p = spawn(py310, target("async_tree.py"))
    wait_ready(p)
    res = heatline("attach", str(p.pid), "-d", "1", "--async-aware", "--collapsed", "-o", os.devnull)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(r"heatline: cannot read asyncio tasks of Python 3\.10\.13: .+\.", lines[0]), \
        lines


def test_a_task_list_cut_at_the_cap_is_said(spawn, monkeypatch):
    """Past MAX_TASKS a reading stops: the run summary's note says tasks are missing."""
    import sampler.cpython.async_tasks as async_tasks
    from sampler.commands import _print_summary
    from sampler.cli import build_parser
    from sampler.cpython.unwinder import Unwinder
    from sampler.dump import read_consistently

    p = spawn(sys.executable, target("async_tree.py"))
    wait_ready(p)
    unwinder = Unwinder(p.pid, async_mode="all")
    try:
        read_consistently(unwinder.sample, "sample")  # the main task runs on: a reading can be torn
        assert unwinder.tasks.note() is None
        monkeypatch.setattr(async_tasks, "MAX_TASKS", 5)
        assert len(read_consistently(unwinder.sample, "sample")) <= 5
    finally:
        unwinder.close()
    out = io.StringIO()
    args = build_parser().parse_args(["attach", "--async-aware", "--async-mode", "all", str(p.pid)])
    _print_summary(RunStats(pid=p.pid), out, args, unwinder.tasks)
    assert "asyncio tasks; each reading stopped there" in out.getvalue(), out.getvalue()
