"""Finding a target's CPython runtime: which binary holds it, where `_PyRuntime` is, which
version runs, and the struct layout to read it with."""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

from sampler.cpython import debug_offsets
from sampler.cpython.static_layouts import STATIC_LAYOUTS
from sampler.cpython.versions import (
    MAX_SUPPORTED,
    MIN_SUPPORTED,
    VersionTraits,
    layout_from_debug_offsets,
    traits_for,
)
from sampler.errors import (
    ExitedDuringAttachError,
    NotPythonError,
    ProcessGoneError,
    ProcessNotFoundError,
    ReadError,
    UnsupportedVersionError,
)
from sampler.target.elf import ElfError, ElfFile
from sampler.target.maps import Mapping, host_path, process_exists, read_maps, why_unreadable
from sampler.target.memory import RemoteMemory

_LIBPYTHON = re.compile(r"libpython(\d)\.(\d+)[a-z]*\.so")
_EXE_VERSION = re.compile(r"python(\d)\.(\d+)")
# `sys.version` as Py_GetVersion() formats it into a static buffer at start-up.
_VERSION_TEXT = re.compile(rb"((2|3)\.(\d{1,2})\.(\d{1,2})((?:a|b|rc)\d{1,2})?\+?) \(")


@dataclass
class Runtime:
    pid: int
    binary: str  # the ELF image that holds _PyRuntime (executable or libpython)
    load_bias: int
    runtime_addr: int
    version: tuple[int, int, int]
    version_string: str
    layout: dict[str, int]
    traits: VersionTraits
    none_addr: int
    code_type_addr: int
    free_threaded: bool = False

    @property
    def minor(self) -> tuple[int, int]:
        return self.version[:2]

    def has(self, key: str) -> bool:
        return key in self.layout


def _candidates(pid: int, maps: list[Mapping]) -> list[tuple[str, int]]:
    """(path, base) of ELF images that may hold the runtime, libpython first."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    exe = exe[: -len(" (deleted)")] if exe.endswith(" (deleted)") else exe
    bases: dict[str, int] = {}
    for m in maps:
        if m.offset == 0 and m.path.startswith("/") and m.clean_path not in bases:
            bases[m.clean_path] = m.start
    libs = [p for p in bases if _LIBPYTHON.search(os.path.basename(p))]
    others = [p for p in bases if p == exe or ("python" in os.path.basename(p) and p not in libs)]
    ordered = libs + [p for p in others if p not in libs]
    return [(p, bases[p]) for p in ordered]


def _open_elf(pid: int, path: str, maps: list[Mapping]) -> ElfFile | None:
    tried = [host_path(pid, path)]
    # A deleted or unreachable file is still readable through the process's map_files.
    for m in maps:
        if m.clean_path == path and m.offset == 0:
            tried.append(f"/proc/{pid}/map_files/{m.start:x}-{m.end:x}")
            break
    for candidate in tried:
        try:
            return ElfFile(candidate)
        except ElfError:
            continue
    return None


def _version_from_memory(elf: ElfFile, bias: int, memory: RemoteMemory) -> tuple[str, tuple[int, int, int]] | None:
    """The version text in the target's .bss, where Py_GetVersion() keeps `sys.version`."""
    sec = elf.sections.get(".bss")
    if sec is None or not sec.size:
        return None
    try:
        data = memory.read(bias + sec.addr, min(sec.size, 8 << 20))
    except ReadError:
        return None
    m = _VERSION_TEXT.search(data)
    if m is None:
        return None
    return m.group(1).decode(), (int(m.group(2)), int(m.group(3)), int(m.group(4)))


def _hex_version(v: int) -> tuple[str, tuple[int, int, int]]:
    major, minor, micro = (v >> 24) & 0xFF, (v >> 16) & 0xFF, (v >> 8) & 0xFF
    level, serial = (v >> 4) & 0xF, v & 0xF
    text = f"{major}.{minor}.{micro}"
    if level in (0xA, 0xB, 0xC):
        text += {0xA: "a", 0xB: "b", 0xC: "rc"}[level] + str(serial)
    return text, (major, minor, micro)


def _check_supported(version_string: str, version: tuple[int, int, int], pid: int) -> None:
    if not (MIN_SUPPORTED <= version[:2] <= MAX_SUPPORTED) or traits_for(version[:2]) is None:
        raise UnsupportedVersionError(version_string, pid)


def locate_runtime(pid: int, memory: RemoteMemory) -> Runtime:
    """The target's runtime, or one line saying why there is none to read."""
    if not process_exists(pid):
        raise ProcessNotFoundError(pid)
    try:
        return _locate_runtime(pid, memory)
    except (NotPythonError, ReadError, ProcessGoneError, ProcessLookupError) as exc:
        # A target exiting during discovery looks like empty maps, vanished files under
        # /proc/PID/root, short reads or ESRCH: report the exit, not what it looked like.
        reason = why_unreadable(pid)
        if reason is not None:
            raise reason from None
        if isinstance(exc, (ProcessGoneError, ProcessLookupError)):
            raise ExitedDuringAttachError(pid) from None
        raise


def _locate_runtime(pid: int, memory: RemoteMemory) -> Runtime:
    maps = read_maps(pid)
    seen_python = None
    for path, base in _candidates(pid, maps):
        elf = _open_elf(pid, path, maps)
        if elf is None:
            continue
        bias = base - elf.first_load_base()
        sym = elf.symbol("_PyRuntime")
        sec = elf.sections.get(".PyRuntime")
        rel = sym if sym is not None else (sec.addr if sec is not None else None)
        if rel is None:
            if "python" in os.path.basename(path):
                seen_python = _version_from_memory(elf, bias, memory) or seen_python
            continue
        runtime_addr = bias + rel
        return _build_runtime(pid, memory, elf, path, bias, runtime_addr)
    if seen_python is not None:
        raise UnsupportedVersionError(seen_python[0], pid)
    raise NotPythonError(pid, "no CPython runtime (_PyRuntime) found in its memory maps")


def read_version(pid: int, memory: RemoteMemory, maps: list[Mapping] | None = None) -> str | None:
    """The target's Python version ("3.12.1"), or None: cheap enough to call for every process
    in a listing, since it reads no symbol table (unlike `locate_runtime`, ~10x the cost).
    """
    if maps is None:
        maps = read_maps(pid)
    for path, base in _candidates(pid, maps):
        elf = _open_elf(pid, path, maps)
        if elf is None:
            continue
        found = _version_from_memory(elf, base - elf.first_load_base(), memory)
        if found is not None:
            return found[0]
    return None


def _build_runtime(
    pid: int, memory: RemoteMemory, elf: ElfFile, path: str, bias: int, runtime_addr: int
) -> Runtime:
    head = memory.read(runtime_addr, 8)
    layout: dict[str, int]
    free_threaded = False
    if debug_offsets.has_cookie(head):
        raw = memory.read(runtime_addr, debug_offsets.READ_SIZE)
        try:
            dbg = debug_offsets.parse_debug_offsets(raw)
        except UnsupportedVersionError as exc:
            raise UnsupportedVersionError(exc.version, pid) from None
        except ValueError as exc:
            raise NotPythonError(pid, f"unreadable _Py_DebugOffsets: {exc}") from None
        version_string, version = dbg.version_string(), dbg.version
        _check_supported(version_string, version, pid)
        free_threaded = dbg.free_threaded
        if free_threaded:
            raise UnsupportedVersionError(version_string + " (free-threaded build)", pid)
        traits = traits_for(version[:2])
        assert traits is not None
        layout = dict(traits.supplement)
        layout.update(STATIC_LAYOUTS.get(version[:2], {}))
        layout.update(layout_from_debug_offsets(dbg.fields, version[:2]))
    else:
        pv = elf.symbol("Py_Version")
        if pv is not None:
            version_string, version = _hex_version(struct.unpack("<I", memory.read(bias + pv, 4))[0])
        else:
            found = _version_from_memory(elf, bias, memory)
            if found is None:
                m = _LIBPYTHON.search(os.path.basename(path)) or _EXE_VERSION.search(os.path.basename(path))
                if m is None:
                    raise NotPythonError(pid, f"cannot tell which Python version {path} is")
                found = (f"{m.group(1)}.{m.group(2)}", (int(m.group(1)), int(m.group(2)), 0))
            version_string, version = found
        _check_supported(version_string, version, pid)
        traits = traits_for(version[:2])
        assert traits is not None
        if version[:2] not in STATIC_LAYOUTS:
            raise UnsupportedVersionError(version_string, pid)
        layout = dict(traits.supplement)
        layout.update(STATIC_LAYOUTS[version[:2]])
    none_sym = elf.symbol("_Py_NoneStruct")
    code_sym = elf.symbol("PyCode_Type")
    return Runtime(
        pid=pid,
        binary=path,
        load_bias=bias,
        runtime_addr=runtime_addr,
        version=version,
        version_string=version_string,
        layout=layout,
        traits=traits,
        none_addr=bias + none_sym if none_sym else 0,
        code_type_addr=bias + code_sym if code_sym else 0,
        free_threaded=free_threaded,
    )
