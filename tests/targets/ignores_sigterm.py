"""Ignores SIGTERM (and SIGINT), prints "ready", then spins in stubborn(): only SIGKILL ends it."""

import signal


def stubborn():
    x = 0
    for i in range(20000):
        x += i * i
    return x


signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
while True:
    stubborn()
