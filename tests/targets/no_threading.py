"""Never imports threading (run it with -S: a site .pth file may import it); sleeps."""
import sys
import time

if "threading" in sys.modules:
    print("threading already imported", flush=True)
    sys.exit(1)
print("ready", flush=True)
while True:  # until the test kills us
    time.sleep(1)
