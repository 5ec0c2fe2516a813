"""An integer add loop and a zlib compression, in equal slices of wall time (for --opcodes and
--native in the editors).

- add_loop: `total = total + i + i + i + i` on one-digit ints (3.11+ specializes the adds to
  BINARY_OP_ADD_INT, 3.9/3.10 run BINARY_ADD): the line's hottest instruction is the add, and
  its time lies on the columns of that expression (3.11+ record them). Four adds to one store:
  the store frees the old total, which costs about what one add does (3.13 measured 49% store,
  40% add with a single add);
- compress: nearly all its time inside zlib's C code, under the line's call instruction.

Optional argument: seconds to run (default 2, what an editor's "profile this file" runs).
"""

import sys
import time
import zlib

DATA = bytes(range(256)) * 2048


def add_loop(n):
    total = 0
    for i in range(n):
        total = total + i + i + i + i  # ADD
    return total


def compress():
    return zlib.compress(DATA, 6)  # COMPRESS


def main():
    print("ready", flush=True)
    deadline = time.perf_counter() + (float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
    slice_s = 0.01
    while time.perf_counter() < deadline:
        for work in (lambda: add_loop(3000), compress):
            end = time.perf_counter() + slice_s
            while time.perf_counter() < end:
                work()


main()
