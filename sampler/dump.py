"""`heatline dump PID`: one sample of every thread, printed like a Python traceback; with
`--async-aware`, the asyncio task tree instead (which task awaits which, each one's coroutines).
Names, paths and source lines come from the target: any character a terminal would act on
(escape sequences, bidi controls) is printed as a visible escape."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, TypeVar

from sampler.model import (
    GIL_REQUESTED,
    HAS_EXCEPTION,
    HAS_GIL,
    MAIN_THREAD,
    ON_CPU,
    UNKNOWN,
    Frame,
    ThreadSample,
)
from sampler.target.files import TargetFiles
from sampler.target.maps import process_start_time
from sampler.tui.text import printable

if TYPE_CHECKING:
    from sampler.cpython.async_tasks import TaskInfo
    from sampler.cpython.opcodes import OpcodeTable

T = TypeVar("T")

_LABELS = (
    (MAIN_THREAD, "main thread"),
    (HAS_GIL, "has GIL"),
    (ON_CPU, "on CPU"),
    (GIL_REQUESTED, "waiting for GIL"),
    (HAS_EXCEPTION, "has exception"),
)


def status_labels(status: int) -> list[str]:
    labels = [text for flag, text in _LABELS if status & flag]
    if not status & (HAS_GIL | GIL_REQUESTED | HAS_EXCEPTION | UNKNOWN | ON_CPU):
        labels.append("idle")
    return labels


class SourceLines:
    """Source lines as the target sees its files (its root and cwd), flagged when edited since."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.started = process_start_time(pid)
        self._cache: dict[str, list[str] | None] = {}
        self._files = TargetFiles(pid)

    def _path(self, filename: str) -> str:
        return self._files.path(filename)

    def line(self, filename: str, lineno: int) -> str | None:
        if filename.startswith("<") or lineno <= 0:
            return None
        if filename not in self._cache:
            path = self._path(filename)
            try:
                if self.started is not None and os.stat(path).st_mtime > self.started + 1:
                    self._cache[filename] = None
                    return "[source file changed after process started]"
                with open(path, encoding="utf-8", errors="replace") as fh:
                    self._cache[filename] = fh.read().splitlines()
            except OSError:
                self._cache[filename] = []
        lines = self._cache[filename]
        if lines is None:
            return "[source file changed after process started]"
        return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else None


def display_path(filename: str) -> str:
    if os.path.isabs(filename):
        try:
            rel = os.path.relpath(filename)
        except ValueError:
            return filename
        if not rel.startswith(".."):
            return rel
    return filename


def opcode_note(frame: Frame, opcodes: OpcodeTable | None) -> str:
    """`  opcode=NAME` after a frame (dump --opcodes, Tachyon's form), or nothing."""
    return f"  opcode={opcodes.format(frame.opcode)}" if opcodes is not None and frame.opcode >= 0 else ""


def format_dump(
    pid: int,
    threads: Iterable[ThreadSample],
    sources: SourceLines | None = None,
    names: dict[int, str] | None = None,
    opcodes: OpcodeTable | None = None,
) -> str:
    """The threads' stacks, most recent call last; `opcodes` (--opcodes): the target's table,
    naming each frame's instruction after its location (`opcode=NAME`)."""
    threads = list(threads)
    if not threads:
        return f"No Python stacks found for PID {pid}\n"
    several_interps = len({t.interpreter_id for t in threads}) > 1
    out: list[str] = []
    for t in threads:
        labels = status_labels(t.status)
        where = f"thread {t.thread_id}"
        name = (names or {}).get(t.thread_id)
        if name:
            where += f' "{printable(name)}"'
        if several_interps:
            where = f"interpreter {t.interpreter_id}, " + where
        out.append(f"Stack dump for PID {pid}, {where} ({', '.join(labels + ['most recent call last']).replace(', most recent', '; most recent')}):")
        for frame in reversed(t.frames):
            if frame.is_task:
                out.append(f"  <task> {printable(frame.funcname)}")
                continue
            if frame.is_synthetic:
                out.append(f"  {printable(frame.funcname)}")
                continue
            out.append(f'  File "{printable(display_path(frame.filename))}", line {frame.lineno}, '
                       f"in {printable(frame.funcname)}{opcode_note(frame, opcodes)}")
            text = sources.line(frame.filename, frame.lineno) if sources else None
            if text:
                out.append(f"    {printable(text)}")
        out.append("")
    return "\n".join(out)


# -- `dump --async-aware`: the asyncio task tree ------------------------------------------------

TASK_INDENT = "    "  # one level of the tree
MAX_TREE_DEPTH = 256  # tasks awaiting one another this deep: deeper is a cycle read mid-change


def format_task_tree(pid: int, tasks: Sequence[TaskInfo], running: dict[int, int] | None = None,
                     threads: dict[int, str] | None = None, opcodes: OpcodeTable | None = None) -> str:
    """The tasks as a tree: roots are the tasks no task awaits, each task's children the tasks it
    awaits, indented under it with its coroutines (outermost first, as a traceback reads). A task
    awaited by several is printed under each of them, marked so. `running`: thread_id -> task,
    from `AsyncTaskReader.running`; `threads`: thread_id -> how to name that thread (its native
    id and name, as the plain dump heads its stacks); `opcodes` (--opcodes): the target's table,
    naming the instruction each coroutine is suspended at."""
    if not tasks:
        return f"No asyncio tasks found for PID {pid}\n"
    by_address = {t.address: t for t in tasks}
    on_thread = {address: thread_id for thread_id, address in (running or {}).items()}
    # Awaiters that are no task (a bare future) have no coroutines to show: only tasks count.
    parents = {t.address: sorted({a for a in t.awaited_by if a in by_address and a != t.address},
                                 key=lambda a: by_address[a].name) for t in tasks}
    children: dict[int, list[TaskInfo]] = {t.address: [] for t in tasks}
    for t in tasks:
        for parent in parents[t.address]:
            children[parent].append(t)
    out = [f"Task tree for PID {pid} ({len(tasks)} tasks; each task's coroutines outermost first):"]
    printed: set[int] = set()

    def emit(task: TaskInfo, depth: int, path: frozenset[int]) -> None:
        pad = TASK_INDENT * depth
        notes = []
        if len(parents[task.address]) > 1:
            names = ", ".join(printable(by_address[a].name) for a in parents[task.address])
            notes.append(f"awaited by {len(parents[task.address])}: {names}")
        if task.address in on_thread:
            thread_id = on_thread[task.address]
            notes.append(f"running in thread {(threads or {}).get(thread_id, thread_id)}")
        out.append(f'{pad}Task "{printable(task.name)}"' + (f" ({'; '.join(notes)})" if notes else ""))
        for frame in task.stack:
            out.append(f"{pad}  {printable(frame.funcname)} ({printable(display_path(frame.filename))}:{frame.lineno})"
                       + opcode_note(frame, opcodes))
        printed.add(task.address)
        if task.address in path or depth >= MAX_TREE_DEPTH:
            out.append(f"{pad}{TASK_INDENT}[awaits a task above it: cycle cut]")
            return
        for child in sorted(children[task.address], key=lambda t: (t.name, t.address)):
            emit(child, depth + 1, path | {task.address})

    by_name = sorted(tasks, key=lambda t: (t.name, t.address))
    for task in by_name:
        if not parents[task.address]:
            emit(task, 0, frozenset())
    # Tasks only awaited in a cycle have no root: each cycle is printed from its smallest name.
    for task in by_name:
        if task.address not in printed:
            emit(task, 0, frozenset())
    return "\n".join(out) + "\n"


def read_consistently(read: Callable[[], T], what: str, retries: int = 20) -> T:
    """`read()`, taken again while it raises `ReadError`: the target keeps running, so a reading
    can be torn; after `retries` the error names `what` ("stack from process 12")."""
    from sampler.errors import HeatlineError, ReadError

    last_error: Exception | None = None
    for _ in range(retries):
        try:
            return read()
        except ReadError as exc:
            last_error = exc
    raise HeatlineError(f"could not read a consistent {what}: {last_error}")


def dump_tasks(pid: int, opcodes: bool = False) -> str:
    """Read the target's tasks (`dump --async-aware`) and format them; `AsyncUnavailableError`
    says in one line why a version's cannot be read. `opcodes`: dump --opcodes."""
    from sampler.cpython.async_tasks import AsyncTaskReader
    from sampler.cpython.unwinder import Unwinder

    unwinder = Unwinder(pid)
    try:
        reader = AsyncTaskReader(pid, unwinder.memory, unwinder.runtime)
        if opcodes:
            from sampler.cpython.opcodes import opcode_table

            reader.opcodes = opcode_table(unwinder.runtime.version_string)
        tasks, running = read_consistently(lambda: (reader.tasks(), reader.running()),
                                           f"task list from process {pid}")
        names = unwinder.thread_names()
        threads = {}
        for thread_id, tid in unwinder.native_thread_ids().items():
            threads[thread_id] = f'{tid} "{printable(names[tid])}"' if names.get(tid) else str(tid)
    finally:
        unwinder.close()
    return format_task_tree(pid, tasks, running, threads, reader.opcodes)
