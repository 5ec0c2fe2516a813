"""An add loop on locals past the 256th: each load and store carries an EXTENDED_ARG prefix."""

SOURCE = ("def wide(n):\n" + "".join(f"    v{i} = {i}\n" for i in range(300))
          + "    for _ in range(n):\n        v299 = v299 + v298\n    return v299\n")
exec(SOURCE)

print("ready", flush=True)
while True:
    wide(100000)  # noqa: F821 - defined by the exec above
