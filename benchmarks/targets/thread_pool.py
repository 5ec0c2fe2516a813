"""Benchmark target: TOTAL threads (argv[1]), BUSY of them (argv[2]) working, the rest waiting.

A busy thread alternates a burst of pure-Python work (about 1 ms, at a call depth of 2 to 9 that
differs between threads, so their stacks differ) with a 1 ms sleep: "busy-ish", so that every
busy thread is seen both running and waiting. The other threads block on an Event for ever. The
main thread (counted in TOTAL) waits too. Prints "ready" once every thread has started.
"""

import sys
import threading
import time

threading.stack_size(256 * 1024)  # a thousand threads need no 8 MiB stack each


def spin(n):
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def nest(depth, n):
    if depth <= 1:
        return spin(n)
    return nest(depth - 1, n)


def busy(depth, started):
    started.release()
    while True:
        nest(depth, 20000)
        time.sleep(0.001)


def idle(forever, started):
    started.release()
    forever.wait()


def main():
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    n_busy = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    forever = threading.Event()
    started = threading.Semaphore(0)
    for i in range(total - 1):
        if i < n_busy:
            t = threading.Thread(target=busy, args=(2 + i % 8, started), name="busy-%d" % i, daemon=True)
        else:
            t = threading.Thread(target=idle, args=(forever, started), name="idle-%d" % i, daemon=True)
        t.start()
    for _ in range(total - 1):
        started.acquire()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    forever.wait()


if __name__ == "__main__":
    main()
