"""Print "ready", then run the script named by argv[1] as __main__ with the remaining arguments."""
import runpy
import sys

print("ready", flush=True)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
