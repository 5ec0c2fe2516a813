#!/usr/bin/env python3
"""What `--live` costs: the profiler's CPU and achieved rate with the curses view and without (issue 14).

The issue asks that the live view not slow sampling: at 1 kHz the UI adds under a few percent of
a core, and at 10 kHz the achieved rate matches a run without `--live`.

Target: `tests/targets/varied_stacks.py`, three threads (sharing the GIL, so about one core in
all) walking a call tree of 12 functions along random paths 3 to 24 deep: hundreds of distinct
stacks and dozens of (function, line) rows, so the view has a real table to keep up to date.
Each run gets a fresh target and samples every thread (`-a`) at the asked rate for D seconds,
one run at a time, the two kinds of run side by side for each profiler:

- no UI: `attach -a -r RATE -d D PID --collapsed -o FILE` (heatline writes to /dev/null, Tachyon
  to a file under the root's /tmp), its summary giving the samples and seconds;
- `--live`: `attach --live -a -r RATE -d D PID` in a detached tmux session of 150x40 on a private
  tmux server (its own socket, no user configuration). The pane is polled with capture-pane
  until the finished banner shows, then `q` is sent; the achieved rate is the summary heatline
  prints after it quits, or, when there is none (Tachyon prints none in live mode), the screen's
  final `Samples: N total (R/s)` line. Each view runs at its own default refresh rate.

CPU: every 0.2 s the user+sys time of the profiler's process tree (the pane's or the spawned
process and all its descendants, from /proc/PID/stat, threads included) is read, with the
target's, the tmux server's and the whole machine's. The figure is the tree's CPU over a steady
window inside the sampling, from D - 1.5 s before the end to 0.5 s before it (the end: the
process exiting, or the banner first seen), so start-up (imports, attaching) and writing the
output are outside it, for both kinds of run alike. "UI cost" is the live run's CPU minus the
no-UI run's, in % of one core. tmux's own CPU (the terminal drawing the screen, which a real
terminal would do) is shown apart and not counted; "other load" is the rest of the machine in
the window (cores), so a busy machine shows.

Tachyon (CPython 3.15's `profiling.sampling`, in the sid root: tests/sid_root.py) runs the same
two ways on a 3.15 target in the root, in the target's mount namespace (see bench_sampler.py),
and heatline attaches to the same kind of target from the host; ratios are heatline / Tachyon.
Without the root, a line says why Tachyon was skipped. Absolute figures depend on the machine
and its load: compare the columns of one run.

With `--repeat N` each pair runs N times, interleaved, and the table shows medians (the UI cost
is the median of the pairs' differences); a UI cost under 1 point of a core (noise) gets no ratio.

    python benchmarks/bench_live.py [--rate 1000 --rate 10000] [--duration 6] [--repeat 1] [--python PATH|sid:3.15]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import bench_sampler as bs
import benchcommon as bc

TARGET = bs.REPO / "tests" / "targets" / "varied_stacks.py"
COLUMNS, LINES = 150, 40
TICK_S = 0.2
HEAD_S = 1.5   # the window starts this long after sampling began (first table build, warm-up)
TAIL_S = 0.5   # ... and ends this long before the end was seen (the banner shows at a redraw)
MIN_DURATION = 3
NOISE_POINTS = 1.0  # CPU differences (points of a core) under this are within a window's noise
# heatline's finished banner, and Tachyon's ("✓ PROFILING COMPLETE - Final Results Below ...").
BANNER = re.compile(r"FINISHED|PROFILING COMPLETE")
# Both views' samples line: Tachyon's "Samples: 3719 total ( 1000.4/s) ...", heatline's
# "Samples: 3,719 total  1,000/s of 1,000/s asked (100%)".
SCREEN_SAMPLES = re.compile(r"Samples:\s*([\d,]+)\s+total\W*?([\d,.]+)/s")
# The view's refresh rate in its header: heatline's "Refresh 10 Hz", Tachyon's "Display: 10.0Hz".
SCREEN_REFRESH = re.compile(r"(?:Refresh|Display:)\s*([\d.]+)\s*Hz")


# -- CPU of process trees, from /proc --------------------------------------------------------------


def proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, user+sys CPU s including reaped children's) for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2:].split()
        # utime, stime, cutime, cstime: a child that exited and was reaped leaves its time in its parent's.
        table[int(entry)] = (int(rest[1]), sum(int(v) for v in rest[11:15]) / bs.TCK)
    return table


def tree_cpu_s(table: dict[int, tuple[int, float]], root: int) -> float:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            total += table[pid][1]
            todo.extend(children.get(pid, ()))
    return total


@dataclass
class Reading:
    t: float
    profiler: float   # CPU s of the profiler's process tree
    target: float
    terminal: float   # the tmux server's own CPU s (live runs; 0 otherwise)
    machine: float    # busy CPU s of the whole machine


def read(root: int, target: int, terminal: int | None) -> Reading:
    table = proc_table()
    return Reading(time.monotonic(), tree_cpu_s(table, root), bs.process_cpu_s(target),
                   bs.process_cpu_s(terminal) if terminal else 0.0, bs.machine_busy_s())


def watch(root: int, target: int, terminal: int | None, done: Callable[[], bool],
          timeout: float) -> tuple[list[Reading], float | None]:
    """Readings every TICK_S until `done()`: (readings, when done was first true, or None on timeout).
    Each reading is taken before `done` is asked, so the last one precedes the end."""
    readings: list[Reading] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readings.append(read(root, target, terminal))
        if done():
            return readings, time.monotonic()
        time.sleep(TICK_S)
    return readings, None


# -- one run ---------------------------------------------------------------------------------------


@dataclass
class Run:
    """One profiler run, live or not; `summary` holds its samples and seconds (bc.Outcome)."""

    summary: bc.Outcome
    live: bool
    cpu_pct: float | None = None        # the profiler tree's CPU in the window, % of one core
    target_pct: float | None = None
    terminal_pct: float | None = None
    other_load: float | None = None     # cores
    rate_from: str = ""                 # "summary" or "screen"
    screen_rate: float | None = None
    refresh: str = ""                   # the live view's refresh rate, as its header says
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.summary.ok

    @property
    def rate(self) -> float | None:
        return self.summary.rate if self.summary.rate is not None else self.screen_rate


def fill_window(run: Run, readings: list[Reading], t_end: float, seconds: int) -> None:
    start, stop = t_end - seconds + HEAD_S, t_end - TAIL_S
    inside = [r for r in readings if start <= r.t <= stop]
    if len(inside) < 2:
        gap = max((b.t - a.t for a, b in zip(readings, readings[1:])), default=0.0)
        first = t_end - readings[0].t if readings else 0.0
        run.summary.reason = (f"{len(inside)} CPU readings inside the window (readings from {first:.1f} s before "
                              f"the end, up to {gap:.1f} s apart: a busy machine; a longer --duration helps)")
        return
    a, b = inside[0], inside[-1]
    dt = b.t - a.t
    prof, targ, term = b.profiler - a.profiler, b.target - a.target, b.terminal - a.terminal
    run.cpu_pct, run.target_pct, run.terminal_pct = 100 * prof / dt, 100 * targ / dt, 100 * term / dt
    run.other_load = max(0.0, (b.machine - a.machine) - prof - targ - term) / dt


class Terminal:
    """A private tmux server (own socket, no user configuration) whose sessions hold the live views.
    Panes stay after their process exits, so what it printed on quitting can be read."""

    def __init__(self, work: Path) -> None:
        self.socket = work / "tmux.sock"
        self.conf = work / "tmux.conf"
        self.conf.write_text("set -g remain-on-exit on\nset -g history-limit 10000\n")
        self.n = 0
        self.env = {k: v for k, v in os.environ.items() if k != "TMUX"}

    def tmux(self, *args: str) -> str:
        res = subprocess.run(["tmux", "-S", str(self.socket), "-f", str(self.conf), *args],
                             capture_output=True, text=True, timeout=30, env=self.env)
        if res.returncode != 0:
            raise RuntimeError(f"tmux {args[0]}: {res.stderr.strip() or res.returncode}")
        return res.stdout

    def start(self, argv: list[str], cwd: str) -> str:
        self.n += 1
        name = f"live{self.n}"
        # Several arguments after the options: tmux execs them without a shell.
        self.tmux("new-session", "-d", "-s", name, "-x", str(COLUMNS), "-y", str(LINES), "-c", cwd, *argv)
        return name

    def value(self, name: str, fmt: str) -> str:
        return self.tmux("display-message", "-p", "-t", name, fmt).strip()

    def screen(self, name: str, history: bool = False) -> str:
        return self.tmux("capture-pane", "-p", "-t", name, *(["-S", "-"] if history else []))

    def close(self) -> None:
        if self.socket.exists():
            try:
                self.tmux("kill-server")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass


def heatline_argv(*args: str) -> list[str]:
    """heatline as bench_sampler runs it, its environment given on the command line (the tmux server
    has the benchmark's own)."""
    env = bs.heatline_env()
    return ["env", "-u", bs.NATIVE_ENV, f"PYTHONPATH={env['PYTHONPATH']}", *bs.heatline_argv(*args)]


def profiler_argv(tool: str, target: bs.Target, live: bool, rate: int, seconds: int,
                  scratch: bc.Scratch) -> list[str]:
    common = ["-a", "-r", str(rate), "-d", str(seconds)]
    if live:
        common.insert(0, "--live")
    else:
        inside = scratch.root("tachyon_live.txt")[0] if tool == bc.TACHYON else os.devnull
        common += ["--collapsed", "-o", inside]
    if tool == bc.TACHYON:
        return bc.tachyon_argv(target.pid, *common)
    return heatline_argv("attach", *common, str(target.pid))


def run_plain(tool: str, target: bs.Target, rate: int, seconds: int, scratch: bc.Scratch) -> Run:
    run = Run(bc.Outcome(tool), live=False)
    log = scratch.host(f"{tool}_{target.pid}.log")
    with open(log, "wb") as logf:
        p = bs.CHILDREN.spawn(profiler_argv(tool, target, False, rate, seconds, scratch), stdout=logf,
                              cwd=str(bs.REPO))
    readings, t_end = watch(p.pid, target.pid, None, lambda: p.poll() is not None, seconds * 4 + 60)
    if t_end is None:
        bs.Children.end(p)
        run.summary.reason = "did not finish in time"
        return run
    text = log.read_text(errors="replace")
    bc.parse_summary(run.summary, text)
    if p.returncode != 0 or run.summary.samples is None:
        run.summary.reason = f"exit {p.returncode}: {bc.last_line(text)}"
        return run
    run.rate_from = "summary"
    run.summary.ok = True
    fill_window(run, readings, t_end, seconds)
    run.summary.ok = not run.summary.reason
    return run


def run_live(tool: str, target: bs.Target, rate: int, seconds: int, scratch: bc.Scratch, term: Terminal) -> Run:
    run = Run(bc.Outcome(tool), live=True)
    name = term.start(profiler_argv(tool, target, True, rate, seconds, scratch), str(bs.REPO))
    try:
        root, server = int(term.value(name, "#{pane_pid}")), int(term.value(name, "#{pid}"))
        last = [""]

        def finished() -> bool:
            last[0] = term.screen(name)
            return BANNER.search(last[0]) is not None or term.value(name, "#{pane_dead}") == "1"

        readings, t_end = watch(root, target.pid, server, finished, seconds * 4 + 60)
        screen = last[0]
        if mt := SCREEN_SAMPLES.search(screen):
            run.screen_rate = float(mt.group(2).replace(",", ""))
        if mt := SCREEN_REFRESH.search(screen):
            run.refresh = f"{float(mt.group(1)):g} Hz"
        if t_end is None or BANNER.search(screen) is None:
            lines = [ln.strip() for ln in term.screen(name, history=True).splitlines() if ln.strip()]
            why = "it exited" if t_end is not None else f"none within {seconds * 4 + 60} s"
            run.summary.reason = f"no finished banner ({why}); last line: {(lines or ['(none)'])[-1][:120]}"
            return run
        term.tmux("send-keys", "-t", name, "q")
        deadline = time.monotonic() + 20
        while term.value(name, "#{pane_dead}") != "1":
            if time.monotonic() > deadline:
                run.summary.reason = "still running 20 s after q"
                return run
            time.sleep(0.05)
        status = term.value(name, "#{pane_dead_status}")
        # Without tmux's own "Pane is dead (status N, DATE)" line: the last line is the profiler's.
        after = "\n".join(ln for ln in term.screen(name, history=True).splitlines() if not ln.startswith("Pane is dead"))
        bc.parse_summary(run.summary, after)
        if status not in ("", "0"):
            run.summary.reason = f"exit {status} after q: {bc.last_line(after)}"
            return run
        if run.summary.samples is None and run.screen_rate is None:
            run.summary.reason = "no summary after q and no samples line on the screen"
            return run
        run.rate_from = "summary" if run.summary.samples is not None else "screen"
        fill_window(run, readings, t_end, seconds)
        run.summary.ok = not run.summary.reason
        return run
    finally:
        try:
            term.tmux("kill-session", "-t", name)
        except RuntimeError:
            pass


def pair(tool: str, python: bs.Interpreter, rate: int, seconds: int, scratch: bc.Scratch,
         term: Terminal) -> tuple[Run, Run]:
    """(no UI, --live), each on a fresh target."""
    runs = []
    for live in (False, True):
        try:
            target = bc.start_target(python, TARGET)
        except RuntimeError as exc:
            runs.append(Run(bc.Outcome(tool, reason=str(exc)), live=live))
            continue
        try:
            runs.append(run_live(tool, target, rate, seconds, scratch, term) if live
                        else run_plain(tool, target, rate, seconds, scratch))
            if not target.alive():
                runs[-1].notes.append("the target died during the run")
        except RuntimeError as exc:  # tmux refused a command
            runs.append(Run(bc.Outcome(tool, reason=str(exc)), live=live))
        finally:
            target.close()
    return runs[0], runs[1]


# -- printing --------------------------------------------------------------------------------------


@dataclass
class Pairs:
    """Every (no UI, --live) pair of one profiler on one kind of target; the table shows medians."""

    pairs: list[tuple[Run, Run]] = field(default_factory=list)

    def runs(self, live: bool) -> list[Run]:
        return [live_run if live else plain for plain, live_run in self.pairs]

    def median(self, live: bool, get: Callable[[Run], float | None]) -> float | None:
        values = [v for r in self.runs(live) if r.ok and (v := get(r)) is not None]
        return statistics.median(values) if values else None

    def cost(self) -> float | None:
        """The UI's cost: the median over pairs of --live CPU minus no-UI CPU (points of one core)."""
        diffs = [live.cpu_pct - plain.cpu_pct for plain, live in self.pairs if plain.ok and live.ok]
        return statistics.median(diffs) if diffs else None

    def achieved(self, live: bool, rate: int) -> str:
        got = self.median(live, lambda r: r.rate)
        if got is None:
            return "n/a"
        screen = any(r.ok and r.rate_from == "screen" for r in self.runs(live))
        return f"{got:,.0f}/s {100 * got / rate:.1f}%{' (screen)' if screen else ''}"


def cost_ratio(ours: float | None, theirs: float | None) -> str:
    # A ratio with a difference within the window's noise (or below zero) says nothing.
    if ours is not None and theirs is not None and min(ours, theirs) < NOISE_POINTS:
        return f"n/a (<{NOISE_POINTS:g} pt)"
    return bc.ratio(ours, theirs)


def measure(pythons: list[bs.Interpreter], rate: int, seconds: int, repeat: int, scratch: bc.Scratch,
            term: Terminal) -> None:
    runs = "1 run" if repeat == 1 else f"medians of {repeat} runs"
    table = bc.Table(f"--live at {rate:,} Hz asked: varied_stacks.py (3 threads, one GIL), -a, {seconds} s per run, "
                     f"{runs}; CPU in % of one core over the steady window",
                     ["profiler / target", "CPU no UI", "CPU --live", "UI cost", "achieved no UI", "achieved --live",
                      "live / no UI rate", "tmux", "other load"])
    for python in pythons:
        where = python.short_version
        tools = [bc.HEATLINE] + ([bc.TACHYON] if python.tachyon_here else [])
        results = {tool: Pairs() for tool in tools}
        for _ in range(repeat):
            for tool in tools:
                results[tool].pairs.append(pair(tool, python, rate, seconds, scratch, term))
        for tool, res in results.items():
            table.add(f"{tool} / {where}", bc.fmt(res.median(False, lambda r: r.cpu_pct), ".1f"),
                      bc.fmt(res.median(True, lambda r: r.cpu_pct), ".1f"), bc.fmt(res.cost(), "+.1f"),
                      res.achieved(False, rate), res.achieved(True, rate),
                      bc.ratio(res.median(True, lambda r: r.rate), res.median(False, lambda r: r.rate)),
                      bc.fmt(res.median(True, lambda r: r.terminal_pct), ".1f"),
                      bc.fmt(res.median(True, lambda r: r.other_load), ".2f") + " / "
                      + bc.fmt(res.median(False, lambda r: r.other_load), ".2f"))
            if refresh := sorted({r.refresh for r in res.runs(True) if r.refresh}):
                table.notes.append(f"{tool} / {where} --live: the view refreshed at {', '.join(refresh)} (its default)")
            for run in (r for p in res.pairs for r in p):
                kind = "--live" if run.live else "no UI"
                if not run.ok:
                    table.notes.append(f"{tool} / {where} {kind}: {bc.na(run.summary.reason)}")
                if run.summary.missed:
                    table.notes.append(f"{tool} / {where} {kind}: {run.summary.missed}")
                table.notes.extend(f"{tool} / {where} {kind}: {n}" for n in run.notes)
        if bc.TACHYON in results:
            ours, theirs = results[bc.HEATLINE], results[bc.TACHYON]
            row = [bc.ratio(ours.median(live, lambda r: r.cpu_pct), theirs.median(live, lambda r: r.cpu_pct))
                   for live in (False, True)]
            row.append(cost_ratio(ours.cost(), theirs.cost()))
            row += [bc.ratio(ours.median(live, lambda r: r.rate), theirs.median(live, lambda r: r.rate))
                    for live in (False, True)]
            table.add(f"heatline / Tachyon ({where})", *row, "", "", "")
    table.notes.append("UI cost: CPU --live minus CPU no UI (percentage points of one core); achieved: samples/s "
                       "and % of the asked rate, '(screen)' when read off the final screen (no summary printed); "
                       "other load: cores, --live run / no-UI run; heatline / Tachyon: ratios on the same target")
    table.print()


def print_header(pythons: list[bs.Interpreter], rates: list[int], seconds: int) -> None:
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print("--live cost: heatline (and Tachyon) with the curses view and without")
    print(f"  machine:   {os.cpu_count()} CPUs, {bs.cpu_model()}, load average {load}")
    print(f"  heatline:  {bc.heatline_version()}")
    reason = bs.tachyon_unavailable_reason()
    print(f"  Tachyon:   " + (f"CPython {bs.sid_root().version_of('3.15')}'s profiling.sampling in the sid root "
                              f"{bs.sid_root().root_path()}" if reason is None else f"skipped ({reason})"))
    print(f"  targets:   " + "; ".join(f"{p.version} ({p.label})" for p in pythons))
    print(f"  runs:      rates {', '.join(f'{r:,} Hz' for r in rates)}; {seconds} s each; tmux {COLUMNS}x{LINES}; "
          f"window {seconds - HEAD_S - TAIL_S:g} s")
    busy = bs.busy_processes()
    if busy:
        print(f"  warning:   other processes are using the CPU ({sum(b[1] for b in busy):.0f}% of a core in all):")
        for pid, pct, cmd in busy[:6]:
            print(f"             pid {pid:>7} {pct:5.0f}%  {cmd[:90]}")
    print()
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, action="append", help="asked rate in Hz; repeatable (default 1000, 10000)")
    parser.add_argument("--duration", type=int, default=6, help=f"seconds per run, at least {MIN_DURATION} (default 6)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="pairs of runs per profiler, target and rate; the table shows medians (default 1)")
    parser.add_argument("--python", action="append",
                        help="target interpreter: a path, or sid:3.15 inside the sid root (adds Tachyon); "
                             "repeatable (default: this one, and sid:3.15 when the root is there)")
    args = parser.parse_args(argv)
    if args.duration < MIN_DURATION:
        parser.error(f"--duration must be at least {MIN_DURATION} s (the CPU window leaves out its first and last second)")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if shutil.which("tmux") is None:
        parser.error("tmux is needed: the live views run in detached tmux sessions")
    specs = args.python or [sys.executable] + ([bs.SID_PREFIX + "3.15"] if bs.sid_unavailable_reason() is None else [])
    pythons = []
    for spec in specs:
        python, why = bs.resolve_python(spec)
        if python is None:
            parser.error(why)
        pythons.append(python)
    rates = args.rate or [1000, 10_000]
    signal.signal(signal.SIGTERM, bs._on_signal)
    signal.signal(signal.SIGHUP, bs._on_signal)

    def body(work: bs.Workdirs) -> None:
        term = Terminal(work.host)
        try:
            print_header(pythons, rates, args.duration)
            for rate in rates:
                measure(pythons, rate, args.duration, args.repeat, bc.Scratch(work), term)
        finally:
            term.close()

    return bc.guarded(body)


if __name__ == "__main__":
    sys.exit(main())
