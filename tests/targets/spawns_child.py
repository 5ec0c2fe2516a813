"""Starts a child process that would run for a minute, prints "ready <child pid>", then works in
parent_work() until stopped: the child must not outlive a `heatline run` of this script."""

import subprocess
import sys
import time


def parent_work():
    x = 0
    for i in range(20000):
        x += i * i
    return x


def main():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print("ready", child.pid, flush=True)
    deadline = time.time() + float(sys.argv[1]) if len(sys.argv) > 1 else None
    while deadline is None or time.time() < deadline:
        parent_work()


if __name__ == "__main__":
    main()
