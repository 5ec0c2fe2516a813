#!/usr/bin/env python3
"""Target slowdown at 1 kHz: the target's own work rate, unprofiled vs profiled (issue 12, figure 2b).

The target is `targets/counting_threads.py`: three threads doing counted blocks of pure-Python
work (two in CPU loops, the main thread alternating 2 ms sleeps with bursts), which prints its
block count and its own monotonic clock on SIGUSR1. A window's work rate is the difference of two
such readings D seconds apart: the target measures itself, so the profiler's start-up, attach and
output writing fall outside every window, and nothing of the benchmark's own timing enters.

One target process serves every window of one interpreter (a Python process's speed varies from
one start to the next by more than the 1% we look for: hash seeds, memory layout), and unprofiled
windows alternate with profiled ones:

    base, P1, base, P2, base, P3, base, P1, base, ...   (P = heatline, heatline pure, Tachyon or py-spy)

Each profiled window is compared with the mean of the two unprofiled windows beside it, which
cancels slow drift (thermal, other load coming and going). Per profiler the slowdown is
1 - rate(profiled) / rate(neighbouring unprofiled), averaged over the rounds; the spread of the
rounds is printed beside it, and so is the spread between consecutive unprofiled windows (the
noise floor: a slowdown smaller than it is not measured). Two rates: work per wall second (what
a user sees; on a busy 2-core machine it moves with everything else running) and work per CPU
second of the target (the target reports its process CPU time too), which leaves out CPU the
target did not get and keeps what the profiler's reads cost it (cache, page-table locks).

A profiled window begins once the profiler says it samples: heatline and Tachyon run with
`--realtime-stats` and the window starts at their first statistics line; py-spy at its
"Sampling process" line. The profiler is then stopped with SIGINT (its Ctrl-C) after the window.
heatline and Tachyon sample every thread (`-a`) at 1 kHz; py-spy `--threads --idle --nonblocking`
at 1000/s. Tachyon only on 3.15 targets in the sid root.

The profiler's own CPU over the same windows is printed too (from /proc/PID/stat): figure 2's CPU
in the steady state, without the start-up and output writing that a whole-life rusage holds
(about 0.1-0.2 s of CPU: 3% of a core over a 5 s run by itself).

    python benchmarks/bench_slowdown.py [--python 3.11 --python sid:3.15] [--window 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time

import bench_sampler as bs
import benchcommon as bc

TARGET = bs.HERE / "targets" / "counting_threads.py"
RATE = 1000
PYSPY = "py-spy --nonblocking"


class CountingTarget:
    """counting_threads.py, read through SIGUSR1."""

    def __init__(self, python: bs.Interpreter) -> None:
        self.target = bc.start_target(python, TARGET)

    def read(self) -> tuple[int, float, float]:
        """(blocks done, the target's monotonic time in s, its CPU time in s), asked for now."""
        os.kill(self.target.pid, signal.SIGUSR1)
        line = self.target.proc.stdout.readline()  # the target answers at once, from its main thread
        blocks, ns, cpu_ns = line.split()
        return int(blocks), int(ns) / 1e9, int(cpu_ns) / 1e9

    def window(self, seconds: float) -> tuple[float, float]:
        """The target's work rate over the next `seconds`: (blocks per second, blocks per CPU second)."""
        b0, t0, c0 = self.read()
        time.sleep(seconds)
        b1, t1, c1 = self.read()
        return (b1 - b0) / (t1 - t0), (b1 - b0) / max(c1 - c0, 1e-9)


def _profiler_argv(tool: str, target: bs.Target, scratch: bc.Scratch, pyspy: str | None) -> tuple[list[str], dict | None, bytes]:
    """(argv, env, the log text that says sampling has begun)."""
    if tool == PYSPY:
        return ([pyspy, "record", "--pid", str(target.pid), "--rate", str(RATE), "--format", "raw",
                 "-o", str(scratch.host("pyspy.txt")), "--nonblocking", "--threads", "--idle"],
                None, b"Sampling process")
    if tool == bc.TACHYON:
        inside, _ = scratch.root("tachyon.txt")
        return (bc.tachyon_argv(target.pid, "-a", "-r", str(RATE), "--realtime-stats", "--collapsed", "-o", inside),
                None, b"Hz")
    return (bs.heatline_argv("attach", str(target.pid), "-a", "-r", str(RATE), "--realtime-stats", "--collapsed",
                             "-o", str(scratch.host("heatline.txt"))),
            bs.heatline_env(tool == bc.PURE), b"Hz")


def profiled_window(tool: str, ct: CountingTarget, seconds: float, scratch: bc.Scratch,
                    pyspy: str | None) -> tuple[tuple[float, float, float] | None, str]:
    """The target's work rates while `tool` samples it, and the profiler's CPU (% of a core) over the
    same window: ((per second, per CPU second, profiler CPU %), or None and why)."""
    argv, env, marker = _profiler_argv(tool, ct.target, scratch, pyspy)
    log = scratch.host("profiler.log")
    with open(log, "wb") as logf:
        p = bs.CHILDREN.spawn(argv, stdout=logf, env=env, cwd=str(bs.REPO))
    try:
        deadline = time.monotonic() + 30
        while marker not in log.read_bytes():
            if p.poll() is not None or time.monotonic() > deadline:
                return None, f"never said it samples: {bc.last_line(log.read_text(errors='replace'))}"
            time.sleep(0.01)
        # nsenter and py-spy exec or stay one process: p.pid is the profiler itself.
        cpu0, t0 = bs.process_cpu_s(p.pid), time.monotonic()
        rate = ct.window(seconds)
        cpu1, t1 = bs.process_cpu_s(p.pid), time.monotonic()
        if p.poll() is not None:
            return None, f"stopped during the window: {bc.last_line(log.read_text(errors='replace'))}"
        return (*rate, 100 * (cpu1 - cpu0) / (t1 - t0)), ""
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        code, *_ = bc.wait4(p, 30)
        if code is None:
            bs.Children.end(p)


def measure(python: bs.Interpreter, tools: list[str], seconds: float, rounds: int, scratch: bc.Scratch,
            pyspy: str | None) -> bc.Table:
    ct = CountingTarget(python)
    try:
        base = [ct.window(seconds)]
        slow: dict[str, list[float]] = {t: [] for t in tools}
        slow_cpu: dict[str, list[float]] = {t: [] for t in tools}
        prof_cpu: dict[str, list[float]] = {t: [] for t in tools}
        failed: dict[str, str] = {}
        for _ in range(rounds):
            for tool in tools:
                if tool in failed:
                    continue
                rate, why = profiled_window(tool, ct, seconds, scratch, pyspy)
                before = base[-1]
                base.append(ct.window(seconds))
                if rate is None:
                    failed[tool] = why
                    continue
                slow[tool].append(100 * (1 - rate[0] / ((before[0] + base[-1][0]) / 2)))
                slow_cpu[tool].append(100 * (1 - rate[1] / ((before[1] + base[-1][1]) / 2)))
                prof_cpu[tool].append(rate[2])
    finally:
        ct.target.close()
    where = f"{python.short_version}{'' if python.rooted else ' host'}"
    table = bc.Table(f"2b. Target slowdown at {RATE} Hz: counting_threads.py (3 threads, work rate measured by the "
                     f"target), {python.version} ({python.label})",
                     ["profiler (all threads)", "slowdown %/s", "min", "max",
                      "per CPU-s %", "min", "max", "rounds", "profiler CPU %"])
    for tool in tools:
        vals, cvals = slow[tool], slow_cpu[tool]
        if tool in failed and not vals:
            table.add(tool, bc.na(failed[tool]), "", "", "", "", "", 0, "")
            bc.key(f"2b. slowdown at {RATE} Hz, {where}, {tool}: {bc.na(failed[tool])}")
        else:
            bc.key(f"2b. slowdown at {RATE} Hz, {where}, {tool}: {statistics.mean(vals):.2f}% per second, "
                   f"{statistics.mean(cvals):.2f}% per CPU-s (aim < 1%); the profiler's CPU meanwhile "
                   f"{statistics.mean(prof_cpu[tool]):.1f}% of a core (aim < 3%)")
            table.add(tool, f"{statistics.mean(vals):.2f}", f"{min(vals):.2f}", f"{max(vals):.2f}",
                      f"{statistics.mean(cvals):.2f}", f"{min(cvals):.2f}", f"{max(cvals):.2f}", len(vals),
                      f"{statistics.mean(prof_cpu[tool]):.1f}")
        if tool in failed:
            table.notes.append(f"{tool}: {failed[tool]}")

    def floor(i: int) -> float:
        steps = [100 * abs(b[i] - a[i]) / a[i] for a, b in zip(base, base[1:])]
        return statistics.mean(steps) if steps else 0.0

    bc.key(f"2b. slowdown noise floor, {where}: {floor(0):.2f}% per second, {floor(1):.2f}% per CPU-s")
    table.notes.append(f"unprofiled: {statistics.mean(b[0] for b in base):,.0f} blocks/s, "
                       f"{statistics.mean(b[1] for b in base):,.0f} blocks per CPU-s, over {len(base)} windows of "
                       f"{seconds:g} s [{where}]; noise floor (mean change between consecutive unprofiled windows): "
                       f"{floor(0):.2f}% and {floor(1):.2f}%")
    table.notes.append("slowdown = 1 - profiled rate / mean of the unprofiled windows just before and after it; "
                       "'%/s': work per second (what the user sees, includes CPU taken by anything else on the "
                       "machine); 'per CPU-s': work per CPU second of the target (the profiler's interference "
                       "with the target's own execution); negative: within noise; profiler CPU %: its user+sys "
                       "over the windows only (/proc/PID/stat, 10 ms ticks), so start-up and output are left out")
    return table


def tools_for(python: bs.Interpreter, pyspy: str | None) -> tuple[list[str], list[str]]:
    """(profilers to measure on this target, lines saying which were left out and why)."""
    tools, skipped = [bc.HEATLINE, bc.PURE], []
    why = bs.tachyon_unavailable_reason()
    if python.tachyon_here and why is None:
        tools.append(bc.TACHYON)
    else:
        skipped.append("Tachyon: " + bc.na(why or f"it attaches to 3.15 only (target {python.short_version})"))
    if pyspy:
        tools.append(PYSPY)  # a py-spy that cannot read this CPython fails its window: its row says why
    else:
        skipped.append("py-spy: " + bc.na("not installed (pip install py-spy)"))
    return tools, skipped


def run(specs: list[str], seconds: float, rounds: int, work: bs.Workdirs) -> None:
    pyspy = bs.find_pyspy(None)
    scratch = bc.Scratch(work)
    for spec in specs:
        python, why = bc.interpreter(spec)
        if python is None:
            print(f"2b. Target slowdown on {spec}: {bc.na(why)}\n")
            continue
        tools, skipped = tools_for(python, pyspy)
        table = measure(python, tools, seconds, rounds, scratch, pyspy)
        table.notes.extend(skipped)
        table.print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", help="3.11 (host) or sid:3.15; repeatable "
                        "(default: 3.11 and sid:3.15)")
    parser.add_argument("--window", type=float, default=4.0, help="seconds per window (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="profiled windows per profiler (default 2)")
    args = parser.parse_args(argv)
    return bc.guarded(lambda work: run(args.python or ["3.11", "sid:3.15"], args.window, args.rounds, work))


if __name__ == "__main__":
    sys.exit(main())
