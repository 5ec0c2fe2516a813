"""A target whose names try to break out of HTML: function names with markup, quotes, `&`
entities and emoji, in a file whose own name holds `<script>`, quotes and an emoji.

Call chain: main loop -> OUTER_NAME -> LEAF_NAME (the hot one, where nearly all samples land).
Prints `ready` once running; runs until killed (or argv[1] seconds).
"""
import sys
import time

LEAF_NAME = "<script>alert(1)</script>"
OUTER_NAME = "\"><img src=x onerror=alert(2)>'&amp;💥"


def _renamed(func, name):
    code = func.__code__
    if hasattr(code, "co_qualname"):
        code = code.replace(co_name=name, co_qualname=name)
    else:
        code = code.replace(co_name=name)
    func.__code__ = code
    func.__name__ = func.__qualname__ = name
    return func


def leaf():
    x = 0
    for i in range(20000):
        x += i * i  # the hot line
    return x


def outer():
    return leaf()


leaf = _renamed(leaf, LEAF_NAME)
outer = _renamed(outer, OUTER_NAME)


print("ready", flush=True)
deadline = time.time() + float(sys.argv[1]) if len(sys.argv) > 1 else None
while deadline is None or time.time() < deadline:
    outer()
