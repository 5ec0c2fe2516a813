"""`heatline attach --async-aware` through the real CLI on tests/targets/async_scenarios.py, whose
tasks take turns on the CPU, on every CPython 3.11+ here (the sid root's 3.14 and 3.15 included):
stacks read task-first with the names given by `name=`, the five-deep chain root to leaf at its
await lines, gather's and TaskGroup's children under their parent's coroutine, the task awaited
by two watchers under each of them, marked and never counted twice, and the task blocked on a
future that never resolves shown by `--async-mode all` only. The same checks hold with asyncio's
pure-Python tasks (`--pure`: no `_asyncio`), which must never be an empty or plain profile (read,
or refused in one line naming it); on uvloop (where the venv has it) the target is read like on
asyncio's own loop, and refused in one line with `--pure` (no thread says it runs uvloop's loop).

Each target is attached to once per mode (`-d 2`, the default rate), then stopped: the tests read
those two profiles. `heatline run` is tried once per host CPython, from the target's start.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache

import pytest

from conftest import (ALL_INTERPRETERS, Interpreter, favoured, has_func, heatline, parse_collapsed, target,
                      wait_ready)
from test_async_aware import _leaf_task, _minor

TARGET = target("async_scenarios.py")
SECONDS = "2"
WORKERS = ("deep", "shared", "gathered-1", "gathered-2", "grouped-1", "grouped-2")
PARENT = {"deep": "Task-1", "gathered-1": "gatherer", "gathered-2": "gatherer",
          "grouped-1": "group-owner", "grouped-2": "group-owner"}  # shared: both watchers
WATCHERS = ("watcher-1", "watcher-2")
SHARED_MARKER = "shared (2 parents)"
CHAIN = ["turns", "chain_1", "chain_2", "chain_3", "chain_4", "chain_5", "crunch"]
MIN_STACKS = 200  # samples a run needs for its checks to mean anything (~1,000 when idle)
# Chain samples at other lines than the await lines: a walk that reads the coroutines' frames
# one by one while the task runs can meet the outer ones after it has moved on (seen: 1 in ~1,900
# samples on a loaded machine, `turns` at its sleep line above a whole chain). Far more would be
# lines misread.
TORN_MAX = 0.02
# What a worker runs while it yields (`await asyncio.sleep(0)`), when a sample catches it there.
YIELD_FUNCS = {"sleep", "__sleep0"}

READABLE = [p for p in ALL_INTERPRETERS if _minor(p.values[0]) >= (3, 11)]


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    rows: tuple[tuple[int, list[str], int], ...]

    @property
    def stacks(self) -> int:
        return sum(c for _t, _f, c in self.rows)

    def tasks(self) -> list[tuple[list[tuple[str, list[str]]], list[str], int]]:
        """Per row: (its tasks root first as (name, own frames as 'func:line'), its frames, count)."""
        out = []
        for _tid, frames, count in self.rows:
            assert frames and frames[0].startswith("<task>:"), f"not task-first: {frames}\n{self.stdout}"
            tasks = []
            for frame in frames:
                if frame.startswith("<task>:"):
                    tasks.append((frame[len("<task>:"):].rsplit(":", 1)[0], []))
                else:
                    tasks[-1][1].append(frame.split(":", 1)[1])
            out.append((tasks, frames, count))
        return out


@lru_cache(maxsize=None)
def _line(func: str, text: str) -> int:
    """The line of `func` (a function of the target) that holds `text`."""
    with open(TARGET, encoding="utf-8") as fh:
        source = fh.read()
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == func:
            for n in range(node.lineno, node.end_lineno + 1):
                if text in lines[n - 1]:
                    return n
    raise AssertionError(f"no {text!r} in {func} of {TARGET}")


def _funcs(frames: list[str]) -> list[str]:
    """The functions of a task's own frames ('func:line', as `Run.tasks` gives them)."""
    return [f.split(":")[0] for f in frames]


@lru_cache(maxsize=None)
def scenario(interp: Interpreter, *flags: str) -> dict[str, Run]:
    """Start the target under `interp`, attach once in each mode, stop it: {mode: Run}. Both run
    ahead of ordinary work (`favoured`): shares are compared, and the profiler must not starve
    beside a target that spins."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen([*favoured(), *interp.command(TARGET, *flags)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_ready(proc)
        runs = {}
        with tempfile.TemporaryDirectory() as tmp:
            for mode in ("running", "all"):
                out = os.path.join(tmp, f"{mode}.txt")
                res = heatline("attach", str(proc.pid), "-d", SECONDS, "--async-aware", "--async-mode", mode,
                               "--collapsed", "-o", out, prefix=favoured())
                rows = tuple(parse_collapsed(out)) if os.path.exists(out) else ()
                runs[mode] = Run(res.returncode, res.stdout, res.stderr, rows)
        return runs
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def _ok(run: Run) -> Run:
    assert run.returncode == 0, run.stderr
    assert run.stacks >= MIN_STACKS, (run.stacks, run.stdout)
    return run


@pytest.fixture(params=[pytest.param((*p.values, pure), id=p.id + ("-pure" if pure else ""), marks=p.marks)
                        for p in READABLE for pure in (False, True)])
def runs(request) -> dict[str, Run]:
    """Each target on asyncio's C tasks, then on its pure-Python ones (`--pure`), which every
    version here reads (a refusal would fail these; `test_pure_python_asyncio_read_or_named`
    holds the line it must be)."""
    interp, pure = request.param
    return scenario(interp, *(["--pure"] if pure else []))


# -- running mode ---------------------------------------------------------------------------------

def check_running(run: Run, from_start: bool = False) -> None:
    """Every stack: Task-1 (main at its gather), then the worker's parent task(s) and the worker,
    each name as given; every worker seen; the stuck task never. `from_start`: the profile began
    with the target, before main gathered the top tasks (until then they are roots, and main
    runs itself)."""
    main_line = f"main:{_line('main', 'await asyncio.gather(*tops)')}"
    seen = set()
    for tasks, frames, _count in run.tasks():
        names = [name for name, _f in tasks]
        leaf = _leaf_task(frames)
        seen.add(leaf)
        if from_start and (leaf == "Task-1" or names == [leaf]):
            continue  # main before its gather, or a task's first step before any task awaits it
        if leaf == "shared":
            path = [names[-2], SHARED_MARKER]
            assert names[-2] in WATCHERS, frames
        else:
            assert leaf in WORKERS, frames
            path = ([] if PARENT[leaf] == "Task-1" else [PARENT[leaf]]) + [leaf]
        assert names[-len(path):] == path, frames
        if from_start and names[: -len(path)] == []:
            continue
        assert names[: -len(path)] == ["Task-1"] and tasks[0][1][-1:] == [main_line], frames
        assert not has_func(frames, "stuck") and not has_func(frames, "stuck_wait"), frames
    assert seen - {"Task-1"} == set(WORKERS), seen


def test_running_stacks_are_task_first_by_name(runs):
    check_running(_ok(runs["running"]))


def _worker_rows(run: Run, worker: str):
    """(own frames of `worker`, the tasks above it, count) for each stack whose leaf it is."""
    return [(tasks[-1][1], tasks[:-1], count) for tasks, frames, count in run.tasks()
            if _leaf_task(frames) == worker]


def _is_yield(funcs: list[str]) -> bool:
    """A worker caught in its yield to the loop, or between two steps (its marker alone)."""
    return (funcs[:1] == ["turns"] and set(funcs[1:]) <= YIELD_FUNCS) or funcs in ([], ["turns"])


def test_running_five_deep_chain_root_to_leaf(runs):
    run = _ok(runs["running"])
    want = [f"turns:{_line('turns', 'await one_unit()')}"] + [
        f"chain_{i}:{_line(f'chain_{i}', f'await chain_{i + 1}()')}" for i in range(1, 5)] + [
        f"chain_5:{_line('chain_5', 'crunch(UNIT)')}"]
    in_chain = torn = 0
    for own, _above, count in _worker_rows(run, "deep"):
        if _funcs(own) == CHAIN:
            in_chain += count
            if own[:-1] != want:
                torn += count
        else:  # a prefix of the chain (caught on its way down or up), or its yield
            assert _funcs(own) == CHAIN[: len(own)] or _is_yield(_funcs(own)), own
    total = sum(c for _o, _a, c in _worker_rows(run, "deep"))
    assert in_chain >= 0.8 * total, (in_chain, total)
    assert torn <= TORN_MAX * in_chain, f"{torn} of {in_chain} chain samples not at {want}"


def test_running_gather_and_taskgroup_children_under_their_parent(runs):
    run = _ok(runs["running"])
    gather_line = f"gatherer:{_line('gatherer', 'await asyncio.gather(*kids)')}"
    group_line = f"group_owner:{_line('group_owner', 'async with asyncio.TaskGroup()')}"
    for worker in ("gathered-1", "gathered-2", "grouped-1", "grouped-2"):
        rows = _worker_rows(run, worker)
        assert rows, worker
        for own, above, _count in rows:
            parent_name, parent_frames = above[-1]
            assert parent_name == PARENT[worker], above
            if worker.startswith("gathered"):
                assert parent_frames == [gather_line], above  # awaits the gather future itself
            else:  # waits in the group's exit, asyncio's own coroutines below it
                assert parent_frames[0] == group_line and parent_frames[1].startswith("TaskGroup.__aexit__:"), above
                assert all(f.startswith("TaskGroup.") for f in parent_frames[1:]), above
            assert _funcs(own) in (["turns", "unit", "crunch"], ["turns", "unit"]) or _is_yield(_funcs(own)), own


def _work_by_worker(run: Run) -> dict[str, int]:
    """Each worker's samples in its unit of work (`crunch`, under its own marker)."""
    out = dict.fromkeys(WORKERS, 0)
    for tasks, frames, count in run.tasks():
        if "crunch" in _funcs(tasks[-1][1]):
            out[_leaf_task(frames)] += count
    return out


def test_running_shared_task_under_each_watcher_counted_once(runs):
    run = _ok(runs["running"])
    watcher_line = f"watcher:{_line('watcher', 'await task')}"
    under = dict.fromkeys(WATCHERS, 0)
    for _own, above, count in _worker_rows(run, "shared"):
        name, frames = above[-1]
        assert name in WATCHERS and frames == [watcher_line], above
        under[name] += count
    # Each watcher shows it (in turn: the k-th sample of it under watcher k mod 2).
    total = sum(under.values())
    assert min(under.values()) >= 0.3 * total, under
    # Its samples are counted once, not under both watchers: one thread, so each tick gives at
    # most one stack (the running task's chain), and all the stacks together are at most the
    # ticks the run reports. Counted twice, they would exceed them by all of shared's samples.
    # (An exact count: a ratio of shared's work to the others' let a scheduler freeze, which
    # lands a lump of samples on whichever worker it stops, pass for double counting.)
    ticks = int(re.search(r"Captured ([\d,]+) samples", run.stdout).group(1).replace(",", ""))
    work = _work_by_worker(run)
    assert run.stacks <= ticks, (run.stacks, ticks, work)
    assert ticks - run.stacks < work["shared"], "too many ticks without a stack to tell"


@pytest.mark.parametrize("interp", [p for p in READABLE if not p.values[0].rooted])
def test_run_from_the_start(interp, tmp_path):
    """`heatline run --async-aware` (the host's CPythons: `run` cannot reach into the sid root):
    sampled from the interpreter's start, before asyncio is imported, the same stacks once the
    tasks exist."""
    out = tmp_path / "run.txt"
    res = heatline("run", "--python", interp.path, "-d", SECONDS, "--async-aware", "--collapsed", "-o", str(out),
                   TARGET, prefix=favoured())
    check_running(_ok(Run(res.returncode, res.stdout, res.stderr, tuple(parse_collapsed(str(out))))), from_start=True)


# -- the stuck task: all mode only ----------------------------------------------------------------

def test_stuck_task_in_all_mode_only(runs):
    running, every = _ok(runs["running"]), _ok(runs["all"])
    assert not any("<task>:stuck:0" in frames for _t, frames, _c in running.rows)
    stuck = [f"main:{_line('main', 'await asyncio.gather(*tops)')}",
             f"stuck:{_line('stuck', 'await stuck_wait(fut)')}", f"stuck_wait:{_line('stuck_wait', 'await fut')}"]
    counts = {}
    for tasks, frames, count in every.tasks():
        leaf = _leaf_task(frames)
        counts[leaf] = counts.get(leaf, 0) + count
        if leaf == "stuck":
            assert [(n, f[-1:] if n == "Task-1" else f) for n, f in tasks] == [
                ("Task-1", stuck[:1]), ("stuck", stuck[1:])], frames
    # Every leaf task in every sample, the shared one once (under one watcher or the other).
    assert set(counts) == {*WORKERS, "stuck"}, counts
    assert len(set(counts.values())) == 1, counts


# -- pure-Python asyncio ----------------------------------------------------------------------------

REFUSED = re.compile(r"heatline: cannot read asyncio tasks of Python \d+\.\d+\.\d+\S*: .+\.")


def _read_or_named(run: Run, check) -> None:
    """Either the stacks are right (`check`), or heatline said in one line that it cannot read
    them, naming the version; an empty or plain profile is neither."""
    if run.returncode == 0:
        _ok(run)
        check(run)
    else:
        assert run.returncode == 1 and run.rows == (), run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and REFUSED.fullmatch(lines[0]) and re.search(r"pure-Python|_asyncio", lines[0]), lines


def _all_mode_leaves(run: Run) -> None:
    leaves = {_leaf_task(frames) for _t, frames, _c in run.rows}
    assert leaves == {*WORKERS, "stuck"}, leaves


@pytest.mark.parametrize("mode", ["running", "all"])
@pytest.mark.parametrize("interp", READABLE)
def test_pure_python_asyncio_read_or_named(interp, mode):
    """With `_asyncio` blocked every task is asyncio's Python one: read, or refused in one line."""
    _read_or_named(scenario(interp, "--pure")[mode], check_running if mode == "running" else _all_mode_leaves)


# -- uvloop -----------------------------------------------------------------------------------------

VENV = Interpreter(f"venv-{sys.version_info[0]}.{sys.version_info[1]}", sys.executable)  # where the test extra put it

def test_uvloop():
    """The same tasks on uvloop's loop (its tasks are asyncio's), under the venv's CPython, where
    the test extra installs it (the sid root's CPythons have no uvloop)."""
    pytest.importorskip("uvloop", reason="uvloop is not installed: pip install -e '.[test]'")
    runs = scenario(VENV, "--uvloop")
    check_running(_ok(runs["running"]))
    _all_mode_leaves(_ok(runs["all"]))
    # On uvloop indeed: Task-1 runs uvloop.run's wrapper around main.
    assert all([f.split(":")[1] for f in frames[1:3]] == ["run.<locals>.wrapper", "main"]
               for _t, frames, _c in runs["running"].rows)


def test_uvloop_with_pure_python_asyncio_refused_in_one_line():
    """uvloop's loop does not say which thread runs it, and pure-Python asyncio's running loop is
    in no thread state: its running tasks cannot be placed, so both modes refuse in one line."""
    pytest.importorskip("uvloop", reason="uvloop is not installed: pip install -e '.[test]'")
    runs = scenario(VENV, "--uvloop", "--pure")
    for run in runs.values():
        assert run.returncode == 1 and run.rows == (), (run.returncode, run.stderr)
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and REFUSED.fullmatch(lines[0]) and "pure-Python asyncio" in lines[0], lines
