#!/usr/bin/env python3
"""The cost of `--opcodes` and `--native` per sample: plain sampling beside each, the native core
beside the pure-Python walker, and beside Tachyon on 3.15 (issue 16).

Target: `tests/targets/diff_native.py` (five threads: an add loop and an attribute loop, a sort
calling a Python key from C, zlib over a large buffer, time.sleep, `cls()` over a generator), all
threads sampled. A fresh target per interpreter.

In this process, paced at a requested 1 kHz for D seconds each (bench_async.paced: CPU per sample
by `time.thread_time`, so other load does not count), one after the other on the same target,
for each setting (plain, --opcodes, --native, both):

- native: `NativeUnwinder(pid, all_threads=True, opcodes=..., native=...).sample()`;
- pure: `Unwinder(...)` with the same settings, the reference.

Tachyon (the sid root's 3.15 only): this script runs inside the target's mount namespace and root
under python3.15 and paces `_remote_debugging.RemoteUnwinder(pid, all_threads=True,
opcodes=..., native=..., cache_frames=True).get_stack_trace()` the same way (its C reading alone:
its Python collectors, which turn those frames into a profile, are not counted, while heatline's
figures include making its `ThreadSample`s).

    python benchmarks/bench_native_opcodes.py [--python 3.12 --python sid:3.15] [--duration 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parent / "tests" / "targets" / "diff_native.py"
DEFAULT_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "sid:3.14", "sid:3.15")
SETTINGS = {"plain": (False, False), "--opcodes": (True, False), "--native": (False, True), "both": (True, True)}
INSIDE = "--tachyon-inside"  # this script, run inside the root: time Tachyon on PID


def heatline_figures(pid: int, seconds: float) -> dict:
    """{setting: {"native": paced figures, "pure": paced figures}}."""
    sys.path.insert(0, str(HERE.parent))
    from bench_async import paced

    from sampler.cpython.native import NativeUnwinder
    from sampler.cpython.unwinder import Unwinder

    out: dict = {}
    for name, (opcodes, native) in SETTINGS.items():
        out[name] = {}
        for walker, make in (("native", NativeUnwinder), ("pure", Unwinder)):
            w = make(pid, all_threads=True, opcodes=opcodes, native=native)
            try:
                out[name][walker] = paced(w.sample, seconds)
            finally:
                w.close()
    return out


def tachyon_inside(pid: int, seconds: float) -> None:
    """(Runs under the root's python3.15.) One JSON line: `paced` figures per setting."""
    import _remote_debugging

    from bench_async import paced

    out = {}
    for name, (opcodes, native) in SETTINGS.items():
        unwinder = _remote_debugging.RemoteUnwinder(pid, all_threads=True, opcodes=opcodes, native=native,
                                                    cache_frames=True)
        out[name] = paced(unwinder.get_stack_trace, seconds)
    print(json.dumps(out), flush=True)


def tachyon_figures(pid: int, seconds: float, notes: list[str]) -> dict | None:
    import bench_sampler as bs
    import benchcommon as bc

    if (reason := bs.tachyon_unavailable_reason()) is not None:
        notes.append("Tachyon: " + bc.na(reason))
        return None
    bs.sid_root().path_in_root(str(HERE / "bench_async.py"))  # copied beside it: its `paced`
    inside = bs.sid_root().path_in_root(str(HERE / "bench_native_opcodes.py"))
    argv = ["nsenter", "-t", str(pid), "-m", "-r", "-w", "/usr/bin/python3.15", inside, INSIDE, str(pid),
            "--duration", str(seconds)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60 + 10 * len(SETTINGS) * seconds)
    if done.returncode != 0:
        notes.append("Tachyon: " + bc.na(bc.last_line(done.stderr)))
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(spec: str, seconds: float) -> None:
    import benchcommon as bc

    python, why = bc.interpreter(spec)
    if python is None:
        print(f"{spec}: {bc.na(why)}\n")
        return
    table = bc.Table(f"--opcodes and --native, CPU per sample of all 5 threads at a requested 1 kHz "
                     f"({python.version}, {python.label})",
                     ["setting", "native ms", "x plain", "pure ms", "x plain", "pure/native", "failed native/pure",
                      "Tachyon ms", "x plain", "native/Tachyon"])
    target = bc.start_target(python, SCRIPT)
    try:
        h = heatline_figures(target.pid, seconds)
        t = tachyon_figures(target.pid, seconds, table.notes) if python.tachyon_here else None
    finally:
        target.close()
    base = h["plain"]
    for name in SETTINGS:
        nat, pure = h[name]["native"]["cpu_ms"], h[name]["pure"]["cpu_ms"]
        tach = t[name]["cpu_ms"] if t else None
        table.add(name, bc.fmt(nat, ".3f"), bc.ratio(nat, base["native"]["cpu_ms"]), bc.fmt(pure, ".3f"),
                  bc.ratio(pure, base["pure"]["cpu_ms"]), bc.ratio(pure, nat),
                  f"{h[name]['native']['failed']}/{h[name]['pure']['failed']}", bc.fmt(tach, ".3f"),
                  bc.ratio(tach, t["plain"]["cpu_ms"]) if t else "", bc.ratio(nat, tach) if t else "")
    both = h["both"]["native"]["cpu_ms"]
    bc.key(f"opcodes+native {python.short_version}: native core {both:.3f} ms/sample "
           f"({bc.ratio(both, base['native']['cpu_ms'])} plain), pure {h['both']['pure']['cpu_ms']:.3f} ms"
           + (f", Tachyon {t['both']['cpu_ms']:.3f} ms (native/Tachyon {bc.ratio(both, t['both']['cpu_ms'])})"
              if t else ""))
    bc.note_without_tachyon(table, python)
    table.notes.append(f"each walker and setting paced for {seconds:g} s on the same target; CPU: the sampling "
                       "thread's own (time.thread_time); x plain: beside the same walker without either flag")
    table.print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # not benchcommon's python_option: the Tachyon side runs this file alone in the sid root
    parser.add_argument("--python", action="append", help="3.12 (host) or sid:3.15; repeatable "
                        f"(default: {' '.join(DEFAULT_PYTHONS)})")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per walker and setting (default 2)")
    parser.add_argument(INSIDE, type=int, metavar="PID", help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.tachyon_inside:
        tachyon_inside(args.tachyon_inside, args.duration)
        return 0
    import benchcommon as bc

    def body(work) -> None:
        for spec in args.python or DEFAULT_PYTHONS:
            measure(spec, args.duration)
        print("\n".join(bc.KEY_FIGURES))

    return bc.guarded(body)


if __name__ == "__main__":
    sys.exit(main())
