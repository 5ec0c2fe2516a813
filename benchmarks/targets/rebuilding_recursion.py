"""Benchmark target: a recursion of DEPTH frames (argv[1], default 150) that unwinds and rebuilds itself.

`recurse(DEPTH)` calls itself down to n == 0, where a leaf loop of LEAF iterations (argv[2],
default 100,000: a few ms, as tests/targets/recursion.py) runs; then the whole stack returns and
`<module>` calls it again, forever. A sampler reading the stack while it is being torn down or
built up can return a stack that never existed; bench_accuracy.py knows which stacks can exist from
this file's structure (read with `ast`, so edits here keep the oracle right). A shorter leaf
spends more of the time unwinding and rebuilding. Prints "ready" once running.
"""

import sys


def recurse(n, leaf):
    if n == 0:
        x = 0
        for i in range(leaf):
            x += i
        return x
    return recurse(n - 1, leaf)


depth = int(sys.argv[1]) if len(sys.argv) > 1 else 150
leaf = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
sys.setrecursionlimit(depth + 100)
print("ready", flush=True)
while True:
    recurse(depth, leaf)
