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
(async_tasks.py reads 3.14's awaited-by sets with `set_members`). Their offsets, and a type's
tp_base and a bound method's im_self, come from the generated layouts; a future's done callbacks
from versions.ASYNCIO_TRAITS (private to `_asynciomodule.c`, as the task's fields are).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
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

MAX_CALLBACKS = 64  # done callbacks of one task looked at for a TaskGroup's
SET_CHUNK = 4096  # set entries read at once: a set with a limit is read only as far as it needs

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


def set_members(read: Read, layout: dict[str, int], obj: int, limit: int | None = None) -> list[int]:
    """The objects in a `set` (its live entries, in table order): all of them, or the first
    `limit`, reading the table only as far as they reach."""
    mask = u64(read(obj + layout["set.mask"], 8), 0)[0]
    if mask >= MAX_SET_SLOTS or mask & (mask + 1):
        raise ReadError(f"a set at {obj:#x} has an implausible table mask {mask:#x}")
    table = u64(read(obj + layout["set.table"], 8), 0)[0]
    size = layout["setentry.size"]
    key_off, hash_off = layout["setentry.key"], layout["setentry.hash"]
    members: list[int] = []
    slots = mask + 1
    step = slots if limit is None else SET_CHUNK
    for first in range(0, slots, step):
        raw = read(table + size * first, size * min(step, slots - first))
        for base in range(0, len(raw), size):
            key = u64(raw, base + key_off)[0]
            # A discarded entry keeps a shared dummy key and the hash -1: it holds nothing.
            if key and u64(raw, base + hash_off)[0] != DISCARDED_HASH:
                members.append(key)
        if limit is not None and len(members) >= limit:
            return members[:limit]
    return members


def weakref_target(read: Read, layout: dict[str, int], ref: int, none: int) -> int:
    """What a weak reference refers to; 0 once that object is gone (wr_object is None then)."""
    target = u64(read(ref + layout["weakref.wr_object"], 8), 0)[0]
    return 0 if target == none else target


def list_items(read: Read, layout: dict[str, int], obj: int, limit: int = MAX_LIST_ITEMS) -> list[int]:
    """The objects in a `list` (its first `limit`)."""
    n = min(_length(read, obj + layout["list.ob_size"]), limit)
    items = u64(read(obj + layout["list.ob_item"], 8), 0)[0]
    raw = read(items, 8 * n) if n else b""
    return [u64(raw, 8 * i)[0] for i in range(n)]


def tuple_item(read: Read, layout: dict[str, int], obj: int, index: int) -> int:
    """Item `index` of a `tuple` (the items are inside the object); 0 past its end."""
    if index >= _length(read, obj + layout["tuple.ob_size"]):
        return 0
    return u64(read(obj + layout["tuple.ob_item"] + 8 * index, 8), 0)[0]


def _length(read: Read, at: int) -> int:
    """A list's or tuple's ob_size, at `at`."""
    n = i64(read(at, 8), 0)[0]
    if not 0 <= n <= MAX_LIST_ITEMS:
        raise ReadError(f"a sequence's length at {at:#x} is implausible: {n}")
    return n


def pure_python_asyncio(objects: RemoteObjects, state: LookupState, interp: int) -> bool | None:
    """Whether the target's asyncio runs its pure-Python tasks and tables (`_asyncio` blocked by
    `sys.modules['_asyncio'] = None`, or not built) rather than `_asyncio`'s; None while
    asyncio.tasks is not imported. asyncio.events tries `_asyncio` before asyncio.tasks is
    imported, so once asyncio.tasks is in sys.modules, `_asyncio`'s entry there says which."""
    modules = objects.u64(interp + objects.L["interp.modules"])
    if not modules or not objects.dict_get(state, modules, "asyncio.tasks"):
        return None
    return objects.dict_get(state, modules, "_asyncio") in (0, objects.runtime.none_addr)


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

    def loop_thread(self, state: LookupState, loop: int) -> int | None:
        """The thread_id of the thread running `loop` as the loop says it (its `_thread_id`, set
        by run_forever, None when it is not running; threading.get_ident() is the thread state's
        thread_id), 0 when none; None for a loop with no such attribute (not asyncio's own:
        uvloop's). Pure-Python asyncio keeps the running loop in a threading.local that no
        thread state points to: this is how its loops are placed."""
        ident = self.objects.attribute(state, loop, "_thread_id")
        if not ident:
            return None
        return 0 if ident == self.none else self.objects.read_int(ident) or 0

    def type_name(self, obj: int) -> str:
        """The name of an object's type (for messages)."""
        return self._type_name(self.objects.u64(obj + self.L["object.ob_type"]))

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

    def task_objects(self, state: LookupState, interp: int, limit: int) -> list[int]:
        """The tasks registered with asyncio (weakly held ones still alive, eager ones), once
        each: the first `limit` of them, in table order."""
        objects = self.objects
        md = self._tasks_module(state, interp)
        if not md:
            return []
        found: dict[int, None] = {}
        for name in ("_all_tasks", "_scheduled_tasks"):  # WeakSets: their `data` holds weakrefs
            weak = objects.dict_get(state, md, name)
            data = objects.attribute(state, weak, "data") if weak and weak != self.none else 0
            if data:
                # Dead references (held until the WeakSet's next clean-up) count towards the limit.
                for ref in set_members(objects.read, self.L, data, limit - len(found)):
                    target = weakref_target(objects.read, self.L, ref, self.none)
                    if target:
                        found[target] = None
            if len(found) >= limit:
                return list(found)[:limit]
        eager = objects.dict_get(state, md, "_eager_tasks")
        if eager and eager != self.none:
            found.update(dict.fromkeys(set_members(objects.read, self.L, eager, limit - len(found))))
        return list(found)[:limit]

    # -- objects --------------------------------------------------------------------------------

    def kind(self, obj: int) -> str:
        """"c-task", "py-task", "gather" or "" for an object, from its type's and bases' names."""
        return self._kind_of(self.objects.u64(obj + self.L["object.ob_type"]))

    def _kind_of(self, tp: int) -> str:
        kind = self.kinds.get(tp)
        if kind is None:
            names = set()
            base = tp
            for _ in range(MAX_BASES):
                if not base:
                    break
                names.add(self._type_name(base))
                base = self.objects.u64(base + self.L["type.tp_base"])
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
        L = self.L
        try:
            # A C task is the common case: its fields and its type in one read.
            buf = self.objects.read(task, L["task.size"])
        except ReadError:  # a smaller object near the end of a mapping
            buf = b""
        tp = u64(buf, L["object.ob_type"])[0] if buf else self.objects.u64(task + L["object.ob_type"])
        kind = self._kind_of(tp)
        if kind == "c-task":
            if not buf:
                raise ReadError(f"a task at {task:#x} cannot be read whole")
            return TaskFields(
                u64(buf, L["task.coro"])[0], u64(buf, L["task.name"])[0],
                u64(buf, L["task.fut_waiter"])[0], u64(buf, L["task.loop"])[0],
                u64(buf, L["task.callback0"])[0], u64(buf, L["task.callbacks"])[0],
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

    def waiting(self, state: LookupState, tasks: dict[int, TaskFields]) -> dict[int, list[int]]:
        """{task: the tasks waiting on it} through each task's `fut_waiter` (the task itself or a
        gather of it), among `tasks` (every task's fields); a task no one waits on is left out.
        A TaskGroup's owner is not among them: `group_owner` tells it, task by task."""
        out: dict[int, list[int]] = {}
        for task, fields in tasks.items():
            if fields.fut_waiter:
                for awaited in self._awaited_through(state, fields.fut_waiter, tasks.keys(), MAX_GATHER_DEPTH):
                    waiters = out.setdefault(awaited, [])
                    if task not in waiters:
                        waiters.append(task)
        return out

    def group_owner(self, state: LookupState, fields: TaskFields) -> int:
        """The task owning the TaskGroup a task belongs to (found among its done callbacks), or 0."""
        read, L = self.objects.read, self.L
        callbacks = [fields.callback0] if fields.callback0 else []
        if fields.callbacks:
            pairs = list_items(read, L, fields.callbacks, MAX_CALLBACKS)
            callbacks += [tuple_item(read, L, pair, 0) for pair in pairs]
        for callback in callbacks:
            if callback and self.kind(callback) == "method":
                group = self.objects.u64(callback + L["method.im_self"])
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
        for child in list_items(self.objects.read, self.L, children) if children else ():
            found += self._awaited_through(state, child, tasks, depth - 1)
        return found
