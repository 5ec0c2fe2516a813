import threading
import time


def spin_a():
    x = 0
    while True:
        x += 1  # line 8


def spin_b():
    x = 0
    while True:
        x += 1  # line 14


threading.Thread(target=spin_a, daemon=True).start()
threading.Thread(target=spin_b, daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(0.05)  # line 21: the main thread waits without the GIL
