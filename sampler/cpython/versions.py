"""Everything heatline knows about each CPython minor version, as data.

Struct offsets come from two sources: tables generated from each version's headers
(`static_layouts.py`, 3.9-3.13) and, from 3.13 on, the target's own `_Py_DebugOffsets`.
This module adds what neither says: how frames, line tables, GIL state and frame ownership
work in each version, plus the few offsets the debug table lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_SUPPORTED = (3, 9)
MAX_SUPPORTED = (3, 15)


@dataclass(frozen=True)
class VersionTraits:
    # "object": a chain of PyFrameObject (f_back, f_lasti); "interp": _PyInterpreterFrame.
    frame_kind: str
    # Key into linetable.PARSERS.
    linetable: str
    # Multiply frame.lasti by this to get a byte offset (3.10 counts 2-byte code units).
    lasti_scale: int = 1
    # How the current frame is reached: "tstate.frame", "cframe", "tstate.current_frame".
    frame_root: str = "tstate.current_frame"
    # Frame owners that are not Python code (C-stack shims, interpreter entry frames).
    skip_owners: frozenset[int] = frozenset()
    # Low bits of frame.code that tag a _PyStackRef rather than address the object.
    code_tag_mask: int = 0
    # Where the GIL state lives: "runtime" (<=3.11, _PyRuntime.ceval.gil) or "interp".
    gil: str = "interp"
    # Code objects carry co_qualname (3.11+); older versions only co_name.
    qualname: bool = True
    # Internal code objects the interpreter runs as frames of their own, as (filename, name):
    # they are plumbing, not user code, and are skipped like shim frames.
    shim_codes: frozenset[tuple[str, str]] = frozenset()
    # Offsets the debug table does not carry; used only when a key is missing.
    supplement: dict[str, int] = field(default_factory=dict)


_CHUNK = {
    "stack_chunk.previous": 0,
    "stack_chunk.size": 8,
    "stack_chunk.top": 16,
    "stack_chunk.data": 24,
}

# 3.14 default (GIL) builds, from the v3.14.0 headers; see ../shared reference offsets table.
_SUPPLEMENT_314 = {
    **_CHUNK,
    "tstate.datastack_top": 240,
    "tstate.current_exception": 112,
    "tstate.exc_info": 120,
    "tstate.exc_state": 256,
    "tstate.holds_gil": 36,
    "err_stackitem.exc_value": 0,
    "err_stackitem.previous_item": 8,
}

TRAITS: dict[tuple[int, int], VersionTraits] = {
    (3, 9): VersionTraits("object", "lnotab", 1, "tstate.frame", gil="runtime", qualname=False),
    (3, 10): VersionTraits("object", "linetable310", 2, "tstate.frame", gil="runtime", qualname=False),
    (3, 11): VersionTraits("interp", "locations311", frame_root="cframe", gil="runtime"),
    (3, 12): VersionTraits("interp", "locations311", frame_root="cframe", skip_owners=frozenset({3})),
    # 3.13 runs `cls()` with a thread-owned "init cleanup" shim frame below `__init__`.
    (3, 13): VersionTraits(
        "interp", "locations311", skip_owners=frozenset({3}), shim_codes=frozenset({("__init__", "__init__")})
    ),
    # 3.14: FRAME_OWNED_BY_INTERPRETER = 3 and FRAME_OWNED_BY_CSTACK = 4.
    (3, 14): VersionTraits(
        "interp", "locations311", skip_owners=frozenset({3, 4}), code_tag_mask=3, supplement=_SUPPLEMENT_314
    ),
    # 3.15: CSTACK is gone; INTERPRETER = 3. Thread state fields come from the debug table.
    (3, 15): VersionTraits(
        "interp",
        "locations311",
        skip_owners=frozenset({3}),
        code_tag_mask=3,
        supplement={k: v for k, v in _SUPPLEMENT_314.items() if k != "tstate.holds_gil"},
    ),
}

# Debug-table field -> heatline layout key, for the fields the unwinder uses.
DEBUG_FIELD_MAP = {
    "runtime_state.interpreters_head": "runtime.interpreters_head",
    "interpreter_state.id": "interp.id",
    "interpreter_state.next": "interp.next",
    "interpreter_state.threads_head": "interp.threads_head",
    "interpreter_state.threads_main": "interp.threads_main",
    "interpreter_state.gil_runtime_state_locked": "interp.gil_locked",
    "interpreter_state.gil_runtime_state_holder": "interp.gil_holder",
    "interpreter_state.code_object_generation": "interp.code_object_generation",
    "thread_state.size": "tstate.size",
    "thread_state.next": "tstate.next",
    "thread_state.interp": "tstate.interp",
    "thread_state.current_frame": "tstate.current_frame",
    "thread_state.thread_id": "tstate.thread_id",
    "thread_state.native_thread_id": "tstate.native_thread_id",
    "thread_state.datastack_chunk": "tstate.datastack_chunk",
    "thread_state.status": "tstate.status",
    "thread_state.holds_gil": "tstate.holds_gil",
    "thread_state.gil_requested": "tstate.gil_requested",
    "thread_state.current_exception": "tstate.current_exception",
    "thread_state.exc_state": "tstate.exc_state",
    "err_stackitem.exc_value": "err_stackitem.exc_value",
    "interpreter_frame.size": "frame.size",
    "interpreter_frame.previous": "frame.previous",
    "interpreter_frame.executable": "frame.code",
    "interpreter_frame.instr_ptr": "frame.instr_ptr",
    "interpreter_frame.owner": "frame.owner",
    "code_object.size": "code.size",
    "code_object.filename": "code.filename",
    "code_object.name": "code.name",
    "code_object.qualname": "code.qualname",
    "code_object.linetable": "code.linetable",
    "code_object.firstlineno": "code.firstlineno",
    "code_object.co_code_adaptive": "code.code_adaptive",
    "pyobject.ob_type": "object.ob_type",
    "type_object.tp_name": "type.tp_name",
    "bytes_object.ob_size": "bytes.ob_size",
    "bytes_object.ob_sval": "bytes.ob_sval",
    "unicode_object.state": "unicode.state",
    "unicode_object.length": "unicode.length",
    "unicode_object.asciiobject_size": "unicode.ascii_size",
    "unicode_object.compactunicodeobject_size": "unicode.compact_size",
}


def traits_for(version: tuple[int, int]) -> VersionTraits | None:
    return TRAITS.get(version)


def layout_from_debug_offsets(fields: dict[str, int], version: tuple[int, int]) -> dict[str, int]:
    """Translate a parsed `_Py_DebugOffsets` into heatline layout keys."""
    layout: dict[str, int] = {}
    for src, dst in DEBUG_FIELD_MAP.items():
        if src in fields:
            layout[dst] = fields[src]
    if "interpreter_state.gc" in fields and "gc.collecting" in fields:
        layout["interp.gc_collecting"] = fields["interpreter_state.gc"] + fields["gc.collecting"]
    if "unicode.compact_size" not in layout and "unicode.ascii_size" in layout:
        # PyCompactUnicodeObject adds utf8_length and utf8 to PyASCIIObject.
        layout["unicode.compact_size"] = layout["unicode.ascii_size"] + 16
    if "tstate.datastack_chunk" in layout:
        layout.setdefault("tstate.datastack_top", layout["tstate.datastack_chunk"] + 8)
    return layout
