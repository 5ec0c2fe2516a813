"""Errors a user can meet. Each message is one line meant for the user, never a traceback."""

from __future__ import annotations


class HeatlineError(Exception):
    """Base class: the CLI prints `str(err)` on one line and exits with `exit_status`."""

    exit_status = 1


class UsageError(HeatlineError):
    """Bad command-line arguments (argparse-style exit status)."""

    exit_status = 2


class ProcessNotFoundError(HeatlineError):
    def __init__(self, pid: int) -> None:
        super().__init__(f"cannot find the process: no process with PID {pid} exists.")
        self.pid = pid


class ProcessPermissionError(HeatlineError):
    def __init__(self, pid: int) -> None:
        super().__init__(
            f"denied access to the memory of process {pid}: run heatline as the same "
            "user with ptrace rights, e.g. `sudo heatline ...`, grant CAP_SYS_PTRACE "
            "(`docker run --cap-add SYS_PTRACE`), or relax Yama with "
            "`echo 0 | sudo tee /proc/sys/kernel/yama/ptrace_scope`."
        )
        self.pid = pid


class NotPythonError(HeatlineError):
    def __init__(self, pid: int, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(f"process {pid} is not a CPython process heatline can read{extra}.")
        self.pid = pid


class UnsupportedVersionError(HeatlineError):
    def __init__(self, version: str, pid: int | None = None) -> None:
        who = f"process {pid} runs" if pid is not None else "the target runs"
        super().__init__(
            f"{who} Python {version}, which heatline does not support (supported: CPython 3.9 to 3.15)."
        )
        self.version = version


class AsyncUnavailableError(HeatlineError):
    """The target's asyncio tasks cannot be read (`--async-aware`): its version has no data for
    it, or what it keeps could not be found."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"cannot read asyncio tasks of Python {version}: {reason}.")
        self.version = version
        self.reason = reason


class AsyncNotLoadedError(AsyncUnavailableError):
    """The target has not loaded asyncio (yet): no task can run, so looking again later is
    worthwhile, unlike its parent's cases."""


class TargetNotFoundError(HeatlineError):
    """The script or module given to `heatline run` does not exist."""


class NoPythonProcessesError(HeatlineError):
    """`attach --all-python` found no Python process this user may read."""


class TargetExitedError(HeatlineError):
    """The target exited before heatline could take a first sample."""


class ExitedDuringAttachError(TargetExitedError):
    """The process existed when heatline started on it and was gone (or going) before its
    runtime could be read: the race of attaching to a short-lived process."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"process {pid} exited while heatline was attaching to it.")
        self.pid = pid


class ZombieProcessError(TargetExitedError):
    """A process that has exited but was not yet reaped by its parent: its PID still shows in
    /proc, but its memory is gone."""

    def __init__(self, pid: int, ppid: int | None = None) -> None:
        parent = f" (a zombie: its parent, PID {ppid}, has not reaped it yet)" if ppid else " (a zombie)"
        super().__init__(f"process {pid} has exited{parent}: there is nothing left to profile.")
        self.pid = pid


class KernelThreadError(NotPythonError):
    """A kernel thread (`heatline attach 2`): it has no user-space memory at all."""

    def __init__(self, pid: int, name: str | None = None) -> None:
        what = f"{name!r} is a kernel thread" if name else "it is a kernel thread"
        super().__init__(pid, f"{what}, with no user-space memory")


class SelfAttachError(HeatlineError):
    """heatline asked to profile its own process: the stack it would read is the one reading."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"PID {pid} is this heatline process itself: heatline cannot profile itself.")
        self.pid = pid


class ProcessGoneError(HeatlineError):
    """The target exited while being read; sampling loops treat this as the end of the run."""


class ReadError(HeatlineError):
    """A single remote read failed or returned inconsistent data (a torn or stale sample)."""


class ProfileFileError(HeatlineError):
    """A profile file is corrupt, truncated or of an unknown kind."""


class LiveStreamError(HeatlineError):
    """A line of a live profile stream (`python -m sampler.live`) is malformed or out of order."""


class OutputPathError(HeatlineError):
    """The output path cannot take the profile (checked before sampling, or failed at the end)."""


class OutputSavedElsewhereError(OutputPathError):
    """Writing the output failed at the end of a run; the profile was saved under another name."""
