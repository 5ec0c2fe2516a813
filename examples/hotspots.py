"""A small CPU-bound program with a known shape, for trying heatline.

About 70% of its time goes to `parse_records` and 30% to `checksum`, both called from `main`.
Run:  heatline run examples/hotspots.py
"""

import sys
import time


def parse_records(n):
    total = 0
    for i in range(n):
        total += len(str(i * 7919))  # the hot line
    return total


def checksum(n):
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


def spend(func, seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        func(2000)


def main(duration):
    # Interleave so the split holds for any sampling window, not just the whole run.
    rounds = max(1, int(duration / 0.1))
    for _ in range(rounds):
        spend(parse_records, 0.07)
        spend(checksum, 0.03)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
