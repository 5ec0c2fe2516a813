"""A known asyncio task tree that holds still: tasks parked in awaits (one five coroutines deep,
one awaited by two others, one left unnamed, two gathered, one in a TaskGroup) while the main
task runs on the CPU. Prints "ready"
and then, as JSON, what it knows of its tasks (for tests/test_async_tasks.py)."""

import asyncio
import json
import sys


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


def spin():
    total = 0
    while True:
        total += sum(range(1000))


async def main():
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    shared = asyncio.create_task(worker(fut), name="shared-worker")
    watchers = [asyncio.create_task(watcher(shared), name=f"watcher-{i}") for i in (1, 2)]
    unnamed = asyncio.create_task(leaf(fut))
    gathering = asyncio.create_task(gatherer(fut), name="gatherer")
    owner = asyncio.create_task(group_owner(fut), name="group-owner")
    for _ in range(3):
        await asyncio.sleep(0)
    me = asyncio.current_task()
    tasks = list(asyncio.all_tasks())
    assert {me, shared, *watchers, unnamed, gathering, owner} <= set(tasks) and len(tasks) == 10
    truth = {
        t.get_name(): {"task": id(t), "coro": id(t.get_coro())} for t in tasks
    }
    truth["shared-worker"]["awaited_by"] = sorted(w.get_name() for w in watchers)
    truth["shared-worker"]["stack"] = ["worker", "level_1", "level_2", "level_3", "leaf"]
    # gather's children are awaited by the task that called gather; a group's by its owner.
    for name in ("gathered-1", "gathered-2"):
        truth[name]["awaited_by"] = ["gatherer"]
    truth["grouped"]["awaited_by"] = ["group-owner"]
    print("ready", flush=True)
    print(json.dumps({"running": me.get_name(), "tasks": truth}), flush=True)
    spin()


if sys.version_info >= (3, 11):
    asyncio.run(main())
else:  # no TaskGroup: nothing to build, only a process for a reader to refuse
    print("ready", flush=True)
    print(json.dumps({"running": None, "tasks": {}}), flush=True)
    spin()
