"""Tests for sampler.cpython.debug_offsets: live CPython 3.13-3.15 (pyenv's, the sid root's) and
synthetic tables of the pre-release layouts."""

from __future__ import annotations

import os
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import target, wait_ready
from sampler.cpython import debug_offsets as dbg
from sampler.cpython.runtime import locate_runtime
from sampler.cpython.static_layouts import STATIC_LAYOUTS
from sampler.cpython.versions import DEBUG_FIELD_MAP
from sampler.errors import UnsupportedVersionError
from sampler.target.memory import RemoteMemory

PY313 = Path("/root/.pyenv/versions/3.13.0/bin/python3.13")


# --- a tiny ELF64 reader: the .PyRuntime section address and the first PT_LOAD's vaddr -------


def _elf_pyruntime(path: str) -> tuple[int, int]:
    """(sh_addr of .PyRuntime, page-aligned p_vaddr of the first PT_LOAD) of an ELF64 file."""
    data = Path(path).read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2, "not an ELF64 file"
    e_phoff, e_shoff = struct.unpack_from("<QQ", data, 0x20)
    e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
    load_base = None
    for i in range(e_phnum):
        p_type, _flags, _off, p_vaddr, _pa, _fs, _ms, p_align = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * e_phentsize
        )
        if p_type == 1:  # PT_LOAD
            load_base = p_vaddr - (p_vaddr % p_align if p_align else 0)
            break
    assert load_base is not None

    def section(i: int) -> tuple[int, int, int]:
        name, _type, _flags, addr, offset = struct.unpack_from("<IIQQQ", data, e_shoff + i * e_shentsize)
        return name, addr, offset

    strtab_off = section(e_shstrndx)[2]
    for i in range(e_shnum):
        name_off, addr, _ = section(i)
        end = data.index(b"\0", strtab_off + name_off)
        if data[strtab_off + name_off : end] == b".PyRuntime":
            return addr, load_base
    raise AssertionError(f".PyRuntime not found in {path}")


def _mapping_start(pid: int, needle: str) -> tuple[int, str]:
    """Start address and path of the file-offset-0 mapping whose path contains `needle`."""
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and needle in parts[5] and int(parts[2], 16) == 0:
            return int(parts[0].split("-")[0], 16), parts[5]
    raise LookupError(needle)


@pytest.fixture
def py313_child():
    if not PY313.exists():
        pytest.skip(f"{PY313} is not installed")
    proc = subprocess.Popen([str(PY313), "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_live_python313(py313_child):
    pid = py313_child.pid
    deadline = time.monotonic() + 10
    while True:
        try:
            start, path = _mapping_start(pid, "libpython3.13.so")
            break
        except LookupError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    sh_addr, load_base = _elf_pyruntime(path)
    runtime_addr = start - load_base + sh_addr
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        raw = os.pread(fd, dbg.READ_SIZE, runtime_addr)
    finally:
        os.close(fd)

    assert dbg.has_cookie(raw)
    offsets = dbg.parse_debug_offsets(raw)
    assert offsets.layout_name == "3.13"
    assert offsets.version == (3, 13, 0)
    assert offsets.version_string() == "3.13.0"
    assert offsets.free_threaded is False
    assert offsets.fields["thread_state.current_frame"] == 72
    assert offsets.fields["interpreter_frame.owner"] == 70
    assert offsets.fields["code_object.co_code_adaptive"] == 200
    assert set(offsets.fields) == set(dbg.FIELDS_313)


# --- synthetic tables ---------------------------------------------------------------------------

# Plausible values, loosely modelled on a default (GIL) x86-64 build. Anything not listed gets
# a fresh 8-aligned offset inside its struct.
_PLAUSIBLE = {
    "runtime_state.size": 200_000,
    "interpreter_state.size": 100_000,
    "interpreter_state.gc": 7400,
    "thread_state.size": 400,
    "thread_state.status": 32,
    "thread_state.holds_gil": 36,
    "thread_state.gil_requested": 40,
    "thread_state.current_frame": 72,
    "thread_state.exc_state": 256,
    "err_stackitem.exc_value": 0,
    "interpreter_frame.size": 88,
    "interpreter_frame.owner": 74,
    "interpreter_frame.tlbc_index": 0,
    "code_object.size": 216,
    "code_object.firstlineno": 68,
    "code_object.argcount": 60,
    "code_object.co_code_adaptive": 208,
    "code_object.co_tlbc": 0,
    "pyobject.size": 16,
    "pyobject.ob_type": 8,
    "type_object.size": 416,
    "heap_type_object.size": 928,
    "tuple_object.size": 32,
    "tuple_object.ob_size": 16,
    "list_object.size": 40,
    "list_object.ob_size": 16,
    "set_object.size": 200,
    "dict_object.size": 48,
    "float_object.size": 24,
    "float_object.ob_fval": 16,
    "long_object.size": 32,
    "long_object.lv_tag": 16,
    "long_object.ob_digit": 24,
    "bytes_object.size": 40,
    "bytes_object.ob_size": 16,
    "bytes_object.ob_sval": 32,
    "unicode_object.size": 72,
    "unicode_object.state": 32,
    "unicode_object.length": 16,
    "unicode_object.asciiobject_size": 40,
    "unicode_object.compactunicodeobject_size": 56,
    "gc.size": 264,
    "gc.collecting": 192,
    "gc.generation_stats_size": 1112,
    "gen_object.size": 160,
    "gen_object.gi_frame_state": 67,
    "llist_node.next": 0,
    "llist_node.prev": 8,
    "debugger_support.remote_debugger_support": 336,
    "debugger_support.remote_debugging_enabled": 7856,
    "debugger_support.debugger_pending_call": 0,
    "debugger_support.debugger_script_path": 4,
    "debugger_support.debugger_script_path_size": 512,
    "interpreter_state.gil_runtime_state_enabled": 0,
    "interpreter_state.gil_runtime_state_locked": 7768,
    "interpreter_state.tlbc_generation": 0,
}


def _plausible_values(fields: tuple[str, ...]) -> dict[str, int]:
    values: dict[str, int] = {}
    next_free: dict[str, int] = {}
    for name in fields:
        if name in _PLAUSIBLE:
            values[name] = _PLAUSIBLE[name]
            continue
        group = name.split(".")[0]
        at = next_free.get(group, 8)
        next_free[group] = at + 8
        values[name] = at
    return values


def _table(version_hex: int, fields: tuple[str, ...], values: dict[str, int], free_threaded: int = 0) -> bytes:
    words = [values[name] for name in fields]
    return dbg.COOKIE + struct.pack(f"<QQ{len(words)}Q", version_hex, free_threaded, *words)


@pytest.mark.parametrize(
    "version_hex, fields, layout_name, version_text",
    [
        (0x030E00F0, dbg.FIELDS_314, "3.14", "3.14.0"),
        (0x030E05F0, dbg.FIELDS_314, "3.14", "3.14.5"),
        (0x030E00C1, dbg.FIELDS_314, "3.14", "3.14.0rc1"),
        (0x030F00F0, dbg.FIELDS_315, "3.15", "3.15.0"),
        (0x030F00B4, dbg.FIELDS_315, "3.15", "3.15.0b4"),
        (0x030F00B3, dbg.FIELDS_315_B1, "3.15.0b1-b3", "3.15.0b3"),
        (0x030F00A7, dbg.FIELDS_315_A_GCSTATS, "3.15.0a-gcstats", "3.15.0a7"),
        (0x030F00A5, dbg.FIELDS_315_A, "3.15.0a", "3.15.0a5"),
    ],
)
def test_synthetic_round_trip(version_hex, fields, layout_name, version_text):
    values = _plausible_values(fields)
    raw = _table(version_hex, fields, values) + b"\0" * 64  # callers read READ_SIZE, maybe more
    offsets = dbg.parse_debug_offsets(raw)
    assert offsets.layout_name == layout_name
    assert offsets.fields == values
    assert offsets.version_string() == version_text
    assert offsets.version == tuple(int(x) for x in version_text.split("rc")[0].split("a")[0].split("b")[0].split("."))


def test_live_table_matches_its_headers(interpreter, spawn):
    """A real 3.13+ target's table is decoded with the layout of its own release: the same size as
    `sizeof(_Py_DebugOffsets)` in its headers, and the offsets heatline uses equal to `offsetof`
    there (both in static_layouts.py, generated from those headers)."""
    p = spawn(interpreter, target("known_lines.py"))
    wait_ready(p)
    memory = RemoteMemory(p.pid)
    try:
        runtime = locate_runtime(p.pid, memory)
        if runtime.minor < (3, 13):
            pytest.skip(f"{runtime.version_string} has no _Py_DebugOffsets")
        raw = memory.read(runtime.runtime_addr, dbg.READ_SIZE)
    finally:
        memory.close()
    offsets = dbg.parse_debug_offsets(raw)
    version = subprocess.run(
        interpreter.python("-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"),
        capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    assert offsets.version_string() == version
    layout = next(lay for lay in dbg.LAYOUTS if lay.name == offsets.layout_name)
    assert layout.minor == runtime.minor
    headers = STATIC_LAYOUTS[runtime.minor]
    assert layout.size == headers["debug_offsets.size"]
    compared = {dst: (offsets.fields[src], headers[dst]) for src, dst in DEBUG_FIELD_MAP.items()
                if src in offsets.fields and dst in headers}
    assert len(compared) >= 20
    assert {k: v for k, v in compared.items() if v[0] != v[1]} == {}


def test_layout_sizes_and_read_size():
    sizes = {layout.name: layout.size for layout in dbg.LAYOUTS}
    assert sizes["3.13"] == 584
    assert sizes["3.14"] == 760
    assert sizes["3.15"] == 888
    assert sizes["3.15.0b1-b3"] == 880
    assert dbg.READ_SIZE >= max(sizes.values())


def test_315_b4_field_order():
    ts = [name for name in dbg.FIELDS_315 if name.startswith("thread_state.")]
    assert ts.index("thread_state.last_profiled_frame_seq") == ts.index("thread_state.last_profiled_frame") + 1
    assert "thread_state.last_profiled_frame_seq" not in dbg.FIELDS_315_B1


def test_bytes_pick_the_layout_when_the_version_misleads():
    # A main-branch build that still says 3.15.0b3 but already has the b4 table (and vice versa).
    raw = _table(0x030F00B3, dbg.FIELDS_315, _plausible_values(dbg.FIELDS_315))
    assert dbg.parse_debug_offsets(raw).layout_name == "3.15"
    raw = _table(0x030F00F0, dbg.FIELDS_315_B1, _plausible_values(dbg.FIELDS_315_B1)) + b"\0" * 8
    assert dbg.parse_debug_offsets(raw).layout_name == "3.15.0b1-b3"


def test_free_threaded_flag():
    # Free-threaded builds have a 32-byte object header: every object struct grows by 16.
    values = _plausible_values(dbg.FIELDS_314)
    objects = ("code_object", "type_object", "tuple_object", "list_object", "set_object",
               "dict_object", "float_object", "long_object", "bytes_object", "unicode_object",
               "gen_object")
    for name in values:
        if name.split(".")[0] in objects:
            values[name] += 16
    values.update({"pyobject.size": 32, "pyobject.ob_type": 24})
    offsets = dbg.parse_debug_offsets(_table(0x030E00F0, dbg.FIELDS_314, values, free_threaded=1))
    assert offsets.free_threaded is True
    assert offsets.fields["tuple_object.ob_size"] == 32


def test_unknown_minor_is_unsupported():
    raw = _table(0x031000A1, dbg.FIELDS_315, _plausible_values(dbg.FIELDS_315))
    with pytest.raises(UnsupportedVersionError) as info:
        dbg.parse_debug_offsets(raw)
    assert "3.16" in str(info.value)
    assert info.value.version == "3.16.0a1"


def test_offset_beyond_size_names_the_field():
    values = _plausible_values(dbg.FIELDS_315)
    values["thread_state.current_frame"] = values["thread_state.size"] + 64
    with pytest.raises(ValueError, match=r"thread_state\.current_frame") as info:
        dbg.parse_debug_offsets(_table(0x030F00F0, dbg.FIELDS_315, values))
    assert "\n" not in str(info.value)


def test_misaligned_offset_names_the_field():
    values = _plausible_values(dbg.FIELDS_314)
    values["code_object.filename"] += 3
    with pytest.raises(ValueError, match=r"code_object\.filename.*aligned"):
        dbg.parse_debug_offsets(_table(0x030E00F0, dbg.FIELDS_314, values))


def test_implausible_thread_state_size():
    values = _plausible_values(dbg.FIELDS_314)
    values["thread_state.size"] = 1 << 20
    with pytest.raises(ValueError, match=r"thread_state\.size"):
        dbg.parse_debug_offsets(_table(0x030E00F0, dbg.FIELDS_314, values))


def test_missing_cookie():
    raw = b"notdebug" + bytes(dbg.READ_SIZE - 8)
    assert not dbg.has_cookie(raw)
    with pytest.raises(ValueError, match="cookie"):
        dbg.parse_debug_offsets(raw)


def test_garbage_after_cookie_is_rejected():
    raw = _table(0x030E00F0, dbg.FIELDS_314, {name: 8 for name in dbg.FIELDS_314})
    with pytest.raises(ValueError, match="pyobject"):
        dbg.parse_debug_offsets(raw)


def test_truncated_table():
    raw = _table(0x030F00F0, dbg.FIELDS_315, _plausible_values(dbg.FIELDS_315))[:500]
    with pytest.raises(ValueError, match="truncated"):
        dbg.parse_debug_offsets(raw)
