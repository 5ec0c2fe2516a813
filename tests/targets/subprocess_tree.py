"""A process tree with known work in each process, for `--subprocesses`.

    subprocess_tree.py METHOD_A METHOD_B SECONDS [--wait]

The main process (parent_work) starts: alpha and beta as multiprocessing workers (start methods
METHOD_A and METHOD_B: fork, spawn or forkserver), gamma as a `subprocess` Python child, a child
that exits at once (quick), a child that forks again (epsilon, whose forked grandchild is delta),
and a shell that starts Python (zeta) beside a program that is not Python (sleep). Each busy
process spins in its own `<role>_work` for SECONDS (seven copies of one loop: the names are what
the tests look for). Every process prints "role NAME PID" as it starts. With --wait, the main process first waits
for a line on stdin (the test attaches, then releases it).
"""

import multiprocessing
import os
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)


def announce(role):
    os.write(1, f"role {role} {os.getpid()}\n".encode())  # one write: processes print side by side


def spin(seconds, work):
    end = time.time() + seconds
    while time.time() < end:
        work()


def parent_work():
    x = 0
    for i in range(2000):
        x += i * i
    return x


def alpha_work():
    x = 0
    for i in range(2000):
        x += i * i
    return x


def beta_work():
    x = 0
    for i in range(2000):
        x += i * i
    return x


def gamma_work():
    x = 0
    for i in range(2000):
        x += i * i
    return x


def delta_work():
    x = 0
    for i in range(2000):
        x += i * i
    return x


def epsilon_work():
    x = 0
    for i in range(2000):
        x += i * i
    return x


def zeta_work():
    x = 0
    for i in range(2000):
        x += i * i
    return x


WORK = {"alpha": alpha_work, "beta": beta_work, "gamma": gamma_work, "zeta": zeta_work}


def busy(role, seconds):
    """A worker's or child's life: announce itself, then its own work."""
    announce(role)
    spin(seconds, WORK[role])


def forker_epsilon(seconds):
    announce("epsilon")
    pid = os.fork()
    if pid == 0:
        announce("delta")
        spin(seconds, delta_work)
        os._exit(0)
    spin(seconds, epsilon_work)
    os.waitpid(pid, 0)


def main(method_a, method_b, seconds, wait):
    if wait:
        print("ready", flush=True)
        sys.stdin.readline()
    announce("main")
    a = multiprocessing.get_context(method_a).Process(target=busy, args=("alpha", seconds))
    b = multiprocessing.get_context(method_b).Process(target=busy, args=("beta", seconds))
    a.start()
    b.start()
    secs = str(seconds)
    children = [
        subprocess.Popen([sys.executable, HERE, "gamma", secs]),
        subprocess.Popen([sys.executable, HERE, "quick"]),
        subprocess.Popen([sys.executable, HERE, "forker", secs]),
        # Two commands, so that the shell forks Python rather than exec'ing it; sleep is not Python.
        subprocess.Popen(["sh", "-c", '"$0" "$1" zeta "$2"; sleep 0.1', sys.executable, HERE, secs]),
    ]
    spin(seconds, parent_work)
    a.join()
    b.join()
    for child in children:
        child.wait()


if __name__ == "__main__":
    role = sys.argv[1]
    if role in ("gamma", "zeta"):
        busy(role, float(sys.argv[2]))
    elif role == "quick":
        announce("quick")
    elif role == "forker":
        forker_epsilon(float(sys.argv[2]))
    else:
        main(sys.argv[1], sys.argv[2], float(sys.argv[3]), "--wait" in sys.argv)
