"""A process's descendants, and whether a process is still running the program it was seen with.

`--subprocesses` looks for new children every few milliseconds, so each look must be cheap:
`/proc/PID/task/TID/children` lists the children of one thread (the kernel keeps the list;
reading it is one small read per thread), so the tree under a process costs a handful of reads
per process in it, instead of reading every `/proc/*/stat` of the machine to match parent PIDs.
A kernel without that file (CONFIG_PROC_CHILDREN off) gets the full scan, which is slower but
gives the same answer.

A child seen just after its fork still runs its parent's program; `subprocess` and
`multiprocessing`'s spawn then replace it (exec) with another one under the same PID. Nothing in
/proc counts execs, but an exec gets a new address space, whose stack and code addresses (with
the kernel's address randomisation) are new: those and the command name (which exec resets) say
which program a PID runs (`ExecIdentity`).
"""

from __future__ import annotations

import os
from typing import Iterable, NamedTuple

from sampler.target.maps import STAT_PPID, STAT_STATE, read_stat

# stat(5) fields 26 and 28 (startcode, startstack) as `read_stat` indexes; 0 to a reader
# without ptrace rights over the process, who could not sample it anyway.
STAT_STARTCODE, STAT_STARTSTACK = 23, 25


class ExecIdentity(NamedTuple):
    """Which program image a PID runs: changes when it execs, not when it forks."""

    name: bytes
    startcode: int
    startstack: int


def _children_files_work() -> bool:
    return os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


_HAS_CHILDREN_FILES = _children_files_work()


def child_pids(pid: int) -> list[int]:
    """The live children of `pid` (any of its threads' children); [] when it is gone."""
    if not _HAS_CHILDREN_FILES:
        return [child for child, parent in _all_parents().items() if parent == pid]
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                found.extend(int(p) for p in fh.read().split())
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return found


def descendants(roots: Iterable[int]) -> list[int]:
    """Every process under `roots` (children, their children, ...), parents before children;
    the roots themselves are not included."""
    seen: set[int] = set()
    order: list[int] = []
    queue = list(roots)
    seen.update(queue)
    while queue:
        pid = queue.pop(0)
        for child in child_pids(pid):
            if child not in seen:
                seen.add(child)
                order.append(child)
                queue.append(child)
    return order


def _all_parents() -> dict[int, int]:
    parents = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return parents
    for entry in entries:
        if entry.isdigit():
            fields = read_stat(entry)
            if fields and len(fields) > STAT_PPID:
                parents[int(entry)] = int(fields[STAT_PPID])
    return parents


def exec_identity(pid: int) -> ExecIdentity | None:
    """The program image `pid` runs now; None when it has exited or is exiting (a zombie
    included), or when this user may not read it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    name_start, name_end = data.find(b"("), data.rfind(b")")
    fields = data[name_end + 1:].split()
    if name_start < 0 or len(fields) <= STAT_STARTSTACK or fields[STAT_STATE] in (b"Z", b"X", b"x"):
        return None
    identity = ExecIdentity(data[name_start + 1:name_end], int(fields[STAT_STARTCODE]), int(fields[STAT_STARTSTACK]))
    # Both 0: its address space is gone (it is exiting), or hidden from us (no ptrace rights).
    return identity if identity.startcode or identity.startstack else None
