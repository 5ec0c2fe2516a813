"""The GIL passed back and forth between two threads, with a known 70/30 split of what its
holder runs: `accuracy_gil.py`.

Two worker threads take turns, handing over with plain locks (blocking on one releases the
GIL). In its turn a worker runs 7 units of work in `heavy_work`, then 3 units of the same loop
in `light_work`, then wakes the other and waits for its next turn. So at any moment one worker
runs Python (the GIL holder) and the other is blocked in `take_turns` without the GIL, and of
what the holder runs, 70% is `heavy_work` and 30% `light_work`. That split is the same in each
thread's turn, so it holds even if one worker runs slower than the other (another busy process
on its core). The main thread blocks in `waiter` (a read on a pipe, no GIL). In gil mode, only
`heavy_work`/`light_work` should be kept (plus the instant of a hand-over); the waiting worker
and the main thread never. Prints `ready` once the workers run.
"""
import os
import threading
import time

UNIT = 30_000  # iterations, ~1 ms


def heavy_work(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF
    return x


def light_work(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF
    return x


def take_turns(mine, theirs, started):
    started.set()
    while True:
        mine.acquire()  # blocked here, without the GIL, while the other worker runs
        heavy_work(7 * UNIT)
        light_work(3 * UNIT)
        time.sleep(0.001)  # idle a moment without the GIL (no real-time throttling under SCHED_FIFO)
        theirs.release()


def waiter(fd):
    os.read(fd, 1)


ping, pong = threading.Lock(), threading.Lock()
ping.acquire()
pong.acquire()
started = [threading.Event(), threading.Event()]
threading.Thread(target=take_turns, args=(ping, pong, started[0]), name="ping", daemon=True).start()
threading.Thread(target=take_turns, args=(pong, ping, started[1]), name="pong", daemon=True).start()
for event in started:
    event.wait()
ping.release()
print("ready", flush=True)
r, w = os.pipe()
waiter(r)
