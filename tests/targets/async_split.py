"""A 70/30 split between two asyncio tasks, known by construction: `async_split.py`.

A `supervisor` task gathers two worker tasks, `heavy` and `light`. Each round `heavy` runs 7
units of the same loop and `light` 3 (each task's units in a row, inside nested coroutines, so
a sample of either task's work shows its whole coroutine chain), then each yields to the loop
once. Whatever share of a CPU the process gets, each unit costs the same, so of the samples taken
in the two tasks' work 70% are heavy's and 30% light's. After each unit the running task sleeps
0.2 ms without yielding (shares are taken of the work, so the pause does not move them): a test
may run it under SCHED_FIFO, and a real-time task that never sleeps is throttled by the kernel.
Prints `ready` once both workers have run a round.
"""
import asyncio
import time

UNIT = 30_000  # iterations, ~1 ms


def crunch(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF
    return x


async def heavy_units(started):
    for _ in range(7):
        crunch(UNIT)
        time.sleep(0.0002)
    started.add("heavy")


async def light_units(started):
    for _ in range(3):
        crunch(UNIT)
        time.sleep(0.0002)
    started.add("light")


async def heavy_round(started):
    await heavy_units(started)


async def light_round(started):
    await light_units(started)


async def heavy(started):
    while True:
        await heavy_round(started)
        await asyncio.sleep(0)


async def light(started):
    while True:
        await light_round(started)
        await asyncio.sleep(0)


async def announce(started):
    while len(started) < 2:
        await asyncio.sleep(0)
    print("ready", flush=True)


async def supervisor():
    started = set()
    workers = [asyncio.create_task(heavy(started), name="heavy"),
               asyncio.create_task(light(started), name="light")]
    await announce(started)
    await asyncio.gather(*workers)


async def main():
    await asyncio.create_task(supervisor(), name="supervisor")


if __name__ == "__main__":
    asyncio.run(main())
