"""`--async-aware` stacks: a thread's sample rebuilt from the asyncio task it is running.

For `--async-mode running`, a thread whose event loop is running a task is shown as that task
and the tasks awaiting it, root first, as Tachyon shows it:

    <task>:Task-1;main;<task>:supervisor;supervisor;<task>:heavy;heavy;heavy_round;crunch

Each task is a marker frame (`model.task_frame`) followed by its coroutines, outermost first.
The awaiting tasks are suspended, so their coroutine chains are read from the tasks
(`async_tasks.AsyncTaskReader`); the running task's part is the thread's own stack from the
task's coroutine frame up to the leaf, which the walk finds by the frame's address. The loop's
frames under that coroutine (`run_forever`, `_run_once`, the handle) are left out. A thread
running no task is left out of the sample.

A task awaited by several others is shown under each of them in turn: the k-th time it is
shown, it goes under its awaiters sorted by name, k modulo their number. Each sample is one
stack, so nothing is counted twice, and over a run its time is split evenly between the
awaiters, whose totals each include their share; its marker says how many there are.
(Tachyon shows it always under the same one, the others never.)

`--async-mode all` (`task_stacks`) is the task list instead of the threads: one stack per leaf
task (one no task awaits), each as read from the task itself, suspended or running, then its
awaiters as above; the threads' own stacks are not walked. A running task shows its coroutines
as their frames say (the line it is at), not what they call.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

from sampler.cpython.async_tasks import MAX_TASKS, AsyncTaskReader, TaskInfo
from sampler.cpython.code_objects import CodeCache
from sampler.cpython.runtime import Runtime
from sampler.cpython.opcodes import OpcodeTable
from sampler.cpython.stack_chunks import Chunks, ChunkWalker
from sampler.errors import AsyncNotLoadedError, AsyncUnavailableError, ReadError
from sampler.model import ASYNC_MODES, Frame, task_frame
from sampler.target.memory import U64, RemoteMemory

# The reader covers these (docs/async-plan.md): earlier versions keep no task data it knows.
FIRST_READABLE = (3, 11)
# A 3.14 target loads `_asyncio` (whose image holds the task offsets) when it imports asyncio,
# which a launched target has not done yet at attach: look again at most this often until then.
# Until it is loaded no task can run, so no sample is lost meanwhile.
READER_RETRY_S = 0.25
MAX_AWAITERS_UP = 256  # tasks followed from the running one towards the root
MAX_TURNS = 65536  # tasks with several awaiters whose turn is remembered
MAX_HEAD_BYTES = 4096  # a coroutine's head (object and frame up to its stack top) that `_inputs` names

Ranges = tuple[tuple[int, int], ...]


class Awaiters(NamedTuple):
    """`AsyncStacks.awaiters_of`'s answer, for the native core."""

    coro_frame: int  # the running task's coroutine frame: its own frames end there
    frames: tuple[Frame, ...]  # what follows them: its marker, then the awaiting tasks'
    inputs: Ranges | None  # the remote ranges both are a function of; None: not to be reused

u64 = U64.unpack_from


class RecordingChunkWalker(ChunkWalker):
    """A `ChunkWalker` that also says where a frame address sits in the stack it returned."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._walked: tuple[tuple[Frame, ...], dict[int, int]] | None = None
        self._returned: tuple[Frame, ...] | None = None

    def forget(self) -> None:
        """Before a walk: a thread with no current frame is not walked, and must not be
        answered from the previous thread's walk."""
        self._walked = self._returned = None

    def interp_frames(self, f: int, chunks: Chunks) -> tuple[tuple[Frame, ...], dict[int, int]]:
        self._walked = super().interp_frames(f, chunks)
        return self._walked

    def attempt(self, *args, **kwargs) -> tuple[Frame, ...] | None:
        self.forget()
        self._returned = super().attempt(*args, **kwargs)
        return self._returned

    def index_of(self, address: int) -> int | None:
        """The index, in the stack the last trusted walk returned, of the frame at `address`;
        None when that frame is not on it."""
        if self._walked is None or self._returned is None:
            return None
        frames, starts = self._walked
        # A walk that settled on a caller of its top returns the stack cut from that caller down.
        index = starts.get(address, -1) - (len(frames) - len(self._returned))
        return index if 0 <= index < len(self._returned) else None


class AsyncStacks:
    """Turns a thread's walked stack into its running task's stack (`frames`)."""

    def __init__(self, pid: int, memory: RemoteMemory, runtime: Runtime, mode: str = "running",
                 codes: CodeCache | None = None) -> None:
        """`codes`: the sampler's code cache, for the reader to share (its epochs included)."""
        if mode not in ASYNC_MODES:
            raise ValueError(f"no --async-mode {mode}")  # the CLI refuses it
        if runtime.minor < FIRST_READABLE:
            raise AsyncUnavailableError(runtime.version_string,
                                        "heatline reads them from CPython 3.11 on")
        self.pid = pid
        self.mode = mode
        self.memory = memory
        self.runtime = runtime
        self.codes = codes
        self.thread_id_off = runtime.layout["tstate.thread_id"]
        self.walker: RecordingChunkWalker | None = None  # the unwinder's, set by `walker_for`
        self._reader: AsyncTaskReader | None = None
        self._next_try = 0.0
        self._turns: dict[int, int] = {}  # task awaited by several -> how often it was shown
        self._truncated = False  # a reading of the task list stopped at MAX_TASKS
        self.opcodes: OpcodeTable | None = None  # --opcodes, for the reader's coroutine frames
        self._reader_or_none()

    def record_opcodes(self, table: OpcodeTable) -> None:
        """--opcodes: suspended coroutines' frames carry the instruction they stopped at too."""
        self.opcodes = table
        if self._reader is not None:
            self._reader.opcodes = table

    def walker_for(self, *args, **kwargs) -> RecordingChunkWalker:
        """The unwinder's chunk walker (its arguments), one that can locate coroutine frames."""
        self.walker = RecordingChunkWalker(*args, **kwargs)
        return self.walker

    def _reader_or_none(self) -> AsyncTaskReader | None:
        if self._reader is None and time.monotonic() >= self._next_try:
            try:
                self._reader = AsyncTaskReader(self.pid, self.memory, self.runtime, self.codes)
                self._reader.opcodes = self.opcodes
            except AsyncNotLoadedError:
                # No task can run until it is: look again later. Other refusals are final.
                self._next_try = time.monotonic() + READER_RETRY_S
        return self._reader

    def frames(self, tstate: int, tbuf: bytes,
               walk: Callable[[int, bytes], tuple[Frame, ...] | None]) -> tuple[Frame, ...] | None:
        """The thread's sample as its running task's stack, leaf first; None when the thread runs
        no task. `walk(tstate, tbuf)` is the unwinder's checked walk of the thread's stack."""
        reader = self._reader_or_none()
        found = self._running_own(reader, tstate, tbuf, walk) if reader is not None else None
        if found is None:
            return None
        running, own = found
        return own + self._awaiters(running, self._task_lookup(reader))

    def running_own(self, tstate: int, tbuf: bytes,
                    walk: Callable[[int, bytes], tuple[Frame, ...] | None]) -> tuple[int, tuple[Frame, ...]] | None:
        """For `--async-mode all`: (address, own frames leaf first) of the task the thread is
        running, from the thread's walked stack; None when it runs none."""
        reader = self._reader_or_none()
        found = self._running_own(reader, tstate, tbuf, walk) if reader is not None else None
        return None if found is None else (found[0].address, found[1])

    def _running_own(self, reader: AsyncTaskReader, tstate: int, tbuf: bytes,
                     walk: Callable[[int, bytes], tuple[Frame, ...] | None]) -> tuple[TaskInfo, tuple[Frame, ...]] | None:
        """The task the thread runs and its own frames: the walked stack from the task's
        coroutine frame to the leaf (the loop's frames under it left out)."""
        thread_id = u64(tbuf, self.thread_id_off)[0]
        address = reader.running().get(thread_id)
        if not address:
            return None
        # Walk first, then read the task: a task switch between the two readings of the running
        # task and the walk is caught below, so that window is kept as short as it can be.
        assert self.walker is not None, "the unwinder's walker comes from walker_for"
        self.walker.forget()
        stack = walk(tstate, tbuf)
        if stack is None:
            return None
        running = reader.task(address, thread_id)
        index = self.walker.index_of(running.coro_frame)
        if index is not None:
            return running, stack[: index + 1]
        if reader.running().get(thread_id) != address:
            raise ReadError("the running task changed while its thread's stack was read")
        # The task is between steps: the loop has made it current, but its coroutine is not (or
        # no longer) on the stack. Its time is shown on its marker alone, as Tachyon does.
        return running, ()

    # -- for the native core (native.py): the walk and the cut are in C, these stay here -------

    def running_task(self, thread_id: int) -> int:
        """The task thread `thread_id`'s loop runs now, 0 for none (or asyncio not loaded yet)."""
        reader = self._reader_or_none()
        return reader.running().get(thread_id, 0) if reader is not None else 0

    def running_task_offset(self) -> int | None:
        """Where a thread state keeps its running task (3.14+), -1 where it does not (before
        3.14: asyncio's dicts do), None until asyncio is loaded."""
        reader = self._reader_or_none()
        return None if reader is None else reader.L.get("tstate.asyncio_running_task", -1)

    def awaiters_of(self, address: int, thread_id: int) -> Awaiters:
        """For the running task `address`: its coroutine frame (its own frames end there), what
        follows them in its sample (`frames`): its marker, then the awaiting tasks' coroutines
        and markers; and the remote ranges those are a function of (`_inputs`)."""
        reader = self._reader_or_none()
        assert reader is not None, "a running task was found through the reader"
        running = reader.task(address, thread_id)
        visited: list[tuple[TaskInfo, int]] = []
        frames = self._awaiters(running, self._task_lookup(reader), visited)
        return Awaiters(running.coro_frame, frames, self._inputs(reader, visited))

    def _inputs(self, reader: AsyncTaskReader, visited: list[tuple[TaskInfo, int]]) -> Ranges | None:
        """The remote bytes `awaiters_of` made its answer from, when they are all a function of a
        few fields (3.14+, where awaiters are task fields): for each task followed, its name,
        awaiter and awaiter-set fields, its coroutine field and each awaiter's is-task flag; for
        each awaiting task, its coroutine's head up to the frame's stack pointer (the frame
        is suspended: its code, instruction, state and the awaited object are all in there; a
        name is a str the task holds, code objects are held by their frames). None when they
        are not: before 3.14 (awaiters come from a derivation over every task), a task with
        several awaiters (shown under each in turn), an awaiter set, a chain of more than one
        coroutine in an awaiting task, or the walk cut short."""
        L = reader.L
        if reader.tables is not None or "frame.stackpointer" not in L or len(visited) >= MAX_AWAITERS_UP:
            return None
        out: list[tuple[int, int]] = []
        for depth, (task, parents) in enumerate(visited):
            is_set = task.awaited_by and self.memory.read(task.address + L["task.awaited_by_is_set"], 1) != b"\0"
            if parents > 1 or is_set:
                return None
            out += [(task.address + L["task.name"], 8), (task.address + L["task.awaited_by"], 8),
                    (task.address + L["task.awaited_by_is_set"], 1), (task.address + L["task.coro"], 8)]
            if "task.is_task" in L:
                out += [(a + L["task.is_task"], 1) for a in task.awaited_by]
            if depth == 0:
                continue  # the running task: its own frames are the walked stack's
            if len(task.stack) > 1:
                return None
            if task.stack:
                head = task.coro + 8  # after the reference count
                top = self.memory.read_u64(task.coro + L["gen.gi_iframe"] + L["frame.stackpointer"])
                if not head < top <= head + MAX_HEAD_BYTES:
                    return None
                out.append((head, top - head))
            else:
                out.append((task.coro + L["object.ob_type"], 8))  # no coroutine: its type said so
        return tuple(out)

    def task_stacks(self, running: dict[int, tuple[Frame, ...]] | None = None) -> list[tuple[int, tuple[Frame, ...]]]:
        """`--async-mode all`: (thread_id, stack leaf first) of every leaf task, from one reading
        of the task list; thread_id is `TaskInfo.thread_id` (0: no thread's). Empty until the
        target has loaded asyncio. `running`: task address -> its own frames as its thread's
        walk found them (`running_own`), shown instead of what its coroutines say: a running
        coroutine's frame tells only its own line, not what it calls (Tachyon stops there)."""
        reader = self._reader_or_none()
        if reader is None:
            return []
        running = running or {}
        tasks = reader.tasks()
        self._truncated = self._truncated or reader.truncated
        by_address = {t.address: t for t in tasks}
        awaiting = {a for t in tasks for a in t.awaited_by if a != t.address}
        # A bare future among the awaiters is no task: it has no coroutines to show.
        return [(t.thread_id, running.get(t.address, tuple(reversed(t.stack))) + self._awaiters(t, by_address.get))
                for t in tasks if t.address not in awaiting]

    def note(self) -> str | None:
        """The run summary's line when some readings of the task list were cut at MAX_TASKS."""
        if self._truncated or (self._reader is not None and self._reader.truncated):
            return (f"Note: the target had more than {MAX_TASKS:,} asyncio tasks; each reading stopped there, "
                    "so the tasks past it are missing from some samples.")
        return None

    def _awaiters(self, task: TaskInfo, lookup: Callable[[int], TaskInfo | None],
                  visited: list[tuple[TaskInfo, int]] | None = None) -> tuple[Frame, ...]:
        """`task`'s marker, then each awaiting task's coroutines and marker, towards the root;
        `lookup` reads an awaiter (None: it is no task). `visited` gets each task followed, with
        how many awaiting tasks it has."""
        out: list[Frame] = []
        seen = {task.address}
        while True:
            parents = [p for p in (lookup(a) for a in task.awaited_by if a not in seen) if p is not None]
            if visited is not None:
                visited.append((task, len(parents)))
            name = task.name if len(parents) < 2 else f"{task.name} ({len(parents)} parents)"
            out.append(task_frame(name))
            if not parents or len(seen) >= MAX_AWAITERS_UP:
                return tuple(out)
            task = self._parent_now(task.address, parents)
            seen.add(task.address)
            out.extend(reversed(task.stack))

    def _parent_now(self, child: int, parents: list[TaskInfo]) -> TaskInfo:
        """The parent a task awaited by several is shown under this time: each in turn, sorted
        by name, so every parent shows it and each sample is still counted once."""
        if len(parents) == 1:
            return parents[0]
        if len(self._turns) >= MAX_TURNS:
            self._turns.clear()  # tasks come and go: forget the old ones' turns
        turn = self._turns.get(child, 0)
        self._turns[child] = turn + 1
        return sorted(parents, key=lambda t: (t.name, t.address))[turn % len(parents)]

    def _task_lookup(self, reader: AsyncTaskReader) -> Callable[[int], TaskInfo | None]:
        """Reads an awaiter as a task, None when it is a bare future."""
        return lambda a: reader.task(a) if self._is_task(reader, a) else None

    def _is_task(self, reader: AsyncTaskReader, address: int) -> bool:
        """Whether an awaiter is a task (not a bare future, which has no coroutines to show)."""
        offset = reader.L.get("task.is_task")
        return offset is None or self.memory.read(address + offset, 1) != b"\0"
