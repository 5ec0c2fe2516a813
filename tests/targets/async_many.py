"""Many idle asyncio tasks and one busy one: `async_many.py N` parks N tasks three coroutines deep
(even ones on a future that is never resolved, odd ones in an hour-long `asyncio.sleep`), then
runs a task named "busy" on the CPU (it yields to the loop between rounds) which the main task
awaits. Prints "ready" once every idle task is parked, then, as JSON, the idle count and the
busy task's address. For measuring what reading many tasks costs (benchmarks/bench_async.py)
and for the reader's tests on large task lists.

`--step`: a line read on stdin resolves the future the even tasks wait on, so they move on to a
second one, two lines further down in `parked`; prints "stepped" once they all have.
"""

import asyncio
import json
import sys


STEPS = []  # with --step, the future the even tasks wait on next


async def parked(i, fut):
    if i % 2:
        await asyncio.sleep(3600)
    else:
        await fut
        for step in STEPS:
            await step


async def middle(i, fut):
    await parked(i, fut)


async def idle(i, fut):
    await middle(i, fut)


def crunch(n):
    total = 0
    for k in range(n):
        total += k * k
    return total


async def busy():
    while True:
        crunch(20_000)
        await asyncio.sleep(0)


async def stepper(fut):
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    fut.set_result(None)
    await asyncio.sleep(0)  # the woken tasks were scheduled first: they have moved on
    print("stepped", flush=True)
    await asyncio.get_running_loop().create_future()  # stays: the task set does not change


async def main(n, step):
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    if step:
        STEPS.append(loop.create_future())
    idlers = [asyncio.create_task(idle(i, fut), name=f"idle-{i}") for i in range(n)]
    await asyncio.sleep(0)  # every idle task runs to its first await
    worker = asyncio.create_task(busy(), name="busy")
    if step:
        asyncio.create_task(stepper(fut), name="stepper")
    print("ready", flush=True)
    print(json.dumps({"idle": len(idlers), "busy": id(worker)}), flush=True)
    await worker


if __name__ == "__main__":
    count = next((int(a) for a in sys.argv[1:] if a.isdigit()), 1000)
    asyncio.run(main(count, "--step" in sys.argv))
