"""A sleeping thread beside a spinning one: `accuracy_threads.py`.

The main thread blocks for good in `sleeper` (a read on a pipe nobody writes: off CPU, GIL
released); a second thread runs `spinner`, a pure-Python loop that never blocks. With
`-a`, every sample holds one stack of each, so in wall mode each is exactly half of the
stacks; in cpu mode only `spinner` can be kept. Prints `ready` once the spinner runs.
"""
import os
import threading

started = threading.Event()


def spinner():
    started.set()
    x = 0
    while True:
        x = (x + 1) & 0xFFFF


def sleeper(fd):
    os.read(fd, 1)


r, w = os.pipe()
threading.Thread(target=spinner, name="spinner", daemon=True).start()
started.wait()
print("ready", flush=True)
sleeper(r)
