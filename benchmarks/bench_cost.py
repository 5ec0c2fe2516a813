#!/usr/bin/env python3
"""Per-sample cost on 3.9 and 3.10 targets against 3.11's (issue 12, figure 3).

3.9 and 3.10 keep frames as objects in a linked chain (a read per frame, and heatline reads the
chain a second time to refuse torn stacks); 3.11+ keep them in stack chunks. The issue asks that
a sample of a 3.9/3.10 target cost at most 2x one of 3.11.

Target: `targets/deep_cpu.py` (one thread spinning 33 frames deep) under each host CPython.
heatline samples it at a requested 100 kHz, which it cannot reach, so it samples flat out and
its CPU per sample is its cost. That CPU is measured from the profiler's rusage (`os.wait4`),
which also holds start-up (imports, attach, writing the output); to leave that out, each
interpreter gets two runs, D seconds and 1 second, and the marginal cost is

    (CPU of the long run - CPU of the short one) / (samples of the long run - samples of the short one)

The whole-life CPU per sample of the long run, and the mean per-sample time heatline prints with
`--realtime-stats` (its own timing of each sample; wall time, so it grows when the machine is
busy), are printed beside it. Both walkers: heatline as installed (native when built) and with
HEATLINE_NATIVE=0 (pure-Python). Ratios: each row's marginal cost / the 3.11 row's, same walker.

    python benchmarks/bench_cost.py [--python 3.9 --python 3.10 --python 3.11] [--duration 5]
"""

from __future__ import annotations

import argparse
import re
import sys

import bench_sampler as bs
import benchcommon as bc

TARGET = bs.DEEP_TARGET
REFERENCE = "3.11"


def one(tool: str, python: bs.Interpreter, seconds: int, scratch: bc.Scratch) -> bc.Outcome:
    target = bc.start_target(python, TARGET, [str(bs.DEEP_RECURSION)])
    try:
        return bc.run_profiler(tool, target, ["-r", "100khz", "-d", str(seconds), "--realtime-stats", "--collapsed"],
                               scratch, output="cost.txt", timeout=seconds * 4 + 60)
    finally:
        target.close()


def realtime_us(text: str) -> float | None:
    found = re.findall(r"\(([\d,.]+)\s*µs per sample\)", text)
    return float(found[-1].replace(",", "")) if found else None


def run(specs: list[str], seconds: float, work: bs.Workdirs) -> None:
    scratch = bc.Scratch(work)
    d = max(2, round(seconds))
    table = bc.Table(f"3. Per-sample cost at a requested 100 kHz (flat out): deep_cpu.py, 33 frames, host CPythons; "
                     f"runs of {d} s and 1 s",
                     ["target / walker", "samples/s", "CPU/sample us (whole run)", "marginal CPU/sample us",
                      f"vs {REFERENCE}", "realtime-stats us"])
    rows = []
    for spec in specs:
        python, why = bc.interpreter(spec)
        if python is None:
            table.notes.append(f"{spec}: {bc.na(why)}")
            continue
        for tool in (bc.HEATLINE, bc.PURE):
            long, short = one(tool, python, d, scratch), one(tool, python, 1, scratch)
            marginal = None
            if long.ok and short.ok and long.samples and short.samples is not None and long.samples > short.samples:
                marginal = 1e6 * (long.cpu_s - short.cpu_s) / (long.samples - short.samples)
            rows.append((spec, python, tool, long, short, marginal))
    reference = {tool: m for spec, _, tool, _, _, m in rows if spec == REFERENCE}
    for spec, python, tool, long, short, marginal in rows:
        label = f"{python.short_version} / {'native' if tool == bc.HEATLINE else 'pure'}"
        if not long.ok:
            table.add(label, bc.na(long.reason), "", "", "", "")
            continue
        if long.walker and long.walker != ("native" if tool == bc.HEATLINE else "pure-Python"):
            label += f" (ran {long.walker})"
        table.add(label, bc.fmt(long.rate, ",.0f"), bc.fmt(long.cpu_per_sample_us, ".1f"),
                  bc.fmt(marginal, ".1f", "n/a" if short.ok else bc.na(f"1 s run: {short.reason}")),
                  bc.ratio(marginal, reference.get(tool)), bc.fmt(realtime_us(long.log), ".1f"))
        if spec != REFERENCE:
            bc.key(f"3. per-sample cost {label} vs {REFERENCE}: {bc.ratio(marginal, reference.get(tool))} "
                   f"({bc.fmt(marginal, '.1f')} us vs {bc.fmt(reference.get(tool), '.1f')} us; aim <= 2x)")
    table.notes.append(f"vs {REFERENCE}: marginal CPU per sample / {REFERENCE}'s with the same walker "
                       "(aim for 3.9/3.10: <= 2x); every run on a fresh target, one at a time")
    table.print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", help="host CPython 3.X; repeatable (default: 3.9, 3.10, 3.11)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of the long run (default 5)")
    args = parser.parse_args(argv)
    return bc.guarded(lambda work: run(args.python or ["3.9", "3.10", REFERENCE], args.duration, work))


if __name__ == "__main__":
    sys.exit(main())
