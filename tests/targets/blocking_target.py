"""A target for --blocking: a known stack (<module> -> top -> middle -> leaf) spinning in its leaf,
a progress counter, optional busy threads and optional signal traffic, queried over stdin.

argv: [--threads N] [--signals]. stdin commands, one answer line each on stdout:
  count -> "n=<progress> alrm=<SIGALRMs> rt=<SIGRTMINs> chld=<SIGCHLDs>"
  spawn -> starts and reaps a child that exits at once, then "spawned"
With --signals, an interval timer sends SIGALRM every 2 ms; every delivery of a handled signal is
counted through signal.set_wakeup_fd (one byte per delivery, so Python's coalescing of handler
calls does not hide any).
"""

import os
import signal
import subprocess
import sys
import threading

progress = 0
counts = {signal.SIGALRM: 0, signal.SIGRTMIN: 0, signal.SIGCHLD: 0}


def leaf():
    global progress
    while True:
        progress += 1  # line 25: the leaf line


def middle():
    leaf()  # line 29


def top():
    middle()  # line 33


def spin():
    x = 0
    while True:
        x += 1


def count_deliveries(fd):
    while True:
        for byte in os.read(fd, 4096):
            if byte in counts:
                counts[byte] += 1


def serve():
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "count":
            answer = "n=%d alrm=%d rt=%d chld=%d" % (
                progress, counts[signal.SIGALRM], counts[signal.SIGRTMIN], counts[signal.SIGCHLD])
        elif cmd == "spawn":
            subprocess.run(["true"])
            answer = "spawned"
        else:
            answer = "?"
        print(answer, flush=True)


def main():
    args = sys.argv[1:]
    threads = int(args[args.index("--threads") + 1]) if "--threads" in args else 0
    if "--signals" in args:
        r, w = os.pipe()
        os.set_blocking(w, False)
        for sig in counts:
            signal.signal(sig, lambda *_: None)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        threading.Thread(target=count_deliveries, args=(r,), daemon=True).start()
        signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
    for _ in range(threads):
        threading.Thread(target=spin, daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    print("ready", flush=True)
    top()  # line 78


main()  # line 81
