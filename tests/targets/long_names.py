"""A function and a file whose names are 10,000 characters long, where the time is spent.

Neither could come from a source file on disk (a path component stops at 255 bytes), but
compile() takes any file name and a def any identifier. The long function, in a file of an
ordinary name, calls a spinning function in the long file, so each name is long on its own.
"""

LONG_FUNC = "g" * 10_000
LONG_FILE = "h" * 9_997 + ".py"

namespace: dict = {}
exec(compile("def spin():\n    x = 0\n    while True:\n        x += 1\n", LONG_FILE, "exec"), namespace)
exec(compile(f"def {LONG_FUNC}():\n    spin()\n", "generated.py", "exec"), namespace)

print("ready", flush=True)
namespace[LONG_FUNC]()
