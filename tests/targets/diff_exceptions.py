"""Nearly all the time inside except blocks, for freezing with an exception being handled.

Stacks: <module> -> main -> handling -> work with one ValueError being handled, then with a
KeyError handled inside that handler (two stacked), and for a moment the same under a generator
that handles one of its own. No plain stretch long enough to be caught often: whether a frozen
thread has an exception in flight, both walkers must say so alike.
"""


def work(n):
    x = 0
    for i in range(n):
        x += i
    return x


def nested():
    try:
        raise KeyError("inner")
    except KeyError:
        work(20000)


def handling():
    try:
        raise ValueError("outer")
    except ValueError:
        work(20000)
        nested()


def handling_generator():
    try:
        raise LookupError("in a generator")
    except LookupError:
        yield work(20000)


def main():
    print("ready", flush=True)
    while True:
        handling()
        for _ in handling_generator():
            pass


main()
