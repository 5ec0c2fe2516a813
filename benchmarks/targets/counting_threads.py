"""Benchmark target: three_threads.py's work, counted, so a benchmark can read the target's own rate.

Two threads run pure-Python CPU loops and the main thread alternates short sleeps with bursts of
the same loop (as in three_threads.py). Every thread adds one to its counter per block of 1,000
iterations. On SIGUSR1 the main thread prints "BLOCKS MONOTONIC_NS CPU_NS": the blocks done so far
by all threads, the time it read them and the process's CPU time, so the rate between two
requests is the target's work rate, measured by the target itself (per second, and per CPU
second). Prints "ready" once all three threads run.
"""

import signal
import sys
import threading
import time

counts = [0, 0, 0]


def block(x):
    for i in range(1000):
        x = (x * 31 + i) % 1000003
    return x


def cpu_loop(slot):
    x = slot
    while True:
        x = block(x)
        counts[slot] += 1


def mixed():
    x = 0
    while True:
        time.sleep(0.002)
        for _ in range(20):
            x = block(x)
            counts[0] += 1


def report(signum, frame):
    sys.stdout.write("%d %d %d\n" % (sum(counts), time.monotonic_ns(), time.process_time_ns()))
    sys.stdout.flush()


def main():
    signal.signal(signal.SIGUSR1, report)
    started = threading.Barrier(3)

    def worker(slot):
        started.wait()
        cpu_loop(slot)

    for slot in (1, 2):
        threading.Thread(target=worker, args=(slot,), name="cpu-%d" % slot, daemon=True).start()
    started.wait()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    mixed()


if __name__ == "__main__":
    main()
