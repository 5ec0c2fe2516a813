"""asyncio task shapes whose tasks take turns on the CPU (tests/test_async_scenarios.py).

Under asyncio.run's Task-1 (`main`, which gathers the top-level tasks), six worker tasks take
turns, each running one unit of the same loop (`crunch`) per turn and then yielding once, so
each does a sixth of the work whatever share of a CPU the process gets:

- `deep`: its unit five awaits down, `turns` -> `chain_1` -> ... -> `chain_5`, which crunches;
- `shared`: awaited by two tasks, `watcher-1` and `watcher-2`;
- `gathered-1`, `gathered-2`: gathered by the `gatherer` task;
- `grouped-1`, `grouped-2`: in a TaskGroup of the `group-owner` task (which waits in its exit).

`stuck` awaits a future that is never resolved: it never runs again after its first step.
Every task is named with `name=`. Prints "ready" once every worker has done a unit.

`--pure` blocks the C accelerator (`_asyncio`) before asyncio is imported, so every task is
asyncio's pure-Python one; `--uvloop` runs the same tasks on uvloop's loop.
"""

import sys

if "--pure" in sys.argv:
    sys.modules["_asyncio"] = None  # asyncio falls back to its Python Task, Future and tables

import asyncio  # noqa: E402

from async_split import crunch  # noqa: E402  (the same unit of CPU work; beside this file)

UNIT = 20_000  # iterations, under 1 ms
WORKERS = ("deep", "shared", "gathered-1", "gathered-2", "grouped-1", "grouped-2")


async def chain_5():
    crunch(UNIT)


async def chain_4():
    await chain_5()


async def chain_3():
    await chain_4()


async def chain_2():
    await chain_3()


async def chain_1():
    await chain_2()


async def unit():
    crunch(UNIT)


async def turns(started, name, one_unit):
    """Every worker task's coroutine: `one_unit` again and again, yielding to the loop between
    units."""
    while True:
        await one_unit()
        started.add(name)
        await asyncio.sleep(0)


async def watcher(task):
    await task


async def gatherer(started):
    kids = [asyncio.create_task(turns(started, name, unit), name=name) for name in ("gathered-1", "gathered-2")]
    await asyncio.gather(*kids)


async def group_owner(started):
    async with asyncio.TaskGroup() as group:
        for name in ("grouped-1", "grouped-2"):
            group.create_task(turns(started, name, unit), name=name)


async def stuck_wait(fut):
    await fut  # never resolved


async def stuck(fut):
    await stuck_wait(fut)


async def announce(started):
    while len(started) < len(WORKERS):
        await asyncio.sleep(0)
    print("ready", flush=True)


async def main():
    started = set()
    fut = asyncio.get_running_loop().create_future()
    shared = asyncio.create_task(turns(started, "shared", unit), name="shared")
    tops = [
        asyncio.create_task(turns(started, "deep", chain_1), name="deep"),
        asyncio.create_task(watcher(shared), name="watcher-1"),
        asyncio.create_task(watcher(shared), name="watcher-2"),
        asyncio.create_task(gatherer(started), name="gatherer"),
        asyncio.create_task(group_owner(started), name="group-owner"),
        asyncio.create_task(stuck(fut), name="stuck"),
    ]
    await announce(started)
    await asyncio.gather(*tops)


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
