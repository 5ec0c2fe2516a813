"""The target's files as the target sees them, from the host.

A target in a container or chroot names its files by paths inside its own root
(`/app/main.py`), which on the host mean nothing or something else. The kernel gives a handle on
that root (`/proc/PID/root`) and on the target's working directory (`/proc/PID/cwd`); holding
them open from the start keeps the files reachable after the target exits, for outputs written
at the end of a run (the heatmap's source pages, `dump`'s source lines).
"""

from __future__ import annotations

import os


def _same_directory(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _open_directory(path: str) -> int | None:
    try:
        return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


class TargetFiles:
    """Resolves the file names a target uses (code objects' co_filename) to paths readable here."""

    def __init__(self, pid: int | None, recorded_cwd: str | None = None) -> None:
        self._root_fd: int | None = None
        self._cwd_fd: int | None = None
        # The working directory as the target names it (inside its root).
        self.cwd: str | None = None
        # Where relative names are looked for without a handle on the target's directory: the
        # directory a saved profile recorded.
        self._recorded_cwd = recorded_cwd
        if pid is None or pid <= 0:
            return
        proc = f"/proc/{pid}"
        if not _same_directory(f"{proc}/root", "/"):
            self._root_fd = _open_directory(f"{proc}/root")
        self._cwd_fd = _open_directory(f"{proc}/cwd")
        try:
            cwd = os.readlink(f"{proc}/cwd")
            root = os.readlink(f"{proc}/root")
        except OSError:
            return
        if cwd.endswith(" (deleted)") or not os.path.isabs(cwd):
            return
        if self._root_fd is not None and root != "/":
            # Both links read as host paths when the target's root is a host directory (chroot).
            cwd = "/" + os.path.relpath(cwd, root) if cwd == root or cwd.startswith(root + "/") else cwd
            cwd = os.path.normpath(cwd)
        self.cwd = cwd

    def path(self, filename: str) -> str:
        """A path that opens `filename` as the target would; the name itself when there is no
        handle to go through (replayed profiles, a target that was gone at the start)."""
        if os.path.isabs(filename):
            if self._root_fd is None:
                return filename
            return f"/proc/self/fd/{self._root_fd}{filename}"
        if self._cwd_fd is not None:
            return f"/proc/self/fd/{self._cwd_fd}/{filename}"
        if self._recorded_cwd:
            return os.path.join(self._recorded_cwd, filename)
        return filename

    def close(self) -> None:
        for fd in (self._root_fd, self._cwd_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._root_fd = self._cwd_fd = None

    def __del__(self) -> None:
        self.close()
