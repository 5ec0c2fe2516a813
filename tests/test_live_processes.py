"""The live stream's subprocesses (sampler/live_processes.py), without a target: the reader
keeps each process's own profile, the run's merged one, and the main one's, whatever the order
the processes' deltas interleave in; malformed process messages are refused."""

from __future__ import annotations

import json

import pytest

from sampler.errors import LiveStreamError
from sampler.live import LiveProfileReader
from sampler.model import Frame, Profile, ThreadSample

MAIN, CHILD, OTHER = 100, 200, 300


def _start() -> str:
    return json.dumps({"type": "start", "pid": MAIN, "python_version": "3.12.1", "mode": "wall", "all_threads": False,
                       "interval_usec": 1000, "cwd": None, "argv": ["python", "main.py"], "start_time": 1.0})


def _delta(profile: Profile, since, pid: int | None = None) -> tuple[str, object]:
    change = profile.delta_since(since)
    message = {"type": "delta", "frames": [list(f) for f in change.frames],
               "stacks": [[tid, list(ids), w] for (tid, ids), w in change.stacks.items()],
               "status": [], "threads": {}, "stats": {"samples": profile.total_weight, "attempts": 0, "errors": 0,
                                                      "elapsed_s": 0.5}}
    if pid is not None:
        message["pid"] = pid
    return json.dumps(message), profile.mark()


def _add(profile: Profile, *stacks: tuple[Frame, ...], tid: int = 1) -> None:
    for frames in stacks:
        profile.add(ThreadSample(tid, 0, frames))


def _funcs(profile: Profile) -> dict[str, int]:
    out: dict[str, int] = {}
    for _tid, frames, weight in profile.iter_stacks():
        out[frames[0].funcname] = out.get(frames[0].funcname, 0) + weight
    return out


def test_each_process_alone_and_all_merged():
    main, child, other = Profile(), Profile(), Profile()
    shared = Frame("/x/lib.py", "shared", 3)
    m_work, c_work, o_work = Frame("/x/m.py", "main_work", 5), Frame("/x/c.py", "child_work", 8), \
        Frame("/x/o.py", "other_work", 2)
    reader = LiveProfileReader()
    reader.feed(_start())
    marks = {}
    _add(main, (m_work, shared), (m_work, shared))
    line, marks["main"] = _delta(main, None)
    reader.feed(line)
    assert reader.family.main is None and reader.family.profile_of(MAIN) is reader.profile  # one process so far

    reader.feed(json.dumps({"type": "process", "pid": CHILD, "argv": ["python", "c.py"], "python_version": "3.12.1"}))
    _add(child, (c_work, shared), (shared,), (c_work,))
    line, marks["child"] = _delta(child, None, CHILD)
    reader.feed(line)
    reader.feed(json.dumps({"type": "process", "pid": OTHER, "argv": ["python", "o.py"], "python_version": "3.9.18"}))
    _add(main, (m_work,))
    line, marks["main"] = _delta(main, marks["main"])
    reader.feed(line)
    _add(other, (o_work,), (o_work, shared))
    line, marks["other"] = _delta(other, None, OTHER)
    reader.feed(line)
    _add(child, (c_work, shared))
    line, marks["child"] = _delta(child, marks["child"], CHILD)
    reader.feed(line)

    family = reader.family
    assert _funcs(family.profile_of(MAIN)) == _funcs(main) == {"main_work": 3}
    assert _funcs(family.profile_of(CHILD)) == _funcs(child) == {"child_work": 3, "shared": 1}
    assert _funcs(family.profile_of(OTHER)) == _funcs(other) == {"other_work": 2}
    assert _funcs(reader.profile) == {"main_work": 3, "child_work": 3, "shared": 1, "other_work": 2}
    assert reader.profile.total_weight == main.total_weight + child.total_weight + other.total_weight
    assert family.children[CHILD].samples == child.total_weight and family.children[CHILD].live

    reader.feed(json.dumps({"type": "process_end", "pid": CHILD, "samples": 4, "output": "/o/out_200.txt",
                            "note": None, "dropped": False}))
    reader.feed(json.dumps({"type": "process_end", "pid": OTHER, "samples": 0, "output": None, "note": None,
                            "dropped": True}))
    assert family.children[CHILD].output == "/o/out_200.txt" and not family.children[CHILD].live
    assert OTHER not in family.children  # it exec'd another program: no process of its own any more


@pytest.mark.parametrize("message", [
    {"type": "process", "pid": MAIN, "argv": [], "python_version": "3.12.1"},  # the main process itself
    {"type": "process", "pid": "200", "argv": [], "python_version": "3.12.1"},
    {"type": "process", "pid": CHILD, "argv": "python c.py", "python_version": "3.12.1"},
    {"type": "delta", "pid": 999, "frames": [], "stacks": [], "status": [], "threads": {},
     "stats": {"samples": 0, "attempts": 0, "errors": 0, "elapsed_s": 0}},  # never announced
    {"type": "process_end", "pid": 999, "samples": 0, "output": None, "note": None, "dropped": False},
])
def test_malformed_process_messages_are_refused(message):
    reader = LiveProfileReader()
    reader.feed(_start())
    with pytest.raises(LiveStreamError):
        reader.feed(json.dumps(message))
    assert reader.family.children == {}
