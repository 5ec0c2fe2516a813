"""`heatline` / `python -m sampler`: run, attach and dump, flag-compatible with Tachyon."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from typing import Sequence

from sampler import __version__
from sampler.errors import HeatlineError, ProcessGoneError, ProcessNotFoundError, TargetExitedError, UsageError
from sampler.model import MODES, Profile, RunStats

_RATE = re.compile(r"^(\d+(?:\.\d+)?)(hz|khz|k)?$", re.IGNORECASE)
OUTPUT_FORMATS = ("pstats", "collapsed")
SORT_CHOICES = ("nsamples", "tottime", "cumtime", "sample-pct", "cumul-pct", "nsamples-cumul", "name")


def parse_sampling_rate(text: str) -> int:
    """'10000', '10khz', '10k' -> sampling interval in microseconds."""
    m = _RATE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(
            f"Invalid sampling rate format: {text}. Expected: number followed by optional suffix "
            "(hz, khz, k) with no spaces (e.g., 10khz)"
        )
    hz = float(m.group(1)) * (1000 if m.group(2) and m.group(2).lower() in ("khz", "k") else 1)
    if hz <= 0:
        raise argparse.ArgumentTypeError(f"Sampling rate must be positive: {text}")
    interval = int(1_000_000 / hz)
    if interval < 1:
        raise argparse.ArgumentTypeError(f"Sampling rate too high: {text}")
    return interval


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration: {text!r} (seconds expected)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"duration must be positive: {text}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: error: {message}")


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument(
        "-r", "--sampling-rate", dest="interval_usec", type=parse_sampling_rate, default=1000,
        metavar="RATE", help="samples per second: 1000, 10khz, 10k (default: 1khz)",
    )
    g.add_argument("-d", "--duration", type=_positive_seconds, default=None, metavar="SECONDS",
                   help="stop after this many seconds (default: until the target exits or Ctrl-C)")
    g.add_argument("-a", "--all-threads", action="store_true", help="sample every thread, not only the main one")
    g.add_argument("--mode", choices=MODES, default="wall",
                   help="wall: every sample; cpu: threads on CPU; gil: the thread holding the GIL; "
                        "exception: threads with an exception being raised or handled")
    g.add_argument("--no-gc", dest="gc", action="store_false", help="leave out <GC> frames")
    g.add_argument("--realtime-stats", action="store_true", help="show the achieved rate while sampling")


def _add_output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output format")
    fmt = g.add_mutually_exclusive_group()
    fmt.add_argument("--pstats", dest="format", action="store_const", const="pstats",
                     help="table on stdout, or with -o a file pstats/snakeviz load (default)")
    fmt.add_argument("--collapsed", dest="format", action="store_const", const="collapsed",
                     help="collapsed stacks for flamegraph.pl and speedscope")
    p.set_defaults(format="pstats")
    g.add_argument("-o", "--output", metavar="PATH", help="output file (default: <format>_<pid>.<ext>)")
    s = p.add_argument_group("pstats options")
    s.add_argument("--sort", choices=SORT_CHOICES, default=None, help="table sort order (default: nsamples)")
    s.add_argument("-l", "--limit", type=int, default=None, help="table rows (default: 15)")
    s.add_argument("--no-summary", action="store_true", help="leave out the summary after the table")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="heatline",
        description="Statistical sampling profiler for CPython 3.9-3.15, from outside the process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"heatline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="launch a script or module and profile it from its first line")
    run.add_argument("-m", "--module", action="store_true", help="TARGET is a module name, as with python -m")
    run.add_argument("--python", metavar="PATH", help="interpreter for the target (default: this one)")
    run.add_argument("target", help="script path, or module name with -m")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the target")
    _add_sampling_options(run)
    _add_output_options(run)

    attach = sub.add_parser("attach", help="profile a running process")
    attach.add_argument("pid", type=int)
    _add_sampling_options(attach)
    _add_output_options(attach)

    dump = sub.add_parser("dump", help="print the stacks of a running process once")
    dump.add_argument("pid", type=int)
    dump.add_argument("-a", "--all-threads", action="store_true", help="every thread, not only the main one")
    dump.add_argument("--no-gc", dest="gc", action="store_false", help="leave out <GC> frames")
    return parser


def _validate(args: argparse.Namespace) -> None:
    if args.format != "pstats":
        used = [name for name, value in (("--sort", args.sort), ("--limit", args.limit)) if value is not None]
        if args.no_summary:
            used.append("--no-summary")
        if used:
            raise UsageError(
                f"heatline: error: Options {', '.join(used)} are only valid with --pstats, not --{args.format}"
            )
    if args.limit is not None and args.limit <= 0:
        raise UsageError("heatline: error: --limit must be a positive number of rows")


# -- commands -------------------------------------------------------------------------------------


def _collector_options(args: argparse.Namespace) -> dict:
    if args.format != "pstats":
        return {}
    return {
        "sort": args.sort or "nsamples",
        "limit": args.limit or 15,
        "show_summary": not args.no_summary,
    }


def _write_output(profile: Profile, args: argparse.Namespace, pid: int) -> None:
    from sampler.collectors import COLLECTORS

    collector = COLLECTORS[args.format](profile, **_collector_options(args))
    if args.format == "pstats" and not args.output:
        collector.write_stdout(sys.stdout)
        return
    path = collector.write(args.output or collector.default_output(pid))
    print(f"{args.format} profile written to {path}", file=sys.stderr)


def _profile(args: argparse.Namespace, unwinder, alive, pid: int, on_started=None) -> Profile:
    from sampler.sampling import SamplingLoop, print_summary

    stats = RunStats(
        pid=pid,
        python_version=unwinder.runtime.version_string,
        mode=args.mode,
        all_threads=args.all_threads,
        interval_usec=args.interval_usec,
    )
    profile = Profile(stats)
    loop = SamplingLoop(
        unwinder, profile, interval_usec=args.interval_usec, duration_s=args.duration, alive=alive,
        realtime_stats=sys.stderr if args.realtime_stats else None,
    )
    if on_started is not None:
        on_started()
    loop.run()
    if stats.interrupted:
        print("Interrupted by user.", file=sys.stderr)
    if stats.samples == 0 and stats.target_exited:
        raise TargetExitedError(f"the target (PID {pid}) exited before heatline could take a first sample.")
    print_summary(stats, sys.stderr if args.format == "pstats" and not args.output else sys.stdout)
    return profile


def cmd_run(args: argparse.Namespace) -> int:
    from sampler.cpython.unwinder import Unwinder
    from sampler.launcher import launch

    target = launch(args.target, args.args, module=args.module, python=args.python)
    unwinder = None
    try:
        unwinder = Unwinder(
            target.pid, all_threads=args.all_threads, mode=args.mode, gc=args.gc
        )
        profile = _profile(args, unwinder, target.alive, target.pid, on_started=target.start)
    except BaseException:
        target.abandon()
        raise
    finally:
        if unwinder is not None:
            unwinder.close()
    if profile.stats.interrupted or not profile.stats.target_exited:
        target.stop()
    status = target.wait(timeout=5)
    _write_output(profile, args, target.pid)
    if status not in (None, 0) and not profile.stats.interrupted and profile.stats.target_exited:
        print(f"note: the target exited with status {status}", file=sys.stderr)
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    from sampler.cpython.unwinder import Unwinder

    unwinder = Unwinder(args.pid, all_threads=args.all_threads, mode=args.mode, gc=args.gc)
    try:
        profile = _profile(args, unwinder, unwinder.alive, args.pid)
    finally:
        unwinder.close()
    _write_output(profile, args, args.pid)
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    from sampler.cpython.unwinder import Unwinder
    from sampler.dump import SourceLines, format_dump
    from sampler.errors import ReadError

    unwinder = Unwinder(args.pid, all_threads=args.all_threads, gc=args.gc)
    try:
        last_error: Exception | None = None
        for _ in range(20):  # the target keeps running: retry a torn read
            try:
                threads = unwinder.sample()
                break
            except ReadError as exc:
                last_error = exc
        else:
            raise HeatlineError(f"could not read a consistent stack from process {args.pid}: {last_error}")
        names = unwinder.thread_names()
        sys.stdout.write(format_dump(args.pid, threads, SourceLines(args.pid), names))
    except ProcessGoneError:
        raise HeatlineError(
            f"No stack dump collected - process {args.pid} exited before its stack could be read."
        ) from None
    finally:
        unwinder.close()
    return 0


COMMANDS = {"run": cmd_run, "attach": cmd_attach, "dump": cmd_dump}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command != "dump":
            _validate(args)
        if args.command == "attach" and args.pid <= 0:
            raise ProcessNotFoundError(args.pid)
        return COMMANDS[args.command](args)
    except HeatlineError as err:
        print(str(err) if isinstance(err, UsageError) else f"heatline: {err}", file=sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        print("Interrupted by user.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `heatline ... | head`: the reader left; stay quiet like other CLI tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
