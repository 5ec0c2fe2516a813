"""Python called back from C: `sorted(data, key=keyf)` inside caller() inside main().

C's sorted() is no Python frame, so every stack holding keyf must read
<module> -> main -> caller -> keyf. keyf is tiny, so the thread enters and leaves it
(pushing and popping its frame at the same address) as often as it can.
"""


def keyf(x):
    return -x


def caller(data):
    return sorted(data, key=keyf)


def main():
    data = list(range(2000))
    print("ready", flush=True)
    while True:
        caller(data)


main()
