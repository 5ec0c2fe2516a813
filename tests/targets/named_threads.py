"""Eight named threads, one renamed while running, and the main thread; driven over stdin.

Prints `ready` once every thread runs under its name, then `<ident> <native id> <name>` per
thread (main thread first; the name last, as it may hold spaces) and `done`. Then reads commands
from stdin, answering each with `ok`:

    rename I NAME   threads[I].name = NAME
    start NAME      start another thread; prints its `<ident> <native id> <name>` line first
    stop I          make threads[I] return and join it
    vars I          vars(threads[I]): gives it a dict object where it may have had only values
    bloat I         gives threads[I] 40 more attributes: too many to share its class's keys

With `--comm`, each worker also sets its OS thread name (/proc/self/task/TID/comm) to its
name cut to 15 bytes at start, as CPython 3.14+ does itself.
"""
import sys
import threading
import time

SET_COMM = "--comm" in sys.argv


def set_comm(name):
    data = name.encode("utf-8")[:15]
    with open(f"/proc/self/task/{threading.get_native_id()}/comm", "wb") as fh:
        fh.write(data)


def work(stop, started):
    if SET_COMM:
        set_comm(threading.current_thread().name)
    started.wait()
    while not stop.wait(0.01):
        pass


def launch(name, started):
    stop = threading.Event()
    t = threading.Thread(target=work, args=(stop, started), name=name, daemon=True)
    t.stop = stop
    t.start()
    return t


def describe(t):
    return f"{t.ident} {getattr(t, 'native_id', None) or 0} {t.name}"


barrier = threading.Barrier(9)
threads = [launch(f"worker-{i}", barrier) for i in range(8)]
barrier.wait()
threads[5].name = "renamed-\u2713"
print("ready", flush=True)
for t in [threading.main_thread(), *threads]:
    print(describe(t), flush=True)
print("done", flush=True)

for line in sys.stdin:
    cmd, _, arg = line.rstrip("\n").partition(" ")
    if cmd == "rename":
        index, _, name = arg.partition(" ")
        threads[int(index)].name = name
    elif cmd == "start":
        one = threading.Barrier(2)
        threads.append(launch(arg, one))
        one.wait()
        print(describe(threads[-1]), flush=True)
    elif cmd == "vars":
        vars(threads[int(arg)])
    elif cmd == "bloat":
        for n in range(40):
            setattr(threads[int(arg)], f"extra_{n}", n)
    elif cmd == "stop":
        threads[int(arg)].stop.set()
        threads[int(arg)].join()
    print("ok", flush=True)
while True:  # stdin closed: wait to be killed
    time.sleep(1)
