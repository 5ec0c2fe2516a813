"""A target's asyncio tasks, read from outside: the pure-Python reference, CPython 3.11+.

From 3.14 every `_asyncio.Task` sits on a circular list (an `llist_node` inside the task) headed
in the thread state of the thread that made it, or in the interpreter state once that thread has
exited; each thread state also names its running loop and running task, and each task who awaits
it. Where those fields and the task's own ones are comes from the `.AsyncioDebug` table that
`_asyncio` carries in its ELF image (docs/async-plan.md). 3.11-3.13 keep none of that: the tasks,
running tasks and awaiters come from asyncio's Python-level tables (async_tables.py), as they
do on 3.14+ for pure-Python asyncio (`_asyncio` blocked or not built: its tasks are on no list
and no thread state names its loop or task; each running loop names its thread). On every
version a task's coroutine chain is followed through each coroutine's frame: one suspended in an
`await` keeps the awaitable on its value stack (versions.AsyncioTraits).

Cost: a reading of every task is a few reads per task through one page cache. What cannot have
changed is not worked out again: a coroutine whose head (frame, state, top of its value stack)
holds the same bytes as last time is at the same line awaiting the same object, and a name whose
bytes are the same is the same name; both are remembered across readings, bounded. No reading
looks at more than MAX_TASKS tasks (see there). Earlier versions are refused with
`AsyncUnavailableError`.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, field

from sampler.cpython import debug_offsets
from sampler.cpython.async_tables import TaskFields, TaskTables, pure_python_asyncio, set_members
from sampler.cpython.code_objects import CodeCache
from sampler.cpython.opcodes import OpcodeTable
from sampler.cpython.runtime import Runtime
from sampler.cpython.thread_names import LookupState, RemoteObjects
from sampler.cpython.versions import ASYNCIO_TRAITS, AsyncioTraits, asyncio_layout
from sampler.errors import AsyncNotLoadedError, AsyncUnavailableError, ReadError
from sampler.model import Frame
from sampler.target.elf import ElfError, ElfFile
from sampler.target.maps import host_path, read_maps
from sampler.target.memory import I32, U64, RemoteMemory

# The most tasks one reading looks at, so that a huge or corrupt task list cannot make one sample
# unbounded (some 0.4 s at this count). Past it the reading stops and sets `truncated`: `tasks`
# returns the first MAX_TASKS (3.14+: in list order, each thread's list then the interpreter's;
# before, in the order of asyncio's task sets) and the rest are missing from that sample; before
# 3.14 an awaiter among the rest is not found. A list that comes back to a node already seen
# (torn while read) is a `ReadError`, as a list that breaks off is.
MAX_TASKS = 1 << 15
# The most coroutines one reading follows, all tasks together (eight a task at MAX_TASKS): past
# it the reading is a `ReadError` (chains that deep are taken for garbage, as a coroutine that
# awaits itself is), so that the chains cannot make a reading unbounded either.
MAX_COROUTINES = 8 * MAX_TASKS
MAX_THREADS = 4096  # thread states looked at
MAX_CHAIN = 256  # coroutines awaited one inside another within one task
AWAIT_RESUME_MIN_OPARG = 2  # 3.11/3.12: an await's RESUME has oparg 2 (yield from) or 3 (await)

MAX_PAGES = 4096  # pages one reading keeps: 16 MiB, about 10,000 tasks with their coroutines
COROUTINE_SLOTS = 16  # value-stack slots read with a coroutine's head (more: one more read)
# Coroutines, and names, remembered across readings (then all forgotten at once): a coroutine's
# head is some 300 bytes, so at most about 30 MB (15 MB at 10,000 tasks three coroutines deep).
MAX_REMEMBERED = 1 << 16
NAME_PEEK_CHARS = 16  # a name this short is read with its header in one read, and remembered

# Before 3.14 a task's awaiters are derived from every task (async_tables.py): `task`, called for
# each sample, reuses one derivation for RELATIONS_TTL_S, or RELATIONS_COST_FACTOR times the CPU
# time it took if that is longer, so that deriving takes at most about 1/20 of the time whatever
# the task count (a relation newer than that may be missed for as long). A task the derivation
# has not seen causes a new one at once while derivations cost less than RENEW_AT_ONCE_S (a few
# hundred tasks); past that, not sooner than the factor allows (a program starting new tasks all
# the time would otherwise pay a derivation per sample): until then its awaiters are its
# TaskGroup's owner alone.
RELATIONS_TTL_S = 0.05
RELATIONS_COST_FACTOR = 20
RENEW_AT_ONCE_S = 0.002

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


@dataclass
class _Relations:
    """One derivation of every task's awaiters (before 3.14)."""

    made: float  # monotonic time it was made
    cost: float  # CPU seconds it took
    fields: dict[int, TaskFields]  # the tasks it covers
    waiting: dict[int, list[int]]  # task -> the tasks waiting on it (fut_waiter, gathers)
    loops: dict[int, int]  # loop -> thread_id of the thread running it
    owners: dict[int, int] = field(default_factory=dict)  # task -> its TaskGroup's owner, as asked

    def stale(self, now: float) -> bool:
        return now >= self.made + max(RELATIONS_TTL_S, RELATIONS_COST_FACTOR * self.cost)

    def renewable(self, now: float) -> bool:
        """Whether a new derivation may be made for a task this one has not seen."""
        return self.cost < RENEW_AT_ONCE_S or now >= self.made + RELATIONS_COST_FACTOR * self.cost

    def awaiters(self, tables: TaskTables, state: LookupState, address: int, fields: TaskFields) -> tuple[int, ...]:
        """The tasks awaiting `address`: those waiting on it, then its TaskGroup's owner."""
        owner = self.owners.get(address)
        if owner is None:
            owner = self.owners[address] = tables.group_owner(state, fields)
        found = self.waiting.get(address, [])
        if owner in self.fields and owner not in found:
            return (*found, owner)
        return tuple(found)


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
    inconsistent data raises `ReadError`. `truncated` says whether the last reading of the task
    list stopped at MAX_TASKS.
    """

    def __init__(self, pid: int, memory: RemoteMemory, runtime: Runtime, codes: CodeCache | None = None) -> None:
        """`codes`: the sampler's code cache, to share its code objects and its epochs (a cache
        of the reader's own never re-checks an entry: a freed code object's address reused
        would keep the old name)."""
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
        self.truncated = False
        self._relations: _Relations | None = None  # before 3.14: the last derivation, for `task`
        self._read = self.objects.read
        self._u64 = self.objects.u64
        if traits.current_task == "tstate.asyncio_running_task" and not self._pure_python(version):
            debug = find_asyncio_debug(pid, memory, runtime)
            if debug is None:
                raise AsyncNotLoadedError(version, "no .AsyncioDebug table in its images (asyncio not imported yet)")
            self.L = {**runtime.layout, **asyncio_layout(runtime.minor, debug)}
        else:
            # Before 3.14, and from 3.14 for pure-Python asyncio (its tasks are on no C list and
            # no thread state names its running task): asyncio's own tables. Without the
            # thread-state field, callers ask `running` (AsyncStacks.running_task_offset).
            self.L = {k: v for k, v in {**runtime.layout, **asyncio_layout(runtime.minor)}.items()
                      if k != "tstate.asyncio_running_task"}
            self.tables = TaskTables(self.objects, runtime, traits, self.L)
        if traits.awaiting_state is None and not traits.await_resume_opcodes:
            raise AsyncUnavailableError(version, "no rule for telling an await from a plain yield")
        self.codes = codes or CodeCache(memory, runtime)
        # --opcodes: the target's table; a suspended coroutine's frame names its instruction too
        self.opcodes: OpcodeTable | None = None
        self.coro_type = _symbol(pid, runtime, "PyCoro_Type")
        self.long_type = _symbol(pid, runtime, "PyLong_Type")
        if not self.coro_type:
            raise AsyncUnavailableError(version, f"no PyCoro_Type symbol in {runtime.binary}")
        frame_end = self.L.get("frame.localsplus", self.L["frame.size"])
        self.coro_read = self.L["gen.gi_iframe"] + frame_end + 8 * COROUTINE_SLOTS
        self.code_mask = ~runtime.traits.code_tag_mask  # a _PyStackRef's tag bits off (3.14+)
        # A name's header and its first NAME_PEEK_CHARS characters of any width.
        self.name_read = self.L["unicode.compact_size"] + 4 * NAME_PEEK_CHARS
        # Across readings (see the module's docstring), keyed by object address: a coroutine's
        # head bytes -> [frame, frame state, the object it awaits or 0, False once that object
        # was found to be no coroutine]; a name's bytes (no reference count) -> the name.
        self._coroutines: dict[int, tuple[bytes, list]] = {}
        self._coroutines_left = MAX_COROUTINES  # in this reading
        self._names: dict[int, tuple[bytes, str]] = {}

    def _pure_python(self, version: str) -> bool:
        """3.14+, once when the reader is made: whether the target runs asyncio's pure-Python
        tasks (`async_tables.pure_python_asyncio`); `AsyncNotLoadedError` until it has imported
        asyncio.tasks (no task can run before), or while its modules read torn."""
        try:
            with self.objects.call("inconsistent module table"):
                interp = self._interpreter()
                pure = pure_python_asyncio(self.objects, self.objects.lookup_state(interp), interp)
        except ReadError as exc:
            raise AsyncNotLoadedError(version, f"its modules could not be read yet ({exc})") from None
        if pure is None:
            raise AsyncNotLoadedError(version, "asyncio.tasks is not imported yet")
        return pure

    # -- public ---------------------------------------------------------------------------------

    def running(self) -> dict[int, int]:
        """thread_id -> the task that thread's loop is running now (threads running none left
        out). `AsyncUnavailableError` for pure-Python asyncio on a loop that does not say which
        thread runs it (uvloop's): its running tasks cannot be placed."""
        with self.objects.call("inconsistent asyncio data"):
            running, unplaced = self._running(self._interpreter())
        if unplaced:
            raise AsyncUnavailableError(self.runtime.version_string, f"pure-Python asyncio (no _asyncio) on a loop of "
                                        f"type {unplaced}, which does not say which thread runs it (uvloop's do not)")
        return running

    def tasks(self) -> list[TaskInfo]:
        """Every task of the main interpreter (3.14+: each thread's list, then the interpreter's),
        at most MAX_TASKS."""
        with self.objects.call("inconsistent asyncio data"):
            self._coroutines_left = MAX_COROUTINES
            interp = self._interpreter()
            if self.tables is None:
                return [self._task(address, thread_id, buf) for address, thread_id, buf in self._listed(interp)]
            return self._tables_tasks(interp)

    def task(self, address: int, thread_id: int = 0) -> TaskInfo:
        """One task. Before 3.14 `thread_id` is ignored (the thread running its loop is), and its
        awaiters and that thread come from a derivation over every task (`_Relations`), renewed as
        RELATIONS_TTL_S and RELATIONS_COST_FACTOR say: only this task and its coroutines are read
        on each call."""
        with self.objects.call("inconsistent asyncio data"):
            self._coroutines_left = MAX_COROUTINES
            if self.tables is None:
                return self._task(address, thread_id, self._read(address, self.L["task.size"]))
            interp = self._interpreter()
            state = self.objects.lookup_state(interp)
            fields = self.tables.fields(state, address)
            if fields is None:
                raise ReadError(f"no live asyncio task at {address:#x}")
            relations = self._relations
            now = time.monotonic()
            if (relations is None or relations.stale(now)
                    or (address not in relations.fields and relations.renewable(now))):
                relations = self._relations = self._derive(state, interp, address)
            info, _finished = self._tables_info(address, fields, relations, state)
            return info

    # -- threads --------------------------------------------------------------------------------

    def _interpreter(self) -> int:
        return self._u64(self.runtime.runtime_addr + self.runtime.layout["runtime.interpreters_head"])

    def _thread_states(self, interp: int) -> list[tuple[int, int]]:
        """(tstate, thread_id) of every thread of the interpreter."""
        L = self.L
        out = []
        tstate = self._u64(interp + L["interp.threads_head"])
        while tstate and len(out) < MAX_THREADS:
            out.append((tstate, self._u64(tstate + L["tstate.thread_id"])))
            tstate = self._u64(tstate + L["tstate.next"])
        return out

    def _running(self, interp: int) -> tuple[dict[int, int], str]:
        """`running`'s answer, and the type name of a running loop whose thread cannot be found
        under pure-Python asyncio ("" when none)."""
        out = {}
        if self.tables is None:
            for tstate, thread_id in self._thread_states(interp):
                task = self._u64(tstate + self.L["tstate.asyncio_running_task"])
                if task:
                    out[thread_id] = task
            return out, ""
        state = self.objects.lookup_state(interp)
        loops = self._loop_threads(interp)
        # Last: a task switch after this reading and before the caller's walk of the thread is
        # a sample lost (async_stacks), so nothing else is read in between but, for a loop no
        # thread state names (pure-Python asyncio), the loop's own word for its thread.
        current = self.tables.current_tasks(state, interp)
        unplaced = ""
        for loop, task in current.items():
            thread_id = loops.get(loop) or self.tables.loop_thread(state, loop)
            if thread_id:
                out[thread_id] = task
            # With `_asyncio` such a loop is one started since `loops` was read: the next reading
            # finds it. Pure-Python asyncio's never will.
            elif thread_id is None and pure_python_asyncio(self.objects, state, interp):
                unplaced = self.tables.type_name(loop)
        return out, unplaced

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

    def _list(self, head: int, room: int, seen: set[int]) -> list[tuple[int, bytes]]:
        """(address, bytes) of the tasks on the circular list whose head node is at `head`: the
        first `room` of them (`truncated` is set when there are more). The list node is inside
        the task, so each task is read whole as the list is followed."""
        L = self.L
        at, size = L["task.node"], L["task.size"]
        tasks = []
        node = self._u64(head)
        while node != head:
            if not node or node in seen:
                raise ReadError(f"the task list at {head:#x} does not end: it changed while read")
            if len(tasks) >= room:
                self.truncated = True
                break
            seen.add(node)
            buf = self._read(node - at, size)
            tasks.append((node - at, buf))
            node = u64(buf, at)[0]
        return tasks

    def _listed(self, interp: int) -> list[tuple[int, int, bytes]]:
        """(address, thread_id, bytes) of every task, at most MAX_TASKS."""
        self.truncated = False
        found: list[tuple[int, int, bytes]] = []
        seen: set[int] = set()
        heads = [(tstate + self.L["tstate.asyncio_tasks_head"], thread_id)
                 for tstate, thread_id in self._thread_states(interp)]
        heads.append((interp + self.L["interp.asyncio_tasks_head"], 0))
        for head, thread_id in heads:
            found += [(t, thread_id, buf) for t, buf in self._list(head, MAX_TASKS - len(found), seen)]
        return found

    def _task(self, address: int, thread_id: int, buf: bytes) -> TaskInfo:
        """A 3.14+ task from its bytes."""
        L = self.L
        coro = u64(buf, L["task.coro"])[0]
        name = self._name(u64(buf, L["task.name"])[0])
        awaiter = u64(buf, L["task.awaited_by"])[0]
        if not awaiter:
            awaited_by: tuple[int, ...] = ()
        elif buf[L["task.awaited_by_is_set"]]:
            awaited_by = tuple(set_members(self._read, L, awaiter))
        else:
            awaited_by = (awaiter,)
        chain, _state = self._coroutine_chain(coro)
        return TaskInfo(address, name, coro, self._frame_of(coro), chain, awaited_by, thread_id)

    # -- 3.11-3.13: asyncio's tables ------------------------------------------------------------

    def _tables_tasks(self, interp: int) -> list[TaskInfo]:
        """The live tasks in asyncio's tables, awaiters derived (afresh: this also renews what
        `task` reuses); done ones (their coroutine returned) are left out."""
        state = self.objects.lookup_state(interp)
        relations = self._relations = self._derive(state, interp)
        out = []
        for address, fields in relations.fields.items():
            info, finished = self._tables_info(address, fields, relations, state)
            if not finished:
                out.append(info)
        return out

    def _derive(self, state: LookupState, interp: int, extra: int = 0) -> _Relations:
        """Every listed task's fields (and those of `extra`), who waits on each and the thread
        running each loop: no coroutine chain is read. Done tasks are kept: they wait on nothing
        (their fut_waiter is cleared), so they add no relation."""
        tables = self.tables
        assert tables is not None
        started = time.thread_time()
        listed = tables.task_objects(state, interp, MAX_TASKS)
        self.truncated = len(listed) >= MAX_TASKS
        fields = {}
        for address in [*listed, extra] if extra and extra not in listed else listed:
            found = tables.fields(state, address)
            if found is not None:
                fields[address] = found
        waiting = tables.waiting(state, fields)
        loops = self._loop_threads(interp)
        for loop in {f.loop for f in fields.values()} - loops.keys():
            thread_id = tables.loop_thread(state, loop)  # pure-Python asyncio: see `_running`
            if thread_id:
                loops[loop] = thread_id  # (uvloop's loops there: their tasks are no thread's)
        return _Relations(time.monotonic(), time.thread_time() - started, fields, waiting, loops)

    def _tables_info(self, address: int, task: TaskFields, relations: _Relations,
                     state: LookupState) -> tuple[TaskInfo, bool]:
        """The task, and whether it is done (its coroutine has returned)."""
        assert self.tables is not None
        chain, frame_state = self._coroutine_chain(task.coro)
        done_from = self.traits.finished_state
        finished = frame_state is not None and done_from is not None and frame_state >= done_from
        info = TaskInfo(address, self._name(task.name), task.coro, self._frame_of(task.coro), chain,
                        relations.awaiters(self.tables, state, address, task), relations.loops.get(task.loop, 0))
        return info, finished

    # -- one task's coroutines ------------------------------------------------------------------

    def _name(self, obj: int) -> str:
        """A task's name: a str, or (3.14+, names not asked for) the int N of "Task-N"; read with
        its header in one read and remembered while its bytes stay the same."""
        try:
            raw: bytes | None = self._read(obj, self.name_read)
        except ReadError:  # near the end of a mapping: read as much as it takes
            raw = None
        if raw is not None:
            known = self._names.get(obj)
            if known is not None and known[0] == raw[8:]:
                return known[1]
        if self._u64(obj + self.L["object.ob_type"]) == self.long_type:
            number = self.objects.read_int(obj)  # its digits are within `raw` (3 at most)
            if number is None:
                raise ReadError(f"a task number at {obj:#x} is not a small positive int")
            name = f"Task-{number}"
        else:
            name = self.objects.strings.read_str(obj)
            if len(name) > NAME_PEEK_CHARS:
                return name  # not all of it is in `raw`
        if raw is not None:
            if len(self._names) >= MAX_REMEMBERED:
                self._names.clear()
            self._names[obj] = (raw[8:], name)
        return name

    def _frame_of(self, coro: int) -> int:
        return coro + self.L["gen.gi_iframe"] if coro else 0

    def _coroutine_chain(self, coro: int) -> tuple[tuple[Frame, ...], int | None]:
        """The frames of the task's coroutine and those it awaits, outermost first, and the
        first one's frame state (None: the task's coroutine is no coroutine)."""
        frames: list[Frame] = []
        first_state = None
        step: list | None = None  # what is remembered of the coroutine before
        while coro and len(frames) < MAX_CHAIN:
            if step is not None and step[3] is False:
                break  # an awaitable found to be no coroutine, awaited from unchanged bytes
            buf = self._coroutine_bytes(coro)
            if buf is None:  # a future, a generator-based awaitable: the chain ends here
                if step is not None:
                    step[3] = False
                break
            if not u64(buf, self.L["gen.gi_iframe"] + self.L["frame.code"])[0] & self.code_mask:
                # It has returned and its frame is cleared (3.15 drops the code then), typically
                # since the coroutine awaiting it was read: that one resumes next, at its await.
                if first_state is None:
                    first_state = i8(buf, self.L["gen.gi_frame_state"])[0]
                break
            known = self._coroutines.get(coro)
            # Its reference count (the first word) aside, the same bytes: usually all of them.
            if known is not None and (known[0] == buf or known[0][8:] == buf[8:]):
                step = known[1]
            else:
                step, whole = self._coroutine_step(coro, buf)
                if whole:
                    if len(self._coroutines) >= MAX_REMEMBERED:
                        self._coroutines.clear()
                    self._coroutines[coro] = (buf, step)
            frame, frame_state, awaited = step[0], step[1], step[2]
            if first_state is None:
                first_state = frame_state
            frames.append(frame)
            self._coroutines_left -= 1
            if self._coroutines_left < 0:
                raise ReadError(f"more than {MAX_COROUTINES} coroutines in one reading of the tasks: taken for garbage")
            if awaited == coro:
                raise ReadError(f"the coroutine at {coro:#x} awaits itself: it changed while read")
            coro = awaited
        return tuple(frames), first_state

    def _coroutine_step(self, coro: int, buf: bytes) -> tuple[list, bool]:
        """[frame, frame state, the object it awaits or 0, None] of a coroutine from its head, and
        whether all of that came from `buf` (the awaited object's slot may lie past it)."""
        L = self.L
        f = L["gen.gi_iframe"]
        tag_mask = self.code_mask
        info = self.codes.get(u64(buf, f + L["frame.code"])[0] & tag_mask)
        ip = u64(buf, f + L["frame.instr_ptr"])[0]
        frame_state = i8(buf, L["gen.gi_frame_state"])[0]
        awaited, whole = 0, True
        if self._awaiting(frame_state, ip):
            slot = self._awaitable_slot(coro, buf)
            inside = slot - coro
            whole = 0 <= inside <= len(buf) - 8
            awaited = (u64(buf, inside)[0] if whole else self._u64(slot)) & tag_mask
        offset = max(ip - info.code_start, 0)
        opcode = -1
        if self.opcodes is not None:
            if self.runtime.traits.ip_in_caches:  # 3.11/3.12: maybe on an inline call's caches
                offset = self.codes.instruction_start(info, offset, self.opcodes.cache_units)
            opcode = self._read(info.code_start + offset, 1)[0]
        return [info.frame_at(offset, opcode), frame_state, awaited, None], whole

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
        return opcode in self.traits.await_resume_opcodes and oparg >= AWAIT_RESUME_MIN_OPARG
    def _awaitable_slot(self, coro: int, buf: bytes) -> int:
        """Where the object a coroutine suspended in an await awaits is: on top of its frame's
        value stack (`buf` holds the coroutine's head, usually that slot too)."""
        L = self.L
        f = L["gen.gi_iframe"]
        depth = self.traits.awaitable_depth
        if "frame.stackpointer" in L:  # 3.14+: a pointer one past the top
            return u64(buf, f + L["frame.stackpointer"])[0] - 8 * depth
        top = i32(buf, f + L["frame.stacktop"])[0]  # before: an index into localsplus
        if top < depth:
            raise ReadError(f"a suspended coroutine at {coro:#x} has an empty value stack")
        return coro + f + L["frame.localsplus"] + 8 * (top - depth)
