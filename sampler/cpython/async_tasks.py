"""A target's asyncio tasks, read from outside: the pure-Python reference, CPython 3.11+.

From 3.14 every `_asyncio.Task` sits on a circular list (an `llist_node` inside the task) headed
in the thread state of the thread that made it, or in the interpreter state once that thread has
exited; each thread state also names its running loop and running task, and each task who awaits
it. Where those fields and the task's own ones are comes from the `.AsyncioDebug` table that
`_asyncio` carries in its ELF image (docs/async-plan.md). 3.11-3.13 keep none of that: the tasks,
running tasks and awaiters come from asyncio's Python-level tables (async_tables.py). On every
version a task's coroutine chain is followed through each coroutine's frame: one suspended in an
`await` keeps the awaitable on its value stack (versions.AsyncioTraits).

Nothing here is fast: this is the reference the native walk is to be held to, and the reader
`--async-aware` starts from. Earlier versions are refused with `AsyncUnavailableError`.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass

from sampler.cpython import debug_offsets
from sampler.cpython.async_tables import TaskFields, TaskTables, set_members
from sampler.cpython.code_objects import CodeCache
from sampler.cpython.runtime import Runtime
from sampler.cpython.thread_names import LookupState, RemoteObjects
from sampler.cpython.versions import ASYNCIO_TRAITS, AsyncioTraits, asyncio_layout
from sampler.errors import AsyncNotLoadedError, AsyncUnavailableError, ReadError
from sampler.model import Frame
from sampler.target.elf import ElfError, ElfFile
from sampler.target.maps import host_path, read_maps
from sampler.target.memory import I32, U64, RemoteMemory

MAX_TASKS = 1 << 16  # per list: a longer one is a list that does not end (a torn read)
MAX_THREADS = 4096  # thread states looked at
MAX_CHAIN = 256  # coroutines awaited one inside another within one task

# 3.11/3.12 use one frame state for a plain yield and an await: an await's YIELD_VALUE is followed
# by a RESUME whose oparg is 2 (yield from) or 3 (await). Its opcodes, quickened (3.11's
# RESUME_QUICK) and instrumented (3.12's INSTRUMENTED_RESUME, under sys.monitoring or a profiler)
# forms included, from each version's `opcode` module (tests/test_async_tasks.py checks them).
AWAIT_RESUME_OPCODES = {(3, 11): frozenset({151, 150}), (3, 12): frozenset({151, 240})}
AWAIT_RESUME_MIN_OPARG = 2
# gi_frame_state from which a coroutine has finished (COMPLETED, CLEARED), 3.11-3.13: its task
# is done, though asyncio's tables may still hold it while referenced.
FINISHED_STATE = 1

MAX_PAGES = 4096  # pages one reading keeps: 16 MiB, about 10,000 tasks with their coroutines
COROUTINE_SLOTS = 16  # value-stack slots read with a coroutine's head (more: one more read)

# Before 3.14 a task's awaiters are derived from every task (async_tables.py): `task`, called for
# each sample, reuses one derivation this long (a relation newer than that may be missed for as
# long; a task the derivation has not seen causes a new one at once).
RELATIONS_TTL_S = 0.05

u64 = U64.unpack_from
i32 = I32.unpack_from
i8 = struct.Struct("<b").unpack_from

@dataclass(frozen=True)
class TaskInfo:
    address: int
    name: str
    coro: int  # the coroutine object the task runs
    coro_frame: int  # that coroutine's frame (inside the coroutine object)
    # The task's coroutines and what each awaits in turn, outermost first.
    stack: tuple[Frame, ...]
    awaited_by: tuple[int, ...]  # addresses of the futures (usually tasks) awaiting this task
    # tstate.thread_id of the thread whose list holds it, 0: the interpreter's (3.14+); before
    # 3.14, of the thread running the task's loop, 0 when no thread runs it.
    thread_id: int


@dataclass(frozen=True)
class _Relations:
    """One derivation of every task's awaiters (before 3.14), good until `until` (monotonic)."""

    until: float
    fields: dict[int, TaskFields]  # the tasks it covers
    awaiters: dict[int, tuple[int, ...]]
    loops: dict[int, int]  # loop -> thread_id of the thread running it

    def stale(self) -> bool:
        return time.monotonic() >= self.until


def find_asyncio_debug(pid: int, memory: RemoteMemory, runtime: Runtime) -> dict[str, int] | None:
    """The target's AsyncioDebug table, read from its memory, or None when no mapped image has
    one (`_asyncio` not imported yet, or a version without the table)."""
    images: dict[str, int] = {}
    for m in read_maps(pid):
        name = os.path.basename(m.clean_path)
        if m.offset == 0 and (m.clean_path == runtime.binary or name.startswith("_asyncio.")):
            images.setdefault(m.clean_path, m.start)
    for path, start in images.items():
        try:
            elf = ElfFile(host_path(pid, path))
        except ElfError:
            continue
        try:
            section = elf.sections.get(debug_offsets.ASYNCIO_SECTION)
            if section is None:
                continue
            raw = memory.read(start - elf.first_load_base() + section.addr, section.size)
            return debug_offsets.parse_asyncio_debug_offsets(raw)
        finally:
            elf.close()
    return None


def _symbol(pid: int, runtime: Runtime, name: str) -> int:
    elf = ElfFile(host_path(pid, runtime.binary))
    try:
        rel = elf.symbol(name)
    finally:
        elf.close()
    return runtime.load_bias + rel if rel is not None else 0


class AsyncTaskReader:
    """Lists a 3.11+ target's tasks; `AsyncUnavailableError` from the constructor says why it cannot
    (`AsyncNotLoadedError`: not yet, asyncio is not loaded; 3.11-3.13 find its tables at each call).

    Each public method is one reading: what it returns was read in that call, and any torn or
    inconsistent data raises `ReadError`.
    """

    def __init__(self, pid: int, memory: RemoteMemory, runtime: Runtime) -> None:
        version = runtime.version_string
        traits = ASYNCIO_TRAITS.get(runtime.minor)
        if traits is None:
            raise AsyncUnavailableError(version, "heatline reads asyncio tasks from Python 3.11 on")
        self.objects = RemoteObjects(memory, runtime, MAX_PAGES)
        if not self.objects.supported:
            raise AsyncUnavailableError(version, f"no layout for its dicts ({self.objects.missing})")
        self.memory = memory
        self.runtime = runtime
        self.traits: AsyncioTraits = traits
        self.tables: TaskTables | None = None
        self._relations: _Relations | None = None  # before 3.14: the last derivation, for `task`
        if traits.current_task == "tstate.asyncio_running_task":
            debug = find_asyncio_debug(pid, memory, runtime)
            if debug is None:
                raise AsyncNotLoadedError(version, "no .AsyncioDebug table in its images (asyncio not imported yet)")
            self.L = {**runtime.layout, **asyncio_layout(runtime.minor, debug)}
        else:
            self.L = {**runtime.layout, **asyncio_layout(runtime.minor)}
            self.tables = TaskTables(self.objects, runtime, traits, self.L)
        self.resume_opcodes = AWAIT_RESUME_OPCODES.get(runtime.minor, frozenset())
        if traits.awaiting_state is None and not self.resume_opcodes:
            raise AsyncUnavailableError(version, "no rule for telling an await from a plain yield")
        self.codes = CodeCache(memory, runtime)
        self.coro_type = _symbol(pid, runtime, "PyCoro_Type")
        self.long_type = _symbol(pid, runtime, "PyLong_Type")
        if not self.coro_type:
            raise AsyncUnavailableError(version, f"no PyCoro_Type symbol in {runtime.binary}")
        self._read = self.objects.read
        self._u64 = self.objects.u64
        frame_end = self.L.get("frame.localsplus", self.L["frame.size"])
        self.coro_read = self.L["gen.gi_iframe"] + frame_end + 8 * COROUTINE_SLOTS

    # -- public ---------------------------------------------------------------------------------

    def running(self) -> dict[int, int]:
        """thread_id -> the task that thread's loop is running now (threads running none left out)."""
        with self.objects.call("inconsistent asyncio data"):
            return self._running(self._interpreter())

    def tasks(self) -> list[TaskInfo]:
        """Every task of the main interpreter (3.14+: each thread's list, then the interpreter's)."""
        with self.objects.call("inconsistent asyncio data"):
            interp = self._interpreter()
            if self.tables is None:
                found = self._listed(interp)
                return [self._task(address, thread_id) for address, thread_id in found]
            return self._tables_tasks(interp)

    def task(self, address: int, thread_id: int = 0) -> TaskInfo:
        """One task. Before 3.14 `thread_id` is ignored (the thread running its loop is), and its
        awaiters and that thread come from a derivation over every task (`_relations`) made at
        most RELATIONS_TTL_S ago: only this task and its coroutines are read on each call."""
        with self.objects.call("inconsistent asyncio data"):
            if self.tables is None:
                return self._task(address, thread_id)
            interp = self._interpreter()
            state = self.objects.lookup_state(interp)
            fields = self.tables.fields(state, address)
            if fields is None:
                raise ReadError(f"no live asyncio task at {address:#x}")
            relations = self._relations
            if relations is None or address not in relations.awaiters or relations.stale():
                relations = self._relations = self._derive(state, interp, (address,))
            return self._tables_info(address, fields, relations)

    # -- threads --------------------------------------------------------------------------------

    def _interpreter(self) -> int:
        return self._u64(self.runtime.runtime_addr + self.L["runtime.interpreters_head"])

    def _thread_states(self, interp: int) -> list[tuple[int, int]]:
        """(tstate, thread_id) of every thread of the interpreter."""
        L = self.L
        out = []
        tstate = self._u64(interp + L["interp.threads_head"])
        while tstate and len(out) < MAX_THREADS:
            out.append((tstate, self._u64(tstate + L["tstate.thread_id"])))
            tstate = self._u64(tstate + L["tstate.next"])
        return out

    def _running(self, interp: int) -> dict[int, int]:
        out = {}
        if self.tables is None:
            for tstate, thread_id in self._thread_states(interp):
                task = self._u64(tstate + self.L["tstate.asyncio_running_task"])
                if task:
                    out[thread_id] = task
            return out
        state = self.objects.lookup_state(interp)
        loops = self._loop_threads(interp)
        # Last: a task switch after this reading and before the caller's walk of the thread is
        # a sample lost (async_stacks), so nothing else is read in between.
        current = self.tables.current_tasks(state, interp)
        for loop, thread_id in loops.items():
            if loop in current:
                out[thread_id] = current[loop]
        return out

    def _loop_threads(self, interp: int) -> dict[int, int]:
        """{loop: thread_id of the thread running it} (before 3.14)."""
        assert self.tables is not None
        state = self.objects.lookup_state(interp)
        loops = {}
        for tstate, thread_id in self._thread_states(interp):
            loop = self.tables.running_loop(state, tstate)
            if loop:
                loops[loop] = thread_id
        return loops

    # -- 3.14+: the task lists ------------------------------------------------------------------

    def _list(self, head: int) -> list[int]:
        """Task addresses on the circular list whose head node is at `head`."""
        tasks = []
        node = self._u64(head)
        while node != head:
            if not node or len(tasks) >= MAX_TASKS:
                raise ReadError(f"the task list at {head:#x} does not end: it changed while read")
            tasks.append(node - self.L["task.node"])
            node = self._u64(node)
        return tasks

    def _listed(self, interp: int) -> list[tuple[int, int]]:
        found = []
        for tstate, thread_id in self._thread_states(interp):
            found += [(t, thread_id) for t in self._list(tstate + self.L["tstate.asyncio_tasks_head"])]
        found += [(t, 0) for t in self._list(interp + self.L["interp.asyncio_tasks_head"])]
        return found

    def _task(self, address: int, thread_id: int) -> TaskInfo:
        L = self.L
        buf = self._read(address, L["task.size"])
        coro = u64(buf, L["task.coro"])[0]
        name = self._name(u64(buf, L["task.name"])[0])
        awaiter = u64(buf, L["task.awaited_by"])[0]
        if not awaiter:
            awaited_by: tuple[int, ...] = ()
        elif buf[L["task.awaited_by_is_set"]]:
            awaited_by = tuple(set_members(self._read, L, awaiter))
        else:
            awaited_by = (awaiter,)
        stack = tuple(frame for _addr, frame in self._coroutine_chain(coro))
        return TaskInfo(address, name, coro, self._frame_of(coro), stack, awaited_by, thread_id)

    # -- 3.11-3.13: asyncio's tables ------------------------------------------------------------

    def _tables_tasks(self, interp: int) -> list[TaskInfo]:
        """The live tasks in asyncio's tables, awaiters derived (afresh: this also renews what
        `task` reuses)."""
        relations = self._relations = self._derive(self.objects.lookup_state(interp), interp)
        return [self._tables_info(address, fields, relations) for address, fields in relations.fields.items()]

    def _derive(self, state: LookupState, interp: int, extra: tuple[int, ...] = ()) -> _Relations:
        """Every live task's fields (and those of `extra`, even done), who awaits each and the
        thread running each loop: no coroutine chain is read."""
        tables = self.tables
        assert tables is not None
        fields = {}
        for address in dict.fromkeys([*tables.task_objects(state, interp), *extra]):
            found = tables.fields(state, address)
            # A done task (its coroutine returned) is left out where it is listed; when asked for
            # it only costs a look (it waits on nothing and owns no running group).
            if found is not None and (address in extra or not self._finished(found.coro)):
                fields[address] = found
        awaiters = tables.awaiters(state, fields, fields)
        return _Relations(time.monotonic() + RELATIONS_TTL_S, fields,
                          {a: tuple(found) for a, found in awaiters.items()}, self._loop_threads(interp))

    def _tables_info(self, address: int, task: TaskFields, relations: _Relations) -> TaskInfo:
        stack = tuple(frame for _a, frame in self._coroutine_chain(task.coro))
        return TaskInfo(address, self._name(task.name), task.coro, self._frame_of(task.coro), stack,
                        relations.awaiters.get(address, ()), relations.loops.get(task.loop, 0))

    def _finished(self, coro: int) -> bool:
        """Whether a coroutine has returned (its task is done); other awaitables are taken as live."""
        if not coro or self._u64(coro + self.L["object.ob_type"]) != self.coro_type:
            return False
        return self._frame_state(coro) >= FINISHED_STATE

    # -- one task's coroutines ------------------------------------------------------------------

    def _name(self, obj: int) -> str:
        """A task's name: a str, or (3.14+, names not asked for) the int N of "Task-N"."""
        if self._u64(obj + self.L["object.ob_type"]) == self.long_type:
            number = self.objects.read_int(obj)
            if number is None:
                raise ReadError(f"a task number at {obj:#x} is not a small positive int")
            return f"Task-{number}"
        return self.objects.strings.read_str(obj)

    def _frame_of(self, coro: int) -> int:
        return coro + self.L["gen.gi_iframe"] if coro else 0

    def _frame_state(self, coro: int) -> int:
        return i8(self._read(coro + self.L["gen.gi_frame_state"], 1), 0)[0]

    def _coroutine_chain(self, coro: int) -> list[tuple[int, Frame]]:
        """(frame address, frame) of the task's coroutine and those it awaits, outermost first."""
        L = self.L
        chain: list[tuple[int, Frame]] = []
        tag_mask = ~self.runtime.traits.code_tag_mask
        f = L["gen.gi_iframe"]
        while coro and len(chain) < MAX_CHAIN:
            buf = self._coroutine_bytes(coro)
            if buf is None:
                break  # a future, a generator-based awaitable: the chain of coroutines ends here
            info = self.codes.get(u64(buf, f + L["frame.code"])[0] & tag_mask)
            ip = u64(buf, f + L["frame.instr_ptr"])[0]
            chain.append((coro + f, info.frame_at(max(ip - info.code_start, 0))))
            if not self._awaiting(i8(buf, L["gen.gi_frame_state"])[0], ip):
                break
            coro = self._awaitable(coro, buf)
        return chain

    def _coroutine_bytes(self, obj: int) -> bytes | None:
        """The head of a coroutine object (its frame and first stack slots) in one read; None
        when `obj` is no coroutine."""
        try:
            buf = self._read(obj, self.coro_read)
        except ReadError:  # near the end of a mapping: is it a coroutine at all?
            if self._u64(obj + self.L["object.ob_type"]) == self.coro_type:
                raise
            return None
        return buf if u64(buf, self.L["object.ob_type"])[0] == self.coro_type else None

    def _awaiting(self, state: int, ip: int) -> bool:
        """Whether a coroutine is suspended in an await (or yield from), not a plain yield."""
        if self.traits.awaiting_state is not None:
            return state == self.traits.awaiting_state
        if state not in self.traits.suspended_states:
            return False
        opcode, oparg = self._read(ip + 2, 2)  # 3.11/3.12: ip is the YIELD_VALUE just run
        return opcode in self.resume_opcodes and oparg >= AWAIT_RESUME_MIN_OPARG

    def _awaitable(self, coro: int, buf: bytes) -> int:
        """The object a coroutine suspended in an await awaits: on top of its frame's value stack
        (`buf` holds the coroutine's head, usually that slot too)."""
        L = self.L
        f = L["gen.gi_iframe"]
        depth = self.traits.awaitable_depth
        if "frame.stackpointer" in L:  # 3.14+: a pointer one past the top; tag bits cleared
            slot = u64(buf, f + L["frame.stackpointer"])[0] - 8 * depth
            mask = ~3
        else:  # an index into localsplus
            top = i32(buf, f + L["frame.stacktop"])[0]
            if top < depth:
                raise ReadError(f"a suspended coroutine at {coro:#x} has an empty value stack")
            slot = coro + f + L["frame.localsplus"] + 8 * (top - depth)
            mask = ~0
        inside = slot - coro
        value = u64(buf, inside)[0] if 0 <= inside <= len(buf) - 8 else self._u64(slot)
        return value & mask
