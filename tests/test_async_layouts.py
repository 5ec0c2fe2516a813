"""The asyncio data in sampler/cpython (versions.ASYNCIO_TRAITS, the asyncio keys of the generated
layouts, debug_offsets' AsyncioDebug parser) against every CPython 3.11+ here: a real asyncio
program measures itself at those offsets (tests/targets/async_layout_probe.py) and the 3.14+
interpreters' own `.AsyncioDebug` tables are read from their ELF files."""

from __future__ import annotations

import json
import subprocess

import pytest

import sid_root
from conftest import target
from sampler.cpython import debug_offsets as dbg
from sampler.cpython.static_layouts import STATIC_LAYOUTS
from sampler.cpython.versions import ASYNCIO_DEBUG_FIELD_MAP, ASYNCIO_TRAITS, asyncio_layout
from sampler.target.elf import ElfFile

# The generated-layout keys the probe reads (those a version lacks are left out).
PROBE_KEYS = (
    "gen.gi_iframe",
    "gen.gi_frame_state",
    "frame.stackpointer",
    "frame.stacktop",
    "frame.localsplus",
    "frame.instr_ptr",
    "tstate.dict",
    "tstate.asyncio_running_loop",
    "tstate.asyncio_running_task",
    "tstate.asyncio_tasks_head",
)
# RESUME in 3.11 and 3.12. A reader must also take 3.11's quickened RESUME_QUICK (same oparg);
# the probe's coroutines run once, too few times to be quickened.
RESUME_311 = (151,)


def _minor(interpreter) -> tuple[int, int]:
    out = subprocess.run(
        interpreter.python("-c", "import sys; print(*sys.version_info[:2])"),
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


def _asyncio_image(interpreter) -> str:
    """The host path of the ELF image `_asyncio` lives in: its extension module, or the
    interpreter itself when the module is built in."""
    code = "import _asyncio, os, sys; print(getattr(_asyncio, '__file__', None) or os.path.realpath(sys.executable))"
    inside = subprocess.run(
        interpreter.python("-c", code), capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    return sid_root.host_path(inside) if interpreter.rooted else inside


def _asyncio_debug_bytes(path: str) -> bytes | None:
    elf = ElfFile(path)
    try:
        section = elf.sections.get(dbg.ASYNCIO_SECTION)
        if section is None:
            return None
        with open(path, "rb") as fh:
            fh.seek(section.offset)
            return fh.read(section.size)
    finally:
        elf.close()


@pytest.fixture
def minor(interpreter):
    version = _minor(interpreter)
    if version not in ASYNCIO_TRAITS:
        pytest.skip(f"{interpreter.label}: no asyncio data for {version[0]}.{version[1]} (3.11+ only)")
    return version


def _debug_fields(interpreter, minor):
    raw = _asyncio_debug_bytes(_asyncio_image(interpreter))
    if minor < (3, 14):
        assert raw is None, f"{interpreter.label} has an AsyncioDebug section: use it"
        return None
    assert raw is not None, f"{interpreter.label}: no {dbg.ASYNCIO_SECTION} section in {_asyncio_image(interpreter)}"
    return dbg.parse_asyncio_debug_offsets(raw)


def test_asyncio_debug_table_agrees_with_the_headers(interpreter, minor):
    """The thread- and interpreter-state offsets in a 3.14+ `.AsyncioDebug` are the ones the
    generated tables measured from the same minor's headers (the sid root's -dev packages)."""
    fields = _debug_fields(interpreter, minor)
    if fields is None:
        pytest.skip(f"{minor} has no AsyncioDebug table")
    table = STATIC_LAYOUTS[minor]
    for src, key in ASYNCIO_DEBUG_FIELD_MAP.items():
        if key.startswith(("tstate.", "interp.")):
            assert fields[src] == table[key], f"{src}={fields[src]}, headers say {key}={table[key]}"
    traits = ASYNCIO_TRAITS[minor]
    assert fields["asyncio_task_object.size"] == traits.task["size"]
    assert fields["asyncio_task_object.task_coro"] == traits.task["coro"]
    assert fields["asyncio_task_object.task_name"] == traits.task["name"]


def test_asyncio_offsets_hold_in_a_live_program(interpreter, minor):
    layout = {key: STATIC_LAYOUTS[minor][key] for key in PROBE_KEYS if key in STATIC_LAYOUTS[minor]}
    layout.update(asyncio_layout(minor, _debug_fields(interpreter, minor)))
    traits = ASYNCIO_TRAITS[minor]
    layout["awaitable_depth"] = traits.awaitable_depth
    ran = subprocess.run(
        interpreter.command(target("async_layout_probe.py"), json.dumps(layout)),
        capture_output=True, text=True, timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert tuple(report["version"]) == minor

    task = traits.task
    assert report["task"] == {
        "size": task["size"],
        "loop": [task["loop"]],
        "coro": [layout["task.coro"]],
        "name": [layout["task.name"]],
        "fut_waiter": [task["fut_waiter"]],
    }
    states = report["frame_state"]
    assert states["awaiting"] in traits.suspended_states and states["plain_yield"] in traits.suspended_states
    if traits.awaiting_state is None:
        # One suspended state for both: the RESUME after the stop point says which (oparg >= 2
        # after an await, 1 after a plain yield).
        opcode, oparg = report["next_instruction"]["awaiting"]
        assert opcode in RESUME_311 and oparg >= 2
        opcode, oparg = report["next_instruction"]["plain_yield"]
        assert opcode in RESUME_311 and oparg < 2
    else:
        assert states["awaiting"] == traits.awaiting_state != states["plain_yield"]
    assert report["stack_top_is_awaited"], "the awaited coroutine is not where the traits say"

    if traits.running_loop == "tstate.dict":
        assert report["tstate_dict_found"]
        expected = [traits.loop_holder_loop] if traits.loop_holder_loop is not None else "loop"
        assert report["running_loop_entry"] == expected
    else:
        assert report["tstate_running_loop"]
    if traits.current_task == "current_tasks":
        assert report["current_tasks_dict"] and report["current_tasks_is_c_modules"]
    else:
        assert report["tstate_running_task"]
        assert report["awaited_by"] and report["awaited_by_is_set"] == 0 and report["is_task"] == 1
        assert report["thread_task_list"], "the thread's task list does not hold exactly its tasks"
    # asyncio.tasks._PyTask (pure-Python tasks) keeps what a reader needs in its instance dict.
    assert report["py_task_attrs"] == ["_coro", "_fut_waiter", "_loop", "_name"]


# Run in the interpreter under test with the offsets as argv[1]: reads its own objects at them.
_CONTAINERS_PROBE = """
import asyncio, ctypes, json, sys, weakref
L = json.loads(sys.argv[1])
at = lambda addr: ctypes.c_void_p.from_address(addr).value or 0
size = lambda addr: ctypes.c_ssize_t.from_address(addr).value
def first(fut): pass
def second(fut): pass
async def idle(): pass
loop = asyncio.new_event_loop()
task = loop.create_task(idle())
task.add_done_callback(first)
task.add_done_callback(second)
seen = {}
seen["callback0"] = at(id(task) + L["task.callback0"]) == id(first)
callbacks = at(id(task) + L["task.callbacks"])
seen["callbacks"] = size(callbacks + L["list.ob_size"]) == 1
pair = at(at(callbacks + L["list.ob_item"]))
seen["pair"] = size(pair + L["tuple.ob_size"]) == 2 and at(pair + L["tuple.ob_item"]) == id(second)
group = asyncio.TaskGroup()  # a TaskGroup's done callback is such a bound method
bound = group._on_task_done
seen["im_self"] = at(id(bound) + L["method.im_self"]) == id(group)
ref = weakref.ref(task)
seen["wr_object"] = at(id(ref) + L["weakref.wr_object"]) == id(task)
seen["tp_base"] = at(id(bool) + L["type.tp_base"]) == id(int)
task.cancel(); loop.run_until_complete(asyncio.sleep(0)); loop.close()
print(json.dumps(seen))
"""
CONTAINER_KEYS = ("list.ob_size", "list.ob_item", "tuple.ob_size", "tuple.ob_item", "method.im_self",
                  "weakref.wr_object", "type.tp_base")


def test_future_callbacks_and_containers_where_the_tables_say(interpreter, minor):
    """What the 3.11-3.13 awaiter derivation reads besides the task (a future's done callbacks,
    lists, tuples, bound methods, weak references, base types), at the offsets ASYNCIO_TRAITS and
    the generated layouts give, in a live program of each version."""
    layout = {key: STATIC_LAYOUTS[minor][key] for key in CONTAINER_KEYS}
    layout.update({f"task.{k}": ASYNCIO_TRAITS[minor].task[k] for k in ("callback0", "callbacks")})
    ran = subprocess.run(interpreter.python("-c", _CONTAINERS_PROBE, json.dumps(layout)), capture_output=True,
                         text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    seen = json.loads(ran.stdout.strip().splitlines()[-1])
    assert seen == dict.fromkeys(seen, True) and len(seen) == 6, seen


def test_asyncio_debug_parser_refuses_bad_tables():
    good = [168, 136, 96, 108, 109, 128, 152, 225864, 10880, 936, 864, 872, 880]
    raw = b"".join(v.to_bytes(8, "little") for v in good)
    assert dbg.parse_asyncio_debug_offsets(raw)["asyncio_task_object.task_coro"] == 128
    with pytest.raises(ValueError, match="bytes"):
        dbg.parse_asyncio_debug_offsets(raw[:-8])
    for index, value, words in ((5, 130, "misaligned"), (5, 168, "outside"), (1, 8, "header"), (9, 8, "between")):
        bad = list(good)
        bad[index] = value
        with pytest.raises(ValueError, match=words):
            dbg.parse_asyncio_debug_offsets(b"".join(v.to_bytes(8, "little") for v in bad))


def test_every_supported_minor_from_311_has_asyncio_traits():
    assert sorted(ASYNCIO_TRAITS) == [(3, m) for m in range(11, 16)]
    for version, traits in ASYNCIO_TRAITS.items():
        assert traits.running_loop in ("tstate.dict", "tstate.asyncio_running_loop")
        assert traits.running_loop in STATIC_LAYOUTS[version], f"{version}: {traits.running_loop} not generated"
        if traits.current_task.startswith("tstate."):
            assert traits.current_task in STATIC_LAYOUTS[version]
