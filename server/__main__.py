"""`heatline-lsp` / `python -m server`: the language server, on stdio (or TCP for debugging)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Sequence

from sampler import __version__


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:2087, not {text!r}")
    return host or "127.0.0.1", int(port)


class _VersionAction(argparse.Action):
    """Says which sampler the server's runs use, so :checkhealth and bug reports show it."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from sampler.cpython.walkers import sampler_description

        print(f"heatline-lsp {__version__} ({sampler_description()})")
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="heatline-lsp", description="heatline's language server: profiles shown in your editor."
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and which sampler runs")
    # Clients such as vscode-languageclient add --stdio on their own: accept it, it is the default.
    parser.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default)")
    parser.add_argument("--tcp", type=_host_port, metavar="HOST:PORT", help="listen on TCP instead, for debugging")
    args = parser.parse_args(argv)

    from .features import build_server

    server = build_server()
    if args.tcp:
        host, port = args.tcp
        # bind here first, so a taken port is a one-line error rather than a traceback from pygls
        try:
            socket.create_server((host, port)).close()
        except OSError as err:
            print(f"heatline-lsp: cannot listen on {host}:{port}: {os.strerror(err.errno) if err.errno else err}", file=sys.stderr)
            return 1
        print(f"heatline-lsp listening on {host}:{port}", file=sys.stderr)
        server.start_tcp(host, port)
    else:
        server.start_io()
    return 0


if __name__ == "__main__":
    sys.exit(main())
