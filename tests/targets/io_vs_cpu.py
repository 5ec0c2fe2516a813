import os
import threading


def blocked_in_io(fd):
    os.read(fd, 1)  # line 6: blocks forever, off CPU and without the GIL


def busy():
    x = 0
    while True:
        x = (x + 1) % 1000003  # line 12


r, w = os.pipe()
threading.Thread(target=blocked_in_io, args=(r,), daemon=True).start()
print("ready", flush=True)
busy()
