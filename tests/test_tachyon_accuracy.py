"""Accuracy side by side with Tachyon (CPython 3.15's `profiling.sampling`) on real 3.15 targets.

Each target runs inside the Debian sid root and has a split known by construction (units of
the same loop handed out in fixed proportions, not timed with a clock). heatline (from the
host) and Tachyon (inside the root, in the target's own mount namespace) attach to the same
process at the same time: both only read its memory. heatline's shares must be within 2
percentage points of the truth and of Tachyon's where Tachyon gets the truth right; Tachyon is
held to the truth only loosely (what it does is recorded, not what it should do). On 3.14 (no
Tachyon there) heatline is checked against the truth alone.

A CPU-bound target on a loaded machine is frozen whenever it is descheduled, and every sample
taken then lands wherever it stopped; a profiler that is itself descheduled misses ticks
(heatline) or takes them late in a burst (Tachyon). With other work on both cores, a few long
freezes moved a 70/30 split by up to 13 points (57% and 62% seen by the two profilers at the
same time), and still by 3 points at nice -20. So both profilers run under SCHED_FIFO, and the
CPU-bound targets too, at a lower priority; those targets pause briefly between units so the
kernel never throttles them (a real-time task that never sleeps is frozen for 50 ms of every
second), and their shares are taken of the work. Where real-time scheduling is refused, nice
-20 is used instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest

import sid_root
from conftest import ALL_INTERPRETERS, ROOT, has_func, parse_collapsed, target, wait_ready

TOLERANCE = 2.0  # percentage points
TACHYON_LOOSE = 5.0  # how far Tachyon may be from the truth before these tests call it broken
RATE = "1khz"


def _priority(rt: int) -> list[str]:
    """The command prefix that runs a process at real-time priority `rt` (or nice -20)."""
    try:
        if subprocess.run(["chrt", "-f", str(rt), "true"], capture_output=True).returncode == 0:
            return ["chrt", "-f", str(rt)]
    except OSError:
        pass
    return ["nice", "-n", "-20"]


TARGET_PRIORITY = _priority(10)
PROFILER_PRIORITY = _priority(20)  # a busy target or machine never delays a sample


@pytest.fixture(params=[p for p in ALL_INTERPRETERS if p.values[0].rooted])
def rooted(request):
    """sid-3.14 and sid-3.15: targets inside the root (skipped, with the reason, without it)."""
    if shutil.which("nsenter") is None:
        pytest.skip("nsenter (util-linux) is missing")
    return request.param


@dataclass
class Run:
    who: str
    rows: list  # parse_collapsed rows
    ticks: int  # sampling ticks the profiler reports ("Captured N samples")
    stdout: str

    @property
    def stacks(self) -> int:
        return sum(c for *_x, c in self.rows)

    def weight(self, func: str) -> int:
        """Stacks with `func` anywhere on them."""
        return sum(c for _t, frames, c in self.rows if has_func(frames, func))

    def share(self, func: str, of: int | None = None) -> float:
        """Percent of the stacks (or of `of`) that have `func` on them."""
        total = self.stacks if of is None else of
        assert total > 0, f"{self.who}: no stacks\n{self.stdout}"
        return 100.0 * self.weight(func) / total

    def tids(self) -> set[int]:
        return {t for t, _f, _c in self.rows}


def _ticks(stdout: str) -> int:
    m = re.search(r"Captured ([\d,.]+) samples?", stdout)
    assert m, stdout
    return int(re.sub(r"\D", "", m.group(1)))


def _start_target(spawn, interp, name: str, priority=TARGET_PRIORITY):
    proc = spawn(*priority, *interp.command(target(name)))
    wait_ready(proc)
    return proc


def profile(interp, pid: int, tmp_path, seconds: float, *opts: str) -> dict[str, Run]:
    """Attach heatline, and Tachyon on 3.15, to `pid` at the same time; their collapsed stacks."""
    ours = tmp_path / f"heatline-{len(list(tmp_path.iterdir()))}.txt"
    common = ["attach", str(pid), "-d", str(seconds), "-r", RATE, *opts, "--collapsed", "-o"]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONWARNINGS", None)
    procs = {"heatline": (subprocess.Popen([*PROFILER_PRIORITY, sys.executable, "-m", "sampler", *common, str(ours)],
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                           cwd=ROOT, env=env), str(ours))}
    if interp.path.endswith("3.15"):
        inside = f"/tmp/heatline-accuracy-{pid}-{ours.stem}.txt"
        # Tachyon joins the target's mount namespace and root: a target started by
        # sid_root.in_root has its own, and /proc/PID/maps names files as seen from there.
        tachyon = [*PROFILER_PRIORITY, "nsenter", "-t", str(pid), "-m", "-r", "-w",
                   "/usr/bin/python3.15", "-m", "profiling.sampling", *common, inside]
        procs["tachyon"] = (subprocess.Popen(tachyon, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
                            sid_root.host_path(inside))
    runs = {}
    for who, (proc, path) in procs.items():
        out, err = proc.communicate(timeout=seconds + 120)
        assert proc.returncode == 0, f"{who} failed ({proc.returncode}):\n{out}\n{err}"
        runs[who] = Run(who, parse_collapsed(path), _ticks(out), out)
        if who == "tachyon":
            os.unlink(path)
    for run in runs.values():
        print(f"[{interp.label}] {run.who} {' '.join(opts) or 'wall'}: {run.ticks} ticks, {run.stacks} stacks")
    return runs


def check(runs: dict[str, Run], what: str, truth: float, share, *, tachyon_right: bool = True,
          tolerance: float = TOLERANCE) -> None:
    """heatline's `share(run)` within `tolerance` of `truth`; when Tachyon is right, Tachyon
    within TACHYON_LOOSE of the truth (else the target misbehaved) and heatline within
    `tolerance` of Tachyon. Where Tachyon is known to be off (`tachyon_right=False`), the caller
    checks the direction of its error instead: its distance from the truth is its bias plus
    noise, and CI saw the exception case's 4.3-point bias land at 5.03."""
    got = {who: share(run) for who, run in runs.items()}
    print(f"  {what}: truth {truth:.1f}%  " + "  ".join(f"{w} {v:.2f}%" for w, v in got.items()))
    assert abs(got["heatline"] - truth) <= tolerance, f"{what}: heatline {got['heatline']:.2f}% vs truth {truth}%"
    if "tachyon" in got:
        if tachyon_right:
            assert abs(got["tachyon"] - truth) <= TACHYON_LOOSE, \
                f"{what}: Tachyon {got['tachyon']:.2f}% vs truth {truth}% (Tachyon itself is off)"
            assert abs(got["heatline"] - got["tachyon"]) <= tolerance, \
                f"{what}: heatline {got['heatline']:.2f}% vs Tachyon {got['tachyon']:.2f}%"


def check_same_threads(runs: dict[str, Run]) -> None:
    """Both name threads by the same native thread ids (Tachyon's `tid:N` prefix)."""
    if "tachyon" in runs:
        assert runs["heatline"].tids() == runs["tachyon"].tids()


def test_cpu_split_70_30(rooted, spawn, tmp_path):
    """examples/hotspots.py's shape: parse_records ~70%, checksum ~30%, in one thread."""
    p = _start_target(spawn, rooted, "accuracy_split.py")
    runs = profile(rooted, p.pid, tmp_path, 8)
    for run in runs.values():
        assert run.stacks > 2000, run.stdout
        # Tachyon's collapsed lines: `tid:N;file:func:line;...`, root first, bare file names.
        assert all(f[0].startswith("accuracy_split.py:<module>:") for _t, f, _c in run.rows), run.rows[:3]
    check_same_threads(runs)
    work = lambda r: r.weight("parse_records") + r.weight("checksum")  # noqa: E731
    check(runs, "parse_records", 70.0, lambda r: r.share("parse_records", of=work(r)))
    check(runs, "checksum", 30.0, lambda r: r.share("checksum", of=work(r)))


def test_sleeping_vs_spinning_thread(rooted, spawn, tmp_path):
    """-a takes one stack per thread per sample: in wall mode the sleeper and the spinner are each
    exactly half of the stacks; in cpu mode the sleeper (blocked in read) never runs."""
    # Its spinner never pauses: not real-time (these shares hold however it is scheduled).
    p = _start_target(spawn, rooted, "accuracy_threads.py", priority=["nice", "-n", "-20"])
    wall = profile(rooted, p.pid, tmp_path, 3, "-a", "--mode", "wall")
    check_same_threads(wall)
    for run in wall.values():
        assert len(run.tids()) == 2 and run.stacks > 2 * 1000, run.stdout
    check(wall, "wall: sleeper", 50.0, lambda r: r.share("sleeper"))
    check(wall, "wall: spinner", 50.0, lambda r: r.share("spinner"))

    cpu = profile(rooted, p.pid, tmp_path, 3, "-a", "--mode", "cpu")
    for run in cpu.values():
        assert run.stacks > 1000, run.stdout
    check(cpu, "cpu: sleeper", 0.0, lambda r: r.share("sleeper"))
    check(cpu, "cpu: spinner", 100.0, lambda r: r.share("spinner"))
    # The spinner is running or runnable at every tick, so it is kept at (nearly) every one.
    check(cpu, "cpu: ticks keeping the spinner", 100.0, lambda r: r.share("spinner", of=r.ticks))


def test_gil_mode_keeps_only_the_holder(rooted, spawn, tmp_path):
    """Two workers pass the GIL back and forth; in its turn the holder runs 70% heavy_work and 30%
    light_work; the other worker and the main thread wait without the GIL."""
    p = _start_target(spawn, rooted, "accuracy_gil.py")
    runs = profile(rooted, p.pid, tmp_path, 8, "-a", "--mode", "gil")
    for run in runs.values():
        assert run.stacks > 2000, run.stdout
        # One holder at a time: never more kept stacks than ticks.
        assert run.stacks <= run.ticks, run.stdout
    check(runs, "gil: waiter (main thread, no GIL)", 0.0, lambda r: r.share("waiter"), tolerance=0.0)
    work = lambda r: r.weight("heavy_work") + r.weight("light_work")  # noqa: E731
    check(runs, "gil: heavy_work of the holder's work", 70.0, lambda r: 100.0 * r.weight("heavy_work") / work(r))
    check(runs, "gil: light_work of the holder's work", 30.0, lambda r: 100.0 * r.weight("light_work") / work(r))
    # A worker waiting for its turn is parked without the GIL (it would be half the workers'
    # stacks in wall mode); the holder shows outside the work only around a hand-over.
    for run in runs.values():
        handover = 100.0 - 100.0 * work(run) / run.stacks
        assert handover < 10.0, f"{run.who}: {handover:.1f}% of gil stacks outside the work"


def test_exception_mode(rooted, spawn, tmp_path):
    """30% of the time is spent inside an `except` block, in handled_work; the rest in
    plain_work with no exception. Exception mode keeps those 30% of the ticks, and nothing else."""
    p = _start_target(spawn, rooted, "accuracy_exceptions.py")
    runs = profile(rooted, p.pid, tmp_path, 8, "--mode", "exception")
    for run in runs.values():
        assert run.ticks > 2000, run.stdout
    # Tachyon 3.15.2 is off here: outside wall mode it also drops threads that neither hold the
    # GIL nor run, so the pauses inside the except block (about a seventh of it) are lost and it
    # keeps ~26% of the ticks. heatline keeps a thread handling an exception, idle or not.
    check(runs, "exception: ticks kept in the except block", 30.0, lambda r: r.share("handling", of=r.ticks),
          tachyon_right=False)
    if "tachyon" in runs:
        assert runs["tachyon"].share("handling", of=runs["tachyon"].ticks) < runs["heatline"].share("handling", of=runs["heatline"].ticks)
    check(runs, "exception: plain_work kept", 0.0, lambda r: r.share("plain_work", of=r.ticks))
    # Every kept stack is inside the except block (under `handling`, mostly in handled_work).
    outside = lambda r: 100.0 * (r.stacks - r.weight("handling")) / r.stacks  # noqa: E731
    check(runs, "exception: kept stacks outside the except block", 0.0, outside)
