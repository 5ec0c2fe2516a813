"""The native sampling core on its own: built, samples real targets, runs its timed loop.

The differential suite (test_native_walker.py) compares it with the pure-Python walker on frozen
targets; these tests check what only the native core has (`run` batches, interning, the config
it is handed) and that it names the functions live targets are known to run.
"""

from __future__ import annotations

import glob
import os
import signal
import sys
import time

import pytest

import sid_root
from conftest import Interpreter, start_ready, target, wait_ready
from sampler.cpython import native
from sampler.errors import ProcessGoneError, ProcessNotFoundError, ReadError
from sampler.model import MAIN_THREAD, ON_CPU, ThreadSample

DEADLINE_S = 30.0  # generous: a loaded machine still gets a good sample in far less


def _host() -> Interpreter:
    return Interpreter("current", sys.executable)


def _old() -> Interpreter | None:
    for minor in ("3.9", "3.10"):
        found = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{minor}.*/bin/python{minor}")))
        if found:
            return Interpreter(f"pyenv-{minor}", found[0])
    return None


def _sid_315() -> Interpreter | None:
    if sid_root.unavailable_reason() is not None:
        return None
    return Interpreter("sid-3.15", "/usr/bin/python3.15", rooted=True)


def _params() -> list:
    params = [pytest.param(_host(), id="host")]
    for label, interp in (("3.9/3.10", _old()), ("sid-3.15", _sid_315())):
        marks = [] if interp else [pytest.mark.skip(reason=f"no {label} CPython on this machine")]
        params.append(pytest.param(interp, id=label, marks=marks))
    return params


def _all_stopped(pid: int) -> bool:
    states = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
            data = fh.read()
        states.append(data[data.rfind(b")") + 2 : data.rfind(b")") + 3])
    return bool(states) and all(s in (b"t", b"T") for s in states)


def _main_sample(walker: native.NativeUnwinder, wanted: str) -> ThreadSample:
    """The first sample whose main thread is in `wanted` (a running target may tear a copy)."""
    deadline = time.monotonic() + DEADLINE_S
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            samples = walker.sample()
        except ReadError:
            continue
        for s in samples:
            if s.status & MAIN_THREAD and s.frames and s.frames[0].funcname == wanted:
                return s
            seen = [f.funcname for f in s.frames]
    raise AssertionError(f"no sample in {wanted}; last stack seen: {seen}")


def test_native_core_is_built():
    ok, reason = native.native_status()
    assert ok, f"the C extension must be built in the test environment: {reason}"
    assert reason == ""


@pytest.mark.parametrize("interp", _params())
def test_sample_names_the_running_functions(spawn, interp):
    proc = start_ready(spawn, interp, target("known_lines.py"))
    walker = native.NativeUnwinder(proc.pid)
    try:
        sample = _main_sample(walker, "inner")
        names = [f.funcname for f in sample.frames]
        assert names[:2] == ["inner", "main"], names
        assert names[-1] == "<module>", names
        assert all(f.filename.endswith("known_lines.py") for f in sample.frames[:2])
        assert sample.frames[0].lineno in (7, 8), sample.frames[0]  # the loop or its body
        assert sample.thread_id > 0
    finally:
        walker.close()


def test_all_threads_and_repeated_stacks_are_shared(spawn):
    proc = spawn(sys.executable, target("threads.py"))
    wait_ready(proc)
    walker = native.NativeUnwinder(proc.pid, all_threads=True)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            assert time.monotonic() < deadline, "never saw the eight workers"
            try:
                samples = walker.sample()
            except ReadError:
                continue
            workers = {f.funcname for s in samples for f in s.frames if f.funcname.startswith("worker_")}
            if len(workers) == 8:
                break
        assert len({s.thread_id for s in samples}) == len(samples) == 9
        assert sum(1 for s in samples if s.status & MAIN_THREAD) == 1
        # A stack met again is the same object: interned in C, resolved once in Python. Frozen,
        # so that every thread is met at the very same instruction.
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while not _all_stopped(proc.pid):
                assert time.monotonic() < deadline, "the target never stopped"
                time.sleep(0.001)
            # Outside cpu mode a thread's CPU state is refreshed at most once a millisecond: until
            # every thread has been seen stopped since the freeze, statuses may still change.
            first = walker.sample()
            while any(s.status & ON_CPU for s in first):
                assert time.monotonic() < deadline, "a stopped thread kept reading as on CPU"
                first = walker.sample()
            for _ in range(50):
                again = walker.sample()
                assert len(again) == len(first)
                assert all(a is b for a, b in zip(again, first))
        finally:
            os.kill(proc.pid, signal.SIGCONT)
    finally:
        walker.close()


def test_run_honours_max_ticks_and_stop(spawn):
    proc = start_ready(spawn, _host(), target("known_lines.py"))
    walker = native.NativeUnwinder(proc.pid)
    try:
        start = time.monotonic_ns()
        batch = walker.run(start, 1_000_000, start + int(DEADLINE_S * 1e9), 5)
        assert not batch.gone
        assert len(batch.ticks) == batch.attempts - batch.errors
        if not batch.errors:  # a failed tick ends a batch early, by contract
            assert len(batch.ticks) == 5
        stamps = [t for t, _ in batch.ticks]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert all(t >= start // 1000 for t in stamps)
        for _, samples in batch.ticks:
            assert all(isinstance(s, ThreadSample) for s in samples)
        if batch.ticks:
            assert batch.cost_min_ns <= batch.cost_max_ns <= batch.cost_total_ns

        # stop_ns ends a batch however many ticks are allowed; the schedule carries over
        start = time.monotonic_ns()
        stop = start + 20_000_000
        total = 0
        next_tick = start
        while time.monotonic_ns() < stop:
            batch = walker.run(next_tick, 1_000_000, stop, 10**9)
            assert batch.next_tick_ns >= next_tick
            next_tick = batch.next_tick_ns
            total += len(batch.ticks)
            assert all(t <= time.monotonic_ns() // 1000 for t, _ in batch.ticks)
        assert time.monotonic_ns() >= stop
        assert total >= 1
    finally:
        walker.close()


def test_run_reports_the_target_gone(spawn):
    proc = spawn(sys.executable, target("announce.py"), target("exits_mid_run.py"), "0.3")
    wait_ready(proc)
    walker = native.NativeUnwinder(proc.pid)
    try:
        deadline = time.monotonic() + DEADLINE_S
        good = 0
        while True:
            assert time.monotonic() < deadline, "run never reported the target gone"
            now = time.monotonic_ns()
            batch = walker.run(now, 1_000_000, now + 50_000_000, 10**9)
            good += len(batch.ticks)
            if batch.gone:
                break
            if batch.errors and not walker.alive():
                pytest.fail("the target is gone but run() called it a failed tick, not gone")
        assert good > 0
        with pytest.raises(ProcessGoneError):
            walker.sample()
    finally:
        walker.close()


def test_bad_config_is_a_clean_error(spawn):
    from sampler import _native

    proc = start_ready(spawn, _host(), target("known_lines.py"))
    walker = native.NativeUnwinder(proc.pid)
    try:
        good = native.build_config(walker._py, all_threads=False, mode="wall", gc=True)
        args = (lambda a: 1, lambda k: None, lambda w: -1, lambda k: None, [])
        for key, value in (("tstate.size", -8), ("frame.code", 1 << 20), ("mode", 9), ("max_chunks", 0)):
            cfg = dict(good, **{key: value})
            with pytest.raises(ValueError, match="bad native walker config"):
                _native.Walker(proc.pid, cfg, *args)
        cfg = dict(good)
        del cfg["tstate.interp"]
        with pytest.raises(KeyError, match="tstate.interp"):
            _native.Walker(proc.pid, cfg, *args)
        with pytest.raises(ValueError, match="pid"):
            _native.Walker(proc.pid + 1, good, *args)
    finally:
        walker.close()
    with pytest.raises(ValueError, match="unknown mode"):
        native.NativeUnwinder(proc.pid, mode="sometimes")
    proc.kill()
    proc.wait()
    with pytest.raises(ProcessNotFoundError):
        native.NativeUnwinder(proc.pid)


def test_closed_walker_refuses(spawn):
    proc = start_ready(spawn, _host(), target("known_lines.py"))
    walker = native.NativeUnwinder(proc.pid)
    walker.close()
    with pytest.raises(RuntimeError, match="closed"):
        walker.sample()
