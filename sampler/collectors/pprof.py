"""pprof: a gzipped google/pprof `profile.proto`, the format continuous profilers ingest
(Pyroscope, Parca, Google Cloud Profiler) and `go tool pprof` reads.

Two sample types, so either can be chosen in the tools: `samples/count` and the time they stand
for, `wall/nanoseconds` or `cpu/nanoseconds` per the mode (each sample counts one interval), the
latter the default. One location per (file, function, line) with a single line; one function
per (file, name, first line), its start line read from the source when it can be (0 when not).
Samples carry labels: `thread_id` and `pid` (numbers), `thread_name`, `mode`, and `gil` / `cpu`
(held or not, on or off; "unknown" when the sampler could not tell). The collector is streaming because
the Profile keeps statuses per thread, not per stack; a profile that reaches it without samples
streamed (a --live export) is written from the Profile's stacks with those labels left out.
"""

from __future__ import annotations

import gzip
from typing import Any, BinaryIO, Sequence

from ..model import HAS_GIL, ON_CPU, UNKNOWN, Frame, Profile, ThreadSample
from ..pprof import Function, Label, Line, Location, PprofProfile, Sample, ValueType, encode
from ..sourcefiles import def_line_in
from .base import Collector, StringTable, live_target_files

# The status bits a sample's labels tell apart; any other bit does not split a stack.
_LABELLED = HAS_GIL | ON_CPU | UNKNOWN
_NOT_STREAMED = -1


class PprofCollector(Collector):
    format_name = "pprof"
    default_extension = "pb.gz"
    cli_flag = "--pprof"
    cli_help = "gzipped pprof profile.proto for go tool pprof, Pyroscope, Parca and other fleet profilers"
    streaming = True
    binary_output = True

    def __init__(self, profile: Profile, **options: Any) -> None:
        super().__init__(profile, **options)
        # (thread id, frames leaf first, labelled status bits) -> weight
        self._weights: dict[tuple[int, tuple[Frame, ...], int], int] = {}
        self._streamed = False
        # Taken now, while the target runs: functions' start lines come from its sources as it
        # names them (sampler.collectors.base.live_target_files), as the heatmap's pages do.
        self.target_files = live_target_files(profile)

    def collect(self, timestamp_us: int, threads: Sequence[ThreadSample], weight: int = 1) -> None:
        self._streamed = True
        weights = self._weights
        for sample in threads:
            if sample.frames and weight > 0:
                key = (sample.thread_id, sample.frames, sample.status & _LABELLED)
                weights[key] = weights.get(key, 0) + weight

    def _stack_weights(self) -> dict[tuple[int, tuple[Frame, ...], int], int]:
        if self._streamed:
            return self._weights
        return {(tid, frames, _NOT_STREAMED): weight for tid, frames, weight in self.stacks()}

    def build(self) -> PprofProfile:
        stats = self.profile.stats
        strings = StringTable([""])
        s = strings.intern
        unit_ns = stats.interval_usec * 1000
        time_kind = "cpu" if stats.mode == "cpu" else "wall"
        out = PprofProfile(
            sample_types=[ValueType(s("samples"), s("count")), ValueType(s(time_kind), s("nanoseconds"))],
            period_type=ValueType(s(time_kind), s("nanoseconds")),
            period=unit_ns,
            time_nanos=int(stats.start_time * 1e9),
            duration_nanos=int(stats.duration_s * 1e9),
        )
        out.default_sample_type = out.sample_types[1].type
        # what the tools show as the profile's comments, read back by sampler/pprof/reading.py
        out.comments = [s(f"{key}: {value}") for key, value in comment_fields(self.profile).items() if value]
        locations: dict[tuple[str, int, str], int] = {}
        functions: dict[tuple[str, str, int], int] = {}

        def location_id(frame: Frame) -> int:
            lid = locations.get(frame.key())
            if lid is None:
                start = self._start_line(frame)
                fkey = (frame.filename, frame.funcname, start)
                fid = functions.get(fkey)
                if fid is None:
                    fid = functions[fkey] = len(functions) + 1
                    filename = "" if frame.is_synthetic else frame.filename
                    out.functions.append(Function(fid, s(frame.funcname), s(frame.funcname), s(filename), start))
                lid = locations[frame.key()] = len(locations) + 1
                out.locations.append(Location(lid, [Line(fid, frame.lineno)]))
            return lid

        # the pid on every sample too: a fleet's store merges profiles, and keeps sample labels
        shared = [Label(s("mode"), s(stats.mode))] + ([Label(s("pid"), num=stats.pid)] if stats.pid else [])
        key_tid, key_name = s("thread_id"), s("thread_name")
        for (tid, frames, status), weight in self._stack_weights().items():
            labels = [Label(key_tid, num=tid), *shared]
            name = self.profile.thread_names.get(tid)
            if name:
                labels.append(Label(key_name, s(name)))
            if status != _NOT_STREAMED:
                labels += _status_labels(status, s)
            out.samples.append(Sample([location_id(f) for f in frames], [weight, weight * unit_ns], labels))
        out.strings = strings.strings
        return out

    def _start_line(self, frame: Frame) -> int:
        """The line of the frame's `def` when its source can be read now, else 0 (unknown)."""
        if frame.is_synthetic or frame.is_task or frame.filename.startswith("<"):
            return 0
        return def_line_in(self.target_files.path(frame.filename), frame.funcname, frame.lineno) or 0

    def dump(self, fh: BinaryIO) -> None:
        # mtime 0: the same profile makes the same bytes
        fh.write(gzip.compress(encode(self.build()), mtime=0))


def comment_fields(profile: Profile) -> dict[str, str]:
    stats = profile.stats
    return {
        "profiler": "heatline",
        "pid": str(stats.pid) if stats.pid else "",
        "python": stats.python_version,
        "mode": stats.mode,
        "command": " ".join(stats.argv),
    }


def _status_labels(status: int, s: Any) -> list[Label]:
    if status & UNKNOWN:
        return [Label(s("gil"), s("unknown")), Label(s("cpu"), s("unknown"))]
    return [
        Label(s("gil"), s("held" if status & HAS_GIL else "not held")),
        Label(s("cpu"), s("on" if status & ON_CPU else "off")),
    ]
