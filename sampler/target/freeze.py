"""`--blocking`: stop every thread of the target around a sample, with ptrace, and always resume it.

Threads are stopped with PTRACE_SEIZE + PTRACE_INTERRUPT, never SIGSTOP: the target sees no
signal and its parent or shell sees no job-control stop. ptrace is thread-affine: the thread that
seized a task is its tracer, and only that thread may interrupt, wait for or detach it: a
`freeze()` and its `thaw()` must run on one thread (`BlockingSource.sample` does both). Other
threads of heatline must not wait for the target meanwhile: a waitid() on it from any thread of
the tracer's process would be handed our ptrace-stops.

Design: seize, interrupt, wait and detach at every sample (Tachyon's way), rather than keeping the
threads seized across samples. Measured on this 2-core machine (CPython 3.11 target whose threads
all spin, median of 300 freeze+thaw rounds, sampler side):

    threads   Freezer (per-sample seize..detach)   same, bare syscalls   kept seized (interrupt..CONT)
       1                  ~30 us                         ~19 us                  ~11 us
      10                 ~230 us                        ~210 us                 ~165 us

(On a loaded machine the tail is scheduling, the same for both: a thread that is preempted or
asleep when interrupted must be given a CPU to reach its stop; p90 rose to 1.7-3.6 ms at a load
average of 10 on 2 cores.)

Keeping the threads seized would save ~20 us a sample (2% of a core at 1 kHz), but between two
samples every signal the target receives would stop the receiving thread until our next waitpid
(up to a whole interval late, and for good if heatline hangs), new threads would need
PTRACE_O_TRACECLONE and their own bookkeeping, a `kill -STOP` of the target would need
PTRACE_LISTEN to stay a stop, and a `heatline run` target is also heatline's child, so the
launcher's waitid() would report our ptrace-stops as the child's status. Detaching at every sample
leaves nothing pending between samples: outside `freeze()`..`thaw()` the target is not traced.

What the kernel guarantees and this module relies on:
  - a signal that arrives while a thread is seized shows as a signal-delivery-stop; the signal is
    re-injected by PTRACE_DETACH's data argument, so it is delivered, late by one sample at most;
  - a thread in a group-stop (someone `kill -STOP`s the target) that we detach goes back into the
    group-stop: PTRACE_DETACH does not resume a stopped process;
  - when the tracer dies (even SIGKILL) the kernel detaches its tracees and resumes them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import threading
from typing import Any, Callable, Protocol

from sampler.errors import HeatlineError, ProcessGoneError, ProcessPermissionError
from sampler.model import ON_CPU, UNKNOWN, ThreadSample, mode_accepts
from sampler.target.maps import STAT_PPID, is_gone, read_stat
from sampler.target.threads import CpuStates, comm, task_ids

PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_EVENT_STOP = 128
WALL = 0x40000000  # __WALL: wait for threads (clone children) too, not only the leader

# New threads started while we stop the others are stopped in further rounds; a target that
# keeps spawning faster than we can catch them is sampled as it is after this many rounds.
MAX_ROUNDS = 20

# Signals that end heatline: held back while the target is stopped so that their Python handler
# (a KeyboardInterrupt, a loop stop) runs after the thaw, not in the middle of it.
_DEFERRED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

_libc: Any = None


def _ptrace() -> Callable[[int, int, int, int], int]:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        lib.ptrace.restype = ctypes.c_long
        _libc = lib
    return _libc.ptrace  # type: ignore[no-any-return]


def _call(request: int, tid: int, addr: int = 0, data: int = 0) -> int:
    """0 on success, else the errno."""
    if _ptrace()(request, tid, addr, data) == -1:
        return ctypes.get_errno()
    return 0


def _tracer_of(pid: int, tid: int) -> int:
    try:
        with open(f"/proc/{pid}/task/{tid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"TracerPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class PtraceRefusedError(ProcessPermissionError):
    """The kernel refused PTRACE_SEIZE: Yama, missing CAP_SYS_PTRACE, or another tracer."""

    def __init__(self, pid: int, tracer: int = 0) -> None:
        if tracer:
            why = (
                f"process {pid} is already traced by PID {tracer} ({comm(tracer) or '?'}, a debugger or "
                "another profiler): detach it, or run heatline without --blocking"
            )
        else:
            why = f"the kernel refused to ptrace process {pid}: " + _ptrace_fix()
        HeatlineError.__init__(self, f"--blocking cannot stop the target: {why}.")
        self.pid = pid
        self.tracer = tracer


def _ptrace_fix() -> str:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as fh:
            scope = int(fh.read())
    except (OSError, ValueError):
        scope = 0
    if scope >= 3:
        return "Yama's ptrace_scope is 3 (no ptrace until reboot); run heatline without --blocking"
    if scope >= 1:
        return (
            "relax Yama with `sudo sysctl kernel.yama.ptrace_scope=0`, or run heatline as root "
            "or with CAP_SYS_PTRACE"
        )
    return "run heatline as the target's user or as root, or grant CAP_SYS_PTRACE (`docker run --cap-add SYS_PTRACE`)"


class Freezer:
    """Stops every thread of process `pid` (`freeze`) and resumes them (`thaw`).

    Thread-affine: `freeze` and the `thaw` after it must run on the same thread (ptrace's
    tracer is a thread, not a process). Between `thaw()` and the next `freeze()` nothing is
    attached, so successive samples may come from different threads.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        # tid -> signal to re-inject on detach (0: none). Holds every tid we may still trace.
        self._stopped: dict[int, int] = {}
        self._am_parent = False
        self.frozen = False

    def freeze(self, tids: list[int] | None = None) -> list[int]:
        """Stop every thread; return the tids now stopped. `tids`: a fresh listing of the
        process's tasks, if the caller has one (it is checked again after stopping them).
        Raises `ProcessGoneError` if the process is gone, `PtraceRefusedError` if the kernel
        refuses."""
        try:
            self._freeze(tids)
        except BaseException:
            self._adopt_strays()
            self.thaw()
            raise
        self.frozen = True
        return list(self._stopped)

    def _freeze(self, listing: list[int] | None) -> None:
        gone: set[int] = set()
        refused = False
        me = threading.get_native_id()
        for _ in range(MAX_ROUNDS):
            # Listed again after each round: a thread that was inside clone() when we stopped it
            # has started a thread we have not seen yet.
            listing = task_ids(self.pid) if listing is None else listing
            new = [t for t in listing if t not in self._stopped and t not in gone]
            listing = None
            if not new:
                break
            # The leader is stopped before any other thread is traced. The kernel reports the
            # leader's exit only once every other thread is collected, and a traced thread that
            # dies is ours to collect: waiting for the leader while others are traced by us
            # would wait forever for a target killed in the middle of a freeze.
            for batch in ([t for t in new if t == self.pid], [t for t in new if t != self.pid]):
                seized, was_refused = self._seize(batch, gone, me)
                refused = refused or was_refused
                for tid in seized:
                    if not self._wait_stop(tid):
                        del self._stopped[tid]
                        gone.add(tid)
        if not self._stopped:
            if refused and not is_gone(self.pid):
                raise PtraceRefusedError(self.pid)
            raise ProcessGoneError(f"process {self.pid} has no threads left to stop.")

    def _seize(self, tids: list[int], gone: set[int], me: int) -> tuple[list[int], bool]:
        """Seize and interrupt `tids`: (the ones seized, whether the kernel refused one that
        may be exiting). Threads that cannot be seized go into `gone`."""
        seized: list[int] = []
        refused = False
        for tid in tids:
            err = _call(PTRACE_SEIZE, tid)
            if err == 0:
                # Recorded before anything else can fail, so that thaw() detaches it.
                self._stopped[tid] = 0
                seized.append(tid)
                # ESRCH here: the thread is exiting; the wait below collects it.
                _call(PTRACE_INTERRUPT, tid)
                continue
            gone.add(tid)
            if err == errno.ESRCH:  # exited since the listing
                continue
            if err in (errno.EPERM, errno.EACCES):
                tracer = _tracer_of(self.pid, tid)
                if tracer and tracer != me:
                    raise PtraceRefusedError(self.pid, tracer)
                # Permission is the process's, not the thread's: if other threads of it can
                # be seized, this one is exiting (the kernel refuses exiting tasks).
                refused = True
                continue
            raise HeatlineError(f"--blocking cannot stop thread {tid}: {os.strerror(err)}.")
        return seized, refused

    def _wait_stop(self, tid: int) -> bool:
        """Wait until `tid` is in a ptrace-stop; False if it exited instead."""
        while True:
            try:
                if tid == self.pid:
                    # The leader's exit is the process's exit status: look before consuming.
                    info = os.waitid(os.P_PID, tid, os.WSTOPPED | os.WEXITED | WALL | os.WNOWAIT)
                    if info is None:
                        continue
                    if info.si_code not in (os.CLD_TRAPPED, os.CLD_STOPPED):
                        self._reap_exit(tid)
                        return False
                    status = (info.si_status << 8) | 0x7F
                    os.waitid(os.P_PID, tid, os.WSTOPPED | WALL)
                else:
                    # Another thread's exit concerns nobody but its tracer: collect it here.
                    _, status = os.waitpid(tid, WALL)
            except ChildProcessError:  # already collected (by us, or the leader by its parent)
                return False
            except InterruptedError:
                continue
            if not os.WIFSTOPPED(status):
                return False
            event, sig = status >> 16, os.WSTOPSIG(status)
            # A signal-delivery-stop (no event): the signal must go back in on detach.
            # PTRACE_EVENT_STOP is our interrupt or a group-stop: nothing to re-inject;
            # detaching a group-stopped thread leaves it in the group-stop.
            self._stopped[tid] = sig if event == 0 else 0
            return True

    def _reap_exit(self, tid: int) -> None:
        # A traced thread's exit is reported to us and stays a zombie until we collect it. The
        # leader's exit is the process's: when heatline is also its parent (`heatline run`) the
        # launcher must reap it for its exit status, so leave it; otherwise collecting our
        # (tracer's) view hands the exit on to the real parent.
        if tid == self.pid and self._parent_is_us():
            return
        try:
            os.waitid(os.P_PID, tid, os.WEXITED | WALL | os.WNOHANG)
        except ChildProcessError:
            pass

    def _parent_is_us(self) -> bool:
        fields = read_stat(self.pid)
        return fields is not None and int(fields[STAT_PPID]) == os.getpid()

    def thaw(self) -> None:
        """Resume every thread `freeze` stopped, re-injecting the signals they were stopped by.
        Detaches all of them even if interrupted, then re-raises the first exception."""
        failure: BaseException | None = None
        while self._stopped:
            try:
                # Detach before forgetting: if an exception lands between the two, the next
                # round detaches again and gets ESRCH, which is harmless.
                # The leader last: if the target died while stopped, its exit is reported
                # only after the other threads' (see _freeze).
                tid = next((t for t in self._stopped if t != self.pid), self.pid)
                sig = self._stopped[tid]
                err = _call(PTRACE_DETACH, tid, 0, sig)
                if err == errno.ESRCH and _tracer_of(self.pid, tid) == threading.get_native_id():
                    # Still ours but not stopped (freeze was cut short before the interrupt
                    # or the wait): stop it, wait for the stop, then detach.
                    _call(PTRACE_INTERRUPT, tid)
                    if self._wait_stop(tid):
                        _call(PTRACE_DETACH, tid, 0, self._stopped.get(tid, 0))
                self._stopped.pop(tid, None)
            except BaseException as exc:  # KeyboardInterrupt included: finish the detaches first
                if failure is None:
                    failure = exc
        self.frozen = False
        if failure is not None:
            raise failure

    def _adopt_strays(self) -> None:
        """Threads we traced but did not record (an exception landed between a seize and its
        bookkeeping): thaw() must detach them too."""
        me = threading.get_native_id()
        for tid in task_ids(self.pid):
            if tid not in self._stopped and _tracer_of(self.pid, tid) == me:
                self._stopped[tid] = 0

    def close(self) -> None:
        """Leave nothing attached."""
        self._adopt_strays()
        self.thaw()


class _SnapshotCpuStates:
    """Answers `on_cpu` from /proc as it was just before the freeze: once stopped, every thread
    reads as 't' (traced), which would make cpu mode see no thread on CPU."""

    def __init__(self, real: CpuStates) -> None:
        self.real = real
        self.states: dict[int, bool | None] = {}

    def take(self, tids: list[int]) -> None:
        self.states = {tid: self.real.on_cpu(tid) for tid in tids}

    def on_cpu(self, tid: int) -> bool | None:
        if tid in self.states:
            return self.states[tid]
        return self.real.on_cpu(tid)

    def prune(self, live_tids: set[int]) -> None:
        self.real.prune(live_tids)

    def close(self) -> None:
        self.real.close()


class _Source(Protocol):
    def sample(self) -> list[ThreadSample]: ...

    def alive(self) -> bool: ...

    def thread_names(self) -> dict[int, str]: ...

    def close(self) -> None: ...


class BlockingSource:
    """A sample source whose every `sample()` is taken with the target's threads stopped.

    Everything else is the wrapped source's, except its batch `run` method: the sampling loop
    uses `run` when a source has one, and blocking needs the loop's per-tick `sample()`.
    Thread-affine like `Freezer`.
    """

    def __init__(self, source: _Source, pid: int, mode: str = "wall") -> None:
        """`mode` is the run's. Stopped threads all read as off CPU, so for cpu mode `source` is
        opened in wall mode and the threads are chosen here, by their state from before the
        freeze (other modes choose nothing by CPU state: the filter keeps all they return)."""
        self._inner = source
        self._mode = mode
        self._freezer = Freezer(pid)
        cpu = getattr(source, "cpu", None)
        # The pure-Python walker asks a CpuStates: it is handed the snapshot instead. A source
        # that reads /proc itself (the native core) gets its statuses corrected afterwards.
        self._snapshot = _SnapshotCpuStates(cpu if isinstance(cpu, CpuStates) else CpuStates(pid))
        self._patch_status = not isinstance(cpu, CpuStates)
        if not self._patch_status:
            source.cpu = self._snapshot  # type: ignore[attr-defined]

    def sample(self) -> list[ThreadSample]:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
        try:
            tids = task_ids(self._freezer.pid)
            self._snapshot.take(tids)
            self._freezer.freeze(tids)
            try:
                samples = self._inner.sample()
            finally:
                self._freezer.thaw()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        if self._patch_status:
            samples = self._with_snapshot_status(samples)
        return [s for s in samples if mode_accepts(self._mode, s.status)]

    def _with_snapshot_status(self, samples: list[ThreadSample]) -> list[ThreadSample]:
        states = self._snapshot.states
        out = []
        for s in samples:
            if s.thread_id in states:
                on = states[s.thread_id]
                status = (s.status & ~(ON_CPU | UNKNOWN)) | (UNKNOWN if on is None else ON_CPU if on else 0)
                if status != s.status:
                    s = s._replace(status=status)
            out.append(s)
        return out

    def __getattr__(self, name: str) -> Any:
        if name == "run" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    def close(self) -> None:
        try:
            self._freezer.close()
        finally:
            if self._patch_status:
                self._snapshot.close()
            self._inner.close()


__all__ = ["BlockingSource", "Freezer", "PtraceRefusedError"]
