"""`heatline run`: start the target under a chosen interpreter, paused until sampling begins."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from sampler.errors import HeatlineError, TargetExitedError, TargetNotFoundError

COORDINATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_coordinator.py")
READY_TIMEOUT_S = 15.0


@dataclass
class LaunchedTarget:
    process: subprocess.Popen
    go_fd: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> None:
        """Release the target: from here on it runs the user's code."""
        try:
            os.write(self.go_fd, b"go\n")
        finally:
            os.close(self.go_fd)
            self.go_fd = -1

    def alive(self) -> bool:
        return self.process.poll() is None

    def abandon(self) -> None:
        if self.go_fd >= 0:
            os.close(self.go_fd)
            self.go_fd = -1
        self.stop()

    def stop(self, grace_s: float = 2.0) -> None:
        """Ask the target to stop (SIGTERM), then insist (SIGKILL)."""
        if self.process.poll() is not None:
            return
        try:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        except ProcessLookupError:
            pass

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


def resolve_python(python: str | None) -> str:
    import sys

    if not python:
        return sys.executable
    found = shutil.which(python) if os.sep not in python else python
    if not found or not os.access(found, os.X_OK):
        raise HeatlineError(f"cannot find the interpreter {python!r} given to --python.")
    return found


def launch(target: str, args: list[str], *, module: bool, python: str | None = None) -> LaunchedTarget:
    interpreter = resolve_python(python)
    cwd = os.getcwd()
    if not module and not os.path.isfile(target):
        raise TargetNotFoundError(f"cannot find the target: script {target!r} not found.")
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    cmd = [interpreter, COORDINATOR, str(ready_w), str(go_r), cwd, "module" if module else "script", target, *args]
    try:
        proc = subprocess.Popen(cmd, pass_fds=(ready_w, go_r))
    except OSError as exc:
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
        raise HeatlineError(f"cannot start {interpreter}: {exc.strerror}.") from None
    os.close(ready_w)
    os.close(go_r)
    launched = LaunchedTarget(proc, go_w)
    try:
        message = _await_ready(ready_r, proc)
    except BaseException:
        launched.abandon()
        raise
    finally:
        os.close(ready_r)
    if message.startswith("error:"):
        launched.abandon()
        raise TargetNotFoundError(f"cannot find the target: {message[6:]}.")
    return launched


def _await_ready(fd: int, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HeatlineError("the target failed to signal readiness within 15 seconds.")
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.1))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                code = proc.wait()
                raise TargetExitedError(f"the target exited (status {code}) before heatline could sample it.")
            data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", "replace")
