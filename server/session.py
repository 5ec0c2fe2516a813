"""One profiling run in a child process (`python -m sampler.live`), streaming into the server.

The child samples; the server only reads. Three reader threads hand the child's output to the
event loop with `call_soon_threadsafe`, so every callback (and every change to the profile the
stream rebuilds) happens on the loop's thread and the server never blocks on the child:
- the stream pipe: one JSON message per line (sampler/live.py),
- the child's stdout and stderr: the target program's own output and the sampler's messages.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from typing import Callable, Sequence

MAX_OUTPUT_LINE = 2000  # characters of one program output line forwarded to the client


class ProfilingSession:
    def __init__(
        self,
        sampler_args: Sequence[str],
        *,
        loop: asyncio.AbstractEventLoop,
        on_stream_line: Callable[[bytes], None],
        on_output: Callable[[str, str], None],
        on_exit: Callable[[int], None],
        cwd: str | None = None,
        flush_interval: float = 1.0,
    ) -> None:
        self.sampler_args = list(sampler_args)
        self.loop = loop
        self.on_stream_line = on_stream_line
        self.on_output = on_output
        self.on_exit = on_exit
        self.cwd = cwd
        self.flush_interval = flush_interval
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_status: int | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        argv = [
            sys.executable, "-m", "sampler.live", "--stream-fd", str(write_fd),
            "--flush-interval", str(self.flush_interval), *self.sampler_args,
        ]
        try:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(write_fd,), cwd=self.cwd,
                # Its own session: a Ctrl-C meant for the editor's terminal must not end the run.
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        threads = [
            threading.Thread(target=self._read_stream, args=(read_fd,), daemon=True),
            threading.Thread(target=self._read_output, args=(self.process.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._read_output, args=(self.process.stderr, "stderr"), daemon=True),
        ]
        for t in threads:
            t.start()

    def _call(self, fn: Callable, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed: the server is shutting down
            pass

    def _read_stream(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as stream:
            for line in stream:
                self._call(self.on_stream_line, line)
        assert self.process is not None
        status = self.process.wait()
        self.exit_status = status
        self._call(self.on_exit, status)

    def _read_output(self, pipe, name: str) -> None:
        for raw in pipe:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(text) > MAX_OUTPUT_LINE:
                text = text[:MAX_OUTPUT_LINE] + " …"
            self._call(self.on_output, name, text)
        pipe.close()

    def stop(self, kill_after: float = 10.0) -> None:
        """Ask the child to finish (it writes its last delta and output); kill it if it hangs."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        if not self._stopping:
            self._stopping = True
            try:
                proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                return
            self.loop.call_later(kill_after, self.kill)

    def kill(self) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the child and a target it launched
            except (ProcessLookupError, PermissionError):
                pass
