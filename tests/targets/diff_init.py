"""Nearly all the time inside `__init__`s called through `cls()`, two deep.

Stacks: <module> -> main -> build -> Outer.__init__ -> Inner.__init__ -> spin, and for a moment
between two objects <module> -> main -> build (-> Outer.__init__). From 3.13 each `cls()` pushes
an init shim frame that walkers must leave out; two stacked shims check it is left out at every
level. No sleeps, so a freeze at any moment most likely finds both `__init__`s.
"""


def spin(n):
    x = 0
    for i in range(n):
        x += i
    return x


class Inner:
    def __init__(self, n):
        self.value = spin(n)


class Outer:
    def __init__(self, n):
        self.inner = Inner(n)


def build():
    return Outer(20000)


def main():
    print("ready", flush=True)
    while True:
        build()


main()
