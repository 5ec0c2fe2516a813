"""A profiling run (`heatline.run` / `heatline.attach`) from start to the final heat.

The child streams its profile; each delta bumps the view's version and republishes heat (live
heat, about once a second), and reports progress. Cancelling the progress stops the run like
`heatline.stop` does. When the child exits, the view stops being live and the final heat goes
out; a child that fails before its first sample turns into the command's error.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from sampler.errors import HeatlineError
from sampler.live import LiveProfileReader

from .errors import CommandFailed
from .profile_view import ProfileView
from .session import ProfilingSession

if TYPE_CHECKING:
    from .app import HeatlineServer

START_TIMEOUT_S = 60.0  # a target that takes this long to start sampling is stuck


class ActiveRun:
    def __init__(self, server: HeatlineServer, source: str, label: str, sampler_args: list[str],
                 cwd: str | None, duration: float | None, async_mode: str | None = None) -> None:
        assert server.loop is not None
        self.server = server
        self.source = source
        self.label = label
        self.duration = duration
        self.async_mode = async_mode  # --async-mode, or None without --async-aware
        self.reader = LiveProfileReader()
        self.view: ProfileView | None = None
        self.launched_at = time.time()
        loop = server.loop
        self.started: asyncio.Future = loop.create_future()
        self.finished: asyncio.Future = loop.create_future()
        self.token: str | None = None
        self.stream_error: str | None = None
        self.session = ProfilingSession(
            sampler_args, loop=loop, cwd=cwd,
            on_stream_line=self._on_line, on_output=self._on_output, on_exit=self._on_exit,
        )

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        try:
            self.session.start()
        except OSError as err:
            raise CommandFailed(f"could not start the profiler: {err}") from None
        try:
            await asyncio.wait_for(asyncio.shield(self.started), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.session.kill()
            raise CommandFailed(f"the profiler did not start sampling {self.label} within {START_TIMEOUT_S:.0f} s") from None
        assert self.view is not None
        stats = self.view.profile.stats
        return {"id": self.view.id, "pid": self.reader.pid, "pythonVersion": stats.python_version,
                "asyncAware": self.view.async_aware, "asyncMode": self.async_mode,
                "opcodes": stats.opcodes, "native": stats.native}

    def stop(self) -> None:
        self.session.stop()

    def summary(self) -> dict[str, Any]:
        stats = self.reader.profile.stats
        return {
            "id": self.view.id if self.view else None,
            "samples": self.reader.profile.total_weight,
            "durationS": round(stats.duration_s or self.reader.elapsed_s, 3),
            "asyncAware": self.async_mode is not None,
            "asyncMode": self.async_mode,
            "interrupted": stats.interrupted,
            "targetExited": stats.target_exited,
            "output": self.reader.output,
            "error": self.reader.error or self.stream_error,
        }

    # -- stream -------------------------------------------------------------------------------------

    def _on_line(self, line: bytes) -> None:
        if self.stream_error is not None:
            return
        try:
            message = self.reader.feed(line)
        except HeatlineError as err:
            # A broken stream cannot be trusted any further; keep what arrived intact.
            self.stream_error = str(err)
            self.server.show_error(f"the profiler's stream broke off: {err}")
            self.session.stop()
            return
        kind = message.get("type")
        if kind == "start":
            self._on_start()
        elif kind in ("delta", "process", "process_end") and self.view is not None:
            self._changed()
            self._report()
            self.server.publish()

    def _on_start(self) -> None:
        s = self.reader.profile.stats
        self.view = ProfileView(
            profile=self.reader.profile, source=self.source, label=self.label,
            started_at=self.launched_at, live=True,  # the target's cwd: in the profile's RunStats
            async_aware=self.async_mode is not None, async_mode=self.async_mode,
        )
        if self.source == "attach":
            self.view.started_at = s.start_time or self.launched_at
        if "--subprocesses" in self.session.sampler_args:
            from .processes import RunProcesses

            self.view.processes = RunProcesses(self.reader, self.view)
        self.server.set_view(self.view)
        if not self.started.done():
            self.started.set_result(None)
        if self.server.wants_run_progress:
            asyncio.ensure_future(self._begin_progress())

    def _on_output(self, stream: str, text: str) -> None:
        # The target's own output (and the sampler's messages) go to the client's log.
        self.server.log(text, types.MessageType.Log if stream == "stdout" else types.MessageType.Info)

    def _on_exit(self, status: int) -> None:
        reader = self.reader
        error = reader.error or self.stream_error
        if not self.started.done():
            message = error or f"the profiler exited with status {status} before sampling"
            self.started.set_exception(CommandFailed(message))
            self.server.show_error(message)
        elif error:
            self.server.show_error(error)
        elif reader.target_exit_status not in (None, 0) and not reader.profile.stats.interrupted:
            # (A run the user stopped ends its target on purpose: no news in that.)
            self.server.show_info(f"{self.label} exited with status {reader.target_exit_status}")
        if self.server.active_run is self:
            self.server.active_run = None
        if self.view is not None:
            s = reader.profile.stats
            done = f"{reader.profile.total_weight:,} samples in {s.duration_s or reader.elapsed_s:.1f} s"
            self.server.log(f"heatline: {self.label}: {done}", types.MessageType.Info)
            self._end_progress(done)  # before the final heat, which clients take as "finished"
            self.view.live = False
            self._changed()
            shown = self.server.view
            if shown is self.view or (shown is not None and shown.processes is not None
                                      and shown.processes is self.view.processes):
                self.server.publish()
        if not self.finished.done():
            self.finished.set_result(self.summary())

    def _changed(self) -> None:
        """The profile grew: the run's view, and with --subprocesses each process's, are stale."""
        assert self.view is not None
        if self.view.processes is not None:
            self.view.processes.changed()
        else:
            self.view.changed()

    # -- progress -------------------------------------------------------------------------------------

    async def _begin_progress(self) -> None:
        token = f"heatline-run-{uuid.uuid4()}"
        progress = self.server.work_done_progress
        try:
            await progress.create_async(token)
        except Exception:  # the client refused: run without progress
            return
        if self.finished.done():
            return
        self.token = token
        progress.begin(token, types.WorkDoneProgressBegin(
            title="heatline", message=f"profiling {self.label}", cancellable=True,
            percentage=0 if self.duration else None,
        ))
        progress.tokens[token].add_done_callback(lambda fut: fut.cancelled() and self._cancelled())

    def _cancelled(self) -> None:
        loop = self.server.loop
        if loop is not None:
            loop.call_soon_threadsafe(self.stop)

    def _report(self) -> None:
        if self.token is None:
            return
        elapsed = self.reader.elapsed_s
        percentage = None
        if self.duration:
            percentage = min(100, int(100 * elapsed / self.duration))
        self.server.work_done_progress.report(self.token, types.WorkDoneProgressReport(
            message=f"{self.reader.profile.total_weight:,} samples · {elapsed:.1f} s", percentage=percentage,
        ))

    def _end_progress(self, message: str) -> None:
        if self.token is not None:
            self.server.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
            self.token = None
