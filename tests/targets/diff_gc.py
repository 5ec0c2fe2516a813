"""Stops itself (SIGSTOP) inside the garbage collector, for comparing two walkers there.

Each explicit collection stops the process once, in turn: in a gc callback as the collection
starts, in a finalizer (`__del__`) of cyclic garbage the collection frees, and in a callback as
it ends. Each stop is announced on stdout first ("stopping in PHASE"); whoever drives the target
waits for that line and the stop, reads the process, and sends SIGCONT. Automatic
collections are off so that every stop is one of these. Prints "ready" first.
"""

import gc
import os
import signal

gc.disable()
PHASES = ("start", "finalizer", "stop")
state = {"phase": "", "armed": False}


def stop_here(phase):
    # announced first, so whoever drives the target knows a new stop is coming
    print(f"stopping in {phase}", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)


def freeze(phase):
    if state["armed"] and state["phase"] == phase:
        state["armed"] = False
        stop_here(phase)


class Cyclic:
    def __init__(self):
        self.me = self

    def __del__(self):
        freeze("finalizer")


def on_gc(phase, info):
    freeze(phase)


gc.callbacks.append(on_gc)


def collect(n):
    state["phase"] = PHASES[n % len(PHASES)]
    junk = [Cyclic() for _ in range(50)]
    del junk
    state["armed"] = True
    gc.collect()


print("ready", flush=True)
n = 0
while True:
    collect(n)
    n += 1
