import os
import time


def short_lived():
    end = time.time() + 0.6
    x = 0
    while time.time() < end:
        x += 1


short_lived()
os._exit(3)
