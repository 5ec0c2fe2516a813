"""Parsing /proc/PID/maps, checking that a process exists, and its other /proc facts."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sampler.errors import (
    ExitedDuringAttachError,
    HeatlineError,
    KernelThreadError,
    ProcessNotFoundError,
    ProcessPermissionError,
    ZombieProcessError,
)
from sampler.target.threads import comm

# task->flags bits (include/linux/sched.h), field 9 of /proc/PID/stat.
PF_EXITING = 0x00000004
PF_KTHREAD = 0x00200000
# stat(5) field numbers, as indexes into `read_stat`'s list (which starts at field 3).
STAT_STATE, STAT_PPID, STAT_PGRP, STAT_FLAGS, STAT_STARTTIME = 0, 1, 2, 6, 19


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    offset: int
    inode: int
    path: str

    @property
    def deleted(self) -> bool:
        return self.path.endswith(" (deleted)")

    @property
    def clean_path(self) -> str:
        return self.path[: -len(" (deleted)")] if self.deleted else self.path


def process_exists(pid: int) -> bool:
    return pid > 0 and os.path.exists(f"/proc/{pid}/stat")


def why_unreadable(pid: int) -> HeatlineError | None:
    """Why a process heatline has just seen cannot be read: it has exited or is exiting (its
    memory goes before its /proc entry does), it is a zombie, or a kernel thread, which has no
    user memory. None while it looks like a running user process.

    Asked only after a read failed, so that a failure says what happened rather than the
    symptom (ESRCH, empty maps, a short read).
    """
    fields = read_stat(pid)
    if fields is None or len(fields) <= STAT_FLAGS:
        return ExitedDuringAttachError(pid)
    state, ppid, flags = fields[STAT_STATE], int(fields[STAT_PPID]), int(fields[STAT_FLAGS])
    if state == b"Z":
        return ZombieProcessError(pid, ppid)
    if flags & PF_KTHREAD:
        return KernelThreadError(pid, comm(pid))
    if state == b"X" or flags & PF_EXITING:
        return ExitedDuringAttachError(pid)
    return None


def read_stat(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (index 0 is stat(5)'s field 3, the
    state; see the STAT_* indexes), or None when the process cannot be read. The name is cut
    off at its last ')', since it may itself hold spaces and parentheses."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    name_end = data.rfind(b")")
    return data[name_end + 1 :].split() if name_end >= 0 else None


def is_gone(pid: int) -> bool:
    """The process has exited: no /proc entry, or a zombie or dead task whose memory is gone."""
    fields = read_stat(pid)
    return not fields or fields[STAT_STATE] in (b"Z", b"X", b"x")


def process_start_time(pid: int) -> float | None:
    """When the process started, in seconds since the epoch (None if it cannot be told).

    /proc/stat's `btime` is truncated to the second, so this is never later than the truth.
    """
    fields = read_stat(pid)
    if fields is None:
        return None
    try:
        started_ticks = int(fields[STAT_STARTTIME])
        with open("/proc/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
        return boot + started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def read_cwd(pid: int) -> str | None:
    """The process's working directory (None if it cannot be read, e.g. another user's)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def read_cmdline(pid: int) -> list[str] | None:
    """The process's argv (None if unreadable or empty: kernel threads, zombies)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    if not raw:
        return None
    return [arg.decode("utf-8", "replace") for arg in raw.rstrip(b"\0").split(b"\0")]


def read_maps(pid: int) -> list[Mapping]:
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ProcessNotFoundError(pid) from None
    except ProcessLookupError:  # ESRCH: it is exiting as we read
        raise why_unreadable(pid) or ExitedDuringAttachError(pid) from None
    except PermissionError:
        raise ProcessPermissionError(pid) from None
    maps = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, hi = parts[0].split("-")
        maps.append(
            Mapping(
                start=int(lo, 16),
                end=int(hi, 16),
                perms=parts[1],
                offset=int(parts[2], 16),
                inode=int(parts[4]),
                path=parts[5] if len(parts) > 5 else "",
            )
        )
    return maps


def host_path(pid: int, path: str) -> str:
    """A path as seen by the target, reachable from here even across mount namespaces."""
    via_root = f"/proc/{pid}/root{path}"
    if os.path.exists(via_root):
        return via_root
    return path
