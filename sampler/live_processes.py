"""`--subprocesses` in the live stream (sampler/live.py): each followed process's samples, and
the reader's side, which keeps every process's own profile beside the run's merged one.

Messages added to the stream (all after `start`, before `end`):

    process      {"type", "pid", "argv", "python_version"}: a subprocess's sampling began (sent
                 with its first delta, so a PID that execs another program at once, whose
                 sampler is dropped, never shows)
    delta        as the main process's, plus "pid": that subprocess's frames (ids of its own),
                 stacks and counts
    process_end  {"type", "pid", "samples", "output": path | null, "note": str | null,
                  "dropped": bool}: its sampling ended and its file is written ("dropped": it
                 exec'd another program and what was sampled is not its own)

The reader adds a subprocess's deltas both to that process's profile and to the run's merged
profile (`LiveProfileReader.profile`: heat from every process of the run); the main process's
own profile is kept too once a subprocess appears, so a client can show one process at a time.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from sampler.errors import LiveStreamError
from sampler.model import Profile, ProfileDelta, RunStats


def _bad(what: str) -> LiveStreamError:
    return LiveStreamError(f"malformed live profile stream: {what}")


# -- the writing side ---------------------------------------------------------------------------


def stream_subprocesses(args: argparse.Namespace, writer, parent: int, on_lost: Callable[[], None], *,
                        subreaper: bool = False):
    """A `SubprocessFollower` whose processes stream their samples to `writer`, or None
    without --subprocesses."""
    from sampler.live import DeltaSink
    from sampler.subprocesses import following

    class ProcessDeltas(DeltaSink):
        def __init__(self, followed, profile: Profile) -> None:
            super().__init__(profile, writer, args.flush_interval, on_lost, parent)
            self.followed = followed
            self.announced = False

        def delta(self, elapsed_s: float | None = None) -> dict[str, Any]:
            if not self.announced:
                self.announced = True
                stats = self.profile.stats
                writer.send({"type": "process", "pid": self.followed.pid, "argv": stats.argv,
                             "python_version": stats.python_version})
            message = super().delta(elapsed_s)
            message["pid"] = self.followed.pid
            return message

    def on_profile(followed, profile: Profile) -> None:
        followed.deltas = ProcessDeltas(followed, profile)
        profile.add_sink(followed.deltas)

    def on_end(followed) -> None:
        deltas = getattr(followed, "deltas", None)
        if deltas is None:
            return
        if not followed.superseded:
            deltas.flush()
        elif not deltas.announced:
            return
        result = followed.result
        writer.send({"type": "process_end", "pid": followed.pid, "samples": result.samples,
                     "output": result.output, "note": result.note, "dropped": followed.superseded})

    # Files only beside a file the run writes (-o): the server's runs keep their profiles in memory.
    return following(args, subreaper=subreaper, on_profile=on_profile, on_end=on_end, write_files=bool(args.output))


# -- the reading side ---------------------------------------------------------------------------


@dataclass
class StreamedProcess:
    """One subprocess of a streamed run, as the reader rebuilt it."""

    pid: int
    argv: list[str]
    python_version: str
    profile: Profile
    own_ids: list[int] = field(default_factory=list)  # its stream frame ids -> its profile's
    merged_ids: list[int] = field(default_factory=list)  # -> the merged profile's
    samples: int = 0
    output: str | None = None
    note: str | None = None
    live: bool = True


class ProcessFamily:
    """The subprocesses of a streamed run, and the main process's own profile (see module doc)."""

    def __init__(self, merged: Profile) -> None:
        self.merged = merged
        self.children: dict[int, StreamedProcess] = {}
        self.main: Profile | None = None
        self._main_ids: list[int] = []

    def announce(self, m: dict[str, Any], main_pid: int | None, main_ids: list[int]) -> None:
        pid, argv, version = m.get("pid"), m.get("argv"), m.get("python_version")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or pid == main_pid:
            raise _bad("process pid is not a subprocess's PID")
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv) or not isinstance(version, str):
            raise _bad("process message fields have the wrong types")
        if self.main is None:
            # Until now the merged profile held the main process alone, with the same frame ids.
            self.main = Profile(dataclasses.replace(self.merged.stats))
            self.main.merge(self.merged)
            self._main_ids = list(main_ids)
        self.children[pid] = StreamedProcess(pid, list(argv), version,
                                             Profile(RunStats(pid=pid, python_version=version, argv=list(argv))))

    def child(self, pid: Any) -> StreamedProcess:
        child = self.children.get(pid) if isinstance(pid, int) and not isinstance(pid, bool) else None
        if child is None:
            raise _bad(f"a message about process {pid!r}, which was never announced")
        return child

    def apply_child(self, child: StreamedProcess, delta: ProfileDelta, samples: int) -> None:
        child.profile.apply(delta, child.own_ids)
        self.merged.apply(delta, child.merged_ids)
        child.samples = child.profile.stats.samples = samples

    def apply_main(self, delta: ProfileDelta) -> None:
        if self.main is not None:
            self.main.apply(delta, self._main_ids)

    def end(self, m: dict[str, Any]) -> None:
        child = self.child(m.get("pid"))
        output, note, samples, dropped = m.get("output"), m.get("note"), m.get("samples"), m.get("dropped")
        if not all(v is None or isinstance(v, str) for v in (output, note)) or not isinstance(dropped, bool) \
                or not isinstance(samples, int) or isinstance(samples, bool) or samples < 0:
            raise _bad("process_end fields have the wrong types")
        if dropped:
            del self.children[child.pid]
            return
        child.output, child.note, child.samples, child.live = output, note, samples, False

    def profile_of(self, pid: int | None) -> Profile | None:
        """One process's own profile (the main one's while no subprocess appeared: the merged)."""
        if pid is None:
            return self.merged
        if pid in self.children:
            return self.children[pid].profile
        if pid == self.merged.stats.pid:
            return self.main if self.main is not None else self.merged
        return None

    def finish(self) -> None:
        """The run ended: a subprocess whose end never came is not live any more."""
        for child in self.children.values():
            child.live = False
