"""--opcodes / --native target: add_loop()'s line 13 spends its time in the integer add
(`total + i` on ints past the small-int cache), digest()'s line 18 in hashlib's C code.
Prints "ready", then loops for argv[1] seconds (default: until killed)."""

import hashlib
import sys
import time


def add_loop(n):
    total = 1 << 20000  # ~700 digits: the add copies them all, the rest of the line is cheap
    for i in range(n):
        total = total + i  # line 13: the add
    return total


def digest(data):
    return hashlib.sha256(data).digest()  # line 18: in C


def main(seconds):
    data = bytes(range(256)) * 32768  # 8 MB: a few ms in C
    print("ready", flush=True)
    deadline = time.time() + seconds
    while time.time() < deadline:
        add_loop(10_000)
        digest(data)


main(float(sys.argv[1]) if len(sys.argv) > 1 else 3600.0)
