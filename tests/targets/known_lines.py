import sys
import time


def inner():
    x = 0
    for i in range(20000):
        x += i * i  # line 8: the hot line
    return x


def outer():
    while True:
        inner()  # line 14


def main():
    print("ready", flush=True)
    deadline = time.time() + float(sys.argv[1]) if len(sys.argv) > 1 else None
    while deadline is None or time.time() < deadline:
        inner()  # line 21


if __name__ == "__main__":
    main()
