#!/usr/bin/env python3
"""Every figure of issue 12, side by side in one run: heatline (native and pure-Python walker) vs Tachyon vs py-spy.

    .venv/bin/python benchmarks/bench_figures.py                 # all seven figures (12-14 minutes)
    .venv/bin/python benchmarks/bench_figures.py --only 1,4      # some of them

1. Achieved samples/s at a requested 100 kHz, 33 frames deep: on the sid root's 3.15 heatline vs
   Tachyon; on the host's 3.11 heatline vs py-spy (--nonblocking and default). bench_sampler.py.
   1b: the same 3.15 target asked for 1 MHz, so that a profiler keeping up with 100 kHz is not
   capped by it: heatline's and Tachyon's throughput flat out.
2. Profiler CPU at 1 kHz on three busy threads, all threads, 3.15: heatline vs Tachyon
   (bench_sampler.py); then the target's own slowdown at 1 kHz, unprofiled windows interleaved
   with profiled ones on one target, on 3.15 (with Tachyon) and 3.11; py-spy on both (bench_slowdown.py).
3. Per-sample cost on 3.9 and 3.10 against 3.11 (bench_cost.py).
4. Error rate and impossible stacks at 100 kHz on a 150-deep recursion that rebuilds itself,
   against the target's structure and a --blocking run (bench_accuracy.py --only 4).
5. Exception mode's kept share against a --blocking oracle (bench_accuracy.py --only 5).
6. Peak RSS over a ~6-million-thread-sample --binary run at 10 kHz (bench_memory.py).
7. 200 and 1,000 threads, -a at 1 kHz: achieved rate and CPU, heatline vs Tachyon (bench_threads.py).

Each script's docstring says exactly what it measures and how; each runs alone too. Every
heatline figure is taken twice: as installed (the native sampler when it is built) and with
HEATLINE_NATIVE=0 (its pure-Python walker), so the native gain is visible; a row or column says
"n/a: <why>" when a feature, an interpreter or a profiler is missing. Nothing passes or fails;
ratios are computed within this run. The machine's size and load are printed first: on a
2-core machine the target takes one core and the profiler the other, so anything else running
moves the figures. The closing block repeats the figures the issue sets aims for, one line each.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import bench_accuracy
import bench_cost
import bench_memory
import bench_sampler as bs
import bench_slowdown
import bench_threads
import benchcommon as bc

FIGURES = (1, 2, 3, 4, 5, 6, 7)


def header(duration: float) -> None:
    load = open("/proc/loadavg").read().split()[:3]
    print("issue 12 figures: heatline vs Tachyon vs py-spy")
    print(f"  machine:   {os.cpu_count()} CPUs, {bs.cpu_model()}, Linux {platform.release()}, "
          f"load average {' '.join(load)}")
    print(f"  heatline:  {bc.heatline_version()} / with HEATLINE_NATIVE=0: {bc.heatline_version(pure=True)}; "
          f"--blocking {'available' if bc.heatline_has('--blocking') else 'n/a (not in this heatline)'}; "
          f"runs on {platform.python_implementation()} {platform.python_version()}")
    why = bs.tachyon_unavailable_reason()
    print(f"  Tachyon:   {'n/a: ' + why if why else 'profiling.sampling of CPython ' + bs.sid_root().version_of('3.15') + ' in the sid root'}")
    pyspy = bs.find_pyspy(None)
    version = "n/a: not installed (pip install py-spy)"
    if pyspy:
        out = subprocess.run([pyspy, "--version"], capture_output=True, text=True, timeout=30)
        version = out.stdout.strip() or "unknown"
    print(f"  py-spy:    {version}")
    print(f"  runs:      {duration:g} s each unless a figure says otherwise; profilers one at a time")
    busy = bs.busy_processes()
    if busy:
        print(f"  warning:   other processes use {sum(b[1] for b in busy):.0f}% of a core right now; the figures are "
              "skewed by them:")
        for pid, pct, cmd in busy[:6]:
            print(f"             pid {pid:>7} {pct:5.0f}%  {cmd[:90]}")
    print()
    sys.stdout.flush()


def _python(spec: str) -> bs.Interpreter | None:
    python, why = bc.interpreter(spec)
    if python is None:
        print(f"  {spec}: {bc.na(why)}\n")
    return python


def _by(runs: list[bs.Run], tool: str) -> bs.Run | None:
    return next((r for r in runs if r.tool == tool and r.ok), None)


def figure1(duration: float, work: bs.Workdirs) -> None:
    pyspy = bs.find_pyspy(None)
    if (py315 := _python("sid:3.15")) is not None:
        runs = bs.measure_rate(py315, pyspy, duration, work, tools=("heatline", "heatline-pure", "tachyon"))
        bs.print_table(f"1. Achieved rate at a requested 100 kHz: deep_cpu.py, {bs.EXPECTED_DEPTH} frames "
                       f"({py315.version}, sid root)", runs, bs.RATE_ROWS, skipped=bs.tachyon_skipped(py315))
        hl, pure, ty = _by(runs, "heatline"), _by(runs, bs.PURE), _by(runs, "Tachyon")
        bc.key(f"1. 3.15, 100 kHz, 33 deep: heatline {bc.fmt(hl and hl.rate, ',.0f')}/s, pure "
               f"{bc.fmt(pure and pure.rate, ',.0f')}/s, Tachyon {bc.fmt(ty and ty.rate, ',.0f')}/s: heatline/Tachyon "
               f"{bc.ratio(hl and hl.rate, ty and ty.rate)} (aim >= 1.5x, 100k/s)")
        # A profiler that keeps up with 100 kHz is capped by it: asked for 1 MHz, each samples
        # as fast as it can, which is the throughput the 100 kHz figure cannot show past the cap.
        runs = bs.measure_rate(py315, pyspy, duration, work, tools=("heatline", "tachyon"), rate_hz=1_000_000)
        bs.print_table(f"1b. Achieved rate at a requested 1 MHz (flat out): deep_cpu.py, {bs.EXPECTED_DEPTH} frames "
                       f"({py315.version}, sid root)", runs, bs.RATE_ROWS, skipped=bs.tachyon_skipped(py315))
        hl, ty = _by(runs, "heatline"), _by(runs, "Tachyon")
        bc.key(f"1b. 3.15, 1 MHz asked, 33 deep: heatline {bc.fmt(hl and hl.rate, ',.0f')}/s, Tachyon "
               f"{bc.fmt(ty and ty.rate, ',.0f')}/s: heatline/Tachyon {bc.ratio(hl and hl.rate, ty and ty.rate)}")
    if (py311 := _python("3.11")) is not None:
        runs = bs.measure_rate(py311, pyspy, duration, work, tools=("heatline", "heatline-pure", "pyspy-nb", "pyspy-blk"))
        bs.print_table(f"1. Achieved rate at a requested 100 kHz: deep_cpu.py, {bs.EXPECTED_DEPTH} frames "
                       f"({py311.version})", runs, bs.RATE_ROWS)
        hl, nb, blk = _by(runs, "heatline"), _by(runs, "py-spy --nonblocking"), _by(runs, "py-spy")
        bc.key(f"1. 3.11, 100 kHz, 33 deep: heatline {bc.fmt(hl and hl.rate, ',.0f')}/s, py-spy --nonblocking "
               f"{bc.fmt(nb and nb.rate, ',.0f')}/s ({bc.ratio(hl and hl.rate, nb and nb.rate)}), py-spy default "
               f"{bc.fmt(blk and blk.rate, ',.0f')}/s ({bc.ratio(hl and hl.rate, blk and blk.rate)}) (aim >= 20x)")


def figure2(duration: float, work: bs.Workdirs, window: float, rounds: int) -> None:
    if (py315 := _python("sid:3.15")) is not None:
        runs = bs.measure_cpu(py315, None, duration, work, tools=("heatline", "heatline-pure", "tachyon"))
        bs.print_table(f"2. Profiler CPU at 1 kHz: three_threads.py, 3 threads, -a ({py315.version}, sid root)",
                       runs, bs.CPU_ROWS, skipped=bs.tachyon_skipped(py315))
        hl, pure, ty = _by(runs, "heatline"), _by(runs, bs.PURE), _by(runs, "Tachyon")
        bc.key(f"2. 3.15, 1 kHz, 3 threads, -a: CPU heatline {bc.fmt(hl and hl.cpu_pct, '.1f')}%, pure "
               f"{bc.fmt(pure and pure.cpu_pct, '.1f')}%, Tachyon {bc.fmt(ty and ty.cpu_pct, '.1f')}% of a core: "
               f"heatline/Tachyon {bc.ratio(hl and hl.cpu_pct, ty and ty.cpu_pct)} (aim <= 1x, under 3%)")
    bench_slowdown.run(["sid:3.15", "3.11"], window, rounds, work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated figure numbers, 1-7 (default: all)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument("--memory-duration", type=float,
                        help="figure 6's run length (default: sized for 6 M thread samples, 30-150 s)")
    parser.add_argument("--window", type=float, default=4.0, help="figure 2's slowdown window, s (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="figure 2's profiled windows per profiler (default 2)")
    args = parser.parse_args(argv)
    try:
        only = [int(x) for x in args.only.split(",") if x.strip()] or list(FIGURES)
    except ValueError:
        parser.error("--only takes figure numbers, e.g. --only 1,4")
    if bad := [f for f in only if f not in FIGURES]:
        parser.error(f"no figure {bad[0]}: figures are 1-7")
    started = time.monotonic()

    def figures(work: bs.Workdirs) -> None:
        header(args.duration)
        for fig in only:
            t0 = time.monotonic()
            if fig == 1:
                figure1(args.duration, work)
            elif fig == 2:
                figure2(args.duration, work, args.window, args.rounds)
            elif fig == 3:
                bench_cost.run(["3.9", "3.10", "3.11"], args.duration, work)
            elif fig in (4, 5):
                bench_accuracy.run([fig], ["3.11", "sid:3.15"], args.duration, work)
            elif fig == 6:
                bench_memory.run(["sid:3.15"], args.memory_duration, work)
            elif fig == 7:
                bench_threads.run(["sid:3.15", "3.11"], [200, 1000], args.duration, work)
            print(f"(figure {fig}: {time.monotonic() - t0:.0f} s)\n")
            sys.stdout.flush()
        print("Figures the issue sets aims for (this run):")
        for line in bc.KEY_FIGURES:
            print(f"  {line}")
        print(f"\n(total {time.monotonic() - started:.0f} s)")

    return bc.guarded(figures)

if __name__ == "__main__":
    sys.exit(main())
