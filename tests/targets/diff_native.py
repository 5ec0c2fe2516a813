"""Threads that each stand in one place --opcodes and --native tell apart, for comparing walkers.

- main: a loop of integer adds and attribute loads (3.11+ specializes them);
- "sorter": `sorted(data, key=keyf)`: Python called back from C (a <native> between sort_work and
  keyf) and, between two keyf calls, the thread inside sorted() (a <native> leaf on its CALL);
- "hasher": zlib.crc32 over a large buffer: nearly always inside C, under a call instruction;
- "sleeper": time.sleep, inside C off the CPU;
- "builder": `cls()` running `__init__`s (3.13+ pushes an init shim frame below each) and a
  generator.

No sleeps in the CPU-bound threads, so a freeze at any moment finds each where it spends its time.
"""

import threading
import time
import zlib


class Point:
    def __init__(self, x):
        self.x = x


def arith(p, n):
    """Integer adds and an attribute load (3.11+ specializes both) on every line of the loop."""
    total = 0
    for i in range(n):
        total = total + i + p.x
    return total


def keyf(x):
    return (x * 7919) % 1009 - x // 3


def sort_work(data):
    while True:
        sorted(data, key=keyf)


def hash_work(buf):
    while True:
        zlib.crc32(buf)


def sleep_work():
    while True:
        time.sleep(0.5)


def produce(n):
    for i in range(n):
        yield i * 2


class Inner:
    def __init__(self, n):
        self.value = sum(produce(n))


class Outer:
    def __init__(self, n):
        self.inner = Inner(n)


def build_work():
    while True:
        Outer(2000)


def main():
    for name, fn, args in (("sorter", sort_work, (list(range(3000)),)), ("hasher", hash_work, (b"x" * (4 << 20),)),
                           ("sleeper", sleep_work, ()), ("builder", build_work, ())):
        threading.Thread(target=fn, args=args, name=name, daemon=True).start()
    p = Point(3)
    print("ready", flush=True)
    while True:
        arith(p, 20000)


main()
