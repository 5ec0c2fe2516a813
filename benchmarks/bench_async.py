#!/usr/bin/env python3
"""Thousands of asyncio tasks: the cost of one `--async-aware` sample at 1k and 10k tasks (issue 15).

Target: `tests/targets/async_many.py N`: N idle tasks, each parked three coroutines deep (half on a
future never resolved, half in an hour-long `asyncio.sleep`), and one task named "busy" on the
CPU, awaited by the main task. A fresh target per interpreter and task count.

heatline is measured in this process, its reader imported from this repository, the way its
sampler calls it, paced at a requested 1 kHz for D seconds (a sample that takes longer delays the
next one, as in the sampling loop):

- plain: `Unwinder(pid).sample()`, the stacks without tasks, for reference;
- running: `Unwinder(pid, async_mode="running").sample()` (before 3.14 its awaiter derivation
  over every task is made afresh every so often: pacing at 1 kHz spreads it as sampling does);
- all: `Unwinder(pid, async_mode="all").sample()` once the unwinder builds `--async-mode all`
  samples itself, else the reading that mode is made of, `AsyncStacks(mode="all").task_stacks()`
  (the table says which).

Per sample: the CPU it took (`time.thread_time`, so other load on the machine does not count),
the mean over the run, and the longest single sample (wall time: the bound the issue asks about).

Tachyon (the sid root's 3.15 only): this script runs inside the target's mount namespace and root
(`nsenter -t PID -m -r`, as bench_sampler.py runs Tachyon) under python3.15, where it paces
`_remote_debugging.RemoteUnwinder(pid, cache_frames=True)` the same way: `get_stack_trace()`
(plain), `get_async_stack_trace()` (running) and `get_all_awaited_by()` (all), each followed by
Tachyon's own `collector.iter_async_frames` for the async modes (its stacks, as heatline's
figure includes building its own). Ratios are heatline / Tachyon, CPU per sample. The last
column is Tachyon's reading alone (its C part, without building the stacks).

    python benchmarks/bench_async.py [--tasks 1000 --tasks 10000] [--python 3.12 --python sid:3.15] [--duration 3]

Default interpreters: every CPython 3.11-3.13 on the host and the sid root's 3.14 and 3.15.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "tests" / "targets" / "async_many.py"
RATE_HZ = 1000
MODES = ("plain", "running", "all")
DEFAULT_PYTHONS = ("3.11", "3.12", "3.13", "sid:3.14", "sid:3.15")
INSIDE = "--tachyon-inside"  # this script, run inside the root: time Tachyon on PID


def paced(call, seconds: float, rate_hz: int = RATE_HZ, min_samples: int = 3) -> dict:
    """`call()` at a requested `rate_hz` for `seconds` (and at least `min_samples` times):
    samples, failed ones, mean CPU per sample in ms, longest sample's wall time in ms."""
    interval = 1.0 / rate_hz
    cpu = 0.0
    longest = 0.0
    n = failed = 0
    start = next_at = time.monotonic()
    while n < min_samples or time.monotonic() - start < seconds:
        wall0, cpu0 = time.monotonic(), time.thread_time()
        try:
            call()
        except Exception:  # a torn reading: counted, as the sampler counts an error
            failed += 1
        cpu += time.thread_time() - cpu0
        longest = max(longest, time.monotonic() - wall0)
        n += 1
        next_at = max(next_at + interval, time.monotonic())
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return {"samples": n, "failed": failed, "cpu_ms": 1e3 * cpu / n, "max_ms": 1e3 * longest}


# -- Tachyon, inside the root ----------------------------------------------------------------------


def tachyon_inside(pid: int, seconds: float) -> None:
    """(Runs under the root's python3.15.) One JSON line: `paced` figures per mode."""
    import _remote_debugging
    from profiling.sampling.collector import iter_async_frames

    unwinder = _remote_debugging.RemoteUnwinder(pid, cache_frames=True)
    calls = {
        "plain": unwinder.get_stack_trace,
        "running": lambda: list(iter_async_frames(unwinder.get_async_stack_trace())),
        "all": lambda: list(iter_async_frames(unwinder.get_all_awaited_by())),
        "running read": unwinder.get_async_stack_trace,
        "all read": unwinder.get_all_awaited_by,
    }
    print(json.dumps({mode: paced(call, seconds) for mode, call in calls.items()}), flush=True)


# -- heatline, in this process ---------------------------------------------------------------------


def heatline_calls(pid: int):
    """{mode: a zero-argument sample call}, and whether `all` is the unwinder's own sample."""
    sys.path.insert(0, str(HERE.parent))
    import inspect

    from sampler.cpython import unwinder as unwinder_module
    from sampler.cpython.async_stacks import AsyncStacks

    plain = unwinder_module.Unwinder(pid)
    running = unwinder_module.Unwinder(pid, async_mode="running")
    wired = "task_stacks" in inspect.getsource(unwinder_module)
    if wired:
        all_call = unwinder_module.Unwinder(pid, async_mode="all").sample
    else:
        stacks = AsyncStacks(pid, plain.memory, plain.runtime, "all")
        all_call = stacks.task_stacks
    return {"plain": plain.sample, "running": running.sample, "all": all_call}, wired


def check_reads(calls: dict) -> str | None:
    """Why heatline cannot read this target's tasks (its first `all` reading fails), or None."""
    try:
        calls["all"]()
    except Exception as exc:  # shown in the table
        return f"{type(exc).__name__}: {exc}"
    return None


def measure(spec: str, tasks: int, seconds: float, scratch) -> None:
    import bench_sampler as bs
    import benchcommon as bc

    python, why = bc.interpreter(spec)
    if python is None:
        print(f"{spec}, {tasks:,} tasks: {bc.na(why)}\n")
        return
    table = bc.Table(f"{tasks:,} idle tasks + 1 busy, cost per sample at a requested {RATE_HZ} Hz "
                     f"({python.version}, {python.label})",
                     ["mode", "heatline CPU ms", "longest ms", "samples", "failed",
                      "Tachyon CPU ms", "longest ms", "heatline/Tachyon", "Tachyon read only"])
    heat: dict = {}
    tach: dict = {}
    target = bc.start_target(python, TARGET, [str(tasks)])
    try:
        calls, wired = heatline_calls(target.pid)
        problem = check_reads(calls)
        for mode in MODES:
            heat[mode] = paced(calls[mode], seconds)
    finally:
        target.close()
    if python.tachyon_here:
        if (reason := bs.tachyon_unavailable_reason()) is not None:
            table.notes.append("Tachyon: " + bc.na(reason))
        else:
            target = bc.start_target(python, TARGET, [str(tasks)])
            try:
                inside = bs.sid_root().path_in_root(str(Path(__file__).resolve()))
                argv = ["nsenter", "-t", str(target.pid), "-m", "-r", "-w", "/usr/bin/python3.15", inside,
                        INSIDE, str(target.pid), "--duration", str(seconds)]
                done = subprocess.run(argv, capture_output=True, text=True, timeout=60 + 10 * seconds)
                if done.returncode == 0:
                    tach = json.loads(done.stdout.strip().splitlines()[-1])
                else:
                    table.notes.append("Tachyon: " + bc.na(bc.last_line(done.stderr)))
            finally:
                target.close()
    else:
        table.notes.append(f"Tachyon: n/a (it attaches to 3.15 only; target {python.short_version})")
    for mode in MODES:
        h, t = heat[mode], tach.get(mode)
        table.add(mode if mode != "all" or wired else "all (task_stacks)",
                  bc.fmt(h["cpu_ms"], ".3f"), bc.fmt(h["max_ms"], ".1f"), h["samples"], h["failed"],
                  bc.fmt(t and t["cpu_ms"], ".3f"), bc.fmt(t and t["max_ms"], ".1f"),
                  bc.ratio(h["cpu_ms"], t["cpu_ms"]) if t else "",
                  bc.fmt(tach[f"{mode} read"]["cpu_ms"], ".3f") if f"{mode} read" in tach else "")
        if mode != "plain":
            bc.key(f"async {tasks:,} tasks, {python.short_version} {mode}: heatline {h['cpu_ms']:.2f} ms CPU/sample "
                   f"(longest {h['max_ms']:.0f} ms)" + (f", Tachyon {t['cpu_ms']:.2f} ms "
                                                        f"({bc.ratio(h['cpu_ms'], t['cpu_ms'])})" if t else ""))
    if problem:
        table.notes.append(f"heatline's first reading failed: {problem}")
    table.notes.append(f"each mode paced for {seconds:g} s on the same target; CPU: the reading thread's own "
                       "(time.thread_time); longest: one sample's wall time")
    table.print()


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, action="append", help="idle tasks in the target; repeatable "
                        "(default: 1000 and 10000)")
    # not benchcommon's python_option: the Tachyon side runs this file alone in the sid root
    parser.add_argument("--python", action="append", help="3.12 (host) or sid:3.15; repeatable "
                        f"(default: {' '.join(DEFAULT_PYTHONS)})")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per mode (default 3)")
    parser.add_argument(INSIDE, type=int, metavar="PID", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tachyon_inside:
        tachyon_inside(args.tachyon_inside, args.duration)
        return 0
    import benchcommon as bc

    def body(work) -> None:
        scratch = bc.Scratch(work)
        for tasks in args.tasks or [1000, 10000]:
            for spec in args.python or DEFAULT_PYTHONS:
                measure(spec, tasks, args.duration, scratch)
        print("\n".join(bc.KEY_FIGURES))

    return bc.guarded(body)


if __name__ == "__main__":
    sys.exit(main())
