"""Three functions whose hot instruction is known, run in turn for equal slices of wall time.

- add_loop: `total = total + i` on ints (3.11+ specializes it to BINARY_OP_ADD_INT; 3.9/3.10
  run BINARY_ADD);
- attr_loop: `p.x` on a plain instance (3.11+: LOAD_ATTR_INSTANCE_VALUE);
- poly_call: one call site, `f(*args)`, fed a builtin, a type, a Python function and a bound
  method in turn: a call with unpacked arguments (CALL_FUNCTION_EX) that these callees keep from
  specializing.
"""

import time


class Point:
    def __init__(self, x):
        self.x = x


def plain(v):
    return v


CALLEES = (abs, int, plain, Point(1).__init__, str, list)
ARGS = ((-3,), (7,), (5,), (2,), (9,), ())


def add_loop(n):
    total = 0
    for i in range(n):
        total = total + i
    return total


def attr_loop(n, p):
    total = 0
    for _ in range(n):
        total = p.x
        total = p.x
        total = p.x
    return total


def poly_call(n):
    out = None
    for i in range(n):
        k = i % 6
        out = CALLEES[k](*ARGS[k])
    return out


def main():
    p = Point(3)
    print("ready", flush=True)
    slice_s = 0.005
    while True:
        for work in (lambda: add_loop(2000), lambda: attr_loop(700, p), lambda: poly_call(400)):
            end = time.perf_counter() + slice_s
            while time.perf_counter() < end:
                work()


main()
