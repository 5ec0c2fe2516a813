"""Where CPython 3.11-3.13 keep asyncio's tasks, read from outside: Python-level tables.

Before 3.14 no thread state lists tasks. What there is (docs/async-plan.md):

- a thread's running loop: its thread-state dict under RUNNING_LOOP_KEY (3.11: a
  `_RunningLoopHolder` holding it; 3.12: the loop itself) or, from 3.13, a thread-state field;
- the task each loop runs: `asyncio.tasks._current_tasks`, a dict {loop: task};
- every task: `asyncio.tasks._all_tasks` (3.11) or `_scheduled_tasks` (3.12+), WeakSets, plus the
  plain set `_eager_tasks` (3.12+);
- a task's fields: at fixed offsets in an `_asyncio.Task` (versions.ASYNCIO_TRAITS), or instance
  attributes of a pure-Python task (`asyncio.tasks._PyTask`, or a subclass of either);
- who awaits whom: nothing keeps it. A task waits on one future (`fut_waiter`): another task, or a
  `_GatheringFuture` whose `_children` are the gathered ones. A `TaskGroup`'s child has the
  group's `_on_task_done` among its done callbacks, and the group names its `_parent_task`: the
  child is awaited by that task from its creation on. 3.14+ records the same relations in the
  tasks (async_tasks.py); here they are derived.

The set, weakref and list readers below are the one place such containers are read remotely
(async_tasks.py reads 3.14's awaited-by sets with `set_members`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from sampler.cpython.runtime import Runtime
from sampler.cpython.thread_names import LookupState, RemoteObjects
from sampler.cpython.versions import RUNNING_LOOP_KEY, AsyncioTraits
from sampler.errors import ReadError
from sampler.target.memory import I64, U64

u64 = U64.unpack_from
i64 = I64.unpack_from

MAX_SET_SLOTS = 1 << 20  # a larger set table is garbage
MAX_LIST_ITEMS = 1 << 16
MAX_CURRENT = 4096  # entries of `_current_tasks` looked at: one per running loop
MAX_BASES = 16  # tp_base links followed when telling a type's kind
MAX_TYPES = 1024  # types whose kind is remembered
MAX_GATHER_DEPTH = 8  # gathers nested in gathers
DISCARDED_HASH = (1 << 64) - 1  # a set entry's hash -1 as an unsigned word: a discarded entry

# Fields of public structs that have not moved since 3.0 and that the generated layouts lack:
# PyWeakReference.wr_object (right after the object header), PyListObject's ob_size and ob_item,
# and PyTypeObject.tp_base (four pointers before tp_dictoffset: tp_base, tp_dict, tp_descr_get,
# tp_descr_set). Checked through the readers by tests/test_async_tasks.py on each version.
WEAKREF_OBJECT = 16
LIST_SIZE = 16
LIST_ITEMS = 24
TUPLE_ITEMS = 24
TP_BASE_BEFORE_DICTOFFSET = 32
METHOD_SELF = 24  # PyMethodObject: im_func, then im_self
# An `_asyncio.Future`/`Task` (FutureObj_HEAD in Modules/_asynciomodule.c, 3.11-3.14): after
# fut_loop come fut_callback0 (the first done callback) and fut_context0, then fut_callbacks
# (a list of (callback, context) tuples for the others, or NULL).
FUTURE_CALLBACK0 = 24
FUTURE_CALLBACKS = 40
MAX_CALLBACKS = 64  # done callbacks of one task looked at for a TaskGroup's

# Type names that tell what an object is (tp_name of the type or of one of its bases).
C_TASK_TYPE = "_asyncio.Task"
PY_TASK_TYPE = "Task"  # asyncio.tasks._PyTask's __name__
GATHER_TYPE = "_GatheringFuture"
TASKGROUP_TYPE = "TaskGroup"
METHOD_TYPE = "method"
_KINDS = (
    (C_TASK_TYPE, "c-task"), (GATHER_TYPE, "gather"), (PY_TASK_TYPE, "py-task"),
    (TASKGROUP_TYPE, "taskgroup"), (METHOD_TYPE, "method"),
)


Read = Callable[[int, int], bytes]


def set_members(read: Read, layout: dict[str, int], obj: int) -> list[int]:
    """The objects in a `set` (its live entries, in table order)."""
    mask = u64(read(obj + layout["set.mask"], 8), 0)[0]
    if mask >= MAX_SET_SLOTS or mask & (mask + 1):
        raise ReadError(f"a set at {obj:#x} has an implausible table mask {mask:#x}")
    table = u64(read(obj + layout["set.table"], 8), 0)[0]
    size = layout["setentry.size"]
    raw = read(table, size * (mask + 1))
    key_off, hash_off = layout["setentry.key"], layout["setentry.hash"]
    members = []
    for base in range(0, len(raw), size):
        key = u64(raw, base + key_off)[0]
        # A discarded entry keeps a shared dummy key and the hash -1: it holds nothing.
        if key and u64(raw, base + hash_off)[0] != DISCARDED_HASH:
            members.append(key)
    return members


def weakref_target(read: Read, ref: int, none: int) -> int:
    """What a weak reference refers to; 0 once that object is gone (wr_object is None then)."""
    target = u64(read(ref + WEAKREF_OBJECT, 8), 0)[0]
    return 0 if target == none else target


def list_items(read: Read, obj: int, limit: int = MAX_LIST_ITEMS) -> list[int]:
    """The objects in a `list` (its first `limit`)."""
    n = min(_length(read, obj), limit)
    items = u64(read(obj + LIST_ITEMS, 8), 0)[0]
    raw = read(items, 8 * n) if n else b""
    return [u64(raw, 8 * i)[0] for i in range(n)]


def tuple_item(read: Read, obj: int, index: int) -> int:
    """Item `index` of a `tuple` (the items are inside the object); 0 past its end."""
    return u64(read(obj + TUPLE_ITEMS + 8 * index, 8), 0)[0] if index < _length(read, obj) else 0


def _length(read: Read, obj: int) -> int:
    """ob_size of a list or tuple."""
    n = i64(read(obj + LIST_SIZE, 8), 0)[0]
    if not 0 <= n <= MAX_LIST_ITEMS:
        raise ReadError(f"a sequence at {obj:#x} has an implausible length {n}")
    return n


@dataclass(frozen=True)
class TaskFields:
    """What the awaiter derivation and TaskInfo need of one task object."""

    coro: int
    name: int  # the name object (a str)
    fut_waiter: int  # the future the task waits on, 0 when none
    loop: int
    callback0: int  # its first done callback (C tasks), 0 when none
    callbacks: int  # the list of the others as (callback, context) tuples, 0 when none


class TaskTables:
    """Reads 3.11-3.13 asyncio tables through `objects` (inside its `call`, which the caller opens)."""

    def __init__(self, objects: RemoteObjects, runtime: Runtime, traits: AsyncioTraits, layout: dict[str, int]) -> None:
        self.objects = objects
        self.runtime = runtime
        self.traits = traits
        self.L = layout
        self.none = runtime.none_addr
        self.kinds: dict[int, str] = {}  # type address -> "c-task", "py-task", "gather" or ""

    # -- per thread -----------------------------------------------------------------------------

    def running_loop(self, state: LookupState, tstate: int) -> int:
        """The loop a thread is running, 0 when none."""
        objects = self.objects
        if self.traits.running_loop == "tstate.asyncio_running_loop":
            return objects.u64(tstate + self.L["tstate.asyncio_running_loop"])
        tsdict = objects.u64(tstate + self.L["tstate.dict"])
        held = objects.dict_get(state, tsdict, RUNNING_LOOP_KEY) if tsdict else 0
        if held and held != self.none and self.traits.loop_holder_loop is not None:
            held = objects.u64(held + self.traits.loop_holder_loop)
        return 0 if held == self.none else held

    # -- asyncio.tasks' tables ------------------------------------------------------------------

    def _tasks_module(self, state: LookupState, interp: int) -> int:
        return self.objects.module_dict(state, interp, "asyncio.tasks")

    def current_tasks(self, state: LookupState, interp: int) -> dict[int, int]:
        """{loop: the task it is running} from `_current_tasks`."""
        md = self._tasks_module(state, interp)
        current = self.objects.dict_get(state, md, "_current_tasks") if md else 0
        if not current:
            return {}
        return {loop: task for loop, task, _hash in self.objects.dict_items(state, current, MAX_CURRENT)}

    def task_objects(self, state: LookupState, interp: int) -> list[int]:
        """Every task registered with asyncio (weakly held ones still alive, eager ones), once each."""
        objects = self.objects
        md = self._tasks_module(state, interp)
        if not md:
            return []
        found: dict[int, None] = {}
        for name in ("_all_tasks", "_scheduled_tasks"):  # WeakSets: their `data` holds weakrefs
            weak = objects.dict_get(state, md, name)
            data = objects.attribute(state, weak, "data") if weak and weak != self.none else 0
            if data:
                for ref in set_members(objects.read, self.L, data):
                    target = weakref_target(objects.read, ref, self.none)
                    if target:
                        found[target] = None
        eager = objects.dict_get(state, md, "_eager_tasks")
        if eager and eager != self.none:
            found.update(dict.fromkeys(set_members(objects.read, self.L, eager)))
        return list(found)

    # -- objects --------------------------------------------------------------------------------

    def kind(self, obj: int) -> str:
        """"c-task", "py-task", "gather" or "" for an object, from its type's and bases' names."""
        L = self.L
        tp = self.objects.u64(obj + L["object.ob_type"])
        kind = self.kinds.get(tp)
        if kind is None:
            names = set()
            base = tp
            for _ in range(MAX_BASES):
                if not base:
                    break
                names.add(self._type_name(base))
                base = self.objects.u64(base + L["type.tp_dictoffset"] - TP_BASE_BEFORE_DICTOFFSET)
            # A C task's subclass may be called "Task" too: its C base decides.
            kind = next((k for n, k in _KINDS if n in names), "")
            if len(self.kinds) >= MAX_TYPES:
                self.kinds.clear()
            self.kinds[tp] = kind
        return kind

    def _type_name(self, tp: int) -> str:
        ptr = self.objects.u64(tp + self.L["type.tp_name"])
        raw = self.objects.read(ptr, 64) if ptr else b""
        return raw.split(b"\0", 1)[0].decode("ascii", "replace")

    def fields(self, state: LookupState, task: int) -> TaskFields | None:
        """A task's fields; None for an object that is no task heatline can read."""
        kind = self.kind(task)
        if kind == "c-task":
            L = self.L
            buf = self.objects.read(task, L["task.size"])
            return TaskFields(
                u64(buf, L["task.coro"])[0], u64(buf, L["task.name"])[0],
                u64(buf, L["task.fut_waiter"])[0], u64(buf, L["task.loop"])[0],
                u64(buf, FUTURE_CALLBACK0)[0], u64(buf, FUTURE_CALLBACKS)[0],
            )
        if kind == "py-task":
            get = self.objects.attribute
            coro = get(state, task, "_coro")
            if not coro:
                return None
            waiter = get(state, task, "_fut_waiter")
            callbacks = get(state, task, "_callbacks")
            return TaskFields(
                coro, get(state, task, "_name"), 0 if waiter == self.none else waiter, get(state, task, "_loop"),
                0, 0 if callbacks == self.none else callbacks,
            )
        return None

    # -- awaiters -------------------------------------------------------------------------------

    def awaiters(self, state: LookupState, tasks: dict[int, TaskFields], of: Iterable[int]) -> dict[int, list[int]]:
        """{task: the tasks awaiting it} for the tasks `of` (keys of `tasks`, every task's fields)."""
        wanted = set(of)
        out: dict[int, list[int]] = {task: [] for task in wanted}
        for task, fields in tasks.items():
            if fields.fut_waiter:
                for awaited in self._awaited_through(state, fields.fut_waiter, tasks.keys(), MAX_GATHER_DEPTH):
                    if awaited in wanted and task not in out[awaited]:
                        out[awaited].append(task)
        for task in wanted:
            owner = self._group_owner(state, tasks[task])
            if owner in tasks and owner not in out[task]:
                out[task].append(owner)
        return out

    def _group_owner(self, state: LookupState, fields: TaskFields) -> int:
        """The task owning the TaskGroup a task belongs to (found among its done callbacks), or 0."""
        read = self.objects.read
        callbacks = [fields.callback0] if fields.callback0 else []
        if fields.callbacks:
            callbacks += [tuple_item(read, pair, 0) for pair in list_items(read, fields.callbacks, MAX_CALLBACKS)]
        for callback in callbacks:
            if callback and self.kind(callback) == "method":
                group = self.objects.u64(callback + METHOD_SELF)
                if group and self.kind(group) == "taskgroup":
                    owner = self.objects.attribute(state, group, "_parent_task")
                    return 0 if owner == self.none else owner
        return 0

    def _awaited_through(self, state: LookupState, future: int, tasks: Collection[int], depth: int) -> list[int]:
        """The tasks a task waiting on `future` awaits: that task, or what a gather gathers."""
        if future in tasks:
            return [future]
        if depth <= 0 or self.kind(future) != "gather":
            return []
        children = self.objects.attribute(state, future, "_children")
        found = []
        for child in list_items(self.objects.read, children) if children else ():
            found += self._awaited_through(state, child, tasks, depth - 1)
        return found
