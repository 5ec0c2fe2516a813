def work(n):
    x = 0
    for i in range(n):
        x += i
    return x


def handling():
    try:
        raise ValueError("boom")
    except ValueError:
        work(200_000)  # line 12: inside except


def plain():
    work(200_000)  # line 16: no exception


# Half the time in an except block, half with no exception anywhere. Each half runs for
# milliseconds: exception mode keeps a sample only if the exception is still in flight after the
# stack copy (up to 100 us after it was first seen), so a handler about as short as that copy
# (3000 turns, some 60 us) kept only the samples that began early in it; a profiler slowed by
# other work then kept almost none. Counted work, so the halves stay equal on a loaded machine.
print("ready", flush=True)
while True:
    handling()
    plain()
