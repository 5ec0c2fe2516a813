"""Busy work split between functions by time: `split_work.py SLOW_PCT VARIANT [SECONDS]`.

Every 20 ms cycle spends SLOW_PCT% of its time in `slow()`, 10% in a function that only this
variant has (`only_in_baseline()` for VARIANT "baseline", `only_in_current()` for "current"),
and the rest in `fast()`. Two runs with different SLOW_PCT make a before/after pair for
`--diff-flamegraph`. Prints `ready` once running.
"""
import sys
import time

CYCLE = 0.020


def spin(seconds):
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1  # busy line
    return x


def slow(seconds):
    return spin(seconds)


def fast(seconds):
    return spin(seconds)


def only_in_baseline(seconds):
    return spin(seconds)


def only_in_current(seconds):
    return spin(seconds)


def main():
    slow_share = float(sys.argv[1]) / 100
    variant = only_in_baseline if sys.argv[2] == "baseline" else only_in_current
    duration = float(sys.argv[3]) if len(sys.argv) > 3 else None
    print("ready", flush=True)
    stop = time.time() + duration if duration else None
    while stop is None or time.time() < stop:
        slow(CYCLE * slow_share)
        variant(CYCLE * 0.10)
        fast(CYCLE * (0.90 - slow_share))


if __name__ == "__main__":
    main()
