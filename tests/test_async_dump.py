"""`heatline dump --async-aware` on tests/targets/async_tree.py, on every CPython here: on 3.11-3.15
the task tree must name every task the target says it has, show each task under every task the
target says awaits it (the doubly-awaited one under both, marked), and give the five-deep chain's
functions and lines as the target's source has them; earlier versions are refused in one line."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys

import pytest

import sid_root
from conftest import heatline, parse_collapsed, target, wait_ready

TASK_LINE = re.compile(r'^(?P<pad> *)Task "(?P<name>[^"]*)"(?: \((?P<notes>.*)\))?$')
FRAME_LINE = re.compile(r"^ *  (?P<func>\S+) \((?P<file>.*):(?P<line>\d+)\)$")
INDENT = 4


def _nodes(text: str) -> list[dict]:
    """The printed tree as a list of {depth, name, notes, frames, parent} in print order."""
    lines = text.splitlines()
    assert lines[0].startswith("Task tree for PID "), text
    nodes: list[dict] = []
    open_at: dict[int, dict] = {}  # depth -> the last task printed there
    for line in lines[1:]:
        task = TASK_LINE.match(line)
        if task:
            depth = len(task["pad"]) // INDENT
            assert len(task["pad"]) % INDENT == 0, line
            parent = open_at.get(depth - 1) if depth else None
            assert depth == 0 or parent is not None, line
            node = {"depth": depth, "name": task["name"], "notes": task["notes"] or "", "frames": [],
                    "parent": parent["name"] if parent else None}
            nodes.append(node)
            open_at[depth] = node
            continue
        frame = FRAME_LINE.match(line)
        assert frame and nodes, f"unexpected line {line!r} in\n{text}"
        nodes[-1]["frames"].append((frame["func"], frame["file"], int(frame["line"])))
    return nodes


def _await_lines(path: str) -> dict[str, int]:
    """Each coroutine function of the target's source -> the line of its first await."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    out = {}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.AsyncFunctionDef):
            awaits = [n.lineno for n in ast.walk(fn) if isinstance(n, ast.Await)]
            if awaits:
                out[fn.name] = min(awaits)
    return out


def test_dump_async_aware_task_tree(interpreter, spawn):
    p = spawn(*interpreter.python(interpreter.script_path(target("async_tree.py"))))
    wait_ready(p)
    truth = json.loads(p.stdout.readline())["tasks"]
    result = heatline("dump", "--async-aware", str(p.pid))
    version = re.search(r"(\d+)\.(\d+)", interpreter.label)
    if not truth:  # before 3.11 the target builds nothing; heatline must say why in one line
        assert result.returncode != 0 and result.stdout == "", result.stdout
        assert re.fullmatch(r"heatline: cannot read asyncio tasks of Python \d+\.\d+\.\d+\S*: .*3\.11.*\.\n",
                            result.stderr), result.stderr
        assert version is None or f"Python {version[1]}.{version[2]}." in result.stderr
        return
    assert result.returncode == 0, result.stderr
    nodes = _nodes(result.stdout)
    # Every task named; each printed under exactly the tasks that await it (roots: awaited by none).
    assert {n["name"] for n in nodes} == set(truth), result.stdout
    for name, said in truth.items():
        under = sorted(n["parent"] or "" for n in nodes if n["name"] == name)
        assert under == (said.get("awaited_by") or [""]), (name, result.stdout)
    # The doubly-awaited task: under both watchers, each time marked and with its whole chain.
    shared = [n for n in nodes if n["name"] == "shared-worker"]
    assert [n["parent"] for n in shared] == ["watcher-1", "watcher-2"]
    lines = _await_lines(target("async_tree.py"))
    chain = truth["shared-worker"]["stack"]
    for node in shared:
        assert "awaited by 2: watcher-1, watcher-2" in node["notes"], node
        assert [f[0] for f in node["frames"]] == chain, node
        assert all(file.endswith("async_tree.py") for _f, file, _l in node["frames"]), node
        assert [line for _f, _file, line in node["frames"]] == [lines[f] for f in chain], node
    # A task awaited by one only is not marked; watchers are roots showing their own await line.
    for node in nodes:
        if node["name"] != "shared-worker":
            assert "awaited by" not in node["notes"], node
        if node["name"].startswith("watcher-"):
            assert node["depth"] == 0 and node["frames"][0][::2] == ("watcher", lines["watcher"]), node
    # The main task runs on the CPU in the main thread: marked as running there.
    main_task = [n for n in nodes if n["frames"] and n["frames"][0][0] == "main"]
    # Named as the plain dump heads a thread: its native id (here the process's) and its name.
    assert len(main_task) == 1 and f'running in thread {p.pid} "MainThread"' in main_task[0]["notes"], result.stdout


# -- `--async-mode all`'s stacks beside Tachyon's ----------------------------------------------------

def _collapsed(rows, tmp_path) -> list[tuple[int, list[str], int]]:
    """(thread, frames root first, count) rows through heatline's own collapsed writer."""
    from sampler.collectors import COLLECTORS
    from sampler.model import HAS_GIL, Profile, RunStats, ThreadSample

    profile = Profile(RunStats(pid=1))
    for thread_id, frames in rows:
        profile.add(ThreadSample(thread_id, HAS_GIL, frames), 1)
    path = COLLECTORS["collapsed"](profile).write(str(tmp_path / "all.txt"))
    return parse_collapsed(path)


def _by_thread(rows) -> set[frozenset[tuple[str, ...]]]:
    """The stacks grouped by thread, thread ids left out (Tachyon's are native ones)."""
    threads: dict[int, set[tuple[str, ...]]] = {}
    for tid, frames, _count in rows:
        threads.setdefault(tid, set()).add(tuple(frames))
    return {frozenset(stacks) for stacks in threads.values()}


@pytest.mark.skipif(sid_root.unavailable_reason() is not None or not sid_root.version_of("3.15"),
                    reason="no sid root with CPython 3.15 (Tachyon)")
def test_all_mode_stacks_are_tachyons(spawn, tmp_path):
    """On 3.15, `AsyncStacks(mode="all").task_stacks()` gives the stacks Tachyon's
    `--async-mode all` collapsed output has for a target that holds still: one per leaf task, the
    running ones included, each with its awaiters (the shared worker under the smallest watcher,
    marked with its two parents), grouped by the same threads."""
    from sampler.cpython.async_stacks import AsyncStacks
    from sampler.cpython.unwinder import Unwinder

    p = spawn(*sid_root.in_root("/usr/bin/python3.15", sid_root.path_in_root(target("async_tree.py"))))
    wait_ready(p)
    inside = f"/tmp/heatline-async-all-{p.pid}.txt"
    res = subprocess.run(sid_root.tachyon_beside(p.pid, "attach", str(p.pid), "-d", "1", "--async-aware",
                                                 "--async-mode", "all", "--collapsed", "-o", inside),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    try:
        theirs = parse_collapsed(sid_root.host_path(inside))
    finally:
        os.unlink(sid_root.host_path(inside))
    unwinder = Unwinder(p.pid)
    try:
        ours = _collapsed(AsyncStacks(p.pid, unwinder.memory, unwinder.runtime, "all").task_stacks(), tmp_path)
    finally:
        unwinder.close()
    assert sorted(f for _t, f, _c in ours) == sorted(f for _t, f, _c in theirs), (ours, theirs)
    assert _by_thread(ours) == _by_thread(theirs)
    assert any(f[:3] == ["<task>:watcher-1:0", "async_tree.py:watcher:38", "<task>:shared-worker (2 parents):0"]
               for _t, f, _c in ours), ours


HOSTILE = "\x1b]0;pwned\x07\x1b[2J\u202eevil"  # a title change, a screen clear, a bidi override
HOSTILE_SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil"


@pytest.mark.parametrize("async_aware", [False, True], ids=["stacks", "task tree"])
def test_dump_escapes_what_the_target_names(spawn, async_aware):
    """Thread, function and task names come from the target: printed, a terminal must not act on
    them. The plain dump and the task tree show them as visible escapes."""
    code = (
        "import asyncio, threading\n"
        "def spin():\n"
        "    while True: sum(range(1000))\n"
        f"spin.__code__ = spin.__code__.replace(co_name={HOSTILE!r}, co_qualname={HOSTILE!r})\n"
        f"threading.current_thread().name = {HOSTILE!r}\n"
        "async def main():\n"
        f"    asyncio.current_task().set_name({HOSTILE!r})\n"
        "    print('ready', flush=True)\n"
        "    spin()\n"
        "asyncio.run(main())\n"
    )
    p = spawn(sys.executable, "-c", code)
    wait_ready(p)
    res = heatline("dump", str(p.pid), *(["--async-aware"] if async_aware else []))
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stdout and "\u202e" not in res.stdout, res.stdout
    if async_aware:
        assert f'Task "{HOSTILE_SHOWN}" (running in thread {p.pid} "{HOSTILE_SHOWN}")' in res.stdout, res.stdout
    else:
        assert f'"{HOSTILE_SHOWN}" (main thread' in res.stdout, res.stdout
        assert f", in {HOSTILE_SHOWN}\n" in res.stdout, res.stdout


def test_dump_async_mode_running_prints_each_threads_running_task(interpreter, spawn):
    """`dump --async-aware --async-mode running`: a traceback per thread running a task, the
    task's marker first (as run/attach sample it); the default stays the tree."""
    p = spawn(*interpreter.command(target("async_tree.py")))
    wait_ready(p)
    running = json.loads(p.stdout.readline())["running"]
    res = heatline("dump", str(p.pid), "--async-aware", "--async-mode", "running")
    if not running:  # 3.9/3.10: refused, as the tree is
        assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        return
    assert res.returncode == 0, res.stderr
    blocks = res.stdout.split("Stack dump for PID")[1:]
    assert len(blocks) == 2, res.stdout
    tasks = {block.splitlines()[1].strip() for block in blocks}
    assert tasks == {f"<task> {name}" for name in running}, res.stdout
    main = next(b for b in blocks if "<task> Task-1\n" in b)
    assert '"MainThread"' in main.splitlines()[0] and "in main\n" in main and main.rstrip().endswith("total += sum(range(1000))"), main


@pytest.mark.parametrize("options, message", [
    (["--async-mode", "all"], "--async-mode requires --async-aware to be enabled."),
    (["--async-aware", "-a"], "Options --all-threads are incompatible with --async-aware. "
                              "Async-aware profiling uses task-based stack reconstruction."),
    (["--async-aware", "--no-gc"], "Options --no-gc are incompatible with --async-aware. "
                                   "Async-aware profiling uses task-based stack reconstruction."),
])
def test_dump_async_refusals_are_tachyons(options, message):
    res = heatline("dump", "1", *options)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"heatline: error: {message}"]
