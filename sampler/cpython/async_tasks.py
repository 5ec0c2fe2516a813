"""A target's asyncio tasks, read from outside: the pure-Python reference for CPython 3.14+.

From 3.14 every `_asyncio.Task` sits on a circular list (an `llist_node` inside the task) headed
in the thread state of the thread that made it, or in the interpreter state once that thread has
exited; each thread state also names its running loop and running task. Where those fields and
the task's own ones are comes from the `.AsyncioDebug` table that `_asyncio` carries in its ELF
image (docs/async-plan.md). A task's coroutine chain is followed through each coroutine's frame:
one suspended in an `await` keeps the awaitable on its value stack (versions.AsyncioTraits).

Nothing here is fast: this is the reference the native walk is to be held to, and the reader
`--async-aware` starts from. Earlier versions have no task list; see docs/async-plan.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sampler.cpython import debug_offsets
from sampler.cpython.code_objects import CodeCache, StringReader
from sampler.cpython.runtime import Runtime
from sampler.cpython.versions import ASYNCIO_TRAITS, AsyncioTraits, asyncio_layout
from sampler.errors import ReadError
from sampler.model import Frame
from sampler.target.elf import ElfError, ElfFile
from sampler.target.maps import host_path, read_maps
from sampler.target.memory import U64, RemoteMemory

MAX_TASKS = 1 << 16  # per list: a longer one is a list that does not end (a torn read)
MAX_AWAITERS = 1 << 12  # entries of one task's awaited-by set table
MAX_CHAIN = 256  # coroutines awaited one inside another within one task

DISCARDED_HASH = (1 << 64) - 1  # -1 as an unsigned word

u64 = U64.unpack_from


@dataclass(frozen=True)
class TaskInfo:
    address: int
    name: str
    coro: int  # the coroutine object the task runs
    coro_frame: int  # that coroutine's frame (inside the coroutine object)
    # The task's coroutines and what each awaits in turn, outermost first.
    stack: tuple[Frame, ...]
    awaited_by: tuple[int, ...]  # addresses of the futures (usually tasks) awaiting this task
    thread_id: int  # tstate.thread_id of the thread whose list holds it; 0: the interpreter's


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
    """Lists a 3.14+ target's tasks; `ValueError` from the constructor says why it cannot."""

    def __init__(self, pid: int, memory: RemoteMemory, runtime: Runtime) -> None:
        traits = ASYNCIO_TRAITS.get(runtime.minor)
        debug = find_asyncio_debug(pid, memory, runtime)
        if traits is None or traits.current_task != "tstate.asyncio_running_task" or debug is None:
            raise ValueError(f"no asyncio task list to read in Python {runtime.version_string}")
        self.memory = memory
        self.runtime = runtime
        self.traits: AsyncioTraits = traits
        self.L = {**runtime.layout, **asyncio_layout(runtime.minor, debug)}
        self.strings = StringReader(memory, runtime)
        self.codes = CodeCache(memory, runtime)
        self.coro_type = _symbol(pid, runtime, "PyCoro_Type")
        self.long_type = _symbol(pid, runtime, "PyLong_Type")

    # -- lists ----------------------------------------------------------------------------------

    def _interpreter(self) -> int:
        return self.memory.read_u64(self.runtime.runtime_addr + self.L["runtime.interpreters_head"])

    def _thread_states(self, interp: int) -> list[tuple[int, int]]:
        """(tstate, thread_id) of every thread of the interpreter."""
        L = self.L
        out = []
        tstate = self.memory.read_u64(interp + L["interp.threads_head"])
        while tstate and len(out) < MAX_TASKS:
            out.append((tstate, self.memory.read_u64(tstate + L["tstate.thread_id"])))
            tstate = self.memory.read_u64(tstate + L["tstate.next"])
        return out

    def _list(self, head: int) -> list[int]:
        """Task addresses on the circular list whose head node is at `head`."""
        tasks = []
        node = self.memory.read_u64(head)
        while node != head:
            if not node or len(tasks) >= MAX_TASKS:
                raise ReadError(f"the task list at {head:#x} does not end: it changed while read")
            tasks.append(node - self.L["task.node"])
            node = self.memory.read_u64(node)
        return tasks

    def running(self) -> dict[int, int]:
        """thread_id -> the task that thread's loop is running now (threads running none left out)."""
        out = {}
        for tstate, thread_id in self._thread_states(self._interpreter()):
            task = self.memory.read_u64(tstate + self.L["tstate.asyncio_running_task"])
            if task:
                out[thread_id] = task
        return out

    def tasks(self) -> list[TaskInfo]:
        """Every task of the main interpreter: each thread's, then the interpreter's own list."""
        interp = self._interpreter()
        found = []
        for tstate, thread_id in self._thread_states(interp):
            found += [(t, thread_id) for t in self._list(tstate + self.L["tstate.asyncio_tasks_head"])]
        found += [(t, 0) for t in self._list(interp + self.L["interp.asyncio_tasks_head"])]
        return [self.task(address, thread_id) for address, thread_id in found]

    # -- one task -------------------------------------------------------------------------------

    def task(self, address: int, thread_id: int = 0) -> TaskInfo:
        L = self.L
        buf = self.memory.read(address, L["task.size"])
        coro = u64(buf, L["task.coro"])[0]
        name = self._name(u64(buf, L["task.name"])[0])
        awaiter = u64(buf, L["task.awaited_by"])[0]
        if not awaiter:
            awaited_by: tuple[int, ...] = ()
        elif buf[L["task.awaited_by_is_set"]]:
            awaited_by = self._set_members(awaiter)
        else:
            awaited_by = (awaiter,)
        frame = coro + L["gen.gi_iframe"] if coro else 0
        return TaskInfo(address, name, coro, frame, self._coroutine_stack(coro), awaited_by, thread_id)

    def _name(self, obj: int) -> str:
        """A task's name: a str, or (3.14+, names not asked for) the int N of "Task-N"."""
        if self.memory.read_u64(obj + self.L["object.ob_type"]) == self.long_type:
            return f"Task-{self._small_int(obj)}"
        return self.strings.read_str(obj)

    def _small_int(self, obj: int) -> int:
        L = self.L
        tag = self.memory.read_u64(obj + L["long.lv_tag"])
        ndigits = tag >> 3
        if tag & 3 == 1:
            return 0
        if tag & 3 or ndigits > 3:
            raise ReadError(f"a task number at {obj:#x} is not a small positive int")
        raw = self.memory.read(obj + L["long.ob_digit"], 4 * ndigits)
        return sum(int.from_bytes(raw[4 * i : 4 * i + 4], "little") << (30 * i) for i in range(ndigits))

    def _set_members(self, obj: int) -> tuple[int, ...]:
        L = self.L
        mask = self.memory.read_u64(obj + L["set.mask"])
        if mask >= MAX_AWAITERS:
            raise ReadError(f"an awaited-by set at {obj:#x} has an implausible size {mask + 1}")
        table = self.memory.read_u64(obj + L["set.table"])
        size = L["setentry.size"]
        raw = self.memory.read(table, size * (mask + 1))
        entries = ((u64(raw, i * size + L["setentry.key"])[0], u64(raw, i * size + L["setentry.hash"])[0])
                   for i in range(mask + 1))
        # A discarded entry keeps a shared dummy key and the hash -1: it is no future.
        return tuple(key for key, hash_ in entries if key and hash_ != DISCARDED_HASH)

    def _coroutine_stack(self, coro: int) -> tuple[Frame, ...]:
        """The task's coroutine and those it awaits, one frame each, outermost first."""
        L = self.L
        traits = self.traits
        frames: list[Frame] = []
        tag_mask = ~self.runtime.traits.code_tag_mask
        while coro and len(frames) < MAX_CHAIN:
            if self.memory.read_u64(coro + L["object.ob_type"]) != self.coro_type:
                break  # a future, a generator-based awaitable: the chain of coroutines ends here
            state = int.from_bytes(self.memory.read(coro + L["gen.gi_frame_state"], 1), "little", signed=True)
            frame = coro + L["gen.gi_iframe"]
            code = self.memory.read_u64(frame + L["frame.code"]) & tag_mask
            info = self.codes.get(code)
            offset = self.memory.read_u64(frame + L["frame.instr_ptr"]) - info.code_start
            frames.append(info.frame_at(max(offset, 0)))
            if state != traits.awaiting_state:
                break
            top = self.memory.read_u64(frame + L["frame.stackpointer"])
            coro = self.memory.read_u64(top - 8 * traits.awaitable_depth) & ~3
        return tuple(frames)
