"""Many threads in many shapes, for comparing two walkers on a frozen process.

A few threads are busy (a plain loop, a recursion, a generator resumed over and over); the rest
block forever at the end of a distinctive stack: on a lock, an Event, a sleep, a queue, a
condition, inside an except block (so their exception status never changes), inside a generator
and a coroutine being resumed (their frames live outside the thread's stack chunks on 3.11+),
inside an `__init__` called through `cls()` (the init shim on 3.13+), inside a sort key called
from C, and under a 200-deep recursion. The main thread stays busy. Prints "ready" once every
thread has started.
"""

import queue
import threading
import time

COPIES = 2  # each blocking shape twice: 2 x 11 + 3 busy = 25 threads besides the main one

held = threading.Lock()
held.acquire()  # never released: acquirers wait forever
never = threading.Event()
cond = threading.Condition()
box: queue.Queue = queue.Queue()


def busy_loop():
    x = 0
    while True:
        for i in range(1000):
            x += i


def busy_recursion(n):
    if n == 0:
        x = 0
        for i in range(20000):
            x += i
        return x
    return busy_recursion(n - 1) + 1


def busy_recursing():
    while True:
        busy_recursion(40)


def numbers():
    i = 0
    while True:
        s = 0
        for j in range(100):
            s += j
        yield s + i
        i += 1


def busy_generator():
    for _ in numbers():
        pass


def wait_lock():
    held.acquire()


def wait_event():
    never.wait()


def wait_sleep():
    while True:
        time.sleep(3600)


def wait_queue():
    box.get()


def wait_condition():
    with cond:
        cond.wait()


def wait_in_except():
    try:
        raise KeyError("kept in flight")
    except KeyError:
        never.wait()


def blocking_generator():
    yield 1
    never.wait()
    yield 2


def wait_in_generator():
    for _ in blocking_generator():
        pass


async def blocking_coroutine():
    never.wait()


def wait_in_coroutine():
    blocking_coroutine().send(None)


class Waiter:
    def __init__(self):
        never.wait()


def wait_in_init():
    Waiter()


def waiting_key(x):
    never.wait()
    return x


def wait_in_key():
    sorted([3, 1, 2], key=waiting_key)


def deep(n):
    if n == 0:
        never.wait()
    return deep(n - 1)


def wait_deep():
    deep(200)


BLOCKING = [wait_lock, wait_event, wait_sleep, wait_queue, wait_condition, wait_in_except,
            wait_in_generator, wait_in_coroutine, wait_in_init, wait_in_key, wait_deep]
BUSY = [busy_loop, busy_recursing, busy_generator]


def main_work():
    x = 0
    for i in range(5000):
        x += i
    return x


def main():
    targets = BUSY + BLOCKING * COPIES
    started = threading.Barrier(len(targets) + 1)

    def run(fn):
        started.wait()
        fn()

    for i, fn in enumerate(targets):
        threading.Thread(target=run, args=(fn,), name=f"{fn.__name__}-{i}", daemon=True).start()
    started.wait()
    print("ready", flush=True)
    while True:
        main_work()


main()
