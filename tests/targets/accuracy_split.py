"""A 70/30 split known by construction: `accuracy_split.py`.

Like examples/hotspots.py, `main` alternates between `parse_records` (~70%) and `checksum`
(~30%), but the split is set by work, not by a clock: both functions run the same loop, and
every round gives `parse_records` 7 units of it and `checksum` 3. Whatever share of a CPU the
process gets (a loaded machine, a profiler beside it), each unit costs the same, so 70/30 of
the samples of this one thread holds. Rounds are ~10 ms, so any window of a few seconds sees
hundreds of them. After each unit it sleeps 0.2 ms (shares are taken of the work, so the
pause does not move them): a test may run it under SCHED_FIFO, and a real-time task that never
sleeps is throttled by the kernel for 50 ms of every second, long freezes that skew wall-clock
samples. Prints `ready` once running.
"""
import time

UNIT = 30_000  # iterations, ~1 ms


def parse_records(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF
    return x


def checksum(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF
    return x


def main():
    print("ready", flush=True)
    while True:
        for _ in range(7):
            parse_records(UNIT)
            time.sleep(0.0002)
        for _ in range(3):
            checksum(UNIT)
            time.sleep(0.0002)


if __name__ == "__main__":
    main()
