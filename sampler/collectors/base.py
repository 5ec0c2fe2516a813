"""The base every output format shares: options, default names, safe writes."""

from __future__ import annotations

import argparse
import os
from array import array
from typing import Any, BinaryIO, ClassVar, Iterator, Mapping, Sequence, TextIO

from ..output_path import STDOUT, check_output, write_output
from ..model import TASK_FILENAME, Frame, Profile, ThreadSample
from ..sourcefiles import short_filename  # noqa: F401 - the collectors' import of it
from ..target.files import TargetFiles
from ..target.maps import process_start_time

# What the outputs that describe a frame's kind call an --async-aware task marker.
TASK_KIND = "asyncio task"


def task_label(frame: Frame) -> str:
    """A task marker's name where a format has one string per frame: `<task> NAME`. The same
    `<task>` as in collapsed stacks and pstats keys, so one search finds every task in every
    format, and a task is never taken for a function of the same name."""
    return f"{TASK_FILENAME} {frame.funcname}"


def task_lanes(times: Sequence[int], tasks: Sequence[str | None]) -> list[tuple[str | None, list[int]]] | None:
    """One thread's samples as one timeline per task, when it needs them; else None.

    `--async-mode all` samples every task of a thread at each tick, one stack per task, while a
    timeline (gecko's thread, speedscope's profile) shows one stack at a time, so all but one
    task per tick would vanish from it. Then each innermost task (`tasks[i]`, None for a stack
    with none) gets a timeline of its own: (task, its sample indexes), tasks by name. A thread
    with one stack per tick (running mode, plain stacks) stays one timeline: None.
    """
    if all(times[i] != times[i + 1] for i in range(len(times) - 1)):
        return None
    lanes: dict[str | None, list[int]] = {}
    for i, task in enumerate(tasks):
        lanes.setdefault(task, []).append(i)
    return sorted(lanes.items(), key=lambda lane: (lane[0] is not None, lane[0] or ""))


def live_target_files(profile: Profile) -> TargetFiles:
    """The target's files as it names them, for the outputs that read its sources.

    Through /proc only for a profile about to be sampled (nothing counted yet) from a process
    that started before the profile did: its root and working directory, held open from now on,
    let its sources be read after it exits, and a target in a container names files inside its
    root. A replayed profile's PID may belong to another process by now: its recorded working
    directory is used instead.
    """
    stats = profile.stats
    recorded_cwd = stats.cwd or None
    if stats.pid <= 0 or stats.samples or stats.attempts or profile.stacks:
        return TargetFiles(None, recorded_cwd)
    started = process_start_time(stats.pid)
    if started is None or started > stats.start_time + 0.05:
        return TargetFiles(None, recorded_cwd)
    return TargetFiles(stats.pid, recorded_cwd)


class Collector:
    """Turns a `Profile` into one output format.

    Subclasses set `format_name`, `default_extension` and `option_defaults` (every option they
    accept, with its default) and implement `dump`; `write_stdout` is optional.
    """

    format_name: ClassVar[str] = ""
    default_extension: ClassVar[str] = ""
    option_defaults: ClassVar[Mapping[str, Any]] = {}
    # Command line: the flag choosing this format (`--pstats`), its help, and for flags that take
    # a value (`--diff-flamegraph BASELINE`) the metavar and the option the value goes to.
    cli_flag: ClassVar[str] = ""
    cli_help: ClassVar[str] = ""
    cli_metavar: ClassVar[str | None] = None
    cli_value_option: ClassVar[str | None] = None
    # Options (keys of option_defaults) set from the command line -> the flag that sets them.
    # `add_arguments` adds those flags with `dest` = the option and default None (= not given).
    cli_options: ClassVar[Mapping[str, str]] = {}
    # `replay` can produce it (everything but the binary format itself).
    replayable: ClassVar[bool] = True
    # Without -o the output goes to stdout rather than a default file name.
    writes_stdout: ClassVar[bool] = False
    # Formats that keep the timeline (timestamps, per-sample states) receive every sample through
    # `collect`; the others are built from the aggregated Profile when written.
    streaming: ClassVar[bool] = False
    # HTML outputs that `--browser` opens.
    opens_in_browser: ClassVar[bool] = False
    # Bytes a terminal cannot show (`-o -` is refused when stdout is a terminal).
    binary_output: ClassVar[bool] = False

    def __init__(self, profile: Profile, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no option(s) {', '.join(unknown)}")
        self.profile = profile
        self.options: dict[str, Any] = {**self.option_defaults, **options}

    def stacks(self) -> Iterator[tuple[int, tuple[Frame, ...], int]]:
        """The profile's `(thread_id, frames leaf first, weight)`, leaving out stacks that were
        all launcher plumbing (cut to nothing when they entered the profile) and empty weights."""
        for tid, frames, weight in self.profile.iter_stacks():
            if frames and weight > 0:
                yield tid, frames, weight

    @classmethod
    def add_arguments(cls, group: "argparse._ArgumentGroup") -> None:
        """Add this format's own flags (one per `cli_options` entry)."""

    @classmethod
    def options_from_args(cls, args: "argparse.Namespace") -> dict[str, Any]:
        options = {}
        for option in cls.cli_options:
            value = getattr(args, option, None)
            if value is not None:
                options[option] = value
        if cls.cli_value_option:
            options[cls.cli_value_option] = getattr(args, cls.cli_value_option)
        return options

    @classmethod
    def flags_given(cls, args: "argparse.Namespace") -> list[str]:
        return [flag for option, flag in cls.cli_options.items() if getattr(args, option, None) is not None]

    def collect(self, timestamp_us: int, threads: Sequence[ThreadSample], weight: int = 1) -> None:
        """Every sample, in time order, launcher frames cut: formats with `streaming = True` are
        registered as sinks of their profile, which hands them on."""

    def default_output(self, pid: int) -> str:
        return f"{self.format_name}_{pid}.{self.default_extension}"

    def browser_target(self, written: str) -> str:
        """The file `--browser` opens for what `write` returned (a directory's index page, say)."""
        return written

    def dump(self, fh: BinaryIO) -> None:
        """Write the file form of this format to the binary file `fh`."""
        raise NotImplementedError

    def write_stdout(self, stream: TextIO) -> None:
        raise NotImplementedError(f"the {self.format_name} format has no terminal output")

    @classmethod
    def check_output(cls, path: str | None) -> None:
        """Refuse, before sampling starts, an output path this format could not be written to."""
        if path is None and cls.writes_stdout:
            return
        check_output(path, binary=cls.binary_output)

    def write(self, path: str | os.PathLike[str]) -> str:
        """Write the file to `path` (or into it, if it is a directory); return where it went.

        A regular file is replaced atomically (readers never see half of it); a device, FIFO or
        `-` (stdout) is written into, so the path stays what it was. If writing fails, the
        profile is saved in the temp directory and the error raised says where.
        """
        path = os.fspath(path)
        if path != STDOUT and os.path.isdir(path):
            path = os.path.join(path, self.default_output(self.profile.stats.pid))
        return write_output(path, self.dump)


class StringTable:
    """Strings interned to dense ids in first-seen order: the string table several formats carry."""

    def __init__(self, initial: Sequence[str] = ()) -> None:
        self.strings: list[str] = []
        self._ids: dict[str, int] = {}
        for text in initial:
            self.intern(text)

    def intern(self, text: str) -> int:
        sid = self._ids.get(text)
        if sid is None:
            sid = self._ids[text] = len(self.strings)
            self.strings.append(text)
        return sid


class TickClock:
    """Sample times relative to the first sample seen, and each distinct sampling tick (µs).

    Replay delivers threads in blocks, so ticks may arrive out of order; writers sort them.
    """

    def __init__(self) -> None:
        self.origin: int | None = None
        self.ticks = array("q")

    def tick(self, timestamp_us: int) -> int:
        if self.origin is None:
            self.origin = timestamp_us
        now = timestamp_us - self.origin
        if not self.ticks or self.ticks[-1] != now:
            self.ticks.append(now)
        return now
