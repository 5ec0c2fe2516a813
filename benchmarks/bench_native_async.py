#!/usr/bin/env python3
"""`--async-mode running` through the native core: its cost per sample beside the pure-Python
walker's and Tachyon's (issue 15).

Targets: `tests/targets/async_split.py` (two worker tasks under a supervisor, switching all the
time: the running task has awaiters with coroutine chains of their own) and
`tests/targets/async_tree.py` (a still task tree; the main task spins). A fresh target per
interpreter and script.

In this process, paced at a requested 1 kHz for D seconds (bench_async.paced: CPU per sample by
`time.thread_time`, so other load does not count), on the same target one after the other:

- pure: `Unwinder(pid, async_mode="running").sample()`, the reference;
- native: `NativeUnwinder(pid, async_mode="running").sample()`, the walk and the cut in C, the
  awaiter frames from the reference's `AsyncStacks`, reused by C on 3.14+ while the bytes they
  were made from read the same (see sampler/cpython/native.py, docs/internals.md);
- native plain: `NativeUnwinder(pid).sample()`, the stacks without tasks, for what the walk
  alone costs.

Tachyon (the sid root's 3.15 only): bench_async.py's inside mode, run in the target's mount
namespace and root, paces `_remote_debugging.RemoteUnwinder(pid, cache_frames=True)
.get_async_stack_trace()` followed by Tachyon's `iter_async_frames` (its stacks, as heatline's
figure includes building its own) on the same script.

    python benchmarks/bench_native_async.py [--python 3.12 --python sid:3.15] [--duration 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("async_split.py", "async_tree.py")
DEFAULT_PYTHONS = ("3.11", "3.12", "3.13", "sid:3.14", "sid:3.15")


def heatline_figures(pid: int, seconds: float) -> dict:
    """`bench_async.paced` figures of the pure and native running-mode samples, and plain native."""
    sys.path.insert(0, str(HERE.parent))
    from bench_async import paced

    from sampler.cpython.native import NativeUnwinder
    from sampler.cpython.unwinder import Unwinder

    walkers = {"pure": Unwinder(pid, async_mode="running"),
               "native": NativeUnwinder(pid, async_mode="running"),
               "native plain": NativeUnwinder(pid)}
    try:
        return {name: paced(w.sample, seconds) for name, w in walkers.items()}
    finally:
        for w in walkers.values():
            w.close()


def tachyon_figures(python, script: Path, seconds: float, notes: list[str]) -> dict | None:
    import bench_sampler as bs
    import benchcommon as bc

    if (reason := bs.tachyon_unavailable_reason()) is not None:
        notes.append("Tachyon: " + bc.na(reason))
        return None
    target = bc.start_target(python, script)
    try:
        inside = bs.sid_root().path_in_root(str(HERE / "bench_async.py"))
        argv = ["nsenter", "-t", str(target.pid), "-m", "-r", "-w", "/usr/bin/python3.15", inside,
                "--tachyon-inside", str(target.pid), "--duration", str(seconds)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60 + 10 * seconds)
    finally:
        target.close()
    if done.returncode != 0:
        notes.append("Tachyon: " + bc.na(bc.last_line(done.stderr)))
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["running"]


def measure(spec: str, seconds: float) -> None:
    import benchcommon as bc

    python, why = bc.interpreter(spec)
    if python is None:
        print(f"{spec}: {bc.na(why)}\n")
        return
    table = bc.Table(f"--async-mode running, CPU per sample at a requested 1 kHz ({python.version}, {python.label})",
                     ["target", "pure ms", "native ms", "pure/native", "native plain ms", "failed pure/native",
                      "Tachyon ms", "native/Tachyon"])
    for name in SCRIPTS:
        script = HERE.parent / "tests" / "targets" / name
        target = bc.start_target(python, script)
        try:
            h = heatline_figures(target.pid, seconds)
        finally:
            target.close()
        t = None
        if python.tachyon_here:
            t = tachyon_figures(python, script, seconds, table.notes)
        pure, native = h["pure"]["cpu_ms"], h["native"]["cpu_ms"]
        table.add(name, bc.fmt(pure, ".3f"), bc.fmt(native, ".3f"), bc.ratio(pure, native),
                  bc.fmt(h["native plain"]["cpu_ms"], ".3f"), f"{h['pure']['failed']}/{h['native']['failed']}",
                  bc.fmt(t and t["cpu_ms"], ".3f"), bc.ratio(native, t["cpu_ms"]) if t else "")
        bc.key(f"native async {python.short_version} {name}: native {native:.3f} ms/sample, pure {pure:.3f} ms "
               f"(pure/native {bc.ratio(pure, native)})"
               + (f", Tachyon {t['cpu_ms']:.3f} ms (native/Tachyon {bc.ratio(native, t['cpu_ms'])})" if t else ""))
    bc.note_without_tachyon(table, python)
    table.notes.append(f"each walker paced for {seconds:g} s on the same target; CPU: the sampling thread's own "
                       "(time.thread_time)")
    table.print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    import benchcommon as bc

    bc.python_option(parser, DEFAULT_PYTHONS)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per walker (default 3)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    import benchcommon as bc

    def body(work) -> None:
        for spec in args.python or DEFAULT_PYTHONS:
            measure(spec, args.duration)
        print("\n".join(bc.KEY_FIGURES))

    return bc.guarded(body)


if __name__ == "__main__":
    sys.exit(main())
