"""Two functions of equal counted work, one made slower: `gate_work.py SLOWER_PCT SECONDS`.

Every cycle runs `steady()` and `hot()` for the same number of loop turns, except that `hot()`
does SLOWER_PCT% more (0: the same code twice). Counted, not timed, so the split holds on a
loaded machine (see split_work.py); the rests land on main(), never on the two measured
functions. Prints `ready` once running.
"""
import sys
import time

CYCLE = 10_000
# A short rest after every WORK_S of work keeps the target under the kernel's real-time budget
# (95% of each second) when a test runs it at a real-time priority, so it is never throttled:
# a throttled target freezes mid-line for 50 ms and every sample of those lands on that line.
WORK_S, REST_S = 0.09, 0.008


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
    now = time.time()
    stop, rest_at = now + float(sys.argv[2]), now + WORK_S
    hot_n = round(CYCLE * (1 + slower))
    print("ready", flush=True)
    while now < stop:
        steady(CYCLE)
        hot(hot_n)
        now = time.time()
        if now >= rest_at:
            time.sleep(REST_S)  # rest line
            rest_at = time.time() + WORK_S


if __name__ == "__main__":
    main()
