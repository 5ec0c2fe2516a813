"""Half the time constructing objects whose __init__ is hot, half in a plain function.

Stacks: <module> -> main -> build -> Heavy.__init__ -> spin, and <module> -> main -> plain -> spin.
The split is set by work: both halves run spin() with the same count, in short alternating
rounds, so it holds whatever share of a CPU the process gets. A short sleep after each round
(shares are of the spin() samples, so it does not move them) lets a loaded machine take the CPU
away there rather than mid-round, where a long wait would be counted in one half only.
"""

import time


def spin(n):
    x = 0
    for i in range(n):
        x += i
    return x


class Heavy:
    def __init__(self, n):
        self.value = spin(n)


def build():
    return Heavy(20000)


def plain():
    return spin(20000)


def main():
    print("ready", flush=True)
    while True:
        build()
        time.sleep(0.0002)
        plain()
        time.sleep(0.0002)


main()
