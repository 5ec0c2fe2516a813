"""A recursion deeper than heatline walks (its depth from argv), spending its time at the bottom.

The recursion limit is raised to fit; 3.11+ need no C stack for Python-to-Python calls, and
3.9/3.10's few kilobytes a level fit the default 8 MiB stack at a few thousand levels.
"""

import sys
import time


def recurse(n):
    if n == 0:
        # A leaf that outlasts the walk and second read of a few thousand frames on 3.9/3.10,
        # so most samples see the whole recursion standing still.
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:  # line 16
            pass
        return 0
    return recurse(n - 1)  # line 19


depth = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
sys.setrecursionlimit(depth + 100)
print("ready", flush=True)
while True:
    recurse(depth)
