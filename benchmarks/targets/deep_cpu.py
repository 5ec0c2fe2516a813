"""Benchmark target: one thread, CPU-bound, its stack 32 frames of recursion deep.

`<module>` calls `descend(32)`, which recurses to depth 32; the deepest `descend` frame
then spins in a pure-Python loop forever, so every sample should see `<module>` plus 32
`descend` frames (33 Python frames). Prints "ready" once the leaf is reached.
"""

import sys

DEPTH = 32


def descend(n):
    if n > 1:
        descend(n - 1)
        return
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    x = 0
    while True:
        for i in range(1000):
            x = (x + i * i) % 1000003


if __name__ == "__main__":
    descend(int(sys.argv[1]) if len(sys.argv) > 1 else DEPTH)
