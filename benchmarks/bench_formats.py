#!/usr/bin/env python3
"""The binary format's size and replay speed on a realistic ~1M-sample profile.

How the profile is made: heatline profiles `tests/targets/varied_stacks.py` for real (three
threads walking a call tree of 12 functions 3-24 calls deep; `run -a -r 2khz -d 2 --binary`),
giving a few thousand samples per thread and thousands of distinct stacks. From that real file,
1M thread samples are synthesised by a random walk over what was observed: per thread, each
next (stack, status) is drawn from the successors that really followed the current stack, and
each tick's timestamp step from the real steps between ticks. Local structure (repeats, calls,
returns, jitter) is therefore the real program's, without the verbatim long-range repetition
that copying the short profile 100 times would hand to zstd.

What it prints (figures only):
  - bytes per sample of the file, zstd and uncompressed (and the writer's samples/s);
  - replay throughput in samples/s, measured the way `heatline replay FILE --<format> -o OUT`
    runs (open, sampler.replay.replay into the Profile and, for streaming formats, the
    collector, write the output), for --pstats, --collapsed, --flamegraph and --gecko ("n/a"
    when a collector is not registered).

Run from the repository root:  python benchmarks/bench_formats.py [--samples 1000000]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sampler.collectors import COLLECTORS  # noqa: E402
from sampler.collectors.binary import BinaryCollector  # noqa: E402
from sampler.model import Profile, RunStats, ThreadSample  # noqa: E402
from sampler.replay import open_binary_profile, replay  # noqa: E402


def real_profile(path: str, duration: float) -> None:
    target = os.path.join(ROOT, "tests", "targets", "varied_stacks.py")
    res = subprocess.run(
        [sys.executable, "-m", "sampler", "run", "-a", "-r", "2khz", "-d", str(duration), "--binary", "-o", path,
         target, str(duration + 30)],
        cwd=ROOT, capture_output=True, text=True,
    )
    if res.returncode != 0:
        sys.exit(f"profiling the target failed:\n{res.stderr}")


def synthesise(path: str, n_samples: int, seed: int = 1):
    """Ticks [(timestamp_us, [ThreadSample, ...])] holding about n_samples thread samples."""
    reader = open_binary_profile(path)
    per_thread: dict[tuple[int, int], list[tuple[int, ThreadSample]]] = {}
    for ts, threads, _w in reader.samples():
        t = threads[0]
        per_thread.setdefault((t.interpreter_id, t.thread_id), []).append((ts, t))
    successors: dict[tuple[int, int], dict[tuple, list[tuple]]] = {}
    for key, seq in per_thread.items():
        table: dict[tuple, list[tuple]] = {}
        for (_, a), (_, b) in zip(seq, seq[1:]):
            table.setdefault(a.frames, []).append((b.frames, b.status))
        successors[key] = table
    main = max(per_thread.values(), key=len)
    steps = [b[0] - a[0] for a, b in zip(main, main[1:]) if b[0] > a[0]] or [500]
    rng = random.Random(seed)
    keys = sorted(per_thread)
    state = {k: (per_thread[k][0][1].frames, per_thread[k][0][1].status) for k in keys}
    ts = reader.start_time_us
    ticks = []
    made = 0
    while made < n_samples:
        ts += rng.choice(steps)
        threads = []
        for interp, tid in keys:
            nxt = successors[(interp, tid)].get(state[(interp, tid)][0])
            if nxt:
                frames, status = rng.choice(nxt)
            else:  # the stack the real run ended on: restart from any observed one
                jump = rng.choice(per_thread[(interp, tid)])[1]
                frames, status = jump.frames, jump.status
            state[(interp, tid)] = (frames, status)
            threads.append(ThreadSample(tid, status, frames, interp))
        ticks.append((ts, threads))
        made += len(threads)
    return reader, ticks, sum(len(s) for s in per_thread.values())


def learned_ticks(tmp: str, n_samples: int, duration: float = 2.0):
    """A real run of the target in `tmp`, extended to n_samples: (reader, ticks, real samples)."""
    real = os.path.join(tmp, "real.bin")
    real_profile(real, duration)
    return synthesise(real, n_samples)


def write_binary(path: str, ticks, run: RunStats, compression: str) -> tuple[BinaryCollector, float]:
    collector = BinaryCollector(Profile(run), compression=compression)
    t0 = time.perf_counter()
    for ts, threads in ticks:
        collector.collect(ts, threads)
    with open(path, "wb") as fh:
        collector.dump(fh)
    return collector, time.perf_counter() - t0


def replay_throughput(path: str, fmt: str, out_dir: str) -> float:
    """samples/s for `heatline replay path --fmt -o OUT`, in-process through the one replay loop."""
    t0 = time.perf_counter()
    reader = open_binary_profile(path)
    profile = Profile(reader.run_stats())
    cls = COLLECTORS[fmt]
    collector = cls(profile)
    done = replay(reader, profile, collector if cls.streaming else None)
    collector.write(os.path.join(out_dir, f"out.{cls.default_extension}"))
    return done / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=1_000_000, help="thread samples to synthesise")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds of real profiling to learn from")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-formats-") as tmp:
        real = os.path.join(tmp, "real.bin")
        reader, ticks, real_samples = learned_ticks(tmp, args.samples, args.duration)
        run = reader.run_stats()
        n = sum(len(t) for _, t in ticks)
        distinct = len({t.frames for _, threads in ticks for t in threads})
        print(f"profile: {n:,} thread samples ({len(ticks):,} ticks x {reader.thread_count} threads, "
              f"{distinct:,} distinct stacks), synthesised from a real {real_samples:,}-sample run "
              f"of tests/targets/varied_stacks.py")
        print(f"the real run's own file (zstd): {os.path.getsize(real) / real_samples:.2f} bytes/sample")
        files = {}
        for compression in ("zstd", "none"):
            path = files[compression] = os.path.join(tmp, f"{compression}.bin")
            collector, secs = write_binary(path, ticks, run, compression)
            size = os.path.getsize(path)
            print(f"binary, {compression:<4}: {size:>12,} bytes  {size / n:6.2f} bytes/sample  "
                  f"(written at {n / secs:,.0f} samples/s; records: {collector.repeat_records:,} repeat, "
                  f"{collector.full_records:,} full, {collector.suffix_records:,} suffix, "
                  f"{collector.pop_push_records:,} pop-push)")
        del ticks, reader, collector  # the synthesised samples are not part of what replay holds
        gc.collect()
        sys.stderr = open(os.devnull, "w")  # the collectors' "written to" chatter
        try:
            for label, fmt in (("binary -> pstats", "pstats"), ("binary -> collapsed", "collapsed"),
                               ("binary -> flamegraph", "flamegraph"), ("binary -> gecko", "gecko")):
                if fmt not in COLLECTORS:
                    print(f"replay {label:<26} n/a (no {fmt} collector registered)", file=sys.stdout)
                    continue
                rate = replay_throughput(files["zstd"], fmt, tmp)
                print(f"replay {label:<26} {rate:>12,.0f} samples/s (zstd file)", file=sys.stdout)
        finally:
            sys.stderr.close()
            sys.stderr = sys.__stderr__


if __name__ == "__main__":
    main()
