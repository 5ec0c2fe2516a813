"""Profiling as a child process that streams the growing profile, for the language server.

    python -m sampler.live --stream-fd FD [--flush-interval S] run [heatline run options] TARGET [ARGS...]
    python -m sampler.live --stream-fd FD [--flush-interval S] attach [heatline attach options] PID

The server must never block while a target is sampled, so it runs this and reads FD (an
inherited pipe): one JSON object per line.

    start  {"type", "pid", "python_version", "mode", "all_threads", "interval_usec", "cwd", "argv",
            "start_time", "opcodes", "native"}: the unwinder is attached; sampling begins
            (opcodes/native: what the run captures, --opcodes/--native; absent = false)
    delta  {"type", "frames": [[filename, funcname, lineno, end_lineno, col, end_col, opcode], ...],
            "stacks": [[tid, [frame id, ... leaf first], weight], ...],
            "status": [[tid, status, count], ...], "threads": {"tid": name},
            "stats": {"samples", "attempts", "errors", "elapsed_s"}}
           what changed since the previous delta: frames new to the stream (a frame's id is its
           position among all frames sent so far), weights and counts to add, new thread names
    end    {"type", "stats": {every RunStats field}, "output": path | null,
            "target_exit_status": int | null}
    error  {"type", "kind": HeatlineError subclass name, "message": one line}; exit status 1
           (2 for usage errors)
    process, process_end, and deltas with a "pid": --subprocesses (sampler/live_processes.py)

Deltas are built on the sampling thread, at most once per flush interval (when a sample arrives
after it has passed), and once more when sampling ends, so nothing else ever touches the
profile. SIGINT and SIGTERM end sampling as Ctrl-C ends `heatline run`. If the reader goes away
(a write fails, or this process is orphaned) sampling stops, a launched target is stopped, and
the process exits without a word.

`LiveProfileReader` is the other end: it rebuilds the child's `Profile` line by line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
import traceback
from typing import Any, Callable, Sequence

from sampler.cli import (
    blocking_warning,
    _Parser,
    _positive_seconds,
    _validate,
    validate_async,
    validate_opcodes,
    add_attach_arguments,
    add_run_arguments,
)
from sampler.commands import attached_identity, launched_identity, open_walker, run_stats, sample_launched
from sampler.commands import make_collector as _make_collector, write_output as _write_output
from sampler.errors import (
    HeatlineError, KernelThreadError, LiveStreamError, NotPythonError, ProcessNotFoundError, TargetExitedError, UsageError,
)
from sampler.model import MODES, Frame, Mark, Profile, ProfileDelta, RunStats

DEFAULT_FLUSH_INTERVAL_S = 1.0
PROG = "python -m sampler.live"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Profile a target, streaming the profile as JSON lines to FD.")
    parser.add_argument("--stream-fd", type=int, required=True, metavar="FD",
                        help="inherited, writable file descriptor the stream goes to")
    parser.add_argument("--flush-interval", type=_positive_seconds, default=DEFAULT_FLUSH_INTERVAL_S,
                        metavar="SECONDS", help="most frequent delta (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    sub.required = True
    add_run_arguments(sub.add_parser("run", help="launch a script or module and profile it"))
    add_attach_arguments(sub.add_parser("attach", help="profile a running process"))
    return parser


# -- the writing side ------------------------------------------------------------------------------


class StreamWriter:
    """Whole lines to the stream fd; after one failed write (the reader left) it stays silent."""

    def __init__(self, fd: int | None) -> None:
        import threading

        self.fd = fd
        self.broken = fd is None
        self._lock = threading.Lock()  # --subprocesses: each process's sampler thread sends too

    def send(self, message: dict[str, Any]) -> bool:
        if self.broken:
            return False
        # ASCII escapes keep undecodable names (lone surrogates) valid UTF-8 and lossless.
        data = memoryview((json.dumps(message, separators=(",", ":")) + "\n").encode("ascii"))
        try:
            with self._lock:
                while data:
                    data = data[os.write(self.fd, data):]  # a signal can cut a large write short
        except OSError:
            self.broken = True
            return False
        return True


def start_message(stats: RunStats, start_time: float) -> dict[str, Any]:
    """The `start` line, from the run's `RunStats`; an unknown cwd or argv is sent as null."""
    return {
        "type": "start", "pid": stats.pid, "python_version": stats.python_version, "mode": stats.mode,
        "all_threads": stats.all_threads, "interval_usec": stats.interval_usec, "cwd": stats.cwd or None,
        "argv": stats.argv or None, "start_time": start_time,
        "opcodes": stats.opcodes, "native": stats.native,
    }


class DeltaSink:
    """A `SampleSink` of the profile that sends what the profile gained since the last delta
    (`Profile.delta_since`), once per interval: the cost of a delta is what changed.

    The profile counts a sample before it hands it to its sinks, so a delta holds every sample
    up to the current one; the final `flush()` after the loop sends what came after.
    """

    def __init__(self, profile: Profile, writer: StreamWriter, interval_s: float, on_lost: Callable[[], None],
                 parent: int | None = None) -> None:
        self.profile = profile
        self.writer = writer
        self.interval_s = interval_s
        self.on_lost = on_lost
        self.parent = os.getppid() if parent is None else parent
        self.next_flush = time.monotonic() + interval_s
        # None: the first delta sends the whole profile (stream frame ids are profile frame ids).
        self._mark: Mark | None = None

    def start_clock(self) -> None:
        self.next_flush = time.monotonic() + self.interval_s

    def collect(self, timestamp_us: int, threads: Sequence[Any], weight: int = 1) -> None:
        now = time.monotonic()
        if now < self.next_flush:
            return
        self.next_flush = now + self.interval_s
        # Orphaned (the server died without closing our pipe, e.g. a child of it holds it open).
        if os.getppid() != self.parent or not self.flush():
            self.on_lost()

    def flush(self, elapsed_s: float | None = None) -> bool:
        return self.writer.send(self.delta(elapsed_s))

    def delta(self, elapsed_s: float | None = None) -> dict[str, Any]:
        profile = self.profile
        stats = profile.stats
        change = profile.delta_since(self._mark)
        self._mark = profile.mark()
        stacks = [[tid, list(ids), gained] for (tid, ids), gained in change.stacks.items() if gained]
        status = [[tid, flags, gained] for tid, counts in change.status_counts.items()
                  for flags, gained in counts.items() if gained]
        if elapsed_s is None:
            elapsed_s = time.monotonic() - stats.start_monotonic_us / 1e6 if stats.start_monotonic_us else 0.0
        return {
            "type": "delta",
            "frames": [list(f) for f in change.frames],
            "stacks": stacks,
            "status": status,
            "threads": {str(tid): name for tid, name in change.thread_names.items()},
            "stats": {"samples": stats.samples, "attempts": stats.attempts, "errors": stats.errors,
                      "elapsed_s": round(elapsed_s, 6)},
        }


class _Session:
    """One profiling run: the stream, the stop requests (signals, a lost reader) and the loop."""

    def __init__(self, args: argparse.Namespace, writer: StreamWriter, parent: int) -> None:
        self.args = args
        self.writer = writer
        self.parent = parent
        self.stop_requested = False
        self._loop = None
        self.follower = None  # --subprocesses (sampler/live_processes.py streams each process)

    def request_stop(self, *_signal_args: object) -> None:
        # Called from signal handlers: only flags, so the loop ends between two samples.
        self.stop_requested = True
        if self._loop is not None:
            self._loop.stop()
        if self.follower is not None:
            self.follower.stop()

    def profile(self, unwinder, alive, pid: int, *, cwd: str | None, argv: list[str] | None,
                on_started: Callable[[], None] | None = None, subreaper: bool = False):
        """Sample until done, streaming deltas; returns (profile, collector for -o or None)."""
        from sampler.live_processes import stream_subprocesses
        from sampler.sampling import SamplingLoop

        args = self.args
        stats = run_stats(args, unwinder, pid, (cwd or "", list(argv or ())))
        profile = Profile(stats)
        collector = _make_collector(profile, args) if args.output else None
        deltas = DeltaSink(profile, self.writer, args.flush_interval, self.request_stop, self.parent)
        if collector is not None and collector.streaming:
            profile.add_sink(collector)
        profile.add_sink(deltas)
        loop = SamplingLoop(
            unwinder, profile, interval_usec=args.interval_usec, duration_s=args.duration, alive=alive,
            realtime_stats=sys.stderr if args.realtime_stats else None,
        )
        self._loop = loop
        if not self.writer.send(start_message(stats, time.time())):
            self.request_stop()
        if self.stop_requested:
            loop.stop()
        self.follower = stream_subprocesses(args, self.writer, self.parent, self.request_stop, subreaper=subreaper)
        if self.follower is not None:
            self.follower.start(pid, list(argv or ()) if subreaper else None)
        if on_started is not None:
            on_started()
        deltas.start_clock()
        try:
            loop.run()
        finally:
            self._loop = None
        if self.stop_requested:
            stats.interrupted = True
        deltas.flush(stats.duration_s)
        if stats.samples == 0 and stats.target_exited:
            raise TargetExitedError(f"the target (PID {pid}) exited before heatline could take a first sample.")
        return profile, collector

    def follow_only(self, refusal: str) -> None:
        """`attach --subprocesses` to a process that is not Python: a run with no samples of its
        own whose subprocesses stream theirs (sampler.subprocesses.follow_only)."""
        from sampler.live_processes import stream_subprocesses
        from sampler.subprocesses import follow_only

        args = self.args
        cwd, argv = attached_identity(args.pid)
        profile = Profile(RunStats(pid=args.pid, mode=args.mode, all_threads=args.all_threads,
                                   interval_usec=args.interval_usec, cwd=cwd, argv=argv))
        if not self.writer.send(start_message(profile.stats, time.time())):
            self.request_stop()
        self.follower = follower = stream_subprocesses(args, self.writer, self.parent, self.request_stop)

        def started(stopper) -> None:
            self._loop = stopper
            if self.stop_requested:
                stopper.stop()

        stats = follow_only(args, args.pid, follower, started, refusal, sys.stderr)
        profile.stats.interrupted, profile.stats.target_exited = stats.interrupted, stats.target_exited
        self.follower = None  # its summary is said
        self.finish(profile, None, None)

    def finish(self, profile: Profile, collector, target_exit_status: int | None) -> None:
        output = _write_output(collector, self.args, profile.stats.pid) if collector is not None else None
        if self.follower is not None:
            self.follower.end(profile.stats, sys.stderr)
        self.writer.send({"type": "end", "stats": dataclasses.asdict(profile.stats), "output": output,
                          "target_exit_status": target_exit_status})


def _run(session: _Session) -> None:
    from sampler.launcher import launch

    args = session.args
    cwd, argv = launched_identity(args)
    target = launch(args.target, args.args, module=args.module, python=argv[0])
    (profile, collector), status = sample_launched(
        target, args,
        lambda unwinder: session.profile(
            unwinder, target.alive, target.pid, cwd=cwd, argv=argv, on_started=target.start, subreaper=True,
        ),
        lambda result: result[0].stats,
    )
    session.finish(profile, collector, status)


def _attach(session: _Session) -> None:
    args = session.args
    if args.pid <= 0:
        raise ProcessNotFoundError(args.pid)
    try:
        unwinder = open_walker(args.pid, args)
    except NotPythonError as err:
        if not args.subprocesses or isinstance(err, KernelThreadError):
            raise
        session.follow_only(str(err))
        return
    try:
        cwd, argv = attached_identity(args.pid)
        profile, collector = session.profile(unwinder, unwinder.alive, args.pid, cwd=cwd, argv=argv)
    finally:
        unwinder.close()
    session.finish(profile, collector, None)


def _stream_fd_option(argv: Sequence[str]) -> int | None:
    """--stream-fd from a command line argparse rejected, so the error can still be streamed."""
    for i, arg in enumerate(argv):
        if arg in ("run", "attach"):
            break
        value = arg[len("--stream-fd="):] if arg.startswith("--stream-fd=") else None
        if arg == "--stream-fd" and i + 1 < len(argv):
            value = argv[i + 1]
        if value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parent = os.getppid()  # as early as possible: the server may die while we start
    argv = list(sys.argv[1:] if argv is None else argv)
    writer = StreamWriter(None)
    try:
        try:
            args = build_parser().parse_args(argv)
        except UsageError:
            writer = StreamWriter(_stream_fd_option(argv))
            raise
        writer = StreamWriter(args.stream_fd)
        if args.stream_fd > 2:
            try:
                # The target must not hold the pipe open: the reader would never see it close.
                os.set_inheritable(args.stream_fd, False)
            except OSError:
                raise UsageError(f"{PROG}: error: --stream-fd {args.stream_fd} is not an open file descriptor") from None
        _validate(args)
        validate_async(args)
        if args.output:  # the stream carries opcodes whatever the format of -o
            validate_opcodes(args)
        blocking_warning(args)
        session = _Session(args, writer, parent)
        signal.signal(signal.SIGINT, session.request_stop)
        signal.signal(signal.SIGTERM, session.request_stop)
        (_run if args.command == "run" else _attach)(session)
        return 0
    except HeatlineError as err:
        message = str(err)
        writer.send({"type": "error", "kind": type(err).__name__, "message": message})
        print(message if isinstance(err, UsageError) else f"heatline: {message}", file=sys.stderr)
        return err.exit_status
    except Exception as err:  # noqa: BLE001 - a bug: the reader still gets a one-line error
        traceback.print_exc()
        writer.send({"type": "error", "kind": type(err).__name__, "message": f"internal error: {err}"})
        return 1


# -- the reading side ------------------------------------------------------------------------------


def _bad(what: str) -> LiveStreamError:
    return LiveStreamError(f"malformed live profile stream: {what}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value: Any, what: str, minimum: int | None = None) -> int:
    if not _is_int(value) or (minimum is not None and value < minimum):
        raise _bad(f"{what} is not {'an integer' if minimum is None else f'an integer >= {minimum}'}")
    return value


def _list(value: Any, what: str, length: int | None = None) -> list:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise _bad(f"{what} is not a list" + (f" of {length}" if length is not None else ""))
    return value


def _optional(value: Any, check: Callable[[Any], bool], what: str) -> Any:
    if value is not None and not check(value):
        raise _bad(f"{what} has the wrong type")
    return value


_STATS_TYPES = {f.name: f.type for f in dataclasses.fields(RunStats)}


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(a, str) for a in value)


def _stat_ok(name: str, value: Any) -> bool:
    kind = _STATS_TYPES[name]
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return _is_int(value)
    if kind == "float":
        return _is_number(value)
    if kind == "list[str]":
        return _is_str_list(value)
    return isinstance(value, str)


class LiveProfileReader:
    """Rebuilds the profile of a `python -m sampler.live` child from its stream, line by line:
    each delta is applied with `Profile.apply`; the target's cwd and argv are in its `RunStats`."""

    def __init__(self) -> None:
        self.profile = Profile()
        self.started = False
        self.finished = False
        self.error: str | None = None
        self.error_kind: str | None = None
        self.output: str | None = None
        self.pid: int | None = None
        self.samples = 0
        self.elapsed_s = 0.0
        self.target_exit_status: int | None = None
        self._frame_ids: list[int] = []  # stream frame id -> profile frame id
        from sampler.live_processes import ProcessFamily

        self.family = ProcessFamily(self.profile)  # --subprocesses: each process's own profile

    @property
    def cwd(self) -> str | None:
        """The target's working directory (None until known); `profile.stats.cwd` holds it."""
        return self.profile.stats.cwd or None

    @property
    def argv(self) -> list[str] | None:
        return self.profile.stats.argv or None

    def feed(self, line: bytes | str) -> dict[str, Any]:
        """Apply one line; returns the decoded message. A bad line changes nothing and raises
        `LiveStreamError`."""
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                raise _bad("a line is not UTF-8") from None
        try:
            message = json.loads(line)
        except ValueError:
            raise _bad(f"a line is not JSON ({line[:60]!r})") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise _bad("a line is not a message with a type")
        kind = message["type"]
        handler = self._HANDLERS.get(kind)
        if handler is None:
            raise _bad(f"unknown message type {kind!r}")
        if self.finished:
            raise _bad(f"{kind!r} message after the stream ended")
        if kind != "error" and (kind == "start") == self.started:
            raise _bad("a second start message" if self.started else f"{kind!r} message before start")
        handler(self, message)
        return message

    def _start(self, m: dict[str, Any]) -> None:
        pid = _int(m.get("pid"), "start pid", 0)
        version = m.get("python_version")
        mode = m.get("mode")
        if not isinstance(version, str) or mode not in MODES or not isinstance(m.get("all_threads"), bool):
            raise _bad("start message fields have the wrong types")
        interval = _int(m.get("interval_usec"), "interval_usec", 1)
        cwd = _optional(m.get("cwd"), lambda v: isinstance(v, str), "cwd")
        argv = _optional(m.get("argv"), _is_str_list, "argv")
        opcodes = _optional(m.get("opcodes"), lambda v: isinstance(v, bool), "opcodes")
        native = _optional(m.get("native"), lambda v: isinstance(v, bool), "native")
        start_time = m.get("start_time")
        if not _is_number(start_time):
            raise _bad("start_time is not a number")
        stats = self.profile.stats
        stats.pid, stats.python_version, stats.mode = pid, version, mode
        stats.all_threads, stats.interval_usec, stats.start_time = m["all_threads"], interval, float(start_time)
        stats.cwd, stats.argv = cwd or "", list(argv or ())
        stats.opcodes, stats.native = bool(opcodes), bool(native)
        self.pid = pid
        self.started = True

    def _delta(self, m: dict[str, Any]) -> None:
        # Check everything first, so a bad delta leaves the profile as it was.
        child = self.family.child(m["pid"]) if "pid" in m else None  # a subprocess's (--subprocesses)
        frame_ids = child.own_ids if child is not None else self._frame_ids
        frames = []
        for raw in _list(m.get("frames"), "delta frames"):
            f = _list(raw, "a frame")
            if len(f) not in (6, 7):  # 6: a stream from before Frame.opcode
                raise _bad("a frame is not a list of 6 or 7")
            if not (isinstance(f[0], str) and isinstance(f[1], str) and all(_is_int(v) for v in f[2:])):
                raise _bad("a frame has the wrong field types")
            frames.append(Frame(*f))
        known = len(frame_ids) + len(frames)
        stacks: dict[tuple[int, tuple[int, ...]], int] = {}
        for raw in _list(m.get("stacks"), "delta stacks"):
            tid, ids, weight = _list(raw, "a stack", 3)
            for fid in _list(ids, "a stack's frame ids"):
                if not _is_int(fid) or not 0 <= fid < known:
                    raise _bad(f"frame id {fid!r} was never sent")
            key = (_int(tid, "thread id"), tuple(ids))
            stacks[key] = stacks.get(key, 0) + _int(weight, "stack weight", 0)
        status: dict[int, dict[int, int]] = {}
        for raw in _list(m.get("status"), "delta status"):
            tid, flags, count = _list(raw, "a status count", 3)
            per_thread = status.setdefault(_int(tid, "thread id"), {})
            flags = _int(flags, "status", 0)
            per_thread[flags] = per_thread.get(flags, 0) + _int(count, "status count", 0)
        names = m.get("threads")
        if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
            raise _bad("delta threads is not an object of names")
        try:
            names = {int(tid): name for tid, name in names.items()}
        except ValueError:
            raise _bad("a thread id in delta threads is not an integer") from None
        progress = m.get("stats")
        if not isinstance(progress, dict):
            raise _bad("delta stats is not an object")
        counts = {key: _int(progress.get(key), f"stats {key}", 0) for key in ("samples", "attempts", "errors")}
        elapsed = progress.get("elapsed_s")
        if not _is_number(elapsed):
            raise _bad("stats elapsed_s is not a number")

        delta = ProfileDelta(len(frame_ids), frames, stacks, status, names)
        if child is not None:
            self.family.apply_child(child, delta, counts["samples"])
            return
        profile = self.profile
        profile.apply(delta, self._frame_ids)
        self.family.apply_main(delta)
        stats = profile.stats
        stats.samples, stats.attempts, stats.errors = counts["samples"], counts["attempts"], counts["errors"]
        stats.duration_s = self.elapsed_s = float(elapsed)
        self.samples = stats.samples

    def _end(self, m: dict[str, Any]) -> None:
        stats = m.get("stats")
        if not isinstance(stats, dict):
            raise _bad("end stats is not an object")
        known = {k: v for k, v in stats.items() if k in _STATS_TYPES}
        for name, value in known.items():
            if not _stat_ok(name, value):
                raise _bad(f"end stats {name} has the wrong type")
        output = _optional(m.get("output"), lambda v: isinstance(v, str), "output")
        status = _optional(m.get("target_exit_status"), _is_int, "target_exit_status")
        for name, value in known.items():
            setattr(self.profile.stats, name, value)
        self.output, self.target_exit_status = output, status
        self.samples, self.elapsed_s = self.profile.stats.samples, self.profile.stats.duration_s
        self.family.finish()
        self.finished = True

    def _error(self, m: dict[str, Any]) -> None:
        kind, message = m.get("kind"), m.get("message")
        if not isinstance(kind, str) or not isinstance(message, str):
            raise _bad("error message fields are not strings")
        self.error_kind, self.error = kind, message
        self.finished = True

    def _process(self, m: dict[str, Any]) -> None:
        self.family.announce(m, self.pid, self._frame_ids)

    def _process_end(self, m: dict[str, Any]) -> None:
        self.family.end(m)

    _HANDLERS: dict[str, Callable[["LiveProfileReader", dict[str, Any]], None]] = {
        "start": _start, "delta": _delta, "end": _end, "error": _error,
        "process": _process, "process_end": _process_end,
    }


if __name__ == "__main__":
    sys.exit(main())
