"""Time in C next to time in Python, in equal slices of wall time, for --native:

- in_c: zlib.compress over a large buffer (nearly all in C, under a call instruction);
- in_python: an integer loop (no call: no <native>);
- sort_with_key: sorted(key=keyf): C calling back into Python (<native> between sort_with_key and
  keyf where the interpreter marks the entry, 3.11+) and C of its own (sorted comparing);
- asleep: time.sleep (in C, off the CPU).
"""

import time
import zlib

DATA = bytes(range(256)) * 4096


def keyf(x):
    y = x
    for _ in range(6):
        y ^= 1
    return y


def in_c():
    return zlib.compress(DATA, 6)


def in_python():
    total = 0
    for i in range(3000):
        total = total + i
    return total


def sort_with_key(data):
    return sorted(data, key=keyf)


def asleep():
    time.sleep(0.001)


def main():
    data = list(range(500, 0, -1))
    print("ready", flush=True)
    slice_s = 0.01
    while True:
        for work in (in_c, in_python, lambda: sort_with_key(data), asleep):
            end = time.perf_counter() + slice_s
            while time.perf_counter() < end:
                work()


main()
