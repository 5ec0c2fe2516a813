"""`heatline run`: start the target under a chosen interpreter, paused until sampling begins."""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Callable

from sampler.errors import HeatlineError, TargetExitedError, TargetNotFoundError
from sampler.target.maps import STAT_PGRP, STAT_STATE, read_stat

COORDINATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_coordinator.py")
READY_TIMEOUT_S = 15.0


# After SIGTERM, how long the target and what it started get to exit before SIGKILL.
STOP_GRACE_S = 2.0
PR_SET_PDEATHSIG = 1


@dataclass
class LaunchedTarget:
    """The target `launch` started, leader of its own session and process group, so that
    everything it starts is found (and ended) through that group."""

    process: subprocess.Popen
    go_fd: int
    # True once heatline ended the target itself (Ctrl-C, --duration): its status is then ours.
    stopped: bool = False

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
        """Whether the target still runs. An exited target is left unreaped (a zombie) until
        `finish`, so its PID, which names its process group, cannot be reused meanwhile."""
        if self.process.returncode is not None:
            return False
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def abandon(self) -> None:
        if self.go_fd >= 0:
            os.close(self.go_fd)
            self.go_fd = -1
        self.finish(stop=True)

    def finish(self, *, stop: bool, grace_s: float = STOP_GRACE_S) -> int | None:
        """End the run: stop the target if `stop` (SIGTERM to its group, SIGKILL after
        `grace_s`), end whatever it started that is still running, and reap it. Returns its
        exit status (negative: killed by that signal), None if it could not be reaped."""
        if self.process.returncode is not None:
            self._end_group(grace_s)
            return self.process.returncode
        deadline = time.monotonic() + grace_s
        if stop and self.alive():
            self.stopped = True
            self._signal_group(signal.SIGTERM)
        # A target that ended the run by exiting is reaped at once; one that was told to stop
        # gets the grace period, then SIGKILL.
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.alive():
            self.stopped = True
            self._signal_group(signal.SIGKILL)
        self._end_group(max(0.0, deadline - time.monotonic()) if stop else grace_s)
        try:
            return self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _end_group(self, grace_s: float) -> None:
        """The target's children (its process group, the target itself excluded) must not
        outlive the run: SIGTERM, then SIGKILL after `grace_s`."""
        if not _group_members(self.pid, exclude=self.pid):
            return
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _group_members(self.pid, exclude=self.pid):
            if time.monotonic() >= deadline:
                self._signal_group(signal.SIGKILL)
                return
            time.sleep(0.02)

    def run_exit_status(self) -> int:
        """`heatline run`'s exit status: the target's own when it ended by itself (128+N when a
        signal N killed it), 0 when heatline stopped it."""
        code = self.process.returncode
        if self.stopped or code is None:
            return 0
        return 128 - code if code < 0 else code


def _group_members(pgid: int, *, exclude: int) -> list[int]:
    """Live processes (zombies left out: they are gone already) of process group `pgid`."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return members
    for entry in entries:
        if not entry.isdigit() or int(entry) == exclude:
            continue
        fields = read_stat(entry)
        if fields and len(fields) > STAT_PGRP and fields[STAT_STATE] not in (b"Z", b"X") \
                and int(fields[STAT_PGRP]) == pgid:
            members.append(int(entry))
    return members


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP during `heatline run`: the first ends sampling (the run then
    stops the target and writes the profile); later ones are ignored, so that stopping the
    target and writing the profile are never cut short. Before sampling starts the first one
    raises KeyboardInterrupt, which abandons the start. Signals ignored when heatline started
    (nohup, a background job) stay ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.requested = False
        self._loop: Any = None
        self._previous: dict[int, Any] = {}

    def install(self) -> "StopSignals":
        for signum in self.SIGNALS:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue
            try:
                signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (heatline used as a library): signals stay as they are
                break
            self._previous[signum] = previous
        return self

    def restore(self) -> None:
        """Put the handlers back; once a stop was asked for, keep ignoring the signals instead.

        heatline is then on its way out, and Python's finalization resets a Python-level SIGINT
        handler to the default action: a second Ctrl-C in that window would kill heatline by
        the signal after it wrote the profile, turning a clean exit into "killed by SIGINT"."""
        for signum, previous in self._previous.items():
            if self.requested:
                previous = signal.SIG_IGN
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def sampling(self, loop: Any) -> None:
        """From now on a signal ends `loop` between two samples instead of raising."""
        self._loop = loop
        if self.requested:
            loop.stop()

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            return
        self.requested = True
        if self._loop is None:
            raise KeyboardInterrupt
        self._loop.stop()


def resolve_python(python: str | None) -> str:
    import sys

    if not python:
        return sys.executable
    found = shutil.which(python) if os.sep not in python else python
    if not found or not os.access(found, os.X_OK):
        raise HeatlineError(f"cannot find the interpreter {python!r} given to --python.")
    return found


def launch(target: str, args: list[str], *, module: bool, python: str | None = None,
           stdio: tuple[int | None, int | None, int | None] = (None, None, None)) -> LaunchedTarget:
    """Start `target` paused (`LaunchedTarget.start` releases it). `stdio` is its stdin, stdout
    and stderr (file descriptors; None inherits heatline's): `--live` keeps the terminal to itself."""
    interpreter = resolve_python(python)
    cwd = os.getcwd()
    if not module and not os.path.isfile(target):
        raise TargetNotFoundError(f"cannot find the target: script {target!r} not found.")
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    cmd = [interpreter, COORDINATOR, str(ready_w), str(go_r), cwd, "module" if module else "script", target, *args]
    try:
        # Its own session: Ctrl-C in heatline's terminal reaches heatline only, which stops the
        # target and its whole process group in order.
        proc = subprocess.Popen(cmd, pass_fds=(ready_w, go_r), start_new_session=True,
                                stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
                                preexec_fn=_die_with_parent(os.getpid()))
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


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec_fn: the target gets SIGKILL when heatline dies, even by SIGKILL (which no
    handler sees). libc is loaded here, before the fork, not in the child."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        prctl = None

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # heatline died before prctl took effect
            os._exit(1)

    return preexec


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
