"""Benchmark target: three threads busy in Python code, forever.

Two threads run pure-Python CPU loops; the main thread alternates between a short sleep and a
burst of computation. Prints "ready" once all three are running.
"""

import sys
import threading
import time


def cpu_loop(seed):
    x = seed
    while True:
        for i in range(1000):
            x = (x * 31 + i) % 1000003


def mixed():
    x = 0
    while True:
        time.sleep(0.002)
        for i in range(20000):
            x = (x + i * i) % 1000003


def main():
    started = threading.Barrier(3)

    def worker(seed):
        started.wait()
        cpu_loop(seed)

    for seed in (1, 2):
        threading.Thread(target=worker, args=(seed,), name="cpu-%d" % seed, daemon=True).start()
    started.wait()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    mixed()


if __name__ == "__main__":
    main()
