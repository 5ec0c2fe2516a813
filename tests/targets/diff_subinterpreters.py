"""Threads in two subinterpreters beside the main interpreter's, for walkers that follow the
interpreter list (each thread sample carries its interpreter's id).

Two threads each run a loop in a subinterpreter of their own (run_string: the code's file is
"<string>"), one busy (with short sleeps), one blocked in a sleep; the main thread stays busy (with short
sleeps) in the main interpreter. Prints "ready" once both subinterpreters run their code.
"""

import os
import threading
import time

try:
    import _interpreters as interpreters  # 3.13+
except ImportError:
    import _xxsubinterpreters as interpreters  # 3.9-3.12

# Each piece of code first writes a byte to the pipe whose write end is {fd}: it runs.
BUSY = """
import os
import time
os.write({fd}, b"1")

def sub_work():
    x = 0
    for i in range(1000):
        x += i
    return x

def sub_loop():
    while True:
        sub_work()
        # 3.10/3.11 share one GIL between interpreters but ask for it per interpreter: a loop that
        # never blocks would starve the other interpreters' threads
        time.sleep(0.0002)

sub_loop()
"""

SLEEPING = """
import os
import time
os.write({fd}, b"1")

def sub_sleep():
    while True:
        time.sleep(3600)

sub_sleep()
"""


def run_in_subinterpreter(code):
    interpreters.run_string(interpreters.create(), code)


def main_work():
    x = 0
    for i in range(5000):
        x += i
    return x


def main():
    ready, running = os.pipe()
    for code in (BUSY, SLEEPING):
        code = code.replace("{fd}", str(running))
        threading.Thread(target=run_in_subinterpreter, args=(code,), daemon=True).start()
    for _ in range(2):
        assert os.read(ready, 1) == b"1"
    print("ready", flush=True)
    while True:
        main_work()
        time.sleep(0.0002)  # as sub_loop: lets the other interpreters' threads have the GIL


main()
