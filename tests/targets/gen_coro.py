import asyncio


def produce():
    for i in range(1000000000):
        s = 0
        for j in range(200):
            s += j  # line 8
        yield s


def consume_generator(n):
    total = 0
    for v in produce():
        total += v
        n -= 1
        if n == 0:
            return total


async def coro_work():
    s = 0
    for j in range(3000):
        s += j  # line 24
    await asyncio.sleep(0)
    return s


async def coro_driver():
    for _ in range(300):
        await coro_work()


def main():
    print("ready", flush=True)
    while True:
        consume_generator(300)
        asyncio.run(coro_driver())


main()
