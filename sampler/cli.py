"""`heatline` / `python -m sampler`: the command line, flag-compatible with Tachyon.

It parses and dispatches; what each command does is in `sampler/commands.py`."""

from __future__ import annotations

import argparse
import re
import signal
import sys
from typing import Callable, Sequence

from sampler import __version__
from sampler.commands import COMMANDS
from sampler.errors import HeatlineError, ProcessNotFoundError, UsageError
from sampler.model import ASYNC_MODES, MODES



_RATE = re.compile(r"^(\d+(?:\.\d+)?)(hz|khz|k)?$", re.IGNORECASE)


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
    # float() takes "nan" and "inf": a NaN deadline is never reached, so the run would not stop.
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"duration must be positive and finite: {text}")
    return value


class _VersionAction(argparse.Action):
    """`--version` also says whether the native sampler is in use, worked out only when asked."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from sampler.cpython.walkers import sampler_description

        print(f"heatline {__version__} ({sampler_description()})")
        parser.exit()


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
    _add_capture_options(g, opcodes_help=OPCODES_HELP)
    g.add_argument("--async-aware", action="store_true",
                   help="asyncio stacks: each thread's running task, its coroutines and the tasks awaiting it "
                        "(CPython 3.11 to 3.15)")
    g.add_argument("--async-mode", choices=ASYNC_MODES, default="running",
                   help="with --async-aware, running: the task each thread runs; all: every task, "
                        "the waiting ones too, each at the line it is suspended at")
    g.add_argument("--realtime-stats", action="store_true", help="show the achieved rate while sampling")
    g.add_argument("--subprocesses", action="store_true",
                   help="also profile the Python processes the target starts (children, grandchildren), "
                        "each into its own file: NAME_PID.EXT beside -o, else profile_PID.pstats, FORMAT_PID.EXT")
    g.add_argument("--blocking", action="store_true",
                   help="stop the target's threads (ptrace) around every sample: consistent stacks, at a cost "
                        "to the target; 1khz or slower is advised")


# Tachyon's words for its flags, for users who switch between the two.
NATIVE_HELP = "Include artificial `<native>` frames to denote calls to non-Python code"
OPCODES_HELP = ("Gather bytecode opcode information for instruction-level profiling "
                "(shows which bytecode instructions are executing, including specializations).")
# The outputs that show instructions (Tachyon's list, in its order and spelling).
OPCODES_FORMATS = ("live", "gecko", "flamegraph", "diff_flamegraph", "heatmap", "binary")


def _add_capture_options(g, *, opcodes_help: str) -> None:
    """--native and --opcodes (run, attach, dump): what each sample records besides lines."""
    g.add_argument("--native", action="store_true", help=NATIVE_HELP)
    g.add_argument("--opcodes", action="store_true", help=opcodes_help)


def validate_opcodes(args: argparse.Namespace) -> None:
    """--opcodes only with an output that shows instructions (Tachyon's refusal, in its words)."""
    chosen = "live" if getattr(args, "live", False) else args.format
    if getattr(args, "opcodes", False) and chosen not in OPCODES_FORMATS:
        raise UsageError(f"heatline: error: --opcodes is only compatible with "
                         f"{', '.join('--' + f for f in OPCODES_FORMATS)}.")


class _FormatWithValue(argparse.Action):
    """`--diff-flamegraph BASELINE`: chooses the format and keeps its value as an option."""

    def __init__(self, *args, format_name: str, value_option: str, **kwargs) -> None:
        self.format_name = format_name
        self.value_option = value_option
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        namespace.format = self.format_name
        setattr(namespace, self.value_option, values)


def add_output_options(p: argparse.ArgumentParser, *, replay: bool = False) -> None:
    """The format flags, -o, --browser and each format's own options (also what `--live`'s `o`
    key parses)."""
    from sampler.collectors import COLLECTORS

    g = p.add_argument_group("output format")
    fmt = g.add_mutually_exclusive_group()
    for name, collector in COLLECTORS.items():
        if replay and not collector.replayable:
            continue
        if collector.cli_value_option:
            fmt.add_argument(
                collector.cli_flag, action=_FormatWithValue, format_name=name,
                value_option=collector.cli_value_option, metavar=collector.cli_metavar, help=collector.cli_help,
            )
        else:
            fmt.add_argument(collector.cli_flag, dest="format", action="store_const", const=name,
                             help=collector.cli_help)
    p.set_defaults(format="pstats")
    g.add_argument("-o", "--output", metavar="PATH", help="output file (default: <format>_<pid>.<ext>)")
    g.add_argument("--browser", action="store_true", help="open HTML output in a web browser")
    for name, collector in COLLECTORS.items():
        if replay and not collector.replayable:
            continue
        if collector.cli_options:
            collector.add_arguments(p.add_argument_group(f"{name} options"))


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """Everything `heatline run` takes; shared with `python -m sampler.live run`."""
    run.add_argument("-m", "--module", action="store_true", help="TARGET is a module name, as with python -m")
    run.add_argument("--python", metavar="PATH", help="interpreter for the target (default: this one)")
    run.add_argument("target", help="script path, or module name with -m")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the target")
    _add_sampling_options(run)
    add_output_options(run)


def add_attach_arguments(attach: argparse.ArgumentParser, many: bool = False) -> None:
    """Everything `heatline attach` takes; shared with `python -m sampler.live attach` (one PID:
    `many` is heatline's own several PIDs or --all-python, see sampler/attach_many.py)."""
    if many:
        attach.add_argument("pid", type=int, nargs="*", help="one or more PIDs: several give one output each")
        attach.add_argument("--all-python", action="store_true",
                            help="every Python process this user may read, one output each, named by PID")
    else:
        attach.add_argument("pid", type=int)
    _add_sampling_options(attach)
    add_output_options(attach)


def _add_live_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--live", action="store_true",
                   help="a top-style view of the hottest functions in the terminal while sampling (h: its keys)")


def _non_negative(kind: type) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text!r}")
        return value
    return parse


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    from sampler.compare_report import REPORTS

    p.add_argument("baseline", metavar="BASELINE", help="the profile to compare against (any file heatline reads)")
    p.add_argument("current", metavar="CURRENT", help="the profile under test")
    p.add_argument("--threshold", metavar="PCT", type=_non_negative(float), default=None,
                   help="exit 1 when a function's self or total share grew significantly by more than PCT "
                        "percentage points (default: report only)")
    p.add_argument("--min-samples", metavar="N", type=_non_negative(int), default=20,
                   help="compare only functions and lines on at least N stacks in either run")
    p.add_argument("--format", choices=sorted(REPORTS), default="text", help="report format")
    p.add_argument("--top", metavar="N", type=_non_negative(int), default=10, help="rows per section")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="heatline",
        description="Statistical sampling profiler for CPython 3.9-3.15, from outside the process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and which sampler runs")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="launch a script or module and profile it from its first line")
    add_run_arguments(run)
    attach = sub.add_parser("attach", help="profile a running process (or several)")
    add_attach_arguments(attach, many=True)
    for p in (run, attach):  # not in add_*_arguments: `python -m sampler.live` shares those
        _add_live_option(p)

    replay = sub.add_parser("replay", help="convert a --binary profile to another format")
    replay.add_argument("input_file", metavar="FILE", help="a profile written with --binary")
    add_output_options(replay, replay=True)

    compare = sub.add_parser("compare", help="compare two profiles: a regression gate for CI")
    add_compare_arguments(compare)

    dump = sub.add_parser("dump", help="print the stacks of a running process once")
    dump.add_argument("pid", type=int)
    dump.add_argument("-a", "--all-threads", action="store_true", help="every thread, not only the main one")
    dump.add_argument("--no-gc", dest="gc", action="store_false", help="leave out <GC> frames")
    _add_capture_options(dump, opcodes_help="Show bytecode opcode names when available.")
    dump.add_argument("--blocking", action="store_true", help="stop the target's threads while its stacks are read")
    dump.add_argument("--async-aware", action="store_true",
                      help="asyncio tasks instead of the threads' stacks (CPython 3.11 to 3.15): by default the task "
                           "tree (which task awaits which, with each one's coroutines and lines)")
    dump.add_argument("--async-mode", choices=ASYNC_MODES, default=None,
                      help="with --async-aware: all (the default for dump): the task tree; running: the stack of "
                           "the task each thread runs, task-first as run and attach sample it")
    return parser


def blocking_warning(args: argparse.Namespace) -> None:
    """Tachyon's warning, word for word, for users who switch between the two."""
    if getattr(args, "blocking", False) and args.interval_usec < 100:
        print(
            f"Warning: --blocking with a {args.interval_usec} µs interval will stop all threads "
            f"{1_000_000 // args.interval_usec} times per second. "
            "Consider using --sampling-rate 1khz or lower to reduce overhead.",
            file=sys.stderr,
        )


def _validate(args: argparse.Namespace) -> None:
    from sampler.collectors import COLLECTORS

    chosen = COLLECTORS[args.format]
    for name, collector in COLLECTORS.items():
        if collector is chosen:
            continue
        given = collector.flags_given(args)
        if given:
            raise UsageError(
                f"heatline: error: Options {', '.join(given)} are only valid with {collector.cli_flag}, "
                f"not {chosen.cli_flag}"
            )


def validate_async(args: argparse.Namespace) -> None:
    """Tachyon's refusals around --async-aware, in its words: a task's stack is rebuilt for the
    thread running it, in wall mode, without <GC> frames."""
    if not args.async_aware:
        # dump's --async-mode has no default (all there, running for run and attach): any given is refused
        if args.async_mode not in ("running", None) or (getattr(args, "command", "") == "dump" and args.async_mode):
            raise UsageError("heatline: error: --async-mode requires --async-aware to be enabled.")
        return
    mode = getattr(args, "mode", "wall")  # dump has no --mode
    issues = [flag for flag, given in (("--native", getattr(args, "native", False)), ("--no-gc", not args.gc),
                                       (f"--mode={mode}", mode != "wall"), ("--all-threads", args.all_threads))
              if given]
    if issues:
        raise UsageError(f"heatline: error: Options {', '.join(issues)} are incompatible with --async-aware. "
                         "Async-aware profiling uses task-based stack reconstruction.")


def _validate_live(args: argparse.Namespace) -> None:
    """`--live` draws the profile instead of writing it: output options are refused (Tachyon's
    messages), and so is --realtime-stats, whose line would scribble over the screen."""
    from sampler.collectors import COLLECTORS

    if getattr(args, "subprocesses", False):
        raise UsageError("heatline: error: --subprocesses is incompatible with --live mode.")
    chosen = COLLECTORS[args.format]
    refused = [flag for flag, given in ((chosen.cli_flag, args.format != "pstats"), ("-o", args.output is not None),
                                        ("--browser", args.browser), ("--realtime-stats", args.realtime_stats))
               if given]
    if refused:
        raise UsageError(f"heatline: error: --live is incompatible with {refused[0]}. Live mode uses a TUI interface.")
    given = chosen.flags_given(args)
    if given:
        raise UsageError(f"heatline: error: Options {', '.join(given)} are incompatible with --live. "
                         "Live mode uses a TUI interface with its own controls.")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # in the try: Ctrl-C while it loads is no traceback
        # several PIDs or --all-python: sampler/attach_many.py; one PID: as it always was
        many = args.command == "attach" and (args.all_python or len(args.pid) != 1)
        if args.command == "attach" and not many:
            args.pid = args.pid[0]
        if getattr(args, "live", False):
            _validate_live(args)
        if args.command not in ("dump", "compare"):
            _validate(args)
        if args.command in ("run", "attach", "dump"):
            validate_async(args)
        if args.command in ("run", "attach"):
            validate_opcodes(args)
        if args.command in ("run", "attach"):
            blocking_warning(args)
        if args.command == "attach" and not many and args.pid <= 0:
            raise ProcessNotFoundError(args.pid)
        if args.command == "dump" and args.async_aware and args.async_mode in (None, "all"):
            from sampler.dump import dump_tasks

            sys.stdout.write(dump_tasks(args.pid, args.opcodes))
            return 0
        if many:
            from sampler.attach_many import cmd_attach_many

            return cmd_attach_many(args)
        return COMMANDS[args.command](args)
    except HeatlineError as err:
        print(str(err) if isinstance(err, UsageError) else f"heatline: {err}", file=sys.stderr)
        return err.exit_status
    except ProcessLookupError:
        # A target exiting while /proc is read can surface anywhere /proc/PID is touched.
        print("heatline: the target process exited while heatline was reading it.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted by user.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `heatline ... | head`: the reader left; stay quiet like other CLI tools.
        from sampler.output_path import point_at_devnull

        point_at_devnull(sys.stdout)
        return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
