"""sampler/cpython/async_tasks.py against real asyncio targets: on 3.14/3.15 (the sid root) the
tasks it lists, their coroutine chains, awaiters and the running task must be what the target
itself says; on earlier versions it must refuse in one line naming the version."""

from __future__ import annotations

import json

import pytest

from conftest import target, wait_ready
from sampler.cpython.async_tasks import AsyncTaskReader
from sampler.cpython.unwinder import Unwinder


@pytest.fixture
def tree(interpreter, spawn):
    """The async_tree target, ready, with what it says of itself, and an Unwinder on it."""
    p = spawn(interpreter, target("async_tree.py"))
    wait_ready(p)
    truth = json.loads(p.stdout.readline())
    unwinder = Unwinder(p.pid)
    yield p, truth, unwinder
    unwinder.close()


def test_tasks_are_what_the_target_says(tree):
    p, truth, unwinder = tree
    if unwinder.runtime.minor < (3, 14):
        with pytest.raises(ValueError, match=unwinder.runtime.version_string):
            AsyncTaskReader(p.pid, unwinder.memory, unwinder.runtime)
        return
    reader = AsyncTaskReader(p.pid, unwinder.memory, unwinder.runtime)
    tasks = {t.name: t for t in reader.tasks()}
    # Task-1 (asyncio.run's) and the unnamed task have numbers, not str, for names until asked.
    assert sorted(tasks) == sorted(truth["tasks"])
    by_address = {t.address: t.name for t in tasks.values()}
    gi_iframe = unwinder.runtime.layout["gen.gi_iframe"]
    for name, said in truth["tasks"].items():
        task = tasks[name]
        assert (task.address, task.coro) == (said["task"], said["coro"]), name
        assert task.coro_frame == task.coro + gi_iframe
        assert task.thread_id != 0  # all made on the main thread, which is alive
    for name, said in truth["tasks"].items():
        if "awaited_by" in said:  # two watchers of one task, gather's children, a TaskGroup's
            assert sorted(by_address[a] for a in tasks[name].awaited_by) == said["awaited_by"], name
    shared = tasks["shared-worker"]
    assert [f.funcname for f in shared.stack] == truth["tasks"]["shared-worker"]["stack"]
    assert all(f.filename.endswith("async_tree.py") and f.lineno > 0 for f in shared.stack)
    assert [f.funcname for f in tasks["watcher-1"].stack] == ["watcher"]
    assert tasks["watcher-1"].awaited_by == ()
    # The main task is the one running, on the main thread.
    running = reader.running()
    assert list(running.values()) == [truth["tasks"][truth["running"]]["task"]]
    assert list(running) == [tasks[truth["running"]].thread_id]
