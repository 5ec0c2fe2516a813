import sys


def recurse(n):
    if n == 0:
        x = 0
        for i in range(100000):  # a leaf that outlasts a 150-frame walk on 3.9/3.10
            x += i
        return x
    return recurse(n - 1)  # line 10


print("ready", flush=True)
depth = int(sys.argv[1]) if len(sys.argv) > 1 else 100
while True:
    recurse(depth)
