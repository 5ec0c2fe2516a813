"""Two functions of equal counted work, one made slower: `gate_work.py SLOWER_PCT SECONDS`.

Every cycle runs `steady()` and `hot()` for the same number of loop turns, except that `hot()`
does SLOWER_PCT% more (0: the same code twice). Counted, not timed, so the split holds on a
loaded machine (see split_work.py). Prints `ready` once running.
"""
import sys
import time

CYCLE = 10_000


def steady(n):
    x = 0
    for _ in range(n):
        x += 1  # steady line
    return x


def hot(n):
    x = 0
    for _ in range(n):
        x += 1  # hot line
    return x


def main():
    slower = float(sys.argv[1]) / 100
    stop = time.time() + float(sys.argv[2])
    hot_n = round(CYCLE * (1 + slower))
    print("ready", flush=True)
    while time.time() < stop:
        steady(CYCLE)
        hot(hot_n)


if __name__ == "__main__":
    main()
