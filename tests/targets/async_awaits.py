"""An asyncio task awaiting another, for the editors' async tests: `async_awaits.py [SECONDS]`.

Task `awaiter` starts task `worker` and awaits it (the AWAIT line). `worker`'s coroutine `work`
awaits the coroutine `one_round` (the ROUND line), whose CPU work is `crunch` (the HOT line),
and yields to the loop after each round. A plain stack holds the worker's frames only: the
awaiter's line shows only when stacks are rebuilt across tasks (--async-aware), with the time the
worker runs. Task `parked` waits on a future nobody resolves (the PARKED line): --async-mode all
shows it, running does not. Prints `ready`, works for SECONDS (default 3), then exits.
"""

import asyncio
import sys
import time


def crunch(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF  # HOT
    return x


async def one_round():
    crunch(20_000)


async def work(until):
    while time.monotonic() < until:
        await one_round()  # ROUND
        await asyncio.sleep(0)


async def awaiter(until):
    job = asyncio.create_task(work(until), name="worker")
    await job  # AWAIT


async def parked(never):
    await never  # PARKED


async def main(seconds):
    never = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(awaiter(time.monotonic() + seconds), name="awaiter")
    idle = asyncio.create_task(parked(never), name="parked")
    print("ready", flush=True)
    await waiting
    idle.cancel()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0))
