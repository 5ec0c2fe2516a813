"""A known asyncio task tree that holds still: tasks parked in awaits (one five coroutines deep,
one awaited by two others, one left unnamed) while the main task runs on the CPU. Prints "ready"
and then, as JSON, what it knows of its tasks (for tests/test_async_tasks.py)."""

import asyncio
import json


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
    for _ in range(3):
        await asyncio.sleep(0)
    me = asyncio.current_task()
    tasks = [me, shared, *watchers, unnamed]
    truth = {
        t.get_name(): {"task": id(t), "coro": id(t.get_coro())} for t in tasks
    }
    truth["shared-worker"]["awaited_by"] = sorted(w.get_name() for w in watchers)
    truth["shared-worker"]["stack"] = ["worker", "level_1", "level_2", "level_3", "leaf"]
    print("ready", flush=True)
    print(json.dumps({"running": me.get_name(), "tasks": truth}), flush=True)
    spin()


asyncio.run(main())
