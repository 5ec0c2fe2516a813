"""Reading another process's memory. Read-only by construction: the file is opened O_RDONLY.

`RemoteMemory` is the small interface the unwinder depends on (`read`, `read_u64`, ...), so a
native implementation can later stand in for it.
"""

from __future__ import annotations

import errno
import os
import struct

from sampler.errors import (
    ExitedDuringAttachError,
    ProcessGoneError,
    ProcessNotFoundError,
    ProcessPermissionError,
    ReadError,
    SelfAttachError,
)
from sampler.target.maps import why_unreadable

_USER_SPACE_END = 1 << 56
_MAX_READ = 64 << 20

# Target-side integer layouts (x86_64/aarch64 Linux: little-endian, LP64), shared by every reader.
U64 = struct.Struct("<Q")
I64 = struct.Struct("<q")
U32 = struct.Struct("<I")
I32 = struct.Struct("<i")


class RemoteMemory:
    """`os.pread` on a kept-open /proc/PID/mem: the cheapest read available to pure Python."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.reads = 0
        self.bytes_read = 0
        self._fd = -1
        # Reading our own memory "works" but every stack is torn by the reading itself.
        if pid == os.getpid():
            raise SelfAttachError(pid)
        try:
            self._fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ProcessNotFoundError(pid) from None
        except ProcessLookupError:
            # ESRCH: the entry is there but has no memory: a zombie, a kernel thread, or a
            # process exiting as we opened it.
            raise why_unreadable(pid) or ExitedDuringAttachError(pid) from None
        except PermissionError:
            raise ProcessPermissionError(pid) from None
        # Opening can succeed while reading is still refused (ptrace access is checked per read).
        self._probe()

    def _probe(self) -> None:
        try:
            with open(f"/proc/{self.pid}/maps", encoding="utf-8", errors="replace") as fh:
                first = fh.readline()
        except FileNotFoundError:
            raise ExitedDuringAttachError(self.pid) from None
        except ProcessLookupError:
            raise why_unreadable(self.pid) or ExitedDuringAttachError(self.pid) from None
        except PermissionError:
            raise ProcessPermissionError(self.pid) from None
        if not first:
            # No mappings at all: the process lost its memory between open and now.
            reason = why_unreadable(self.pid)
            if reason is not None:
                raise reason
            return
        start = int(first.split("-", 1)[0], 16)
        try:
            os.pread(self._fd, 1, start)
        except PermissionError:
            raise ProcessPermissionError(self.pid) from None
        except OSError:
            pass  # the first mapping may be unreadable; the real reads will tell

    def read(self, addr: int, size: int) -> bytes:
        # User-space addresses on 64-bit Linux are below 2**47 (2**56 with 5-level paging);
        # anything else is a torn or stale pointer, not something to hand to the kernel.
        if not 0 < addr < _USER_SPACE_END or not 0 <= size <= _MAX_READ:
            raise ReadError(f"bad remote address {addr:#x}")
        try:
            data = os.pread(self._fd, size, addr)
        except OSError as exc:
            if exc.errno == errno.ESRCH or not os.path.exists(f"/proc/{self.pid}"):
                raise self._gone() from None
            if exc.errno in (errno.EPERM, errno.EACCES):
                raise ProcessPermissionError(self.pid) from None
            raise ReadError(f"cannot read {size} bytes at {addr:#x}: {exc.strerror}") from None
        self.reads += 1
        self.bytes_read += len(data)
        if len(data) != size:
            # The kernel reads nothing once the memory is gone, which happens before the /proc
            # entry goes (an exiting process, an unreaped zombie).
            if not data and why_unreadable(self.pid) is not None:
                raise self._gone()
            raise ReadError(f"short read at {addr:#x}: {len(data)} of {size} bytes")
        return data

    def _gone(self) -> ProcessGoneError:
        return ProcessGoneError(f"process {self.pid} exited while heatline was reading it.")

    def read_u64(self, addr: int) -> int:
        return U64.unpack(self.read(addr, 8))[0]

    def read_ptr(self, addr: int) -> int:
        return self.read_u64(addr)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "RemoteMemory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def u64(buf: bytes, off: int) -> int:
    return U64.unpack_from(buf, off)[0]


def u32(buf: bytes, off: int) -> int:
    return U32.unpack_from(buf, off)[0]


def i32(buf: bytes, off: int) -> int:
    return I32.unpack_from(buf, off)[0]
