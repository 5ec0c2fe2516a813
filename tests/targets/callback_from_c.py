"""Python called back from C: `sorted(data, key=keyf)` inside caller() inside main().

C's sorted() is no Python frame, so every stack holding keyf must read
<module> -> main -> caller -> keyf. keyf is short, so the thread enters and leaves it (pushing
and popping its frame at the same address) hundreds of thousands of times a second; it runs a
little loop so that it is on top for a few microseconds at a time, long enough for a sample
that finds it there to be confirmed, and so that the call transitions stay a small share of the
thread's time (a target descheduled in the middle of one, on a loaded machine, cannot be read
until it runs again: with an 8-step loop, 3.12 lost 4% of its samples that way beside two CPU
hogs, with 24 steps under 2%).
"""


def keyf(x):
    y = x
    for _ in range(24):
        y ^= 1
    return -y


def caller(data):
    return sorted(data, key=keyf)


def main():
    data = list(range(2000))
    print("ready", flush=True)
    while True:
        caller(data)


main()
