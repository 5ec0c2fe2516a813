import threading
import time


def make_worker(i):
    def spin():
        x = 0
        while True:
            for j in range(1000):
                x += j
            time.sleep(0.0005)
    spin.__name__ = spin.__qualname__ = f"worker_{i}"
    spin.__code__ = spin.__code__.replace(co_name=f"worker_{i}", co_qualname=f"worker_{i}") if hasattr(spin.__code__, "co_qualname") else spin.__code__.replace(co_name=f"worker_{i}")
    return spin


for i in range(8):
    threading.Thread(target=make_worker(i), name=f"worker-{i}", daemon=True).start()


def main_loop():
    while True:
        time.sleep(0.01)


print("ready", flush=True)
main_loop()
