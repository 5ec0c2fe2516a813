"""Splits its time between two functions: argv[1] = share of the work in slow_path (0-1),
argv[2] = seconds to run. Used to compare two profiles of the same code."""
import sys
import time


def fast_path(n):
    x = 0
    for i in range(n):
        x += i * i % 7  # line 10: fast_path's hot line
    return x


def slow_path(n):
    x = 0
    for i in range(n):
        x += i * i % 7  # line 17: slow_path's hot line
    return x


def main():
    slow_share = float(sys.argv[1])
    deadline = time.time() + float(sys.argv[2])
    while time.time() < deadline:
        slow_path(int(20000 * slow_share))  # line 25
        fast_path(int(20000 * (1 - slow_share)))  # line 26


if __name__ == "__main__":
    main()
