"""The `heatline` command's entry point, kept apart from the CLI so that a Ctrl-C while the CLI
is still being imported ends like a later one: a line and status 130, not a traceback."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from sampler.cli import main as cli_main
    except KeyboardInterrupt:
        print("Interrupted by user.", file=sys.stderr)
        return 130
    return cli_main()
