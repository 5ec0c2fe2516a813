"""Everything heatline knows about each CPython minor version, as data.

Struct offsets come from two sources: tables generated from each version's headers
(`static_layouts.py`, 3.9-3.15) and, from 3.13 on, the target's own `_Py_DebugOffsets`, which
wins where both have a field. This module adds what neither says: how frames, line tables, GIL
state and frame ownership work in each version, and where the fields the debug table lacks sit
relative to the ones it has.
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
    # The smallest data-stack chunk a thread allocates (_PY_DATA_STACK_CHUNK_SIZE, 3.11+): a full
    # older chunk is read this much at once. A macro (in pystate.c before 3.14), so it is not in
    # the header-generated tables.
    chunk_min_bytes: int = 16 << 10
    # 3.11: a frame entered from C (by a call of the eval loop) says so in `frame.is_entry`;
    # later versions push an entry frame of their own there (owned by the C stack/interpreter).
    entry_flag: bool = False
    # 3.11/3.12: a frame that called another (pushed inline) has its prev_instr on the call's
    # last inline cache unit, not on the call: its opcode is found by decoding the code.
    ip_in_caches: bool = False
    # Offsets the debug table does not carry; used only when a key is missing.
    supplement: dict[str, int] = field(default_factory=dict)


# Thread-state fields the debug table lacks, as (field it has, distance in bytes): each is
# declared right after that field in 3.13-3.15. Taken from the target's own table they stay right
# when the thread state grows in front of them, as it did between releases of one minor (3.15.0b4
# inserted `last_profiled_frame_seq`, moving exc_info from 136 to 144), which the header-generated
# table of one release cannot follow. tests/test_static_layouts.py checks them against the headers.
DEBUG_NEIGHBOURS: dict[str, tuple[str, int]] = {
    "tstate.exc_info": ("tstate.current_exception", 8),  # _PyErr_StackItem *, after PyObject *
    "tstate.datastack_top": ("tstate.datastack_chunk", 8),  # PyObject **, after the chunk pointer
    "tstate.holds_gil": ("tstate.status", 4),  # int, after the 4-byte _status bit-field (3.14+)
}
# Versions that have each neighbour field at all.
NEIGHBOUR_SINCE: dict[str, tuple[int, int]] = {"tstate.holds_gil": (3, 14)}

# The code object of the frame `cls()` pushes below `__init__` (it checks that __init__ returned
# None): co_filename and co_name are both "__init__". The frame is owned by the thread like any
# Python frame (seen on 3.13.0, 3.14.10 and 3.15.2) and sits at its first instruction while
# __init__ runs, so it must be recognised by its code, not by its owner or progress.
_INIT_SHIM = frozenset({("__init__", "__init__")})
# The code 3.12's C-stack entry frames run: such a frame marks where C called into Python.
ENTRY_SHIM = ("<shim>", "<interpreter trampoline>")

TRAITS: dict[tuple[int, int], VersionTraits] = {
    (3, 9): VersionTraits("object", "lnotab", 1, "tstate.frame", gil="runtime", qualname=False),
    (3, 10): VersionTraits("object", "linetable310", 2, "tstate.frame", gil="runtime", qualname=False),
    (3, 11): VersionTraits("interp", "locations311", frame_root="cframe", gil="runtime", entry_flag=True,
                           ip_in_caches=True),
    # 3.12's C-stack entry frames run the interpreter's "<interpreter trampoline>" code (file
    # "<shim>"). They are owned by the C stack (3), but one caught while the eval loop is still
    # filling it in has its code set and its owner not yet: it is known by its code then.
    (3, 12): VersionTraits(
        "interp",
        "locations311",
        frame_root="cframe",
        skip_owners=frozenset({3}),
        shim_codes=frozenset({ENTRY_SHIM}),
        ip_in_caches=True,
    ),
    # 3.13 runs `cls()` with a thread-owned "init cleanup" shim frame below `__init__`.
    (3, 13): VersionTraits("interp", "locations311", skip_owners=frozenset({3}), shim_codes=_INIT_SHIM),
    # 3.14: FRAME_OWNED_BY_INTERPRETER = 3 and FRAME_OWNED_BY_CSTACK = 4.
    (3, 14): VersionTraits(
        "interp", "locations311", skip_owners=frozenset({3, 4}), code_tag_mask=3, shim_codes=_INIT_SHIM
    ),
    # 3.15: CSTACK is gone; INTERPRETER = 3.
    (3, 15): VersionTraits(
        "interp", "locations311", skip_owners=frozenset({3}), code_tag_mask=3, shim_codes=_INIT_SHIM
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
    for key, (anchor, distance) in DEBUG_NEIGHBOURS.items():
        if anchor in layout and version >= NEIGHBOUR_SINCE.get(key, (3, 13)):
            layout.setdefault(key, layout[anchor] + distance)
    return layout


# ---------------------------------------------------------------------------------------------
# asyncio (issue 15; docs/async-plan.md says how each fact was found and verified).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AsyncioTraits:
    # Where a thread's running event loop is: "tstate.dict" (its thread-state dict, under
    # RUNNING_LOOP_KEY) or "tstate.asyncio_running_loop" (a thread-state field, 3.13+).
    running_loop: str
    # Where the task a loop is running is: "current_tasks" (the `_asyncio` module's {loop: task}
    # dict, which `asyncio.tasks._current_tasks` names too) or "tstate.asyncio_running_task".
    current_task: str
    # gi_frame_state values of a coroutine that is suspended (not created, running or done).
    suspended_states: frozenset[int]
    # The gi_frame_state of a coroutine suspended inside an `await`, with the awaitable on top of
    # its frame's value stack; None where one state means both a plain yield and an await (3.11,
    # 3.12: then the instruction after the frame's instr_ptr is a RESUME whose oparg is >= 2).
    awaiting_state: int | None
    # How deep below the top of that stack the awaitable is: 3.15's SEND keeps a second slot
    # (a NULL reference, bits 1) above it, so it is at stackpointer[-2] there.
    awaitable_depth: int = 1
    # _asyncio.Task (TaskObj) offsets: "size", "loop", "fut_waiter", "coro", "name", and the
    # future's first done callback and the list of the others ("callback0", "callbacks"). From
    # 3.14 the target's AsyncioDebug table also gives coro and name (and wins), plus what only it
    # has.
    task: dict[str, int] = field(default_factory=dict)
    # 3.11 keeps a `_RunningLoopHolder` in the thread-state dict; its loop is at this offset.
    loop_holder_loop: int | None = None
    # 3.11/3.12 (awaiting_state None): the opcodes of the RESUME that follows an await's
    # YIELD_VALUE (whose oparg is 2 for yield from, 3 for await), quickened (3.11's
    # RESUME_QUICK) and instrumented (3.12's INSTRUMENTED_RESUME) forms included, from each
    # version's `opcode` module (tests/test_async_tasks.py checks them).
    await_resume_opcodes: frozenset[int] = frozenset()
    # gi_frame_state from which a coroutine has finished (asyncio's Python tables, read before
    # 3.14 and for pure-Python asyncio after, may still hold a done task while it is referenced).
    finished_state: int | None = None


RUNNING_LOOP_KEY = "__asyncio_running_event_loop__"

# TaskObj is private to Modules/_asynciomodule.c, so no header gives it: these are read from the
# sources (Debian's 3.11.2 and 3.13.15 source packages) and checked against every installed
# interpreter by tests/test_async_layouts.py (3.12 has no source here: it has 3.11's struct).
# Every version's FutureObj_HEAD starts with the object header, fut_loop, fut_callback0,
# fut_context0 and fut_callbacks.
_FUTURE_HEAD = {"loop": 16, "callback0": 24, "callbacks": 40}
_TASK_311 = {**_FUTURE_HEAD, "size": 176, "fut_waiter": 128, "coro": 136, "name": 144}
_TASK_313 = {**_FUTURE_HEAD, "size": 144, "fut_waiter": 112, "coro": 120, "name": 128}
_TASK_314 = {**_FUTURE_HEAD, "size": 168, "fut_waiter": 120, "coro": 128, "name": 136}
# RESUME, and 3.11's RESUME_QUICK / 3.12's INSTRUMENTED_RESUME.
_RESUME_311 = frozenset({151, 150})
_RESUME_312 = frozenset({151, 240})

ASYNCIO_TRAITS: dict[tuple[int, int], AsyncioTraits] = {
    (3, 11): AsyncioTraits("tstate.dict", "current_tasks", frozenset({-1}), None, 1, _TASK_311, 16,
                           _RESUME_311, finished_state=1),
    (3, 12): AsyncioTraits("tstate.dict", "current_tasks", frozenset({-1}), None, 1, _TASK_311,
                           await_resume_opcodes=_RESUME_312, finished_state=1),
    (3, 13): AsyncioTraits("tstate.asyncio_running_loop", "current_tasks", frozenset({-2, -1}), -1, 1, _TASK_313,
                           finished_state=1),
    (3, 14): AsyncioTraits(
        "tstate.asyncio_running_loop", "tstate.asyncio_running_task", frozenset({-2, -1}), -1, 1, _TASK_314,
        finished_state=1,  # FRAME_STATE_FINISHED: >= FRAME_COMPLETED (1)
    ),
    # 3.15 renumbered the frame states: SUSPENDED 1, SUSPENDED_YIELD_FROM 2, ..._LOCKED 3 (an
    # await whose awaitable another thread is stepping; free-threaded builds).
    (3, 15): AsyncioTraits(
        "tstate.asyncio_running_loop", "tstate.asyncio_running_task", frozenset({1, 2, 3}), 2, 2, _TASK_314,
        finished_state=5,  # FRAME_STATE_FINISHED: == FRAME_CLEARED (5), the last state
    ),
}

# AsyncioDebug field -> heatline layout key (debug_offsets.ASYNCIO_FIELDS).
ASYNCIO_DEBUG_FIELD_MAP = {
    "asyncio_task_object.size": "task.size",
    "asyncio_task_object.task_name": "task.name",
    "asyncio_task_object.task_awaited_by": "task.awaited_by",
    "asyncio_task_object.task_is_task": "task.is_task",
    "asyncio_task_object.task_awaited_by_is_set": "task.awaited_by_is_set",
    "asyncio_task_object.task_coro": "task.coro",
    "asyncio_task_object.task_node": "task.node",
    "asyncio_interpreter_state.asyncio_tasks_head": "interp.asyncio_tasks_head",
    "asyncio_thread_state.asyncio_running_loop": "tstate.asyncio_running_loop",
    "asyncio_thread_state.asyncio_running_task": "tstate.asyncio_running_task",
    "asyncio_thread_state.asyncio_tasks_head": "tstate.asyncio_tasks_head",
}


def asyncio_layout(version: tuple[int, int], debug_fields: dict[str, int] | None = None) -> dict[str, int]:
    """Layout keys for reading tasks: "task.*" from the traits, then the target's AsyncioDebug
    table (when given) over them, under the same names the thread-state fields have in the
    generated tables."""
    traits = ASYNCIO_TRAITS.get(version)
    layout = {f"task.{k}": v for k, v in traits.task.items()} if traits else {}
    for src, dst in ASYNCIO_DEBUG_FIELD_MAP.items():
        if debug_fields and src in debug_fields:
            layout[dst] = debug_fields[src]
    return layout
