"""The Debian sid root that holds real CPython 3.14 and 3.15 (and Tachyon, 3.15's profiler).

`tests/make-sid-root.sh` (run by the README's test command) makes or reuses it under
`.cache/sid-root`. A process started in it is the container case users have: its own root and
mount namespace, same PID namespace, so heatline attaches from the host by PID and reaches the
target's files through `/proc/PID/root`.

Each process gets a private mount namespace with the root's `/proc` mounted in it (Tachyon reads
`/proc`), so nothing stays mounted on the host and concurrent test runs do not share a mount.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ROOT = os.path.join(REPO, ".cache", "sid-root")
TARGETS_IN_ROOT = "/opt/heatline-tests"  # where tests/targets and examples are copied inside the root
VERSIONS = ("3.14", "3.15")

_ENTER = 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"'


def root_path() -> str:
    return os.environ.get("HEATLINE_SID_ROOT") or DEFAULT_ROOT


def unavailable_reason() -> str | None:
    """Why the root cannot be used, or None when it is ready."""
    root = root_path()
    if os.path.exists(os.path.join(root, ".heatline-complete")):
        if os.geteuid() != 0:
            return "entering the sid root (chroot, mount namespace) needs root"
        if shutil.which("unshare") is None:
            return "unshare (util-linux) is missing"
        return None
    try:
        with open(root + ".unavailable", encoding="utf-8") as fh:
            return fh.read().strip() or "the sid root could not be made"
    except OSError:
        return f"no sid root at {root}: run `sh tests/make-sid-root.sh` (the README's test command does)"


def in_root(*argv: str) -> list[str]:
    """The command that runs `argv` inside the root, keeping its PID (every step execs)."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", _ENTER, root_path(), *argv]


@lru_cache(maxsize=None)
def sync_files() -> None:
    """Copy the test targets and examples into the root, where targets started there see them."""
    dest = root_path() + TARGETS_IN_ROOT
    for name in ("tests/targets", "examples"):
        src = os.path.join(REPO, name)
        shutil.copytree(src, os.path.join(dest, os.path.basename(name)), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))


def path_in_root(host_path: str) -> str:
    """Where a target inside the root sees a host file: targets and examples are copied ahead;
    any other file (a test's tmp script) is copied now, under the root's /tmp."""
    real = os.path.realpath(host_path)
    for name in ("tests/targets", "examples"):
        base = os.path.join(REPO, name)
        if real == base or real.startswith(base + os.sep):
            sync_files()
            return TARGETS_IN_ROOT + "/" + os.path.basename(name) + real[len(base):]
    inside = "/tmp/heatline-extra" + real
    os.makedirs(os.path.dirname(root_path() + inside), exist_ok=True)
    shutil.copy2(real, root_path() + inside)
    return inside


def host_path(inside: str) -> str:
    """A path seen inside the root, as the host reaches it."""
    return root_path() + inside


@lru_cache(maxsize=None)
def version_of(minor: str) -> str | None:
    """"3.15.2" for python3.15 in the root, or None when the root or that Python is missing."""
    if unavailable_reason() is not None:
        return None
    try:
        out = subprocess.run(in_root(f"/usr/bin/python{minor}", "-c",
                                     "import sys; print('%d.%d.%d' % sys.version_info[:3])"),
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def tachyon(*args: str) -> list[str]:
    """Tachyon (3.15's `profiling.sampling`) inside the root."""
    return in_root("/usr/bin/python3.15", "-m", "profiling.sampling", *args)


def tachyon_beside(pid: int, *args: str) -> list[str]:
    """Tachyon run in the mount namespace and root of target `pid` (started by `in_root`).

    Each `in_root` process has a mount namespace of its own; from another one, the target's
    /proc/PID/maps names its files by host paths that do not exist inside the root, and Tachyon
    cannot find its interpreter. `nsenter` joins the target's namespace and root and execs (the
    PID stays Tachyon's own)."""
    return ["nsenter", "-t", str(pid), "-m", "-r", "-w",
            "/usr/bin/python3.15", "-m", "profiling.sampling", *args]
