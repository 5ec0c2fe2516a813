"""A known share of time spent handling an exception: `accuracy_exceptions.py`.

One thread alternates: `handling` raises and catches a ValueError and, inside the `except`
block, runs 3 units of work in `handled_work`; then `plain_work` runs 7 units of the same
loop with no exception anywhere. So 30% of the samples fall while an exception is being
handled (all of them under `handling`), 70% while none is. Each unit is followed by a 0.2 ms
sleep, in the except block for the handled ones, so the 3:7 split of (unit + pause) holds and a
SCHED_FIFO target is never throttled. Prints `ready` once running.
"""
import time

UNIT = 30_000  # iterations, ~1 ms


def handled_work(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF
    return x


def plain_work(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF
    return x


def handling():
    try:
        raise ValueError("handled")
    except ValueError:
        for _ in range(3):
            handled_work(UNIT)
            time.sleep(0.0002)


def main():
    print("ready", flush=True)
    while True:
        handling()
        for _ in range(7):
            plain_work(UNIT)
            time.sleep(0.0002)


if __name__ == "__main__":
    main()
