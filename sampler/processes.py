"""The Python processes on this machine a user may attach to: what a process picker shows.

A process counts as Python when its memory maps hold a libpython, or its executable is a python
binary (`python`, `python3`, `python3.12`, `python3.12d`). Another user's process usually hides
both, so its argv[0] and kernel name stand in. A script run by some other interpreter (`node
python.js`, `bash run-python.sh`) is never listed: only the program itself is looked at.

Listing is cheap (about a millisecond per Python process): the version is read where
Py_GetVersion() keeps it, without parsing symbol tables. Nothing here raises for a process that
exits or cannot be read while being looked at.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable

from sampler.cpython.runtime import read_version
from sampler.errors import HeatlineError, ProcessPermissionError
from sampler.target.maps import PF_KTHREAD, STAT_FLAGS, STAT_STATE, read_cmdline, read_cwd, read_stat
from sampler.target.memory import RemoteMemory
from sampler.target.threads import comm

# Program names: python, python3, python3.12, python3.12d (debug), python3.13t (free-threaded).
_PYTHON_NAME = re.compile(r"^python(?:(\d)(?:\.(\d+))?)?[dmt]*$")
_LIBPYTHON = re.compile(r"/libpython(\d)\.(\d+)[a-z]*\.so")


@dataclass(frozen=True)
class PythonProcess:
    pid: int
    command: str  # argv joined by spaces
    executable: str | None
    python_version: str | None  # "3.12.1" when read from the process, "3.12" when guessed from names
    needs_privileges: bool  # this user cannot read the process's memory: attaching would fail
    reason: str | None  # one line: why privileges are needed
    cwd: str | None


def list_python_processes(*, exclude: Iterable[int] = ()) -> list[PythonProcess]:
    """Every Python process visible in /proc, by pid; never the calling process."""
    skip = set(exclude)
    skip.add(os.getpid())
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in skip:
            continue
        try:
            process = inspect_process(pid)
        except (OSError, HeatlineError, ValueError):
            continue  # it exited or changed while we looked
        if process is not None:
            found.append(process)
    found.sort(key=lambda p: p.pid)
    return found


def inspect_process(pid: int) -> PythonProcess | None:
    """`pid` as a `PythonProcess`, or None if it is not a (live, user-space) Python process."""
    if not _is_user_process(pid):
        return None
    exe = _readlink(f"/proc/{pid}/exe")
    maps = _read_text(f"/proc/{pid}/maps")
    argv = read_cmdline(pid)
    names = _program_names(pid, exe, argv, readable=maps is not None)
    lib = _LIBPYTHON.search(maps) if maps else None
    if lib is None and not any(_PYTHON_NAME.match(name) for name in names):
        return None
    needs_privileges, reason, version = False, None, None
    try:
        memory = RemoteMemory(pid)
    except ProcessPermissionError:
        needs_privileges, reason = True, _denial_reason(pid)
    else:
        try:
            version = read_version(pid, memory)
        except HeatlineError:
            version = None
        finally:
            memory.close()
    if version is None:
        version = _guess_version(lib, names)
    return PythonProcess(
        pid=pid,
        command=" ".join(argv) if argv else f"[{comm(pid) or '?'}]",
        executable=exe,
        python_version=version,
        needs_privileges=needs_privileges,
        reason=reason,
        cwd=read_cwd(pid),
    )


def _is_user_process(pid: int) -> bool:
    """False for kernel threads, zombies and processes that are gone."""
    fields = read_stat(pid)
    if not fields or len(fields) <= STAT_FLAGS:
        return False
    return fields[STAT_STATE] not in (b"Z", b"X", b"x") and not int(fields[STAT_FLAGS]) & PF_KTHREAD


def _program_names(pid: int, exe: str | None, argv: list[str] | None, *, readable: bool) -> list[str]:
    """Names that tell which program runs: the executable's, or (when it and the maps are hidden
    from us) argv[0]'s and the kernel's. argv[0] is not trusted otherwise: a program may set it
    to anything, and `exe` is the truth."""
    if exe is not None:
        return [os.path.basename(exe)]
    if readable:
        return []
    names = []
    if argv:
        names.append(os.path.basename(argv[0]))
        if argv[0].startswith("/"):
            # /usr/bin/python3 -> python3.11: the link names the version when we may follow it.
            names.append(os.path.basename(os.path.realpath(argv[0])))
    name = comm(pid)
    if name:
        names.append(name)
    return names


def _guess_version(lib: re.Match[str] | None, names: list[str]) -> str | None:
    if lib is not None:
        return f"{lib.group(1)}.{lib.group(2)}"
    for name in names:
        m = _PYTHON_NAME.match(name)
        if m and m.group(2):
            return f"{m.group(1)}.{m.group(2)}"
    return None


def _denial_reason(pid: int) -> str:
    parts = []
    try:
        owner = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        owner = None
    if owner is not None and owner != os.geteuid():
        parts.append(f"owned by another user (uid {owner})")
    scope = _read_text("/proc/sys/kernel/yama/ptrace_scope")
    if scope is not None and scope.strip() not in ("", "0"):
        parts.append(f"ptrace_scope={scope.strip()}")
    if not parts:
        parts.append("reading its memory was refused (no ptrace rights over it)")
    return "; ".join(parts)


def _readlink(path: str) -> str | None:
    try:
        target = os.readlink(path)
    except OSError:
        return None
    return target[: -len(" (deleted)")] if target.endswith(" (deleted)") else target


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None
