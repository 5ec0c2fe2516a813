def work(n):
    x = 0
    for i in range(n):
        x += i
    return x


def handling():
    try:
        raise ValueError("boom")
    except ValueError:
        work(3000)  # line 12: inside except


def plain():
    work(3000)  # line 16: no exception


print("ready", flush=True)
while True:
    handling()
    plain()
