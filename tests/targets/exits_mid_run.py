import os
import sys
import time


def short_lived():
    end = time.time() + (float(sys.argv[1]) if len(sys.argv) > 1 else 0.6)
    x = 0
    while time.time() < end:
        x += 1


short_lived()
os._exit(3)
