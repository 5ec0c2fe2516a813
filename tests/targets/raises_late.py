"""Works in doomed() for 0.5 s, then raises: python prints this file's traceback, exits 1."""

import time


def doomed():
    end = time.time() + 0.5
    while time.time() < end:
        pass
    raise ValueError("the target's own failure")


doomed()
