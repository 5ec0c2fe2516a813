"""Measure, inside a running asyncio program, where this interpreter keeps what an async-aware
profiler reads, and print it as one JSON line (tests/test_async_layouts.py compares it with
sampler/cpython's tables).

argv[1] is a JSON object of the offsets under test (heatline layout keys); the probe reads its own
memory through ctypes at those offsets and reports what it finds there, or searches objects for
the words it knows (an id) and reports where they are. It only reads.
"""

import asyncio
import ctypes
import json
import sys
import types

LAYOUT = json.loads(sys.argv[1])
WORD = 8
RUNNING_LOOP_KEY = "__asyncio_running_event_loop__"

ctypes.pythonapi.PyThreadState_Get.restype = ctypes.c_void_p
ctypes.pythonapi.PyThreadState_GetDict.restype = ctypes.c_void_p


def word(addr):
    return ctypes.c_uint64.from_address(addr).value


def byte(addr):
    return ctypes.c_int8.from_address(addr).value


def where(obj, value, size):
    """Offsets (in whole words) inside obj's first `size` bytes holding the address of value."""
    return [off for off in range(0, size, WORD) if word(id(obj) + off) == id(value)]


def stack_top(coro):
    """The awaitable a coroutine suspended in an await keeps on its value stack (tag bits
    cleared): `awaitable_depth` words below the top."""
    frame = id(coro) + LAYOUT["gen.gi_iframe"]
    if "frame.stackpointer" in LAYOUT:  # 3.14+: a pointer one past the top
        return word(word(frame + LAYOUT["frame.stackpointer"]) - WORD * LAYOUT["awaitable_depth"]) & ~3
    # 3.11-3.13: an index into localsplus
    top = ctypes.c_int32.from_address(frame + LAYOUT["frame.stacktop"]).value
    return word(frame + LAYOUT["frame.localsplus"] + WORD * (top - LAYOUT["awaitable_depth"]))


def next_instruction(coro):
    """(opcode, oparg) of the code unit after the one a suspended 3.11/3.12 frame stopped at."""
    frame = id(coro) + LAYOUT["gen.gi_iframe"]
    unit = word(frame + LAYOUT["frame.instr_ptr"]) + 2
    return ctypes.c_uint8.from_address(unit).value, ctypes.c_uint8.from_address(unit + 1).value


@types.coroutine
def plain_yield():
    yield  # a generator parked at a bare yield: suspended, awaiting nothing


async def inner(fut):
    await fut


async def outer(fut):
    await inner(fut)


async def awaits_task(task):
    await task


async def main():
    report = {"version": list(sys.version_info[:2])}
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    fut = loop.create_future()
    coro = outer(fut)
    task = asyncio.create_task(coro, name="probe-task")
    waiter = asyncio.create_task(awaits_task(task), name="probe-waiter")
    parked = plain_yield()
    parked.send(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)

    size = type(task).__basicsize__
    report["task"] = {
        "size": size,
        "loop": where(task, loop, size),
        "coro": where(task, coro, size),
        "name": where(task, task.get_name(), size),
        "fut_waiter": where(task, task._fut_waiter, size),
    }
    report["frame_state"] = {
        "awaiting": byte(id(coro) + LAYOUT["gen.gi_frame_state"]),
        "plain_yield": byte(id(parked) + LAYOUT["gen.gi_frame_state"]),
    }
    inner_coro = coro.cr_await
    report["stack_top_is_awaited"] = stack_top(coro) == id(inner_coro)
    if sys.version_info < (3, 13):
        report["next_instruction"] = {
            "awaiting": next_instruction(coro),
            "plain_yield": next_instruction(parked),
        }

    tstate = ctypes.pythonapi.PyThreadState_Get()
    if "tstate.dict" in LAYOUT:
        tsdict_addr = word(tstate + LAYOUT["tstate.dict"])
        report["tstate_dict_found"] = tsdict_addr == ctypes.pythonapi.PyThreadState_GetDict()
        held = ctypes.cast(tsdict_addr, ctypes.py_object).value.get(RUNNING_LOOP_KEY)
        report["running_loop_entry"] = "loop" if held is loop else where(held, loop, type(held).__basicsize__)
    if "tstate.asyncio_running_loop" in LAYOUT:
        report["tstate_running_loop"] = word(tstate + LAYOUT["tstate.asyncio_running_loop"]) == id(loop)
    if "tstate.asyncio_running_task" in LAYOUT:
        report["tstate_running_task"] = word(tstate + LAYOUT["tstate.asyncio_running_task"]) == id(me)
    import asyncio.tasks as tasks_module

    current = getattr(tasks_module, "_current_tasks", None)
    report["current_tasks_dict"] = isinstance(current, dict) and current.get(loop) is me
    c_module = sys.modules.get("_asyncio")
    report["current_tasks_is_c_modules"] = current is getattr(c_module, "_current_tasks", object())

    if "task.awaited_by" in LAYOUT:
        report["awaited_by"] = word(id(task) + LAYOUT["task.awaited_by"]) == id(waiter)
        report["awaited_by_is_set"] = byte(id(task) + LAYOUT["task.awaited_by_is_set"])
        report["is_task"] = byte(id(task) + LAYOUT["task.is_task"])
        # The thread's list of tasks: llist nodes at task.node, the head in the thread state.
        head = tstate + LAYOUT["tstate.asyncio_tasks_head"]
        seen, node = set(), word(head)
        while node != head and len(seen) < 1000:
            seen.add(node - LAYOUT["task.node"])
            node = word(node)
        report["thread_task_list"] = sorted(seen) == sorted(id(t) for t in (me, task, waiter))

    py_task = tasks_module._PyTask(asyncio.sleep(0), name="pure-python")
    report["py_task_attrs"] = sorted(k for k in vars(py_task) if k in ("_coro", "_name", "_fut_waiter", "_loop"))
    await asyncio.sleep(0)

    print(json.dumps(report), flush=True)
    fut.set_result(None)
    await waiter


asyncio.run(main())
