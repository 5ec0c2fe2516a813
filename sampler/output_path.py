"""Where a profile goes: checked before sampling, written without changing what the path is.

Regular files (and paths that do not exist yet) are replaced atomically: a temporary file in the
same directory, then `os.replace`, so readers never see half a profile. Anything else that can
be written (character and block devices, FIFOs, sockets, heatline's own stdout reached through
`/dev/stdout` or `/proc/self/fd/N`) is written *into*, never replaced: turning `/dev/null` into a
regular file, or a FIFO's reader getting nothing, is what a careless `os.replace` does.

When writing fails at the end of a run (disk full, directory removed meanwhile), the profile is
saved under a temporary name in the system temp directory and the error says where: a run's
profile cannot be taken again.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
from typing import BinaryIO, Callable

from .errors import OutputPathError, OutputSavedElsewhereError

STDOUT = "-"
STDOUT_NAME = "<stdout>"

# Pseudo filesystems: a "file" there is a kernel knob, never a place for a profile (as root,
# replacing or writing one could change the system).
_PSEUDO_ROOTS = ("/proc", "/sys")
_OWN_FD = re.compile(r"^/proc/(\d+)/fd/(\d+)$")


def own_fd(path: str) -> int | None:
    """The descriptor number if `path` names one of this process's own descriptors.

    `/dev/stdout`, `/dev/fd/1` and `/proc/self/fd/1` are links to fd 1; reopening them would
    start a new file offset (and a regular file behind them would be replaced), while writing
    to the descriptor itself appends where the shell's redirection expects.
    """
    p = os.path.abspath(path)
    for _ in range(40):  # as the kernel's symlink limit
        p = os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
        m = _OWN_FD.match(p)
        if m and int(m.group(1)) == os.getpid():
            return int(m.group(2))
        if not os.path.islink(p):
            return None
        try:
            p = os.path.join(os.path.dirname(p), os.readlink(p))
        except OSError:
            return None
    return None


def is_stdout(path: str | None) -> bool:
    """`-o -`, or a name for heatline's own stdout (`/dev/stdout`): the summary then goes to stderr."""
    return path == STDOUT or (path is not None and own_fd(path) == 1)


def point_at_devnull(stream) -> None:
    """Send the rest of what goes to `stream` (and its file descriptor) nowhere: its reader left
    (a closed pipe, a terminal that hung up), and later writes, the flush at exit included, must
    not fail in its place."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def tell(text: str, stream=None) -> None:
    """A status line for the user (stderr by default). A terminal that hung up (an ssh session
    that dropped, which is also a SIGHUP) fails every write with EIO: that must never cost the
    profile being written, so the line is dropped and the stream silenced."""
    stream = sys.stderr if stream is None else stream
    try:
        print(text, file=stream, flush=True)
    except OSError:
        point_at_devnull(stream)


def _is_stream(st: os.stat_result) -> bool:
    return not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode))


def _under_pseudo_fs(real: str) -> bool:
    return any(real == root or real.startswith(root + "/") for root in _PSEUDO_ROOTS)


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def _first_non_directory(path: str) -> str:
    """The first component of `path`'s parents that exists but is not a directory."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts)):
        prefix = os.sep.join(parts[:i]) or os.sep
        if os.path.lexists(prefix) and not os.path.isdir(prefix):
            return prefix
    return os.path.dirname(path)


def check_output(path: str | None, *, directory: bool = False, binary: bool = False) -> None:
    """Refuse, before any sampling, an output path the profile could not be written to.

    `path` None means the default name in the current directory; `directory` is for outputs
    that are a directory (the heatmap); `binary` for formats that must not go to a terminal.
    Raises `OutputPathError` with one line saying what is wrong.
    """
    if path is None:
        _check_directory(os.getcwd(), os.getcwd())
        return
    if path == STDOUT:
        if directory:
            raise OutputPathError("a heatmap is a directory of pages: it cannot go to stdout (-o -)")
        if binary and _isatty(1):
            raise OutputPathError("will not write a binary profile to a terminal: redirect stdout or give -o FILE")
        return
    fd = own_fd(path)
    if fd is not None:
        if directory:
            raise OutputPathError(f"a heatmap is a directory of pages: it cannot go to {path}")
        if binary and _isatty(fd):
            raise OutputPathError(f"will not write a binary profile to a terminal ({path})")
        return
    st = _stat_for(path, path)
    real = os.path.realpath(path)
    if _under_pseudo_fs(real):
        raise OutputPathError(f"will not write a profile to {path}: {real} is in a kernel pseudo-filesystem")
    if st is not None and _is_stream(st):
        if directory:
            raise OutputPathError(f"cannot write the heatmap to {path}: it is not a directory")
        if not os.access(real, os.W_OK):
            raise OutputPathError(f"cannot write {path}: permission denied")
        return
    if st is not None and stat.S_ISDIR(st.st_mode):
        _check_directory(real, path)  # the default name goes inside (or the heatmap replaces it)
        return
    if st is not None and directory:
        raise OutputPathError(f"cannot write the heatmap to {path}: it exists and is not a directory")
    parent = os.path.dirname(real)
    parent_st = _stat_for(parent, path)
    if parent_st is None:
        raise OutputPathError(f"cannot write {path}: the directory {parent} does not exist")
    if not stat.S_ISDIR(parent_st.st_mode):
        raise OutputPathError(f"cannot write {path}: {parent} is not a directory")
    _check_directory(parent, path)


def _stat_for(target: str, path: str) -> os.stat_result | None:
    """`os.stat(target)`, None where it does not exist; any other failure as one line about
    the output `path` the user gave."""
    try:
        return os.stat(target)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise OutputPathError(
            f"cannot write {path}: {_first_non_directory(target)} is a file, not a directory"
        ) from None
    except OSError as err:
        raise OutputPathError(f"cannot write {path}: {_reason(err)}") from None


def _check_directory(directory: str, path: str) -> None:
    # access() answers EROFS for read-only mounts even to root, which is the case that matters.
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {path}: the directory {directory} is not writable")


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def write_output(path: str, dump: Callable[[BinaryIO], None], *, mode: int | None = None) -> str:
    """Write what `dump(fh)` produces to `path`; return where it went.

    `-` and heatline's own descriptors get the bytes directly; devices and FIFOs are opened
    and written into; regular files (through any symlinks, which stay) and new paths are
    replaced atomically with `mode` (default: the old file's, else 0666 minus the umask).
    If writing fails, the profile is saved in the temp directory and `OutputSavedElsewhereError`
    says where.
    """
    try:
        return _write(path, dump, mode)
    except OSError as err:
        reason = _reason(err)
    saved = save_elsewhere(path, dump)
    raise OutputSavedElsewhereError(
        f"cannot write {path}: {reason}; the profile was saved to {saved} instead"
    )


def _write(path: str, dump: Callable[[BinaryIO], None], mode: int | None) -> str:
    fd = 1 if path == STDOUT else own_fd(path)
    if fd is not None:
        sys.stdout.flush()  # what heatline printed before comes first
        with open(os.dup(fd), "wb") as fh:
            dump(fh)
        return STDOUT_NAME if path == STDOUT else path
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and _is_stream(st):
        # No O_CREAT and no O_TRUNC: if the device vanished meanwhile, fail rather than create a
        # regular file in its place. A FIFO's open waits for its reader, as `cat > fifo` does.
        out = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        with open(out, "wb") as fh:
            dump(fh)
        return path
    # A symlink to a regular file: replace the file it points to and keep the link.
    real = os.path.realpath(path) if os.path.islink(path) else path
    directory = os.path.dirname(os.path.abspath(real))
    fd_tmp, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd_tmp, "wb") as fh:
            dump(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode if mode is not None else file_mode_for(real))  # mkstemp makes 0600
        os.replace(tmp, real)
        tmp = ""
    finally:
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path


def save_elsewhere(path: str, dump: Callable[[BinaryIO], None]) -> str:
    """Save the profile under a fresh name in the temp directory; return it.

    Raises `OutputPathError` only if that fails too (the temp directory full as well).
    """
    base = os.path.basename(path.rstrip("/")) if path != STDOUT else "profile"
    stem, ext = os.path.splitext(base or "profile")
    try:
        fd, saved = tempfile.mkstemp(prefix=f"heatline-{stem}-", suffix=ext)
        try:
            with os.fdopen(fd, "wb") as fh:
                dump(fh)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            os.unlink(saved)
            raise
    except OSError as err:
        raise OutputPathError(
            f"cannot write {path}, nor save the profile in {tempfile.gettempdir()}: {_reason(err)}"
        ) from None
    return saved


def file_mode_for(path: str) -> int:
    """Keep the mode of a file being replaced; new files get 0666 minus the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    try:  # Linux >= 4.7 shows the umask without the racy set-and-restore below
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
