#!/usr/bin/env python3
"""Many threads: achieved rate and CPU with 200 and 1,000 threads at 1 kHz, all threads (issue 12, figure 7).

Target: `targets/thread_pool.py TOTAL 4`: TOTAL threads, of which 4 alternate ~1 ms of Python work
with 1 ms sleeps and the rest (the main thread included) wait on an Event. Each profiler samples
every thread (`-a`) at a requested 1 kHz for D seconds, writing collapsed stacks, on a fresh
target, one profiler at a time: heatline, heatline with HEATLINE_NATIVE=0 (its pure-Python
walker) and Tachyon on the sid root's 3.15; heatline and heatline pure on the host's 3.11.

Printed per run: sampling passes per second (the summary's samples / seconds: one pass reads
every thread), the threads seen in the output file, the thread stacks in it per second (passes x
threads), and the profiler's CPU (user+sys over its whole life from `os.wait4`, as % of the run's
wall time). Ratios are heatline / Tachyon on the same target kind.

    python benchmarks/bench_threads.py [--threads 200 --threads 1000] [--python sid:3.15 --python 3.11] [--duration 5]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import bench_sampler as bs
import benchcommon as bc

TARGET = bs.HERE / "targets" / "thread_pool.py"
BUSY = 4


def thread_stacks(path) -> tuple[int, int]:
    """(thread stacks, distinct threads) in a collapsed file."""
    per_thread: Counter[str] = Counter()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            text, _, count = line.rstrip("\n").rpartition(" ")
            if text and count.isdigit():
                per_thread[text.split(";", 1)[0]] += int(count)
    return sum(per_thread.values()), len(per_thread)


def measure(python: bs.Interpreter, total: int, seconds: float, scratch: bc.Scratch) -> bc.Table:
    table = bc.Table(f"7. {total:,} threads ({BUSY} busy, the rest waiting), -a at a requested 1 kHz "
                     f"({python.version}, {python.label})",
                     ["profiler", "samples/s", "vs Tachyon", "threads seen", "thread stacks/s", "CPU % of a core",
                      "vs Tachyon", "missed", "error %"])
    tools = [bc.HEATLINE, bc.PURE] + ([bc.TACHYON] if python.tachyon_here else [])
    results = []
    d = max(1, round(seconds))
    for tool in tools:
        try:
            target = bc.start_target(python, TARGET, [str(total), str(BUSY)])
        except RuntimeError as exc:
            results.append((tool, bc.Outcome(tool, reason=str(exc)), None, None))
            continue
        try:
            res = bc.run_profiler(tool, target, ["-a", "-r", "1khz", "-d", str(d), "--collapsed"], scratch,
                                  output="threads.txt", timeout=d * 6 + 120)
        finally:
            target.close()
        stacks = threads = None
        if res.ok and res.output is not None and res.output.exists():
            stacks, threads = thread_stacks(res.output)
        results.append((tool, res, stacks, threads))
    tachyon = next((r for t, r, _, _ in results if t == bc.TACHYON and r.ok), None)
    for tool, res, stacks, threads in results:
        if not res.ok:
            table.add(res.label, bc.na(res.reason), "", "", "", "", "", "", "")
            continue
        missed = res.missed.split("(")[-1].rstrip(")") if res.missed else "0%"
        bc.key(f"7. {total:,} threads, {python.short_version} {res.label}: {bc.fmt(res.rate, ',.0f')} samples/s"
               + (f" ({bc.ratio(res.rate, tachyon.rate)} Tachyon's {tachyon.rate:,.0f}; aim >= 1x)"
                  if tachyon and tool != bc.TACHYON else "")
               + f", CPU {bc.fmt(res.cpu_pct, '.1f')}% of a core")
        table.add(res.label, bc.fmt(res.rate, ",.0f"),
                  bc.ratio(res.rate, tachyon.rate) if tachyon and tool != bc.TACHYON else "",
                  bc.fmt(threads, ","), bc.fmt(stacks / res.duration if stacks and res.duration else None, ",.0f"),
                  bc.fmt(res.cpu_pct, ".1f"),
                  bc.ratio(res.cpu_pct, tachyon.cpu_pct) if tachyon and tool != bc.TACHYON else "",
                  missed, bc.fmt(res.error_pct, ".2f"))
    if not python.tachyon_here:
        table.notes.append("Tachyon: " + bc.na(bs.tachyon_unavailable_reason() or
                                               f"it attaches to 3.15 only (target {python.short_version})"))
    table.notes.append(f"each run {d} s on a fresh target; samples/s: sampling passes (every thread read once) per "
                       "second, from the profiler's summary; CPU over the profiler's whole life")
    return table


def run(specs: list[str], totals: list[int], seconds: float, work: bs.Workdirs) -> None:
    scratch = bc.Scratch(work)
    for total in totals:
        for spec in specs:
            python, why = bc.interpreter(spec)
            if python is None:
                print(f"7. {total:,} threads on {spec}: {bc.na(why)}\n")
                continue
            measure(python, total, seconds, scratch).print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, action="append", help="threads in the target; repeatable "
                        "(default: 200 and 1000)")
    parser.add_argument("--python", action="append", help="3.11 (host) or sid:3.15; repeatable "
                        "(default: sid:3.15 and 3.11)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    args = parser.parse_args(argv)
    return bc.guarded(lambda work: run(args.python or ["sid:3.15", "3.11"], args.threads or [200, 1000], args.duration, work))


if __name__ == "__main__":
    sys.exit(main())
