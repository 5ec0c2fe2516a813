"""`--subprocesses`: follow the Python processes a target starts, each sampled as the target is.

A watcher thread looks at the target's process tree every `POLL_S` (2 ms; Tachyon looks every
100 ms and misses children that live less than that). Most looks cost one small read: the
kernel's "last PID handed out" (`/proc/loadavg`) says whether any process was created since the
previous look, and only then is the tree walked (`sampler.target.descendants`); the whole tree
is also looked at every `FULL_LOOK_S`, and the youngest processes at every look, because an exec
(which creates no PID) turns a just-forked child into the program it was started for.

Each Python descendant gets a `FollowedProcess`: a thread in this process with its own walker
and `SamplingLoop`, on the command's options and the same format, writing its own file named as
Tachyon names them (`child_output`) as soon as that process ends, so a child that exits early
has its profile on disk at once. Threads rather than processes: nothing can outlive heatline,
one Ctrl-C stops them all, and the native walker samples with the GIL released, so they sample
side by side. A PID that execs again (fork, then exec of a new program) is a new process to
follow; what was sampled before the exec (its parent's program, for a moment) is dropped.

Children are followed through non-Python processes (a shell that starts Python), grandchildren
included. With `run`, heatline becomes a child subreaper (prctl), so a process whose parent
exited (a daemon's double fork, `sh -c 'python x.py &'`) is re-parented to heatline rather than
to init and stays in the tree; it is reaped here when it ends.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from sampler.errors import HeatlineError, ProcessPermissionError, UnsupportedVersionError
from sampler.model import Profile
from sampler.output_path import is_stdout, tell
from sampler.target.descendants import ExecIdentity, descendants, exec_identity
from sampler.target.maps import read_cmdline

POLL_S = 0.002
FULL_LOOK_S = 0.05
# A process this young is looked at on every poll: it may exec at any moment.
YOUNG_S = 1.0
# How long a new process may take before its interpreter can be read (a shared libpython is
# mapped by the dynamic loader after the exec): the walker is retried until then.
OPEN_PATIENCE_S = 3.0
OPEN_RETRY_S = 0.005
# At most this many subprocesses are sampled at once (Tachyon's limit too).
MAX_FOLLOWED = 100
# After the target ends by itself, how long its subprocesses' samplers wait for them to end too.
SETTLE_S = 2.0
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NAME = 15

_OPEN_FINAL = (UnsupportedVersionError, ProcessPermissionError)


def child_output(args: argparse.Namespace, pid: int) -> str:
    """Where the profile of subprocess `pid` goes: `-o base.ext` -> `base_PID.ext` (`base_PID`
    without an extension); without -o (or with -o naming stdout, a device or a FIFO, which one
    process's profile fills) the default names `profile_PID.pstats`, `heatmap_PID` and
    `FORMAT_PID.EXT`, as Tachyon names them. `-o DIR` (an existing directory, not a heatmap's
    own) puts them inside it."""
    from sampler.collectors import COLLECTORS

    cls = COLLECTORS[args.format]
    if args.format == "pstats":
        default = f"profile_{pid}.pstats"
    elif args.format == "heatmap":
        default = f"heatmap_{pid}"
    else:
        default = f"{cls.format_name}_{pid}.{cls.default_extension}"
    out = args.output
    if not out or is_stdout(out) or _is_stream(out):
        return default
    if args.format != "heatmap" and os.path.isdir(out):
        return os.path.join(out, default)
    base, ext = os.path.splitext(out)
    if out.endswith("." + cls.default_extension):  # a two-part extension stays whole: x_PID.pb.gz
        base, ext = out[:-len(cls.default_extension) - 1], "." + cls.default_extension
    return f"{base}_{pid}{ext}" if ext else f"{out}_{pid}"


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before the run, a place where subprocesses' files could not be written."""
    from sampler.collectors import COLLECTORS

    COLLECTORS[args.format].check_output(child_output(args, 0))


def _is_stream(path: str) -> bool:
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@dataclass
class ChildResult:
    """One followed subprocess, for the summary (and the language server)."""

    pid: int
    command: str
    samples: int = 0
    output: str | None = None
    note: str | None = None  # why it has no file
    python_version: str = ""


class FollowedProcess:
    """One Python subprocess: its sampler thread, from the walker's opening to its file."""

    def __init__(self, pid: int, identity: ExecIdentity, command: str, args: argparse.Namespace,
                 on_profile: Callable[["FollowedProcess", Profile], None] | None = None,
                 on_end: Callable[["FollowedProcess"], None] | None = None, write_file: bool = True,
                 shown_argv: Callable[[list[str]], list[str]] = list, duration_s: float | None = None) -> None:
        self.pid = pid
        self.duration_s = duration_s  # sampling stops after this long (attach_many's -d); None: until it ends
        self.shown_argv = shown_argv
        self.write_file = write_file
        self.identity = identity
        self.args = args
        self.result = ChildResult(pid, command)
        self.superseded = False  # it exec'd another program: this sampler's samples are dropped
        self.seen_at = time.monotonic()
        self._on_profile = on_profile
        self._on_end = on_end
        self._stop = threading.Event()
        self._loop: Any = None
        self.thread = threading.Thread(target=self._main, name=f"heatline-subprocess-{pid}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        loop = self._loop
        if loop is not None:
            loop.stop()

    def supersede(self) -> None:
        self.superseded = True
        self.stop()

    def same_program(self) -> bool:
        return exec_identity(self.pid) == self.identity

    def _main(self) -> None:
        _name_thread(f"hl:{self.pid}")
        try:
            self._sample()
        except HeatlineError as err:
            self.result.note = str(err)
        except Exception as err:  # noqa: BLE001 - a bug here must not end the run or the others
            self.result.note = f"internal error: {err}"
        finally:
            if self._on_end is not None:
                self._on_end(self)

    def _open(self):
        from sampler.commands import open_walker

        deadline = time.monotonic() + OPEN_PATIENCE_S
        while not self._stop.is_set():
            if not self.same_program():
                # Gone, or exec'd another program: the watcher follows the new one.
                self.superseded = exec_identity(self.pid) is not None
                self.result.note = "exited before it could be sampled"
                return None
            try:
                walker = open_walker(self.pid, self.args)
            except _OPEN_FINAL:
                raise
            except (HeatlineError, OSError, ValueError):
                if time.monotonic() >= deadline:
                    raise
                self._stop.wait(OPEN_RETRY_S)
                continue
            if self.same_program():
                return walker
            walker.close()
        return None

    def _sample(self) -> None:
        from sampler.commands import make_collector, run_stats
        from sampler.sampling import SamplingLoop
        from sampler.target.maps import read_cwd

        walker = self._open()
        if walker is None:
            return
        args = self.args
        try:
            argv = self.shown_argv(read_cmdline(self.pid) or [])
            self.result.command = " ".join(argv) or self.result.command
            profile = Profile(run_stats(args, walker, self.pid, (read_cwd(self.pid) or "", argv)))
            self.result.python_version = profile.stats.python_version
            collector = make_collector(profile, args)
            if self._on_profile is not None:
                self._on_profile(self, profile)
            loop = SamplingLoop(walker, profile, interval_usec=args.interval_usec, alive=self.same_program,
                                duration_s=self.duration_s, sinks=[collector] if collector.streaming else [])
            self._loop = loop
            if self._stop.is_set():
                loop.stop()
            loop.run()
        finally:
            walker.close()
        self.result.samples = profile.stats.samples
        now = exec_identity(self.pid)
        if now is not None and now != self.identity:
            self.superseded = True  # it exec'd another program (and the loop noticed first)
        if self.superseded:
            return
        if not profile.stats.samples:
            self.result.note = "exited before its first sample"
            return
        if self.write_file:
            self.result.output = collector.write(child_output(args, self.pid))


class SubprocessFollower:
    """Watches the tree under a target and follows its Python processes (see the module doc).

    `on_profile(followed, profile)` is called (on the follower's thread) when a subprocess's
    sampling begins, `on_end(followed)` when it ended and its file is written: the live stream
    uses them to send each process's samples."""

    def __init__(self, args: argparse.Namespace, *, subreaper: bool = False,
                 on_profile: Callable[[FollowedProcess, Profile], None] | None = None,
                 on_end: Callable[[FollowedProcess], None] | None = None,
                 limit: int | None = None, write_files: bool = True) -> None:
        self.args = args
        self.write_files = write_files
        self.limit = MAX_FOLLOWED if limit is None else limit
        self.subreaper = subreaper
        self.on_profile = on_profile
        self.on_end = on_end
        self.followed: list[FollowedProcess] = []
        self.skipped: list[int] = []  # Python subprocesses not followed: the limit was reached
        self.root = 0
        self._known: dict[int, tuple[ExecIdentity, float]] = {}  # pid -> (identity, first seen)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_pid = b""
        self._root_cmdline: list[str] | None = None
        self._root_argv: list[str] | None = None

    # -- the run's side ---------------------------------------------------------------------

    def start(self, root: int, root_argv: list[str] | None = None) -> None:
        """Begin watching the processes under `root` (call before the target runs its code).
        `root_argv`: the target's command line as the user gave it (a launched target's own is
        heatline's launcher's), shown for forked children, which inherit it."""
        self.root = root
        self._root_cmdline = read_cmdline(root) if root_argv is not None else None
        self._root_argv = root_argv
        if self.subreaper:
            _become_subreaper()
        self._thread = threading.Thread(target=self._watch, name="heatline-subprocess-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and stop every subprocess's sampling (each still writes its file).
        Safe from a signal handler: it only sets flags."""
        self._stopped.set()
        for followed in list(self.followed):
            followed.stop()

    def finish(self, settle_s: float = 0.0) -> list[ChildResult]:
        """End following: subprocesses still running get `settle_s` to end by themselves, then
        their sampling is stopped; returns the followed ones, each with its file written."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        deadline = time.monotonic() + settle_s
        for followed in list(self.followed):
            followed.thread.join(max(0.0, deadline - time.monotonic()))
        for followed in list(self.followed):
            followed.stop()
        for followed in list(self.followed):
            followed.thread.join()
        self._reap_adopted()
        return self.results()

    def end(self, stats, stream: TextIO | None = None) -> list[ChildResult]:
        """After the target's sampling ended (`stats`: its RunStats): when it ended by itself its
        subprocesses get `SETTLE_S` to end too, else (Ctrl-C, --duration) they stop now; then the
        summary's lines about them."""
        results = self.finish(SETTLE_S if stats.target_exited and not stats.interrupted else 0.0)
        self.report(stream)
        return results

    def results(self) -> list[ChildResult]:
        return [f.result for f in self.followed if not f.superseded]

    def report(self, stream: TextIO | None = None) -> None:
        """The run summary's part about subprocesses."""
        for line in summary_lines(self.results(), self.skipped, self.limit):
            tell(line, stream)

    # -- watching ---------------------------------------------------------------------------

    def _watch(self) -> None:
        _name_thread("hl:watcher")
        next_full = 0.0
        while not self._stopped.is_set():
            now = time.monotonic()
            created = self._pid_created()
            if created or now >= next_full:
                next_full = now + FULL_LOOK_S
                tree = self._tree()
                self._look(tree, now)
                # Gone from the tree: forgotten, so that its PID, once reused, is a new process.
                alive = set(tree)
                self._known = {pid: seen for pid, seen in self._known.items() if pid in alive}
            else:
                self._look([pid for pid, (_, seen) in self._known.items() if now - seen < YOUNG_S], now)
            if self.subreaper:
                self._reap_adopted()
            self._stopped.wait(POLL_S)

    def _pid_created(self) -> bool:
        """Whether a process was created on the machine since the last look (one small read)."""
        try:
            with open("/proc/loadavg", "rb") as fh:
                last = fh.read().rsplit(None, 1)[-1]
        except (OSError, IndexError):
            return True
        changed = last != self._last_pid
        self._last_pid = last
        return changed

    def _tree(self) -> list[int]:
        roots = [self.root] + (self._adopted() if self.subreaper else [])  # orphans re-parented to heatline
        return roots[1:] + descendants(roots)

    def _adopted(self) -> list[int]:
        from sampler.target.descendants import child_pids

        return [pid for pid in child_pids(os.getpid()) if pid != self.root]

    def _look(self, pids: list[int], now: float) -> None:
        for pid in pids:
            identity = exec_identity(pid)
            if identity is None:
                continue
            known = self._known.get(pid)
            if known is not None and known[0] == identity:
                continue
            self._known[pid] = (identity, now if known is None else known[1])
            if known is not None:
                self._supersede(pid, identity)
            self._consider(pid, identity)

    def _supersede(self, pid: int, identity: ExecIdentity) -> None:
        for followed in self.followed:
            # Running ones only: one that ended is a finished process whose PID was reused.
            if followed.pid == pid and followed.identity != identity and followed.running and not followed.superseded:
                followed.supersede()

    def _consider(self, pid: int, identity: ExecIdentity) -> None:
        from sampler.processes import inspect_process

        try:
            process = inspect_process(pid)
        except (OSError, HeatlineError, ValueError):
            return  # it exited or changed while we looked
        if process is None:
            return  # not Python (a shell, a tool): its own children are still looked at
        with self._lock:
            if self._stopped.is_set():
                return
            active = sum(1 for f in self.followed if f.running and not f.superseded)
            if active >= self.limit:
                if not self.skipped:
                    tell(f"heatline: not following subprocess {pid} and later ones while {self.limit} "
                         f"subprocesses are sampled at once (the limit)")
                self.skipped.append(pid)
                return
            followed = FollowedProcess(pid, identity, process.command, self.args,
                                       on_profile=self.on_profile, on_end=self.on_end, write_file=self.write_files,
                                       shown_argv=self._shown_argv)
            self.followed.append(followed)
        followed.start()

    def _shown_argv(self, argv: list[str]) -> list[str]:
        return list(self._root_argv) if self._root_argv is not None and argv == self._root_cmdline else argv

    def _reap_adopted(self) -> None:
        """Orphans re-parented to heatline (as subreaper) are reaped once they end."""
        if not self.subreaper:
            return
        for pid in self._adopted():
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def follow_only(args: argparse.Namespace, pid: int, follower: SubprocessFollower, on_started: Callable[[Any], None],
                refusal: str, stream: TextIO | None = None):
    """`attach --subprocesses` to a process that is not Python (a shell, make, a launcher): no
    sampling of its own, only its Python descendants, until it exits, --duration, or a signal
    (`on_started` gets what a signal stops). Returns the run's `RunStats` (no samples of its own);
    the summary goes to `stream` (stdout by default)."""
    from sampler.model import RunStats

    tell(f"heatline: {refusal} Following its Python subprocesses only.")
    stopped = threading.Event()
    stats = RunStats(pid=pid)

    class _Stop:
        def stop(self) -> None:
            stats.interrupted = True
            stopped.set()

    on_started(StopAll(_Stop(), follower))
    follower.start(pid)
    deadline = time.monotonic() + args.duration if args.duration else None
    while not stopped.is_set() and exec_identity(pid) is not None:
        if deadline is not None and time.monotonic() >= deadline:
            break
        stopped.wait(0.05)
    stats.target_exited = exec_identity(pid) is None
    if stats.interrupted:
        tell("Interrupted by user.")
    follower.end(stats, sys.stdout if stream is None else stream)
    return stats


def following(args: argparse.Namespace, *, subreaper: bool = False, **callbacks: Any) -> SubprocessFollower | None:
    """A follower when the command asked for --subprocesses, else None."""
    return SubprocessFollower(args, subreaper=subreaper, **callbacks) if getattr(args, "subprocesses", False) else None


class StopAll:
    """What a stop request (a signal) ends: the target's sampling loop and every subprocess's."""

    def __init__(self, *parts: Any) -> None:
        self.parts = [part for part in parts if part is not None]

    def stop(self) -> None:
        for part in self.parts:
            part.stop()


def _prctl(option: int, value: Any) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _name_thread(name: str) -> None:
    """The OS name of the calling thread (what `top -H` and /proc show): which process it samples."""
    _prctl(PR_SET_NAME, name.encode()[:15])


def _become_subreaper() -> None:
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # if refused, orphans go to init, out of sight, as without it


def summary_lines(results: list[ChildResult], skipped: list[int], limit: int) -> list[str]:
    """`Subprocesses: N followed`, then one line per subprocess: PID, samples and file (or why it
    has none) and its command; then what was not followed."""
    lines = []
    if results or skipped:
        lines.append(f"Subprocesses: {len(results)} followed")
    for r in sorted(results, key=lambda r: r.pid):
        where = f"-> {r.output}" if r.output else f"({r.note or 'no profile'})"
        command = r.command if len(r.command) <= 80 else r.command[:77] + "..."
        lines.append(f"  PID {r.pid}: {r.samples:,} samples {where}  [{command}]")
    if skipped:
        lines.append(f"Warning: {len(skipped)} Python subprocess(es) not followed (PIDs {', '.join(map(str, skipped[:10]))}"
                     f"{', ...' if len(skipped) > 10 else ''}): at most {limit} are sampled at once.")
    return lines
