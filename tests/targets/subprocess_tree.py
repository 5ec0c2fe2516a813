"""A process tree with known work in each process, for `--subprocesses`.

    subprocess_tree.py METHOD_A METHOD_B SECONDS [--wait]

The main process (parent_work) starts: worker_alpha and worker_beta as multiprocessing workers
(start methods METHOD_A and METHOD_B: fork, spawn or forkserver), child_gamma as a `subprocess`
Python child, a child that exits at once (quick), a child that forks again (forker_epsilon, whose
forked grandchild runs grandchild_delta), and a shell that starts Python (shell_zeta) beside a
program that is not Python (sleep). Each busy process spins in its own `<role>_work` for SECONDS.
Every process prints "role NAME PID" as it starts. With --wait, the main process first waits
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


def worker_alpha(seconds):
    announce("alpha")
    spin(seconds, alpha_work)


def worker_beta(seconds):
    announce("beta")
    spin(seconds, beta_work)


def child_gamma(seconds):
    announce("gamma")
    spin(seconds, gamma_work)


def forker_epsilon(seconds):
    announce("epsilon")
    pid = os.fork()
    if pid == 0:
        announce("delta")
        spin(seconds, delta_work)
        os._exit(0)
    spin(seconds, epsilon_work)
    os.waitpid(pid, 0)


def shell_zeta(seconds):
    announce("zeta")
    spin(seconds, zeta_work)


def main(method_a, method_b, seconds, wait):
    if wait:
        print("ready", flush=True)
        sys.stdin.readline()
    announce("main")
    a = multiprocessing.get_context(method_a).Process(target=worker_alpha, args=(seconds,))
    b = multiprocessing.get_context(method_b).Process(target=worker_beta, args=(seconds,))
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
    if role == "gamma":
        child_gamma(float(sys.argv[2]))
    elif role == "quick":
        announce("quick")
    elif role == "forker":
        forker_epsilon(float(sys.argv[2]))
    elif role == "zeta":
        shell_zeta(float(sys.argv[2]))
    else:
        main(sys.argv[1], sys.argv[2], float(sys.argv[3]), "--wait" in sys.argv)
