"""Code objects that come and go: each round compiles a new function (its own name and file),
runs it, and drops it, so code objects are freed all the time and their memory reused.

A walker that keeps what it learned about a code object by address must notice when the
address holds another one: stacks read <module> -> run_fresh -> fresh_N with the N running now.
"""

import itertools

TEMPLATE = "def fresh_{n}():\n    x = 0\n    for i in range(20000):\n        x += i\n    return x\n"


def run_fresh(n):
    namespace = {}
    exec(compile(TEMPLATE.format(n=n), f"<fresh {n}>", "exec"), namespace)
    return namespace[f"fresh_{n}"]()


print("ready", flush=True)
for n in itertools.count():
    run_fresh(n)
