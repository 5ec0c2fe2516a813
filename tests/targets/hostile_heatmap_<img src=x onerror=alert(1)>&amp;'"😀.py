"""A target whose names try to break HTML reports: markup, quotes, entities and emoji in its file
name, its function names and a pseudo-file name; the heatmap must show them verbatim, inert."""

import sys
import time

WORK_NAME = "<script>alert(1)</script>\"'&amp;😀"
CALLER_NAME = "<img src=x onerror=alert(2)>'\"🔥"


def work():
    x = 0
    for i in range(20000):
        x += i * i  # line 14: the hot line, in a function named WORK_NAME
    return x


def caller():
    return work()  # line 19


def rename(func, name):
    """Give `func` a name no `def` can spell (co_qualname exists on 3.11+)."""
    code = func.__code__
    changes = {"co_name": name}
    if hasattr(code, "co_qualname"):
        changes["co_qualname"] = name
    func.__code__ = code.replace(**changes)


rename(work, WORK_NAME)
rename(caller, CALLER_NAME)

# Code compiled under a pseudo-file name: listed in the index without a page.
namespace = {}
exec(compile("def spin():\n    y = 0\n    for j in range(3000):\n        y += j\n    return y\n",
             "<script>alert(3)</script>", "exec"), namespace)
spin = namespace["spin"]

print("ready", flush=True)
deadline = time.time() + float(sys.argv[1]) if len(sys.argv) > 1 else None
while deadline is None or time.time() < deadline:
    caller()  # line 43
    spin()
