"""`o` in `--live`: write the profile on screen in a format the user names with the command
line's own output flags (`--flamegraph -o prof.html`), so a live session can end in a file."""

from __future__ import annotations

import argparse
import shlex

from sampler.errors import HeatlineError, UsageError
from sampler.model import Profile

EXAMPLE = "--flamegraph -o prof.html"


class _PromptParser(argparse.ArgumentParser):
    """The output flags of `heatline run`, whose errors are raised, never printed or exited on
    (the terminal belongs to the live view)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parse_flags(text: str) -> argparse.Namespace:
    """The output flags typed at the prompt, parsed and checked as the command line's are."""
    from sampler.cli import _validate, add_output_options
    from sampler.collectors import COLLECTORS
    from sampler.output_path import is_stdout

    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"cannot read the flags: {exc}") from None
    if not tokens:
        raise UsageError(f"type output flags, e.g. {EXAMPLE}")
    parser = _PromptParser(prog="o", add_help=False)
    add_output_options(parser)
    args = parser.parse_args(tokens)
    _validate(args)
    chosen = COLLECTORS[args.format]
    if chosen.streaming:
        raise UsageError(f"{chosen.cli_flag} needs each sample's time, which the live view does not keep: "
                         "try --flamegraph, --heatmap, --collapsed or --pstats -o FILE")
    if args.browser:
        raise UsageError("--browser is not available from the live view")
    if is_stdout(args.output):
        raise UsageError("the terminal is the live view's: give -o a file")
    return args


def write_profile(profile: Profile, text: str) -> str:
    """Write `profile` as the flags in `text` ask; the one-line message saying where it went.
    A refusal or a failure raises HeatlineError (or OSError) with a one-line message."""
    from sampler.commands import make_collector, written_message

    args = parse_flags(text)
    collector = make_collector(profile, args)
    path = args.output or collector.default_output(profile.stats.pid)
    collector.check_output(path)
    return written_message(collector, collector.write(path))


def try_write(profile: Profile, text: str) -> tuple[bool, str]:
    """(written, message) for the status line."""
    try:
        return True, write_profile(profile, text)
    except (HeatlineError, OSError) as err:
        return False, f"o: {err}"
