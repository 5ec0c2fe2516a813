"""Busy work split between functions by amount: `split_work.py SLOW_PCT VARIANT [SECONDS]`.

Every cycle (CYCLE_ITERATIONS loop turns, some 10-25 ms) gives SLOW_PCT% of its turns to
`slow()`, 10% to a function that only this variant has (`only_in_baseline()` for VARIANT
"baseline", `only_in_current()` for "current"), and the rest to `fast()`. Two runs with different
SLOW_PCT make a before/after pair for `--diff-flamegraph`. Prints `ready` once running.

The split is counted in loop turns, not timed: a spin until a deadline lets preemption decide
the split (a function preempted near its deadline overruns it, and a short one overruns it by
more of its own length), so on a loaded machine the shares drifted from the ones asked for.
Counted work is split the same whether the target runs alone or beside other work.
"""
import sys
import time

CYCLE_ITERATIONS = 250_000


def spin(n):
    x = 0
    for _ in range(n):
        x += 1  # busy line
    return x


def slow(n):
    return spin(n)


def fast(n):
    return spin(n)


def only_in_baseline(n):
    return spin(n)


def only_in_current(n):
    return spin(n)


def main():
    slow_share = float(sys.argv[1]) / 100
    variant = only_in_baseline if sys.argv[2] == "baseline" else only_in_current
    duration = float(sys.argv[3]) if len(sys.argv) > 3 else None
    slow_n = round(CYCLE_ITERATIONS * slow_share)
    variant_n = round(CYCLE_ITERATIONS * 0.10)
    fast_n = CYCLE_ITERATIONS - slow_n - variant_n
    print("ready", flush=True)
    stop = time.time() + duration if duration else None
    while stop is None or time.time() < stop:
        slow(slow_n)
        variant(variant_n)
        fast(fast_n)


if __name__ == "__main__":
    main()
