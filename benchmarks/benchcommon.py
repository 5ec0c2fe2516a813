"""What the issue-12 benchmarks share: running one profiler to its end and reading what it says.

Target start-up, the sid root, Tachyon's namespace and the child-process bookkeeping come from
bench_sampler.py (the one place that knows them); this module adds a profiler run that keeps
everything the new figures need from it: CPU and peak RSS (from the rusage of `os.wait4`), the
summary's samples, duration, error rate and missed samples, and the whole log.
"""

from __future__ import annotations

import argparse

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable
from pathlib import Path

import bench_sampler as bs

TACHYON = "Tachyon"
HEATLINE = "heatline"
PURE = bs.PURE


@dataclass
class Outcome:
    """One profiler run, to its end."""

    tool: str
    ok: bool = False
    reason: str = ""                 # why not ok: shown as "n/a: <reason>"
    code: int | None = None
    cpu_s: float | None = None       # user+sys over the profiler's whole life
    maxrss_mb: float | None = None   # peak resident set of the profiler process
    wall_s: float | None = None
    samples: int | None = None       # the summary's "Captured N samples"
    duration: float | None = None    # ... "in S seconds"
    error_pct: float | None = None   # the summary's "Error rate"
    missed: str = ""
    walker: str = ""                 # heatline: "native", "pure-Python" (from its summary note)
    log: str = ""
    output: Path | None = None

    @property
    def rate(self) -> float | None:
        return self.samples / self.duration if self.samples is not None and self.duration else None

    @property
    def cpu_pct(self) -> float | None:
        return 100 * self.cpu_s / self.wall_s if self.cpu_s is not None and self.wall_s else None

    @property
    def cpu_per_sample_us(self) -> float | None:
        return 1e6 * self.cpu_s / self.samples if self.cpu_s is not None and self.samples else None

    @property
    def label(self) -> str:
        return self.tool if not self.walker or self.tool == TACHYON else f"{self.tool} [{self.walker}]"


def na(reason: str) -> str:
    return f"n/a: {reason}"


def fmt(value: float | int | None, spec: str, why: str = "n/a") -> str:
    return why if value is None else format(value, spec)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def wait4(p: subprocess.Popen, timeout: float) -> tuple[int | None, float, float, float]:
    """Reap `p`: (exit code or None on timeout, user+sys CPU s, peak RSS MB, end time)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            # Linux reports ru_maxrss in KiB.
            return p.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, time.monotonic()
        if time.monotonic() >= deadline:
            return None, 0.0, 0.0, time.monotonic()
        time.sleep(0.02)


def parse_summary(out: Outcome, text: str) -> None:
    """Fill `out` from a Tachyon-style summary (heatline prints the same one)."""
    out.log = text
    # Numbers follow the locale (no grouping in the root's C locale; commas elsewhere).
    if mt := re.search(r"Captured ([\d,]+) samples? in ([\d,.]+) seconds", text):
        out.samples = int(mt.group(1).replace(",", ""))
        out.duration = float(mt.group(2).replace(",", ""))
    if mt := re.search(r"Error rate: ([\d,.]+)", text):
        out.error_pct = float(mt.group(1).replace(",", ""))
    if mt := re.search(r"Warning: missed ([\d,]+) samples from the expected total of ([\d,]+) \(([\d.]+)%\)", text):
        out.missed = f"missed {mt.group(1)} of {mt.group(2)} ({mt.group(3)}%)"
    if "pure-Python walker" in text:
        out.walker = "pure-Python"
    elif re.search(r"native (sampler|walker)", text):
        out.walker = "native"


def last_line(text: str) -> str:
    return bs.last_line(text)


def tachyon_argv(pid: int, *args: str) -> list[str]:
    """Tachyon `attach ARGS PID` in the target's mount namespace and root (see bench_sampler)."""
    return ["nsenter", "-t", str(pid), "-m", "-r", "-w", "/usr/bin/python3.15", "-m", "profiling.sampling",
            "attach", *args, str(pid)]


class Scratch:
    """Scratch files on the host and, for Tachyon (which writes inside the root), under the root's /tmp."""

    def __init__(self, work: bs.Workdirs) -> None:
        self.work = work
        self.n = 0

    def host(self, name: str) -> Path:
        self.n += 1
        return self.work.host / f"{self.n:03d}_{name}"

    def root(self, name: str) -> tuple[str, Path]:
        """(path as the root sees it, the same file as the host sees it)."""
        self.n += 1
        inside = f"{self.work.in_root()}/{self.n:03d}_{name}"
        return inside, Path(bs.sid_root().host_path(inside))


def run_profiler(tool: str, target: bs.Target, args: list[str], scratch: Scratch, *, output: str | None,
                 timeout: float, pure: bool = False) -> Outcome:
    """heatline (`tool` HEATLINE or PURE) or Tachyon attached to `target` with `args` (everything but
    the PID and -o), run to its end. `output`: a file name for -o (none: no -o)."""
    out = Outcome(tool)
    if tool == TACHYON:
        if (why := bs.tachyon_unavailable_reason()) is not None:
            out.reason = why
            return out
        if not target.python.tachyon_here:
            out.reason = f"Tachyon attaches to 3.15 only (target {target.python.short_version})"
            return out
        extra = []
        if output:
            inside, out.output = scratch.root(output)
            extra = ["-o", inside]
        log = scratch.host(f"tachyon_{target.pid}.log")
        argv = tachyon_argv(target.pid, *args, *extra)
        env, cwd = None, None
    else:
        extra = []
        if output:
            out.output = scratch.host(output)
            extra = ["-o", str(out.output)]
        log = scratch.host(f"heatline_{target.pid}.log")
        argv = bs.heatline_argv("attach", str(target.pid), *args, *extra)
        env, cwd = bs.heatline_env(pure or tool == PURE), str(bs.REPO)
    t0 = time.monotonic()
    with open(log, "wb") as logf:
        p = bs.CHILDREN.spawn(argv, stdout=logf, env=env, cwd=cwd)
    code, cpu, rss, t_end = wait4(p, timeout)
    if code is None:
        bs.Children.end(p)
        out.reason = f"did not finish within {timeout:.0f} s"
        return out
    out.code, out.cpu_s, out.maxrss_mb, out.wall_s = code, cpu, rss, t_end - t0
    text = log.read_text(errors="replace")
    parse_summary(out, text)
    if tool != TACHYON and not out.walker:
        # heatline's summary notes only the pure-Python walker; --version names the one it loads.
        out.walker = "native" if "native sampler" in heatline_version(pure or tool == PURE) else "?"
    if code != 0:
        out.reason = f"exit {code}: {last_line(text)}"
        return out
    if out.samples is None:
        out.reason = "no summary in its output"
        return out
    out.ok = True
    return out


@lru_cache(maxsize=None)
def heatline_help() -> str:
    res = subprocess.run(bs.heatline_argv("attach", "--help"), capture_output=True, text=True,
                         env=bs.heatline_env(), cwd=str(bs.REPO), timeout=60)
    return res.stdout + res.stderr


def heatline_has(flag: str) -> bool:
    """Whether this checkout's heatline knows `flag` (features land while these scripts exist)."""
    return re.search(rf"(^|[\s\[,]){re.escape(flag)}\b", heatline_help()) is not None


@lru_cache(maxsize=None)
def heatline_version(pure: bool = False) -> str:
    res = subprocess.run(bs.heatline_argv("--version"), capture_output=True, text=True,
                         env=bs.heatline_env(pure), cwd=str(bs.REPO), timeout=60)
    return " ".join((res.stdout + res.stderr).split()) or "unknown"


def host_python(minor: str) -> bs.Interpreter | None:
    """CPython 3.X on the host: pyenv's, or /usr/bin's."""
    import glob
    paths = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{minor}.*/bin/python{minor}")))
    paths += [f"/usr/bin/python{minor}"]
    for path in paths:
        if os.access(path, os.X_OK) and (version := bs.python_version(path)):
            return bs.Interpreter(path, version)
    return None


def interpreter(spec: str) -> tuple[bs.Interpreter | None, str]:
    """"3.11" (host) or "sid:3.15" (the sid root): (interpreter, or None and why)."""
    if spec.startswith(bs.SID_PREFIX):
        return bs.resolve_python(spec)
    found = host_python(spec)
    return (found, "") if found else (None, f"no CPython {spec} on this machine")


@dataclass
class Table:
    """A figure's table: rows of cells, printed aligned."""

    title: str
    head: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def print(self) -> None:
        print(self.title)
        widths = [max(len(r[i]) if i < len(r) else 0 for r in [self.head, *self.rows]) for i in range(len(self.head))]
        line = "  " + "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(self.head, widths)))
        print(line)
        print("  " + "-" * (len(line) - 2))
        for r in self.rows:
            print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        for n in self.notes:
            print(f"  {n}")
        print()
        sys.stdout.flush()


def python_option(parser: "argparse.ArgumentParser", defaults: list[str]) -> None:
    """The scripts' repeatable --python: which interpreters to measure on."""
    parser.add_argument("--python", action="append", help="3.12 (host) or sid:3.15; repeatable "
                        f"(default: {' '.join(defaults)})")


def note_without_tachyon(table: Table, python: bs.Interpreter) -> None:
    """Say in `table` why Tachyon has no column on `python`, when it has none."""
    if not python.tachyon_here:
        table.notes.append(f"Tachyon: n/a (it attaches to 3.15 only; target {python.short_version})")


def start_target(python: bs.Interpreter, script: Path, args: list[str] = ()) -> bs.Target:
    return bs.Target(python, script, list(args))


# The figures the issue sets aims for, one line each, collected as they are measured and printed
# together at the end of bench_figures.py.
KEY_FIGURES: list[str] = []


def guarded(body: "Callable[[bs.Workdirs], None]") -> int:
    """`body(work)` with scratch directories, as a script's exit status: Ctrl-C ends every child
    process it started (status 130) and the scratch directories go in any case."""
    work = bs.Workdirs()
    try:
        body(work)
    except KeyboardInterrupt:
        print("\ninterrupted: child processes ended", file=sys.stderr)
        return 130
    finally:
        bs.CHILDREN.end_all()
        work.remove()
    return 0


def key(line: str) -> None:
    KEY_FIGURES.append(line)
