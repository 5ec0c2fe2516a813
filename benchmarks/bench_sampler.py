#!/usr/bin/env python3
"""heatline vs Tachyon vs py-spy, side by side: achieved sample rate and the profiler's own CPU cost.

What it measures (figures only: nothing passes or fails):

1. Achieved samples per second at a requested 100 kHz, on `targets/deep_cpu.py`: one thread,
   CPU-bound, recursing to depth 32 and spinning at the leaf forever (33 Python frames with
   `<module>`). heatline runs as `attach PID -r 100khz -d D --collapsed -o FILE`; the sample
   count and duration come from its summary, and the samples in FILE are counted too. py-spy runs
   as `record --pid PID --rate 100000 --format raw -o FILE`, once with `--nonblocking` and once
   with its default (which stops the target for each sample). The median stack depth of each
   output is reported, so a profiler returning shallow stacks cannot look fast.
2. The profiler's own CPU time at 1 kHz on `targets/three_threads.py` (two threads in CPU loops,
   the main thread alternating short sleeps and computation): heatline with `-a`, py-spy with
   `--threads --idle` (every thread, sleeping ones included, like heatline's default wall mode).
   The user+sys CPU of the profiler process comes from `os.wait4`'s rusage, over its whole life
   (start-up, attach, sampling, writing the output); shown as seconds, % of one core and CPU per
   sample, next to the achieved rate.
3. `--python PATH` picks the target's interpreter (default: this one); `--python sid:3.15` (or
   `sid:3.14`) is that CPython inside the Debian sid root of tests/sid_root.py
   (`sh tests/make-sid-root.sh` makes it). `--all-pythons` repeats measurement 1 for each
   CPython 3.9-3.15 under ~/.pyenv/versions and /usr/bin/python3, then for the root's 3.14 and
   3.15; a 3.15 target there also gets measurement 2.

heatline is measured twice: as installed (its native sampler when that is built), and with
HEATLINE_NATIVE=0 in its environment, which forces its pure-Python walker ("heatline pure"), so
the ratio in that column is the native core's gain. heatline's summary says which walker ran; when
the native one is not built, both columns measure the pure-Python walker and a note says so.

Tachyon (CPython 3.15's own `profiling.sampling`) gets a column on 3.15 targets in the sid root:
the target is started inside the root and Tachyon runs inside it too, as
`attach -r RATE -d D [-a] --collapsed -o FILE PID`, its samples and duration read from its own
summary and its CPU from the rusage of its process; heatline attaches to the same kind of target
from the host. Tachyon runs in the target's own mount namespace and root (`nsenter -t PID -m -r`):
a target started by one `sid_root.in_root` call lives in a mount namespace of its own, whose
`/proc/PID/maps` paths a Tachyon in another namespace cannot open ("Failed to find the PyRuntime
section"). Tachyon's `-d` takes whole seconds, so D is rounded for it. Without the root (or on
other targets), a line says why Tachyon was skipped.

Fairness: each profiler gets a fresh copy of the same target script, started the same way and
left to settle for a moment, and samples it for the same D seconds; the profilers never run at the
same time. py-spy's `--duration` counts samples (rate x D) rather than seconds, so a py-spy that
cannot keep up runs far longer than D; it is therefore started without `--duration` and stopped
with SIGINT (its Ctrl-C, which still writes the output) D seconds after it reports that sampling
began, and its rate is samples / that time. heatline's and Tachyon's rates are their own
summaries' samples / duration. On a 2-core machine the target takes one core and the profiler the
other, so anything else running skews the figures: every run also reports the target's CPU and
the rest of the machine's load during it ("other load"). Ratios are heatline / the column before.

Run from the repository root (heatline runs under this interpreter, which needs 3.10+):

    pip install py-spy          # or: pip install -e '.[bench]'
    python benchmarks/bench_sampler.py [--duration 5] [--python PATH|sid:3.15] [--all-pythons]

Without py-spy, heatline's figures are still printed and py-spy's columns say "n/a".
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEEP_TARGET = HERE / "targets" / "deep_cpu.py"
THREADS_TARGET = HERE / "targets" / "three_threads.py"
DEEP_RECURSION = 32
EXPECTED_DEPTH = DEEP_RECURSION + 1  # + <module>
THREADS_EXPECTED = 3
TCK = os.sysconf("SC_CLK_TCK")
SETTLE_S = 0.3
SID_PREFIX = "sid:"        # --python sid:3.15: that CPython inside the sid root
TACHYON_FROM = (3, 15)     # Tachyon ships with (and attaches to) 3.15

# -- the Debian sid root (CPython 3.14/3.15, and Tachyon) -------------------------------------------

_SID_ROOT = None


def sid_root():
    """tests/sid_root.py (the one place that knows how to make and enter the root), or None."""
    global _SID_ROOT
    if _SID_ROOT is None:
        sys.path.insert(0, str(REPO / "tests"))
        try:
            import sid_root as module
        except ImportError:
            module = False
        finally:
            sys.path.remove(str(REPO / "tests"))
        _SID_ROOT = module
    return _SID_ROOT or None


def sid_unavailable_reason() -> str | None:
    """Why targets inside the sid root cannot be run (None when they can)."""
    sr = sid_root()
    if sr is None:
        return "tests/sid_root.py is missing"
    return sr.unavailable_reason()


def tachyon_unavailable_reason() -> str | None:
    """Why Tachyon cannot be run here at all (None when it can)."""
    reason = sid_unavailable_reason()
    if reason is not None:
        return reason
    if shutil.which("nsenter") is None:
        return "nsenter (util-linux) is missing: Tachyon must join the target's mount namespace"
    if sid_root().version_of("3.15") is None:
        return f"python3.15 does not run in the sid root {sid_root().root_path()}"
    return None


@dataclass(frozen=True)
class Interpreter:
    """A target interpreter: a host path, or a path inside the sid root (`rooted`)."""

    path: str
    version: str                 # "CPython 3.15.2"
    rooted: bool = False

    @property
    def minor(self) -> tuple[int, int]:
        major, minor = self.version.split()[1].split(".")[:2]
        return int(major), int(minor)

    @property
    def label(self) -> str:
        return f"{self.path} (sid root)" if self.rooted else self.path

    @property
    def short_version(self) -> str:
        return self.version.replace("CPython ", "") + (" sid" if self.rooted else "")

    @property
    def tachyon_here(self) -> bool:
        """Tachyon is measured on this target: it only attaches to 3.15, and runs inside the root."""
        return self.rooted and self.minor >= TACHYON_FROM

    def argv(self, script: Path, args: list[str]) -> list[str]:
        if not self.rooted:
            return [self.path, str(script), *args]
        sr = sid_root()
        # Every step of in_root execs, so the target keeps the PID the host (and heatline) sees.
        return sr.in_root(self.path, sr.path_in_root(str(script)), *args)

    def same(self, other: Interpreter) -> bool:
        return self.rooted == other.rooted and os.path.realpath(self.path) == os.path.realpath(other.path)


def sid_interpreter(minor: str) -> Interpreter | None:
    """python3.X inside the sid root, or None when the root or that Python is missing."""
    if sid_unavailable_reason() is not None:
        return None
    full = sid_root().version_of(minor)
    return Interpreter(f"/usr/bin/python{minor}", f"CPython {full}", rooted=True) if full else None

# -- child processes -------------------------------------------------------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL if this benchmark dies without cleaning up."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Children:
    """Every process the benchmark starts, so that all of them end whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def spawn(self, argv: list[str], *, stdout, stderr=subprocess.STDOUT, env=None, cwd=None) -> subprocess.Popen:
        # Own session: Ctrl-C on the terminal reaches only the benchmark, which then ends them.
        p = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env, cwd=cwd,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        self.procs.append(p)
        return p

    @staticmethod
    def end(p: subprocess.Popen) -> None:
        if p.returncode is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(timeout=10)
            except (subprocess.TimeoutExpired, ChildProcessError):
                pass
        for stream in (p.stdout, p.stderr):
            if stream is not None:
                stream.close()

    def end_all(self) -> None:
        for p in reversed(self.procs):  # profilers (started last) before their targets
            self.end(p)
        self.procs.clear()


CHILDREN = Children()


def wait_rusage(p: subprocess.Popen, timeout: float) -> tuple[int | None, float, float]:
    """Reap `p` with os.wait4: (exit code or None on timeout, user+sys CPU seconds, end time)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return p.returncode, ru.ru_utime + ru.ru_stime, time.monotonic()
        if time.monotonic() >= deadline:
            return None, 0.0, time.monotonic()
        time.sleep(0.02)


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores) since boot."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:9]]
    return (sum(vals) - vals[3] - vals[4]) / TCK


def process_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return 0.0
    rest = text[text.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / TCK


class Target:
    def __init__(self, python: Interpreter, script: Path, args: list[str] = ()):
        self.python = python
        self.proc = CHILDREN.spawn(python.argv(script, list(args)), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            Children.end(self.proc)
            raise RuntimeError(f"target {script.name} under {python.label} did not start "
                               f"(exit {self.proc.returncode})")
        time.sleep(SETTLE_S)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        Children.end(self.proc)


# -- reading the outputs ---------------------------------------------------------------------------


def read_stacks(path: Path, thread_prefixes: tuple[str, ...]) -> tuple[list[tuple[int, int]], set[str]]:
    """(depth, count) per line of a collapsed/raw file, and the thread labels seen.

    Both formats are `frame;frame;... count`; a leading thread element (`tid:N` for heatline,
    `thread (N)...` for py-spy --threads) is not a frame.
    """
    stacks: list[tuple[int, int]] = []
    threads: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            text, _, count = line.rpartition(" ")
            try:
                n = int(count)
            except ValueError:
                continue
            parts = text.split(";")
            if parts and parts[0].startswith(thread_prefixes):
                threads.add(parts[0].split(":")[0] if parts[0].startswith("thread (") else parts[0])
                parts = parts[1:]
            stacks.append((len(parts), n))
    return stacks, threads


def weighted_median(stacks: list[tuple[int, int]]) -> float | None:
    total = sum(n for _, n in stacks)
    if not total:
        return None
    half, seen = total / 2, 0
    ordered = sorted(stacks)
    for i, (depth, n) in enumerate(ordered):
        seen += n
        if seen > half:
            return float(depth)
        if seen == half:  # even split between this depth and the next
            return (depth + ordered[i + 1][0]) / 2
    return float(ordered[-1][0])


@dataclass
class Run:
    tool: str
    ok: bool = False
    reason: str = ""
    samples: int | None = None       # sampling passes the profiler reports itself
    stacks: int | None = None        # thread stacks in its output file
    threads: int = 0
    duration: float | None = None    # seconds of sampling
    median_depth: float | None = None
    full_depth_pct: float | None = None
    errors: str = ""
    cpu_s: float | None = None
    wall_s: float | None = None
    target_cpu_s: float | None = None
    other_load: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passes(self) -> float | None:
        """Sampling passes found in the file (stacks / threads)."""
        if self.stacks is None:
            return None
        return self.stacks / max(1, self.threads)

    @property
    def rate(self) -> float | None:
        n = self.samples if self.samples is not None else self.passes
        return n / self.duration if n is not None and self.duration else None

    @property
    def file_rate(self) -> float | None:
        return self.passes / self.duration if self.passes is not None and self.duration else None

    @property
    def cpu_pct(self) -> float | None:
        return 100 * self.cpu_s / self.wall_s if self.cpu_s is not None and self.wall_s else None

    @property
    def target_pct(self) -> float | None:
        if self.target_cpu_s is None or not self.wall_s:
            return None
        return 100 * self.target_cpu_s / self.wall_s

    @property
    def cpu_per_sample_us(self) -> float | None:
        n = self.passes
        return 1e6 * self.cpu_s / n if self.cpu_s is not None and n else None


def _fill_depth(run: Run, path: Path, thread_prefixes: tuple[str, ...]) -> None:
    stacks, threads = read_stacks(path, thread_prefixes)
    run.stacks = sum(n for _, n in stacks)
    run.threads = len(threads) or 1
    run.median_depth = weighted_median(stacks)
    if run.stacks:
        run.full_depth_pct = 100 * sum(n for d, n in stacks if d >= EXPECTED_DEPTH) / run.stacks


# -- the profilers -----------------------------------------------------------------------------------


class Measure:
    """Snapshot of target and machine CPU around one profiler run."""

    def __init__(self, target: Target):
        self.target = target
        self.t0 = time.monotonic()
        self.machine0 = machine_busy_s()
        self.target0 = process_cpu_s(target.pid)

    def finish(self, run: Run, t_end: float) -> None:
        run.wall_s = t_end - self.t0
        run.target_cpu_s = process_cpu_s(self.target.pid) - self.target0
        busy = machine_busy_s() - self.machine0
        if run.cpu_s is not None and run.wall_s > 0:
            run.other_load = max(0.0, busy - run.target_cpu_s - run.cpu_s) / run.wall_s


PURE = "heatline (pure)"   # the tool name of heatline forced onto its pure-Python walker
NATIVE_ENV = "HEATLINE_NATIVE"  # =0 in heatline's environment: the pure-Python walker


def heatline_env(pure: bool = False) -> dict[str, str]:
    """heatline's environment: this checkout first on the path; `pure` forces the pure-Python walker."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop(NATIVE_ENV, None)
    if pure:
        env[NATIVE_ENV] = "0"
    return env


def heatline_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "sampler", *args]


def run_heatline(target: Target, *, rate: str, duration: float, all_threads: bool, workdir: Path,
                 pure: bool = False) -> Run:
    """heatline attached to `target`; `pure`: with HEATLINE_NATIVE=0 (its pure-Python walker)."""
    run = Run(PURE if pure else "heatline")
    tag = "pure" if pure else "native"
    out = workdir / f"heatline_{tag}_{target.pid}.txt"
    log = workdir / f"heatline_{tag}_{target.pid}.log"
    argv = heatline_argv("attach", str(target.pid), "-r", rate, "-d", f"{duration:g}", "--collapsed", "-o", str(out))
    if all_threads:
        argv.insert(5, "-a")
    run = _run_tachyon_like(run, target, argv, log, out, duration, "collapsed profile written",
                            spawn_kw={"env": heatline_env(pure), "cwd": str(REPO)})
    if run.ok and pure is False and any("pure-Python walker" in n for n in run.notes):
        run.notes.append("heatline: the native walker is not in use (see its note above): both heatline "
                         "columns measure the pure-Python walker")
    return run


def _run_tachyon_like(run: Run, target: Target, argv: list[str], log: Path, out: Path, duration: float,
                      written: str, spawn_kw: dict | None = None) -> Run:
    """Run a profiler whose summary is Tachyon's ("Captured N samples in S seconds", "Error
    rate", "Warning: missed"): heatline and Tachyon itself. Fills `run` from its summary, its
    rusage and its output file."""
    name = run.tool
    m = Measure(target)
    with open(log, "wb") as logf:
        p = CHILDREN.spawn(argv, stdout=logf, **(spawn_kw or {}))
    code, cpu, t_end = wait_rusage(p, duration * 4 + 60)
    if code is None:
        Children.end(p)
        run.reason = "timed out"
        return run
    run.cpu_s = cpu
    m.finish(run, t_end)
    text = log.read_text(errors="replace")
    if code != 0:
        run.reason = f"exit {code}: {last_line(text)}"
        return run
    # Numbers follow the locale (no grouping in the root's C locale; commas elsewhere).
    if (mt := re.search(r"Captured ([\d,]+) samples? in ([\d,.]+) seconds", text)) is None:
        run.reason = "no summary in its output"
        return run
    run.samples = int(mt.group(1).replace(",", ""))
    run.duration = float(mt.group(2).replace(",", ""))
    if mt := re.search(r"Error rate: ([\d,.]+)", text):
        run.errors = f"error rate {mt.group(1)}"
    if mt := re.search(r"Warning: missed ([\d,]+) samples from the expected total of ([\d,]+) \(([\d.]+)%\)", text):
        run.notes.append(f"{name}: missed {mt.group(1)} of {mt.group(2)} expected samples ({mt.group(3)}%)")
    for line in text.splitlines():
        if line.strip() and not re.match(rf"(Captured|Sample rate|Error rate|Warning: missed|{written})", line):
            run.notes.append(f"{name} said: {line.strip()[:160]}")
    if not target.alive():
        run.notes.append(f"{name}: the target died during the run")
    if out.exists():
        _fill_depth(run, out, ("tid:",))
    else:
        run.notes.append(f"{name} wrote no output file")
    run.ok = True
    return run


def run_tachyon(target: Target, *, rate: str, duration: float, all_threads: bool, root_workdir: str) -> Run:
    """Tachyon inside the sid root, attached to `target` (a 3.15 target started in the root).

    root_workdir: a directory under the root's /tmp, as the root sees it (Tachyon writes there).
    """
    run = Run("Tachyon")
    sr = sid_root()
    seconds = max(1, round(duration))  # Tachyon's -d is a whole number of seconds
    inside_out = f"{root_workdir}/tachyon_{target.pid}.txt"
    out = Path(sr.host_path(inside_out))
    log = Path(sr.host_path(f"{root_workdir}/tachyon_{target.pid}.log"))
    tachyon_args = ["attach", "-r", rate, "-d", str(seconds), "--collapsed", "-o", inside_out, str(target.pid)]
    if all_threads:
        tachyon_args.insert(1, "-a")
    # The target's own mount namespace (with its /proc) and root: Tachyon opens the interpreter by
    # the path in /proc/PID/maps, which only resolves there (see the docstring). nsenter execs
    # without forking for these namespaces, so the rusage reaped below is Tachyon's own.
    argv = ["nsenter", "-t", str(target.pid), "-m", "-r", "-w",
            "/usr/bin/python3.15", "-m", "profiling.sampling", *tachyon_args]
    if seconds != duration:
        run.notes.append(f"Tachyon: -d takes whole seconds: asked for {seconds} s instead of {duration:g}")
    return _run_tachyon_like(run, target, argv, log, out, seconds, "Collapsed stack output written")


def run_pyspy(pyspy: str | None, target: Target, *, rate: int, duration: float, nonblocking: bool,
              threads: bool, workdir: Path) -> Run:
    run = Run("py-spy" + (" --nonblocking" if nonblocking else ""))
    if pyspy is None:
        run.reason = "py-spy not installed"
        return run
    tag = "nb" if nonblocking else "blk"
    out = workdir / f"pyspy_{tag}_{target.pid}.txt"
    log = workdir / f"pyspy_{tag}_{target.pid}.log"
    argv = [pyspy, "record", "--pid", str(target.pid), "--rate", str(rate), "--format", "raw", "-o", str(out)]
    if nonblocking:
        argv.append("--nonblocking")
    if threads:
        argv += ["--threads", "--idle"]
    m = Measure(target)
    with open(log, "wb") as logf:
        p = CHILDREN.spawn(argv, stdout=logf)
    # Sampling starts when py-spy says so; stop it with SIGINT D seconds later.
    t_start = None
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up and p.poll() is None:
        if b"Sampling process" in log.read_bytes():
            t_start = time.monotonic()
            break
        time.sleep(0.005)
    if t_start is not None:
        time.sleep(max(0.0, t_start + duration - time.monotonic()))
        t_stop = time.monotonic()
        try:
            os.kill(p.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        run.duration = t_stop - t_start
    code, cpu, t_end = wait_rusage(p, 120)
    if code is None:
        Children.end(p)
        run.reason = "did not stop within 120 s of SIGINT"
        return run
    run.cpu_s = cpu
    m.finish(run, t_end)
    text = log.read_text(errors="replace")
    if t_start is None or not out.exists():
        run.reason = f"exit {code}: {last_line(text)}"
        return run
    if mt := re.search(r"Samples: (\d+) Errors: (\d+)", text):
        run.errors = f"{mt.group(2)} errors"
        if not threads:  # py-spy's "Samples" counts thread stacks: passes only with one thread
            run.samples = int(mt.group(1))
    behind = re.findall(r"([\d.]+)s behind in sampling", text)
    if behind:
        run.notes.append(f"{run.tool}: reported falling behind {len(behind)} times, last {behind[-1]} s behind")
    if not target.alive():
        run.notes.append(f"{run.tool}: the target died during the run")
    _fill_depth(run, out, ("thread (",))
    run.ok = True
    return run


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(no output)"


# -- measurements ------------------------------------------------------------------------------------


class Workdirs:
    """Scratch directories: one on the host, and (made on first use) one under the sid root's /tmp
    for the files Tachyon writes from inside the root."""

    def __init__(self) -> None:
        self.host = Path(tempfile.mkdtemp(prefix="bench_sampler_"))
        self._root_host: str | None = None

    def in_root(self) -> str:
        """The root-side directory, as a process inside the root sees it."""
        if self._root_host is None:
            self._root_host = tempfile.mkdtemp(prefix="bench_sampler_", dir=sid_root().host_path("/tmp"))
        return "/tmp/" + os.path.basename(self._root_host)

    def remove(self) -> None:
        shutil.rmtree(self.host, ignore_errors=True)
        if self._root_host is not None:
            shutil.rmtree(self._root_host, ignore_errors=True)


ALL_KINDS = ("heatline", "heatline-pure", "tachyon", "pyspy-nb", "pyspy-blk")


def _measure(python: Interpreter, pyspy: str | None, duration: float, work: Workdirs, *, script: Path,
             args: list[str], rate_hz: int, all_threads: bool, tools: tuple[str, ...] | None = None) -> list[Run]:
    """heatline, heatline on its pure-Python walker, Tachyon (3.15 targets in the sid root only),
    py-spy --nonblocking and py-spy (blocking), each on a fresh copy of one target, one after the
    other. `tools`: a subset of ALL_KINDS, in that order."""
    runs = []
    kinds = [k for k in (tools or ALL_KINDS) if k != "tachyon" or python.tachyon_here]
    for kind in kinds:
        if kind.startswith("pyspy") and pyspy is None:
            runs.append(Run("py-spy" + (" --nonblocking" if kind == "pyspy-nb" else ""), reason="py-spy not installed"))
            continue
        if kind == "tachyon" and (reason := tachyon_unavailable_reason()) is not None:
            runs.append(Run("Tachyon", reason=reason))
            continue
        target = Target(python, script, args)
        try:
            if kind in ("heatline", "heatline-pure"):
                runs.append(run_heatline(target, rate=str(rate_hz), duration=duration, all_threads=all_threads,
                                         workdir=work.host, pure=kind == "heatline-pure"))
            elif kind == "tachyon":
                runs.append(run_tachyon(target, rate=str(rate_hz), duration=duration, all_threads=all_threads,
                                        root_workdir=work.in_root()))
            else:
                runs.append(run_pyspy(pyspy, target, rate=rate_hz, duration=duration,
                                      nonblocking=kind == "pyspy-nb", threads=all_threads, workdir=work.host))
        finally:
            target.close()
    return runs


def measure_rate(python: Interpreter, pyspy: str | None, duration: float, work: Workdirs,
                 tools: tuple[str, ...] | None = None, rate_hz: int = 100_000) -> list[Run]:
    return _measure(python, pyspy, duration, work, script=DEEP_TARGET, args=[str(DEEP_RECURSION)],
                    rate_hz=rate_hz, all_threads=False, tools=tools)


def measure_cpu(python: Interpreter, pyspy: str | None, duration: float, work: Workdirs,
                tools: tuple[str, ...] | None = None) -> list[Run]:
    return _measure(python, pyspy, duration, work, script=THREADS_TARGET, args=[], rate_hz=1000,
                    all_threads=True, tools=tools)


# -- printing ----------------------------------------------------------------------------------------


def fmt(value: float | int | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


HEADERS = {"heatline": "heatline", PURE: "heatline pure", "Tachyon": "Tachyon", "py-spy --nonblocking": "py-spy nonblock",
           "py-spy": "py-spy default"}


def tachyon_skipped(python: Interpreter) -> str | None:
    """The line saying why Tachyon has no column for this target (None when it has one)."""
    if python.tachyon_here:
        return None
    reason = tachyon_unavailable_reason()
    if reason is not None:
        return f"Tachyon: skipped ({reason})"
    hint = "" if python.rooted else "; `--python sid:3.15` (or --all-pythons) measures it"
    return (f"Tachyon: skipped (it attaches to CPython {TACHYON_FROM[0]}.{TACHYON_FROM[1]} only; "
            f"the target is {python.short_version}{hint})")


def print_table(title: str, runs: list[Run], rows: list[tuple[str, str, object]], *,
                skipped: str | None = None) -> None:
    """rows: (label, format spec, attribute name or function of Run). runs[0] is heatline; every
    other column is followed by the ratio heatline / that column."""
    print(title)
    head = f"  {'':38} {HEADERS.get(runs[0].tool, runs[0].tool):>12}" + "".join(
        f" {HEADERS.get(r.tool, r.tool):>16} {'ratio':>7}" for r in runs[1:])
    print(head)
    print("  " + "-" * (len(head) - 2))
    for label, spec, get in rows:
        vals = [get(r) if callable(get) else getattr(r, get) if r.ok else None for r in runs]
        vals = [v if r.ok else None for v, r in zip(vals, runs)]
        ratios = ["" if spec == "ctx" else ratio(vals[0], v) for v in vals[1:]]
        spec = ",.2f" if spec == "ctx" else spec
        print(f"  {label:38} {fmt(vals[0], spec):>12}" + "".join(
            f" {fmt(v, spec):>16} {q:>7}" for v, q in zip(vals[1:], ratios)))
    if skipped:
        print(f"  {skipped}")
    for r in runs:
        if not r.ok:
            print(f"  {r.tool}: n/a ({r.reason})")
        for note in r.notes:
            print(f"  note: {note}")
        if r.ok and r.errors and not r.errors.startswith(("0 errors", "error rate 0.00")):
            print(f"  note: {r.tool}: {r.errors}")
    print()


def python_version(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import platform,sys;print(platform.python_implementation(), platform.python_version())"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_pyspy(explicit: str | None) -> str | None:
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


def all_pythons() -> list[Interpreter]:
    """CPython 3.9-3.15 under ~/.pyenv/versions, then /usr/bin/python3, then the sid root's 3.14 and
    3.15 (when the root is there: `sid_unavailable_reason()` says why not)."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python3")),
                        key=lambda p: [int(x) if x.isdigit() else 0 for x in re.split(r"[.\-]", Path(p).parts[-3])])
    candidates.append("/usr/bin/python3")
    found, seen = [], set()
    for path in candidates:
        if not os.access(path, os.X_OK):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        version = python_version(path)
        if not version or not version.startswith("CPython "):
            continue
        major_minor = tuple(int(x) for x in version.split()[1].split(".")[:2])
        if (3, 9) <= major_minor <= (3, 15):
            seen.add(real)
            found.append(Interpreter(path, version))
    for minor in ("3.14", "3.15"):
        if (rooted := sid_interpreter(minor)) is not None:
            found.append(rooted)
    return found


def busy_processes(window: float = 0.5, threshold: float = 10.0) -> list[tuple[int, float, str]]:
    """Other processes using more than `threshold` % of a core right now: (pid, %, command line)."""
    def snapshot() -> dict[int, float]:
        cpu = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                cpu[int(entry)] = process_cpu_s(int(entry))
        return cpu

    before = snapshot()
    time.sleep(window)
    after = snapshot()
    busy = []
    for pid, t in after.items():
        pct = 100 * (t - before.get(pid, t)) / window
        if pct >= threshold:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                cmd = "?"
            busy.append((pid, pct, cmd))
    return sorted(busy, key=lambda b: -b[1])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_machine(python: Interpreter, pyspy: str | None, duration: float) -> None:
    def version_of(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                                 env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=str(REPO))
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return "unknown"

    load = open("/proc/loadavg").read().split()[:3]
    print("heatline vs Tachyon vs py-spy")
    print(f"  machine:   {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
          f"Linux {platform.release()}, load average {' '.join(load)}")
    print(f"  heatline:  {version_of([sys.executable, '-m', 'sampler', '--version'])}, "
          f"running on {platform.python_implementation()} {platform.python_version()} ({sys.executable})")
    reason = tachyon_unavailable_reason()
    if reason is None:
        print(f"  Tachyon:   profiling.sampling of CPython {sid_root().version_of('3.15')} inside the sid root "
              f"{sid_root().root_path()}, on 3.15 targets in the root")
    else:
        print(f"  Tachyon:   skipped ({reason})")
    print(f"  py-spy:    {version_of([pyspy, '--version']) + ' (' + pyspy + ')' if pyspy else 'not installed'}")
    print(f"  target:    {python.version} ({python.label})")
    print(f"  duration:  {duration:g} s of sampling per run; each profiler gets a fresh target, one at a time")
    if pyspy is None:
        print("  py-spy is not installed: `python -m pip install py-spy` (or `pip install -e '.[bench]'`) "
              "to compare; heatline's figures follow.")
    busy = busy_processes()
    if busy:
        print(f"  warning:   other processes are using the CPU ({sum(b[1] for b in busy):.0f}% of a core in all); "
              "the figures below are skewed by them (see 'other load' in each table):")
        for pid, pct, cmd in busy[:8]:
            print(f"             pid {pid:>7} {pct:5.0f}%  {cmd[:90]}")
    print()


RATE_ROWS = [
    ("samples (profiler's own count)", ",", "samples"),
    ("samples in output file", ",.0f", lambda r: r.passes),
    ("sampling time (s)", ".2f", "duration"),
    ("achieved rate (samples/s)", ",.0f", "rate"),
    ("  from the output file (samples/s)", ",.0f", "file_rate"),
    (f"median stack depth (expected {EXPECTED_DEPTH})", ".1f", "median_depth"),
    (f"samples at full depth (>= {EXPECTED_DEPTH}) %", ".1f", "full_depth_pct"),
    ("profiler CPU (% of one core)", ".1f", "cpu_pct"),
    # When the machine is busy a profiler gets less than its core and its rate drops with it;
    # the CPU each sample costs moves far less, so it is the steadier comparison.
    ("profiler CPU per sample (us)", ",.1f", "cpu_per_sample_us"),
    ("target CPU during run (% of one core)", ".1f", "target_pct"),
    ("other load on the machine (cores)", "ctx", "other_load"),
]

CPU_ROWS = [
    ("profiler CPU, user+sys (s)", ".3f", "cpu_s"),
    ("profiler wall time (s)", ".2f", "wall_s"),
    ("profiler CPU (% of one core)", ".1f", "cpu_pct"),
    ("CPU per sample (us)", ",.1f", "cpu_per_sample_us"),
    ("achieved rate (samples/s)", ",.0f", "rate"),
    ("  from the output file (samples/s)", ",.0f", "file_rate"),
    ("threads seen", "d", "threads"),
    ("target CPU during run (% of one core)", ".1f", "target_pct"),
    ("other load on the machine (cores)", "ctx", "other_load"),
]


def print_all_pythons(results: list[tuple[Interpreter, list[Run]]], skipped: str | None) -> None:
    print("3. Measurement 1 (100 kHz requested, 33 frames deep) under each CPython: achieved samples/s "
          "[median depth]")
    tools = (PURE, "Tachyon", "py-spy --nonblocking", "py-spy")
    head = f"  {'target':38} {'heatline':>17}" + "".join(f" {HEADERS[t]:>17} {'ratio':>7}" for t in tools)
    print(head)
    print("  " + "-" * (len(head) - 2))

    def cell(r: Run | None) -> str:
        if r is None:
            return "-"
        if not r.ok or r.rate is None:
            return "n/a"
        return f"{r.rate:,.0f} [{fmt(r.median_depth, '.0f')}]"

    def rate_of(r: Run | None) -> float | None:
        return r.rate if r is not None and r.ok else None

    for python, runs in results:
        by_tool = {r.tool: r for r in runs}
        hl = by_tool.get("heatline")
        label = f"{python.short_version} {python.path}"
        if len(label) > 38:
            label = "..." + label[-35:]
        line = f"  {label:38} {cell(hl):>17}"
        for tool in tools:
            other = by_tool.get(tool)
            line += f" {cell(other):>17} {ratio(rate_of(hl), rate_of(other)) if other else '':>7}"
        print(line)
    if skipped:
        print(f"  {skipped}")
    for python, runs in results:
        for r in runs:
            if not r.ok:
                print(f"  {python.short_version} {r.tool}: n/a ({r.reason})")
            for note in r.notes:
                print(f"  {python.short_version}: {note}")
    print()


# -- main ----------------------------------------------------------------------------------------------


def _on_signal(signum, frame):  # SIGTERM / SIGHUP: unwind like Ctrl-C so children are ended
    raise KeyboardInterrupt


def resolve_python(spec: str) -> tuple[Interpreter | None, str]:
    """--python: a host interpreter, or `sid:3.X` inside the sid root. (interpreter, or None and why)."""
    if spec.startswith(SID_PREFIX):
        minor = spec[len(SID_PREFIX):]
        if (reason := sid_unavailable_reason()) is not None:
            return None, f"{spec}: the sid root is unavailable: {reason}"
        rooted = sid_interpreter(minor)
        return (rooted, "") if rooted else (None, f"{spec}: python{minor} does not run in the sid root")
    path = shutil.which(spec) or spec
    version = python_version(path)
    return (Interpreter(path, version), "") if version else (None, f"cannot run the target interpreter {spec}")


def measure_both(python: Interpreter, pyspy: str | None, duration: float, work: Workdirs) -> list[Run]:
    """Measurements 1 and 2 on one target, each table printed as soon as it is measured; returns 1's runs."""
    where = f"{python.version}{', sid root' if python.rooted else ''}"
    skipped = tachyon_skipped(python)
    runs = measure_rate(python, pyspy, duration, work)
    print_table(f"1. Achieved rate at a requested 100 kHz: deep_cpu.py, 1 thread, {EXPECTED_DEPTH} frames "
                f"({where})", runs, RATE_ROWS, skipped=skipped)
    sys.stdout.flush()
    runs2 = measure_cpu(python, pyspy, duration, work)
    threads = "heatline -a / Tachyon -a" if python.tachyon_here else "heatline -a"
    print_table(f"2. Profiler CPU at 1 kHz: three_threads.py, 3 threads, {threads} / py-spy --threads --idle "
                f"({where})", runs2, CPU_ROWS, skipped=skipped)
    sys.stdout.flush()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of sampling per run (default 5)")
    parser.add_argument("--python", default=sys.executable,
                        help="target interpreter (default: this one); sid:3.14 or sid:3.15 for that CPython "
                             "inside the sid root (3.15 adds Tachyon's column)")
    parser.add_argument("--all-pythons", action="store_true",
                        help="repeat measurement 1 under each CPython 3.9-3.15 in ~/.pyenv/versions and "
                             "/usr/bin/python3, then the sid root's 3.14 and 3.15 (3.15: measurement 2 as well)")
    parser.add_argument("--py-spy", dest="pyspy", help="py-spy executable (default: beside this Python, then PATH)")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    if sys.version_info < (3, 10):
        parser.error("heatline needs Python 3.10+ to run: start the benchmark with one (--python picks the target)")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

    pyspy = find_pyspy(args.pyspy)
    python, why = resolve_python(args.python)
    if python is None:
        parser.error(why)
    work = Workdirs()
    try:
        print_machine(python, pyspy, args.duration)
        runs = measure_both(python, pyspy, args.duration, work)
        if args.all_pythons:
            results = []
            for other in all_pythons():
                if other.same(python):
                    results.append((other, runs))  # measured above
                    continue
                try:
                    if other.tachyon_here:  # Tachyon's CPU figure exists only here: measure both
                        results.append((other, measure_both(other, pyspy, args.duration, work)))
                    else:
                        results.append((other, measure_rate(other, pyspy, args.duration, work)))
                except RuntimeError as exc:
                    tools = ["heatline", PURE, "py-spy --nonblocking", "py-spy"]
                    if other.tachyon_here:
                        tools.insert(2, "Tachyon")
                    results.append((other, [Run(t, reason=str(exc)) for t in tools]))
            reason = sid_unavailable_reason()
            print_all_pythons(results, f"3.14/3.15 in the sid root and Tachyon: skipped ({reason})" if reason else None)
        print("ratio = heatline / the column before it (> 1: heatline is faster or, for CPU, costlier). "
              "'py-spy default' stops the target for every sample; 'nonblock' reads it running, as heatline and "
              "Tachyon do.")
    except KeyboardInterrupt:
        print("\ninterrupted: child processes ended", file=sys.stderr)
        return 130
    finally:
        CHILDREN.end_all()
        work.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
