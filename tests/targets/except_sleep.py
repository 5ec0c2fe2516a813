"""Sleeps inside an `except` block, in a loop: `except_sleep.py`. In --mode exception every
sample of the main thread is in flight, and (--native) in C: time.sleep. Prints `ready`."""

import time


def waits():
    try:
        raise ValueError("in flight")
    except ValueError:
        time.sleep(0.01)


print("ready", flush=True)
while True:
    waits()
