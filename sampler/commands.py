"""What `heatline run`, `attach`, `dump`, `replay` and `compare` do once `cli.py` has parsed their arguments:
open the walker, sample into a Profile and its collector, write the output, print the summary.

`python -m sampler.live` shares the pieces (`open_walker`, `sample_launched`, `make_collector`,
`write_output`, `launched_identity`, `attached_identity`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, TypeVar

from sampler.errors import (HeatlineError, KernelThreadError, NotPythonError, ProcessGoneError, TargetExitedError,
                            UsageError)
from sampler.model import Profile, RunStats
from sampler.output_path import tell

T = TypeVar("T")


def open_walker(pid: int, args: argparse.Namespace):
    """The sample source for a run, attach or dump, as the options ask."""
    from sampler.cpython.walkers import open_source

    return open_source(pid, all_threads=args.all_threads, mode=getattr(args, "mode", "wall"), gc=args.gc,
                       blocking=args.blocking, async_mode=async_mode(args), **capture(args))


def capture(args: argparse.Namespace) -> dict[str, bool]:
    """--opcodes and --native as given (False where a command has no such flag)."""
    return {"opcodes": getattr(args, "opcodes", False), "native": getattr(args, "native", False)}


def async_mode(args: argparse.Namespace) -> str | None:
    """`--async-mode`'s value with --async-aware, else None (plain stacks)."""
    return args.async_mode if getattr(args, "async_aware", False) else None


def make_collector(profile: Profile, args: argparse.Namespace):
    """The collector of the chosen format, with its options from the command line."""
    from sampler.collectors import COLLECTORS

    cls = COLLECTORS[args.format]
    return cls(profile, **cls.options_from_args(args))


def check_output(args: argparse.Namespace) -> None:
    """Refuse a bad -o, or `--live` without a terminal, before anything is launched or sampled:
    a run cannot be taken again."""
    from sampler.collectors import COLLECTORS

    if getattr(args, "live", False):
        from sampler.tui.terminal import require_terminal

        require_terminal()
        return
    COLLECTORS[args.format].check_output(args.output)
    if getattr(args, "subprocesses", False):
        from sampler.subprocesses import check_outputs

        check_outputs(args)


def written_message(collector, path: str) -> str:
    return f"{collector.format_name} profile written to {path}"


def write_output(collector, args: argparse.Namespace, pid: int | str) -> str | None:
    """Write the profile; returns the file written (None when it went to stdout)."""
    if collector.writes_stdout and not args.output:
        collector.write_stdout(sys.stdout)
        return None
    path = collector.write(args.output or collector.default_output(pid))
    tell(written_message(collector, path))
    if args.browser:
        if not collector.opens_in_browser:
            tell(f"note: --browser has no effect for {collector.cli_flag} output")
        else:
            import webbrowser

            webbrowser.open("file://" + os.path.abspath(collector.browser_target(path)))
    return path


def launched_identity(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The cwd and argv of a `run` target as the user started it (its /proc cmdline is the
    launcher's): heatline's cwd, which the launcher gives the target, and the interpreter, the
    script (absolute) or `-m module`, and its arguments."""
    from sampler.launcher import resolve_python

    shown = ["-m", args.target] if args.module else [os.path.abspath(args.target)]
    return os.getcwd(), [resolve_python(args.python), *shown, *args.args]


def attached_identity(pid: int) -> tuple[str, list[str]]:
    """The cwd and argv of an attached process, from /proc ("" and [] when unreadable)."""
    from sampler.target.maps import read_cmdline, read_cwd

    return read_cwd(pid) or "", read_cmdline(pid) or []


def slow_sampler_note(async_mode: str | bool | None = None, *, opcodes: bool = False,
                      native: bool = False) -> str | None:
    """The summary's line when the pure-Python walker sampled (slower: users must know why).
    `async_mode`: --async-aware's mode (True: on, running), None or False: off; `opcodes`,
    `native`: --opcodes, --native, which the native core may not do."""
    from sampler.cpython.walkers import native_choice

    native, why = native_choice(async_mode, opcodes=opcodes, native=native)
    return None if native else f"Note: sampled with the pure-Python walker ({why})."


def run_stats(args: argparse.Namespace, unwinder, pid: int, identity: tuple[str, list[str]]) -> RunStats:
    """The `RunStats` a run starts with: its options, the target's version and identity."""
    cwd, argv = identity
    return RunStats(
        pid=pid,
        python_version=unwinder.runtime.version_string,
        mode=args.mode,
        all_threads=args.all_threads,
        interval_usec=args.interval_usec,
        cwd=cwd,
        argv=argv,
        **capture(args),
    )


def _sampling_loop(args: argparse.Namespace, unwinder, profile: Profile, alive, **options):
    from sampler.sampling import SamplingLoop

    return SamplingLoop(unwinder, profile, interval_usec=args.interval_usec, duration_s=args.duration,
                        alive=alive, **options)


def _check_sampled(stats: RunStats) -> None:
    if stats.samples == 0 and stats.target_exited:
        raise TargetExitedError(f"the target (PID {stats.pid}) exited before heatline could take a first sample.")


def _print_summary(stats: RunStats, stream, args: argparse.Namespace, tasks=None) -> None:
    """The run's figures, then what the user must know about how they were taken; `tasks`:
    the sampler's `AsyncStacks` with --async-aware."""
    from sampler.sampling import format_summary

    tell(format_summary(stats), stream)
    for note in (slow_sampler_note(async_mode(args), **capture(args)), tasks.note() if tasks is not None else None):
        if note:
            tell(note, stream)


def _profile(args: argparse.Namespace, unwinder, alive, pid: int, identity: tuple[str, list[str]],
             on_started=None):
    """Sample until done; returns the collector holding the profile, ready to write."""
    profile = Profile(run_stats(args, unwinder, pid, identity))
    stats = profile.stats
    collector = make_collector(profile, args)
    loop = _sampling_loop(args, unwinder, profile, alive,
                          realtime_stats=sys.stderr if args.realtime_stats else None,
                          sinks=[collector] if collector.streaming else [])
    if on_started is not None:
        on_started(loop)
    loop.run()
    if stats.interrupted:
        tell("Interrupted by user.")
    _check_sampled(stats)
    _print_summary(stats, summary_stream(collector, args), args, getattr(unwinder, "tasks", None))
    return collector


def summary_stream(collector, args: argparse.Namespace):
    """Where the run summary goes: stdout, unless the profile itself went there."""
    from sampler.output_path import is_stdout

    to_stdout = (collector.writes_stdout and not args.output) or is_stdout(args.output)
    return sys.stderr if to_stdout else sys.stdout


def _live(args: argparse.Namespace, unwinder, alive, pid: int, identity: tuple[str, list[str]],
          on_started, *, launched: bool) -> tuple[Profile, bool]:
    """`--live`: sample on a thread of its own while the terminal shows the profile, until the
    user quits; returns the profile and whether a signal ended the view (`_live_report` tells
    the user once the terminal is restored)."""
    import threading

    from sampler.tui.app import run_live

    profile = Profile(run_stats(args, unwinder, pid, identity))
    lock = threading.Lock()
    loop = _sampling_loop(args, unwinder, profile, alive, lock=lock)
    by_signal = run_live(loop, lock, on_started=on_started, launched=launched)
    _check_sampled(profile.stats)
    return profile, by_signal


def _live_report(result: tuple[Profile, bool], args: argparse.Namespace, captured=None) -> None:
    """After `--live`: the target's output, then how the run ended and its summary."""
    profile, by_signal = result
    if captured is not None:
        captured.show()
    if by_signal:
        tell("Interrupted by user.")
    _print_summary(profile.stats, sys.stdout, args)


def sample_launched(target, args: argparse.Namespace, sample: Callable[[Any], T],
                    stats_of: Callable[[T], RunStats]) -> tuple[T, int | None]:
    """Sample a target `launch` started: `sample(unwinder)` does the sampling; then the target is
    stopped if it is still running (Ctrl-C, --duration) and reaped. Returns what `sample`
    returned and the target's exit status. A failure leaves no target behind."""
    unwinder = None
    try:
        unwinder = open_walker(target.pid, args)
        result = sample(unwinder)
    except BaseException:
        target.abandon()
        raise
    finally:
        if unwinder is not None:
            unwinder.close()
    stats = stats_of(result)
    # A target still running (Ctrl-C, --duration) is stopped; what it started goes in any case.
    return result, target.finish(stop=stats.interrupted or not stats.target_exited)


def cmd_run(args: argparse.Namespace) -> int:
    from sampler.launcher import StopSignals, launch
    from sampler.subprocesses import StopAll, following

    check_output(args)
    captured = None
    if args.live:
        from sampler.tui.capture import TargetOutput

        captured = TargetOutput()  # the screen is heatline's: the target's output waits
    signals = StopSignals().install()
    follower = following(args, subreaper=True)
    try:
        identity = launched_identity(args)
        target = launch(args.target, args.args, module=args.module, python=args.python,
                        stdio=captured.stdio if captured else (None, None, None))

        def started(loop) -> None:
            signals.sampling(StopAll(loop, follower))
            if follower is not None:
                follower.start(target.pid, identity[1])  # watching before the target runs a line
            target.start()

        def sample(unwinder):
            if args.live:
                return _live(args, unwinder, target.alive, target.pid, identity, started, launched=True)
            return _profile(args, unwinder, target.alive, target.pid, identity, on_started=started)

        try:
            result, status = sample_launched(
                target, args, sample, lambda result: result[0].stats if args.live else result.profile.stats,
            )
        except TargetExitedError as err:
            # Nothing sampled, but the program's own failure must still fail the run.
            if captured:
                captured.show()
            print(f"heatline: {err}", file=sys.stderr)
            return target.run_exit_status() or err.exit_status
        if args.live:
            _live_report(result, args, captured)
        else:
            write_output(result, args, target.pid)
            if follower is not None:
                follower.end(result.profile.stats, summary_stream(result, args))
        if status not in (None, 0) and not target.stopped:
            tell(f"note: the target exited with status {status}")
        # The target's status, so that CI fails when the program fails.
        return target.run_exit_status()
    finally:
        if follower is not None:
            follower.finish()  # a failed run too: no sampler thread goes on
        signals.restore()
        if captured:
            captured.show()  # after a failure too: the target's output may say why


def cmd_attach(args: argparse.Namespace) -> int:
    from sampler.launcher import StopSignals
    from sampler.subprocesses import StopAll, following

    check_output(args)
    # SIGTERM and SIGHUP end an attach as Ctrl-C does: sampling stops and the profile is written.
    signals = StopSignals().install()
    follower = following(args)

    def started(loop) -> None:
        signals.sampling(StopAll(loop, follower))
        if follower is not None:
            follower.start(args.pid)

    try:
        try:
            unwinder = open_walker(args.pid, args)
        except NotPythonError as err:
            if follower is None or isinstance(err, KernelThreadError):
                raise
            from sampler.subprocesses import follow_only

            follow_only(args, args.pid, follower, signals.sampling, str(err))
            return 0
        identity = attached_identity(args.pid)
        try:
            if args.live:
                result = _live(args, unwinder, unwinder.alive, args.pid, identity, signals.sampling,
                               launched=False)
            else:
                collector = _profile(args, unwinder, unwinder.alive, args.pid, identity, on_started=started)
        finally:
            unwinder.close()
        if args.live:
            _live_report(result, args)
        else:
            write_output(collector, args, args.pid)
            if follower is not None:
                follower.end(collector.profile.stats, summary_stream(collector, args))
        return 0
    finally:
        if follower is not None:
            follower.finish()
        signals.restore()


def cmd_dump(args: argparse.Namespace) -> int:
    """The threads' stacks once (with --async-aware --async-mode running: their running tasks')."""
    from sampler.dump import SourceLines, format_dump, read_consistently

    unwinder = open_walker(args.pid, args)
    try:
        threads = read_consistently(unwinder.sample, f"stack from process {args.pid}")
        names = unwinder.thread_names()
        table = None
        if args.opcodes:
            from sampler.cpython.opcodes import opcode_table

            table = opcode_table(unwinder.runtime.version_string)
        sys.stdout.write(format_dump(args.pid, threads, SourceLines(args.pid), names, table))
    except ProcessGoneError:
        raise HeatlineError(
            f"No stack dump collected - process {args.pid} exited before its stack could be read."
        ) from None
    finally:
        unwinder.close()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from sampler.progress import ProgressBar
    from sampler.replay import open_binary_profile, replay

    check_output(args)
    reader = open_binary_profile(args.input_file)
    # The file holds no cwd or argv (Tachyon's format has no place for them): RunStats keeps them empty.
    profile = Profile(reader.run_stats())
    collector = make_collector(profile, args)
    total = reader.sample_count
    print(f"Replaying {total:,} samples from {args.input_file}", file=sys.stderr)
    print(f"  Sample interval: {profile.stats.interval_usec} us", file=sys.stderr)
    print(f"  Compression: {reader.compression}", file=sys.stderr)
    bar = ProgressBar(total, sys.stderr)
    done = replay(reader, profile, collector if collector.streaming else None, bar.update)
    bar.finish()
    print(f"Replayed {done:,} samples", file=sys.stderr)
    # Binary files carry no PID: name default outputs after the input (`run1.bin` -> `pstats_run1.pstats`).
    stem = os.path.splitext(os.path.basename(args.input_file))[0] or "replay"
    write_output(collector, args, stem)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """The regression gate: 1 when a function's share grew past --threshold, else 0."""
    from sampler.compare import compare_indexes
    from sampler.compare_report import REPORTS
    from sampler.lineindex import LineIndex
    from sampler.timeblocks import load_with_time_blocks

    runs = []
    try:
        for path in (args.baseline, args.current):
            # Files in time order also give the spread of shares within the run (batch means).
            loaded, blocks = load_with_time_blocks(path)
            runs.append((LineIndex.from_profile(loaded.profile), blocks))
    except HeatlineError as err:
        # 2, not 1: CI must tell "the gate failed" from "the gate could not run".
        raise UsageError(f"heatline compare: {err}") from None
    (base, base_blocks), (current, current_blocks) = runs
    comparison = compare_indexes(base, current, min_samples=args.min_samples, threshold=args.threshold,
                                 base_blocks=base_blocks, current_blocks=current_blocks)
    sys.stdout.write(REPORTS[args.format](comparison, top=args.top, root=os.getcwd()))
    return 0 if comparison.passed else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "attach": cmd_attach, "dump": cmd_dump, "replay": cmd_replay, "compare": cmd_compare,
}
