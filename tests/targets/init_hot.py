"""Half the time constructing objects whose __init__ is hot, half in a plain function.

Stacks: <module> -> main -> build -> Heavy.__init__ -> spin, and <module> -> main -> plain -> spin.
The split is set by work: both halves run spin() with the same count, in short alternating
rounds, so it holds whatever share of a CPU the process gets.
"""


def spin(n):
    x = 0
    for i in range(n):
        x += i
    return x


class Heavy:
    def __init__(self, n):
        self.value = spin(n)


def build():
    return Heavy(5000)


def plain():
    return spin(5000)


def main():
    print("ready", flush=True)
    while True:
        build()
        plain()


main()
