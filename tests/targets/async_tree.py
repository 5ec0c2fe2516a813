"""A known asyncio task tree that holds still: tasks parked in awaits (one five coroutines deep,
one awaited by two others, one left unnamed, two gathered, two in TaskGroups: one owner waiting
in the group's exit, one still in its block; before 3.14 also a pure-Python task awaited by
another) while the main task runs on the CPU, and a second thread whose loop's running task is
blocked in a plain call. Prints "ready" and then, as JSON, what it knows of its tasks (for
tests/test_async_tasks.py).

`--extra N` parks N more tasks in the five-deep chain (for measuring a reader's cost).
"""

import asyncio
import json
import sys
import threading


async def leaf(fut):
    await fut  # never resolved: the task stays parked here


async def level_3(fut):
    await leaf(fut)


async def level_2(fut):
    await level_3(fut)


async def level_1(fut):
    await level_2(fut)


async def worker(fut):
    await level_1(fut)


async def watcher(task):
    await task


async def gatherer(fut):
    kids = [asyncio.create_task(leaf(fut), name=f"gathered-{i}") for i in (1, 2)]
    await asyncio.gather(*kids)


async def group_owner(fut):
    async with asyncio.TaskGroup() as group:
        group.create_task(leaf(fut), name="grouped")
    # (waits in the group's __aexit__)


async def early_owner(fut):
    async with asyncio.TaskGroup() as group:
        group.create_task(leaf(fut), name="grouped-early")
        await fut  # still inside the block: its child is awaited by it all the same


def spin():
    total = 0
    while True:
        total += sum(range(1000))


def describe(tasks):
    return {t.get_name(): {"task": id(t), "coro": id(t.get_coro()), "thread": threading.get_ident()} for t in tasks}


def side_thread(said, ready, forever):
    """A thread with a loop of its own: its main task blocks in a plain call, one task parked."""

    async def side_main():
        parked = asyncio.create_task(leaf(asyncio.get_running_loop().create_future()), name="side-parked")
        await asyncio.sleep(0)
        said["running"] = asyncio.current_task().get_name()
        said["tasks"] = describe(asyncio.all_tasks())
        assert parked.get_name() in said["tasks"]
        ready.set()
        forever.wait()  # the task stays the loop's running one, the thread out of the GIL

    asyncio.run(side_main())


async def main(extra):
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    shared = asyncio.create_task(worker(fut), name="shared-worker")
    watchers = [asyncio.create_task(watcher(shared), name=f"watcher-{i}") for i in (1, 2)]
    unnamed = asyncio.create_task(leaf(fut))
    gathering = asyncio.create_task(gatherer(fut), name="gatherer")
    owner = asyncio.create_task(group_owner(fut), name="group-owner")
    early = asyncio.create_task(early_owner(fut), name="early-owner")
    made = [shared, *watchers, unnamed, gathering, owner, early]
    # 3.14 lists only _asyncio.Task objects; earlier versions see pure-Python tasks too.
    if sys.version_info < (3, 14):
        py_task = asyncio.tasks._PyTask(leaf(fut), loop=loop, name="py-task")
        made += [py_task, asyncio.create_task(watcher(py_task), name="py-watcher")]
    made += [asyncio.create_task(worker(fut), name=f"extra-{i}") for i in range(extra)]
    for _ in range(3):
        await asyncio.sleep(0)
    me = asyncio.current_task()
    tasks = list(asyncio.all_tasks())
    # gathered-1/2, grouped and grouped-early are made by their parents.
    assert {me, *made} <= set(tasks) and len(tasks) == len(made) + 5
    side, ready, forever = {}, threading.Event(), threading.Event()
    threading.Thread(target=side_thread, args=(side, ready, forever), name="side", daemon=True).start()
    assert ready.wait(60)
    truth = describe(tasks)
    truth["shared-worker"]["awaited_by"] = sorted(w.get_name() for w in watchers)
    truth["shared-worker"]["stack"] = ["worker", "level_1", "level_2", "level_3", "leaf"]
    # gather's children are awaited by the task that called gather; a group's by its owner.
    for name in ("gathered-1", "gathered-2"):
        truth[name]["awaited_by"] = ["gatherer"]
    truth["grouped"]["awaited_by"] = ["group-owner"]
    truth["grouped-early"]["awaited_by"] = ["early-owner"]
    if "py-task" in truth:
        truth["py-task"]["awaited_by"] = ["py-watcher"]
    truth.update(side["tasks"])
    running = {me.get_name(): threading.get_ident(), side["running"]: side["tasks"][side["running"]]["thread"]}
    print("ready", flush=True)
    print(json.dumps({"running": running, "tasks": truth}), flush=True)
    spin()


if sys.version_info >= (3, 11):
    asyncio.run(main(int(sys.argv[sys.argv.index("--extra") + 1]) if "--extra" in sys.argv else 0))
else:  # no TaskGroup: nothing to build, only a process for a reader to refuse
    print("ready", flush=True)
    print(json.dumps({"running": {}, "tasks": {}}), flush=True)
    spin()
