def function1():
    x = 0
    for i in range(10000):
        x += i


def кириллица():
    while True:
        function1()  # line 9


print("ready", flush=True)
кириллица()
