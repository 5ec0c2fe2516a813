"""A target whose stacks keep changing shape: three threads walk a call tree of 12 functions
along pseudo-random paths 3 to 24 calls deep, doing a little work at each level and more at
the leaves, so a profile of it holds hundreds of distinct stacks that grow, shrink and
repeat (what the binary format's REPEAT/SUFFIX/POP_PUSH records are for).
"""

import random
import sys
import threading
import time


def work(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def make_level(name, index):
    def level(rng, depth):
        work(40 * (index + 1))  # a bit of work on the way down
        if depth <= 0:
            return work(3000)  # the leaf: most of the time
        nxt = FUNCS[rng.randrange(len(FUNCS))]
        return nxt(rng, depth - 1)

    level.__name__ = level.__qualname__ = name
    code = level.__code__
    level.__code__ = (code.replace(co_name=name, co_qualname=name) if hasattr(code, "co_qualname")
                      else code.replace(co_name=name))
    return level


FUNCS = [make_level(name, i) for i, name in enumerate(
    ["parse", "tokenize", "resolve", "render", "layout", "measure",
     "encode", "decode", "visit", "reduce", "lookup", "commit"])]


def walker(seed):
    rng = random.Random(seed)
    while True:
        FUNCS[rng.randrange(len(FUNCS))](rng, rng.randint(3, 24))


def main():
    for seed in (1, 2):
        threading.Thread(target=walker, args=(seed,), name=f"walker-{seed}", daemon=True).start()
    print("ready", flush=True)
    deadline = time.time() + float(sys.argv[1]) if len(sys.argv) > 1 else None
    rng = random.Random(0)
    while deadline is None or time.time() < deadline:
        FUNCS[rng.randrange(len(FUNCS))](rng, rng.randint(3, 24))


if __name__ == "__main__":
    main()
