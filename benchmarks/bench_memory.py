#!/usr/bin/env python3
"""Memory: the profiler's peak RSS over a ~6-million-sample `--binary` run (issue 12, figure 6).

The issue asks for a 6-million-sample `--binary` run at 10 kHz. One thread at 10 kHz takes 600 s
for that, so the samples come from threads instead: `targets/thread_pool.py 21 20` has 20
busy-ish threads (~1 ms of Python work at call depths 2-9, then a 1 ms sleep, so stacks keep
changing) and a waiting main thread; `-a -r 10khz -d 30 --binary` asks for 21 x 10,000 x 30 =
6.3 million thread samples. Where heatline reaches fewer than 10,000 passes/s over 21 threads (a
busy 2-core machine), a 3 s probe run measures the thread samples/s it records and the duration
is stretched (up to 150 s) to give 6 million, with a 30% margin: heatline and Tachyon get that duration; the
pure-Python walker, which cannot come near, 30 s. What each profiler really recorded is printed: the thread samples in
its file (the binary header's count, which is one per thread stack) and its own summary's
sampling passes; when a profiler cannot keep 10 kHz over 21 threads it records fewer, and that
is said beside its RSS, since a run with fewer samples is a weaker test of memory.

Peak RSS is the profiler process's ru_maxrss from `os.wait4` (the kernel's high-water mark of its
resident set, start-up and output writing included). heatline on its native sampler, heatline
with HEATLINE_NATIVE=0 (its pure-Python walker) and Tachyon, each on a fresh 3.15 target in the
sid root, one at a time (heatline alone on other targets).

    python benchmarks/bench_memory.py [--python sid:3.15] [--duration SECONDS]
"""

from __future__ import annotations

import argparse
import sys

import bench_sampler as bs
import benchcommon as bc

sys.path.insert(0, str(bs.REPO))
from sampler.errors import HeatlineError  # noqa: E402
from sampler.replay import open_binary_profile  # noqa: E402

TARGET = bs.HERE / "targets" / "thread_pool.py"
THREADS, BUSY = 21, 20
RATE = 10_000
WANTED = 6_000_000           # thread samples the issue asks for
PROBE_S, MIN_S, MAX_S = 3, 30, 150
MARGIN = 1.3


def one_run(tool: str, python: bs.Interpreter, seconds: int, scratch: bc.Scratch) -> tuple[bc.Outcome, int | None, float | None]:
    """(the run, thread samples in its file, file size MB)."""
    target = bc.start_target(python, TARGET, [str(THREADS), str(BUSY)])
    try:
        res = bc.run_profiler(tool, target, ["-a", "-r", "10khz", "-d", str(seconds), "--binary"],
                              scratch, output="memory.bin", timeout=seconds * 6 + 120)
    finally:
        target.close()
    in_file = size = None
    if res.ok and res.output is not None and res.output.exists():
        size = res.output.stat().st_size / 1e6
        try:
            in_file = open_binary_profile(str(res.output)).sample_count
        except HeatlineError as exc:
            res.reason, res.ok = f"its file: {exc}", False
        res.output.unlink()  # hundreds of MB at worst: not kept past the figure
    return res, in_file, size


def measure(python: bs.Interpreter, seconds: float | None, scratch: bc.Scratch) -> bc.Table:
    notes = []
    if seconds is None:
        # Long enough for heatline to record WANTED thread samples at the rate it reaches here.
        probe, in_probe, _ = one_run(bc.HEATLINE, python, PROBE_S, scratch)
        per_s = in_probe / probe.duration if probe.ok and in_probe and probe.duration else None
        # A margin: the machine's other load moves the rate between the probe and the run.
        seconds = min(MAX_S, max(MIN_S, round(MARGIN * WANTED / per_s))) if per_s else MIN_S
        notes.append(f"duration: a {PROBE_S} s probe of heatline recorded {bc.fmt(per_s, ',.0f')} thread samples/s, "
                     f"so {seconds} s should give {WANTED / 1e6:.0f} M with a {MARGIN - 1:.0%} margin (kept within "
                     f"{MIN_S}-{MAX_S} s); "
                     f"the pure-Python walker gets {MIN_S} s (it cannot come near)")
    seconds = max(1, round(seconds))
    asked = THREADS * RATE * seconds
    table = bc.Table(f"6. Peak RSS over a --binary run: thread_pool.py ({BUSY} busy-ish threads + main), "
                     f"-a -r 10khz -d {seconds} (asks {asked / 1e6:.1f} M thread samples) "
                     f"({python.version}, {python.label})",
                     ["profiler", "seconds", "peak RSS MB", "vs Tachyon", "thread samples in file", "passes",
                      "passes/s", "file MB", "CPU % of a core"], notes=notes)
    tools = [bc.HEATLINE, bc.PURE] + ([bc.TACHYON] if python.tachyon_here else [])
    results = []
    for tool in tools:
        d = min(seconds, MIN_S) if tool == bc.PURE and notes else seconds
        results.append((tool, d, *one_run(tool, python, d, scratch)))
    tachyon = next((r for t, _, r, _, _ in results if t == bc.TACHYON and r.ok), None)
    for tool, d, res, in_file, size in results:
        if not res.ok:
            table.add(res.label, d, bc.na(res.reason), "", "", "", "", "", "")
            continue
        asked = THREADS * RATE * d
        bc.key(f"6. {python.short_version} {res.label}: peak RSS {bc.fmt(res.maxrss_mb, '.1f')} MB over "
               f"{bc.fmt(in_file, ',')} thread samples in {d} s (aim < 100 MB over 6,000,000)")
        table.add(res.label, d, bc.fmt(res.maxrss_mb, ".1f"),
                  bc.ratio(res.maxrss_mb, tachyon.maxrss_mb) if tachyon and tool != bc.TACHYON else "",
                  bc.fmt(in_file, ","), bc.fmt(res.samples, ","), bc.fmt(res.rate, ",.0f"), bc.fmt(size, ".1f"),
                  bc.fmt(res.cpu_pct, ".1f"))
        if in_file is not None and in_file < 0.95 * asked:
            table.notes.append(f"{res.label}: recorded {in_file / 1e6:.2f} M thread samples, not the "
                               f"{asked / 1e6:.1f} M asked (it reached {bc.fmt(res.rate, ',.0f')} passes/s of "
                               f"{RATE:,}): its RSS covers that many")
    if not python.tachyon_here:
        table.notes.append("Tachyon: " + bc.na(bs.tachyon_unavailable_reason() or
                                               f"it attaches to 3.15 only (target {python.short_version})"))
    table.notes.append("peak RSS: ru_maxrss of the profiler process (os.wait4), whole life; aim for heatline: < 100 MB")
    return table


def run(specs: list[str], seconds: float, work: bs.Workdirs) -> None:
    scratch = bc.Scratch(work)
    for spec in specs:
        python, why = bc.interpreter(spec)
        if python is None:
            print(f"6. Peak RSS on {spec}: {bc.na(why)}\n")
            continue
        measure(python, seconds, scratch).print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", help="3.11 (host) or sid:3.15; repeatable (default: sid:3.15)")
    parser.add_argument("--duration", type=float, help="seconds per run (default: long enough for heatline to "
                        f"record {WANTED / 1e6:.0f} M thread samples here, {MIN_S}-{MAX_S} s, from a {PROBE_S} s probe)")
    args = parser.parse_args(argv)
    return bc.guarded(lambda work: run(args.python or ["sid:3.15"], args.duration, work))


if __name__ == "__main__":
    sys.exit(main())
