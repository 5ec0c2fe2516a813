import gc


class Node:
    def __init__(self):
        self.other = self


def churn():
    junk = [Node() for _ in range(20000)]
    del junk
    gc.collect()  # line 12: most of the time goes to the collector


print("ready", flush=True)
while True:
    churn()
