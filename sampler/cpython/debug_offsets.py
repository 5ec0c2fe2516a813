"""Parse the `_Py_DebugOffsets` table that CPython 3.13+ places at the start of `_PyRuntime`.

The table is `char cookie[8] = "xdebugpy"`, then `uint64 version` (PY_VERSION_HEX), then
`uint64 free_threaded`, then a run of nested structs whose members are all `uint64`: offsets of
interesting fields inside the interpreter's structs plus those structs' sizes. The *order* of
the members is not self-describing and changes between minor versions (and, during a minor's
pre-releases, between betas), so this module keeps one tuple of dotted field names per known
layout. Everything version-specific is in the `LAYOUTS` data below; the code only reads it.

Choosing a layout
-----------------
Layouts are keyed by (major, minor). When a minor has several (3.15's pre-releases), each one
also carries the PY_VERSION_HEX range it is known for. The version picks the candidate to try
first, but the bytes must confirm it: every layout is checked against *anchors*, relations that
hold in every build of CPython (default, free-threaded, debug, Py_TRACE_REFS) and that sit at
different table positions in different layouts:

* `pyobject.ob_type + 8 == pyobject.size` (ob_type is the last word of PyObject);
* `tuple_object.ob_size`, `list_object.ob_size`, `bytes_object.ob_size`,
  `unicode_object.length` and `float_object.ob_fval` all equal `pyobject.size` (each is the
  first member after the object header);
* where the layout has it, `llist_node == {next: 0, prev: 8}`.

A wrong guess shifts these words by at least one slot and breaks the relations, so a table is
never decoded with the wrong field order because of a version number alone (e.g. a build from
CPython's main branch between two betas). If the preferred layout fails its anchors, the other
known layouts of the same minor are tried, newest first; the first that passes wins. Then the
chosen table is validated like CPython's own remote debugger does (sizes plausible, each offset
inside its struct and aligned for its C type); a failure names the field.

Sources of the field orders (read to learn the facts; this file is written from scratch):

* 3.13: the v3.13.0 layout (584 bytes), shared/reference/offsets/debug_offsets_3.13.0_layout.txt.
  3.13.0b1-b3 had a smaller table; they are not supported (they fail the anchors).
* 3.14: the v3.14.0 layout (760 bytes), shared/reference/offsets/debug_offsets_3.14.0_layout.txt;
  unchanged through 3.14.5 as far as the material shows.
* 3.15 (>= 3.15.0b4, 888 bytes): Include/internal/pycore_debug_offsets.h as stored for
  methane/cpython@a93425f62b6b9c6eea14a73ff1869b430fe87734 and
  taegyunkim/cpython@8543f762a91ecbcc6152b8096400c6772fdc77a6 (identical struct), matching
  python/cpython@11f3545df34c609a53d4809717a198dc72ee6bdf
  Modules/_remote_debugging/debug_offsets_validation.h (static_assert 888).
* 3.15.0b1-b3 (880 bytes): the same minus `thread_state.last_profiled_frame_seq`, which
  3.15.0b4 inserted (gh-151613; `git diff v3.15.0b3..v3.15.0b4` of that header, quoted in
  bloomberg/pystack#337, shows it as the only change). Verified for b3; b1/b2 assumed.
* 3.15 alphas: the 824-byte table of encukou/cpython@606e5e93e4426acb5af10385395c71224c2ebf9d,
  and an 840-byte one (python/cpython@b3a50468944531988f5e0d499e6faff8b67d7182 asserts 840) that
  is that table plus `gc.generation_stats_size, gc.generation_stats` (gh-146527). The 840
  order is inferred, not read; anchors guard it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from sampler.errors import UnsupportedVersionError

COOKIE = b"xdebugpy"
_HEADER = ("version", "free_threaded")  # the two words after the cookie, common to all layouts


def _group(name: str, members: str) -> tuple[str, ...]:
    return tuple(f"{name}.{m}" for m in members.split())


# ---------------------------------------------------------------------------------------------
# Field orders. Every entry is one uint64 in the table, in table order, after cookie/version/
# free_threaded. Groups shared verbatim between layouts are named once.
# ---------------------------------------------------------------------------------------------

_RUNTIME = _group("runtime_state", "size finalizing interpreters_head")
_PYOBJECT = _group("pyobject", "size ob_type")
_TYPE_313 = _group("type_object", "size tp_name tp_repr tp_flags")
_TUPLE = _group("tuple_object", "size ob_item ob_size")
_LIST = _group("list_object", "size ob_item ob_size")
_SET = _group("set_object", "size used table mask")
_DICT = _group("dict_object", "size ma_keys ma_values")
_FLOAT = _group("float_object", "size ob_fval")
_LONG = _group("long_object", "size lv_tag ob_digit")
_BYTES = _group("bytes_object", "size ob_size ob_sval")
_UNICODE_313 = _group("unicode_object", "size state length asciiobject_size")
_GEN = _group("gen_object", "size gi_name gi_iframe gi_frame_state")
_LLIST = _group("llist_node", "next prev")
_DEBUGGER = _group(
    "debugger_support",
    "eval_breaker remote_debugger_support remote_debugging_enabled debugger_pending_call "
    "debugger_script_path debugger_script_path_size",
)
_CODE_313 = _group(
    "code_object",
    "size filename name qualname linetable firstlineno argcount localsplusnames localspluskinds "
    "co_code_adaptive",
)
_CODE_314 = _CODE_313 + ("code_object.co_tlbc",)
_INTERP_314 = _group(
    "interpreter_state",
    "size id next threads_head threads_main gc imports_modules sysdict builtins ceval_gil "
    "gil_runtime_state gil_runtime_state_enabled gil_runtime_state_locked "
    "gil_runtime_state_holder code_object_generation tlbc_generation",
)
_FRAME_314 = _group(
    "interpreter_frame", "size previous executable instr_ptr localsplus owner stackpointer tlbc_index"
)
_TSTATE_313 = _group(
    "thread_state",
    "size prev next interp current_frame thread_id native_thread_id datastack_chunk status",
)
_TSTATE_315B1 = _group(
    "thread_state",
    "size prev next interp current_frame base_frame last_profiled_frame thread_id "
    "native_thread_id datastack_chunk status holds_gil gil_requested current_exception exc_state",
)
_TSTATE_315 = _group(
    "thread_state",
    "size prev next interp current_frame base_frame last_profiled_frame last_profiled_frame_seq "
    "thread_id native_thread_id datastack_chunk status holds_gil gil_requested current_exception "
    "exc_state",
)
_ERR_STACKITEM = _group("err_stackitem", "exc_value")
_TYPE_315 = _group("type_object", "size tp_name tp_repr tp_flags tp_basicsize tp_dictoffset")
_HEAPTYPE_315 = _group("heap_type_object", "size ht_cached_keys")
_UNICODE_315 = _UNICODE_313 + ("unicode_object.compactunicodeobject_size",)
_GC_315A = _group("gc", "size collecting frame")
_GC_315 = _group("gc", "size collecting frame generation_stats_size generation_stats")

FIELDS_313: tuple[str, ...] = (
    _RUNTIME
    + _group(
        "interpreter_state",
        "size id next threads_head gc imports_modules sysdict builtins ceval_gil "
        "gil_runtime_state gil_runtime_state_enabled gil_runtime_state_locked "
        "gil_runtime_state_holder",
    )
    + _TSTATE_313
    + _group("interpreter_frame", "size previous executable instr_ptr localsplus owner")
    + _CODE_313
    + _PYOBJECT + _TYPE_313 + _TUPLE + _LIST + _DICT + _FLOAT + _LONG + _BYTES + _UNICODE_313
    + _group("gc", "size collecting")
)

FIELDS_314: tuple[str, ...] = (
    _RUNTIME + _INTERP_314 + _TSTATE_313 + _FRAME_314 + _CODE_314
    + _PYOBJECT + _TYPE_313 + _TUPLE + _LIST + _SET + _DICT + _FLOAT + _LONG + _BYTES
    + _UNICODE_313 + _group("gc", "size collecting") + _GEN + _LLIST + _DEBUGGER
)

FIELDS_315: tuple[str, ...] = (
    _RUNTIME + _INTERP_314 + _TSTATE_315 + _ERR_STACKITEM + _FRAME_314 + _CODE_314
    + _PYOBJECT + _TYPE_315 + _HEAPTYPE_315 + _TUPLE + _LIST + _SET + _DICT + _FLOAT + _LONG
    + _BYTES + _UNICODE_315 + _GC_315 + _GEN + _LLIST + _DEBUGGER
)

FIELDS_315_B1: tuple[str, ...] = (
    _RUNTIME + _INTERP_314 + _TSTATE_315B1 + _ERR_STACKITEM + _FRAME_314 + _CODE_314
    + _PYOBJECT + _TYPE_315 + _HEAPTYPE_315 + _TUPLE + _LIST + _SET + _DICT + _FLOAT + _LONG
    + _BYTES + _UNICODE_315 + _GC_315 + _GEN + _LLIST + _DEBUGGER
)

FIELDS_315_A_GCSTATS: tuple[str, ...] = (
    _RUNTIME + _INTERP_314 + _TSTATE_315B1 + _ERR_STACKITEM + _FRAME_314 + _CODE_314
    + _PYOBJECT + _TYPE_313 + _TUPLE + _LIST + _SET + _DICT + _FLOAT + _LONG + _BYTES
    + _UNICODE_313 + _GC_315 + _GEN + _LLIST + _DEBUGGER
)

FIELDS_315_A: tuple[str, ...] = (
    _RUNTIME + _INTERP_314 + _TSTATE_315B1 + _ERR_STACKITEM + _FRAME_314 + _CODE_314
    + _PYOBJECT + _TYPE_313 + _TUPLE + _LIST + _SET + _DICT + _FLOAT + _LONG + _BYTES
    + _UNICODE_313 + _GC_315A + _GEN + _LLIST + _DEBUGGER
)


@dataclass(frozen=True)
class Layout:
    name: str
    minor: tuple[int, int]
    fields: tuple[str, ...]
    # PY_VERSION_HEX range [lo, hi) this layout is known for; None = the whole minor.
    hex_range: tuple[int, int] | None = None

    @property
    def size(self) -> int:
        """Bytes of the table: cookie, version, free_threaded, then one u64 per field."""
        return 8 * (1 + len(_HEADER) + len(self.fields))


# Per minor, newest first: that is also the fallback order when the version's own pick fails.
LAYOUTS: tuple[Layout, ...] = (
    Layout("3.13", (3, 13), FIELDS_313),
    Layout("3.14", (3, 14), FIELDS_314),
    Layout("3.15", (3, 15), FIELDS_315, (0x030F00B4, 0x03100000)),
    Layout("3.15.0b1-b3", (3, 15), FIELDS_315_B1, (0x030F00B1, 0x030F00B4)),
    Layout("3.15.0a-gcstats", (3, 15), FIELDS_315_A_GCSTATS, (0x030F00A0, 0x030F00B1)),
    Layout("3.15.0a", (3, 15), FIELDS_315_A, (0x030F00A0, 0x030F00B1)),
)

READ_SIZE: int = max(layout.size for layout in LAYOUTS)

# ---------------------------------------------------------------------------------------------
# Validation data.
# ---------------------------------------------------------------------------------------------

# Alignment (and width) of the C member an offset points at, where it is not an 8-byte word
# (pointer, Py_ssize_t, unsigned long, int64, double or a struct starting with one).
_ALIGN: dict[str, int] = {
    "interpreter_state.gil_runtime_state_enabled": 4,
    "interpreter_state.gil_runtime_state_locked": 4,
    "interpreter_state.tlbc_generation": 4,
    "thread_state.status": 4,
    "thread_state.holds_gil": 4,
    "thread_state.gil_requested": 4,
    "interpreter_frame.owner": 1,
    "interpreter_frame.tlbc_index": 4,
    "code_object.firstlineno": 4,
    "code_object.argcount": 4,
    "code_object.co_code_adaptive": 1,
    "long_object.ob_digit": 2,  # digit is 4 bytes with 30-bit digits, 2 with 15-bit ones
    "bytes_object.ob_sval": 1,
    "unicode_object.state": 4,
    "gc.collecting": 4,
    "gen_object.gi_frame_state": 1,
    "debugger_support.remote_debugger_support": 4,
    "debugger_support.remote_debugging_enabled": 4,
    "debugger_support.debugger_pending_call": 4,
    "debugger_support.debugger_script_path": 1,
}

# Members that are not offsets into their own group's struct: name -> group whose size bounds
# them, or None for an offset into a small struct the table gives no size for.
_RELATIVE_TO: dict[str, str | None] = {
    "debugger_support.eval_breaker": "thread_state",
    "debugger_support.remote_debugger_support": "thread_state",
    "debugger_support.remote_debugging_enabled": "interpreter_state",
    "debugger_support.debugger_pending_call": None,
    "debugger_support.debugger_script_path": None,
    "err_stackitem.exc_value": None,
    "llist_node.next": None,
    "llist_node.prev": None,
}
_SMALL_STRUCT_LIMIT = 4096  # bound for offsets into structs without a size in the table

# Members that are sizes, not offsets: name -> group whose size they may not exceed (or None).
_SIZE_MEMBERS: dict[str, str | None] = {
    "unicode_object.asciiobject_size": "unicode_object",
    "unicode_object.compactunicodeobject_size": "unicode_object",
    "gc.generation_stats_size": None,
    "debugger_support.debugger_script_path_size": None,
}

_KIB, _MIB = 1024, 1024 * 1024
# Plausible [min, max] of each struct's `size` member; anything else uses _SIZE_DEFAULT.
_SIZE_BOUNDS: dict[str, tuple[int, int]] = {
    "runtime_state": (64, 16 * _MIB),
    "interpreter_state": (64, _MIB - 1),
    "thread_state": (64, 4096),
}
_SIZE_DEFAULT = (8, 64 * _KIB)

# Anchors (see the module docstring): fields that are the first member after the object header,
# so each must equal pyobject.size in every build.
_ANCHOR_EQUAL_TO_PYOBJECT_SIZE = (
    "tuple_object.ob_size",
    "list_object.ob_size",
    "bytes_object.ob_size",
    "unicode_object.length",
    "float_object.ob_fval",
)


# ---------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------

_LEVELS = {0xA: "a", 0xB: "b", 0xC: "rc", 0xF: ""}


def _split_hex(version_hex: int) -> tuple[int, int, int, int, int]:
    return (
        (version_hex >> 24) & 0xFF,
        (version_hex >> 16) & 0xFF,
        (version_hex >> 8) & 0xFF,
        (version_hex >> 4) & 0xF,
        version_hex & 0xF,
    )


def version_string_from_hex(version_hex: int) -> str:
    """PY_VERSION_HEX -> "3.13.0", "3.15.0b4", "3.14.0rc1"."""
    major, minor, micro, level, serial = _split_hex(version_hex)
    text = f"{major}.{minor}.{micro}"
    if level != 0xF:
        text += f"{_LEVELS.get(level, f'?{level:x}')}{serial}"
    return text


@dataclass(frozen=True)
class DebugOffsets:
    version_hex: int  # PY_VERSION_HEX of the target
    free_threaded: bool
    fields: dict[str, int] = field(hash=False)  # "thread_state.current_frame" -> 72, every field
    layout_name: str  # e.g. "3.13", "3.14", "3.15"

    @property
    def version(self) -> tuple[int, int, int]:
        major, minor, micro, _, _ = _split_hex(self.version_hex)
        return (major, minor, micro)

    def version_string(self) -> str:
        return version_string_from_hex(self.version_hex)


def has_cookie(raw: bytes) -> bool:
    return bytes(raw[: len(COOKIE)]) == COOKIE


def parse_debug_offsets(raw: bytes) -> DebugOffsets:
    """Decode a table read from the start of `_PyRuntime` (read at least READ_SIZE bytes).

    Raises UnsupportedVersionError for a minor with no known layout and ValueError (one line)
    for a missing cookie or a table that no known layout fits or that fails validation.
    """
    raw = bytes(raw)
    if not has_cookie(raw):
        raise ValueError(
            f"no _Py_DebugOffsets cookie: expected {COOKIE!r} at the start of _PyRuntime, "
            f"found {raw[:8]!r}"
        )
    if len(raw) < 24:
        raise ValueError(f"_Py_DebugOffsets truncated: {len(raw)} bytes, need at least 24")
    version_hex, free_threaded = struct.unpack_from("<QQ", raw, 8)
    level = _split_hex(version_hex)[3]
    if version_hex >> 32 or level not in _LEVELS:
        raise ValueError(f"_Py_DebugOffsets has an implausible version word {version_hex:#x}")
    if free_threaded not in (0, 1):
        raise ValueError(f"_Py_DebugOffsets.free_threaded is {free_threaded}, expected 0 or 1")

    candidates = _candidates(version_hex)
    if not candidates:
        raise UnsupportedVersionError(version_string_from_hex(version_hex))

    first_error: str | None = None
    for layout in candidates:
        if len(raw) < layout.size:
            problem = f"table truncated: {len(raw)} bytes, the {layout.name} layout needs {layout.size}"
        else:
            fields = _decode(raw, layout)
            problem = _anchor_problem(fields)
            if problem is None:
                _validate(fields, layout.name)
                return DebugOffsets(version_hex, bool(free_threaded), fields, layout.name)
        if first_error is None:
            first_error = f"does not match the {layout.name} layout: {problem}"
    tried = ", ".join(layout.name for layout in candidates)
    raise ValueError(
        f"_Py_DebugOffsets of Python {version_string_from_hex(version_hex)} {first_error} "
        f"(tried layouts: {tried})"
    )


# ---------------------------------------------------------------------------------------------
# Internals.
# ---------------------------------------------------------------------------------------------


def _candidates(version_hex: int) -> list[Layout]:
    """Known layouts of the target's minor: the one its version names first, then the rest."""
    minor = _split_hex(version_hex)[:2]
    same_minor = [layout for layout in LAYOUTS if layout.minor == minor]
    preferred = [
        layout
        for layout in same_minor
        if layout.hex_range is None or layout.hex_range[0] <= version_hex < layout.hex_range[1]
    ]
    return preferred + [layout for layout in same_minor if layout not in preferred]


def _decode(raw: bytes, layout: Layout) -> dict[str, int]:
    values = struct.unpack_from(f"<{len(layout.fields)}Q", raw, 24)
    return dict(zip(layout.fields, values))


def _anchor_problem(fields: dict[str, int]) -> str | None:
    """Why these words cannot be this layout, or None if the layout's anchors all hold."""
    obj_size, ob_type = fields["pyobject.size"], fields["pyobject.ob_type"]
    if ob_type + 8 != obj_size:
        return (
            f"pyobject.ob_type={ob_type} should be pyobject.size-8 "
            f"(pyobject.size={obj_size})"
        )
    for name in _ANCHOR_EQUAL_TO_PYOBJECT_SIZE:
        if fields[name] != obj_size:
            return f"{name}={fields[name]} should equal pyobject.size={obj_size}"
    if "llist_node.next" in fields:
        if (fields["llist_node.next"], fields["llist_node.prev"]) != (0, 8):
            return (
                f"llist_node.next={fields['llist_node.next']}, "
                f"llist_node.prev={fields['llist_node.prev']} should be 0 and 8"
            )
    return None


def _fail(layout_name: str, message: str) -> None:
    raise ValueError(f"invalid _Py_DebugOffsets ({layout_name} layout): {message}")


def _validate(fields: dict[str, int], layout_name: str) -> None:
    """CPython-style sanity checks; raises ValueError naming the first bad field."""
    groups = sorted({name.split(".", 1)[0] for name in fields if name.endswith(".size")})
    for group in groups:
        size = fields[f"{group}.size"]
        lo, hi = _SIZE_BOUNDS.get(group, _SIZE_DEFAULT)
        if not lo <= size <= hi:
            _fail(layout_name, f"{group}.size={size} is not between {lo} and {hi}")

    for name, value in fields.items():
        group, member = name.split(".", 1)
        if member == "size":
            continue
        if name in _SIZE_MEMBERS:
            bound_group = _SIZE_MEMBERS[name]
            limit = fields.get(f"{bound_group}.size", 64 * _KIB) if bound_group else 64 * _KIB
            if not 0 < value <= limit:
                _fail(layout_name, f"{name}={value} is not a plausible size (1..{limit})")
            continue
        width = _ALIGN.get(name, 8)
        if value % width:
            _fail(layout_name, f"{name}={value} is not aligned to {width} bytes")
        bound_group = _RELATIVE_TO.get(name, group)
        if bound_group is None or f"{bound_group}.size" not in fields:
            limit, what = _SMALL_STRUCT_LIMIT, "the plausible bound"
        else:
            limit, what = fields[f"{bound_group}.size"], f"{bound_group}.size"
        if value + width > limit:
            _fail(layout_name, f"{name}={value} (width {width}) lies outside {what}={limit}")

    # Nested structs must fit inside the struct that embeds them.
    interp_size = fields["interpreter_state.size"]
    gc_at, gc_size = fields["interpreter_state.gc"], fields["gc.size"]
    if gc_at + gc_size > interp_size:
        _fail(
            layout_name,
            f"interpreter_state.gc={gc_at} plus gc.size={gc_size} exceeds "
            f"interpreter_state.size={interp_size}",
        )
    if "thread_state.exc_state" in fields:
        at = fields["thread_state.exc_state"] + fields["err_stackitem.exc_value"]
        if at + 8 > fields["thread_state.size"]:
            _fail(
                layout_name,
                f"thread_state.exc_state + err_stackitem.exc_value = {at} lies outside "
                f"thread_state.size={fields['thread_state.size']}",
            )


# ---------------------------------------------------------------------------------------------
# The asyncio table (3.14+).
# ---------------------------------------------------------------------------------------------
# `_asyncio` keeps a second table, `_Py_AsyncioModuleDebugOffsets`, in an ELF section named
# `.AsyncioDebug` of the image it is built into (the `_asyncio` extension module, or the
# interpreter itself when the module is built in, as in Debian's 3.15). It has no cookie and no
# version: the section's size tells the layout, and the same validation as above guards the
# words. All members are uint64. Seen in 3.14.10 and 3.15.2 (104 bytes, the order below); an
# earlier 3.14 development table was shorter and is not supported. docs/async-plan.md has more.

ASYNCIO_SECTION = ".AsyncioDebug"
ASYNCIO_FIELDS: tuple[str, ...] = (
    _group(
        "asyncio_task_object",
        "size task_name task_awaited_by task_is_task task_awaited_by_is_set task_coro task_node",
    )
    + _group("asyncio_interpreter_state", "size asyncio_tasks_head")
    + _group("asyncio_thread_state", "size asyncio_running_loop asyncio_running_task asyncio_tasks_head")
)
ASYNCIO_SIZE: int = 8 * len(ASYNCIO_FIELDS)

# The two flags are chars; everything else is a pointer or a struct starting with one.
_ASYNCIO_ALIGN = {"asyncio_task_object.task_is_task": 1, "asyncio_task_object.task_awaited_by_is_set": 1}
_ASYNCIO_SIZE_BOUNDS = {
    "asyncio_task_object": (32, 4096),  # a future's header plus the task's own fields
    "asyncio_interpreter_state": _SIZE_BOUNDS["interpreter_state"],
    "asyncio_thread_state": _SIZE_BOUNDS["thread_state"],
}


def parse_asyncio_debug_offsets(raw: bytes) -> dict[str, int]:
    """Decode the `.AsyncioDebug` section's bytes (the whole section) into dotted field names.

    Raises ValueError (one line) for a section of another size or words that fail validation.
    """
    raw = bytes(raw)
    if len(raw) != ASYNCIO_SIZE:
        raise ValueError(
            f"{ASYNCIO_SECTION} is {len(raw)} bytes; the known layout is {ASYNCIO_SIZE} "
            f"({len(ASYNCIO_FIELDS)} offsets)"
        )
    fields = dict(zip(ASYNCIO_FIELDS, struct.unpack_from(f"<{len(ASYNCIO_FIELDS)}Q", raw)))
    for group, (lo, hi) in _ASYNCIO_SIZE_BOUNDS.items():
        size = fields[f"{group}.size"]
        if not lo <= size <= hi:
            raise ValueError(f"invalid {ASYNCIO_SECTION}: {group}.size={size} is not between {lo} and {hi}")
    for name, value in fields.items():
        group, member = name.split(".", 1)
        if member == "size":
            continue
        width = _ASYNCIO_ALIGN.get(name, 8)
        limit = fields[f"{group}.size"]
        if value % width or value + width > limit:
            raise ValueError(
                f"invalid {ASYNCIO_SECTION}: {name}={value} (width {width}) is misaligned or "
                f"lies outside {group}.size={limit}"
            )
    # Every object starts with its refcount and type: no task field can sit in that header.
    for name in ASYNCIO_FIELDS[1:7]:
        if fields[name] < 16:
            raise ValueError(f"invalid {ASYNCIO_SECTION}: {name}={fields[name]} lies in the object header")
    return fields
