"""`--binary`: every sample, in order, in Tachyon's binary format (`sampler/binaryfile/`).

A thin collector over `BinaryWriter`: it streams the run's samples into the writer, and a
profile that was never streamed (built in memory) is written as weighted samples.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, BinaryIO, Sequence

from ..binaryfile.layout import DEFAULT_FORMAT_VERSION
from ..binaryfile.writer import BinaryWriter
from ..model import Profile, ThreadSample
from .base import Collector


class BinaryCollector(Collector):
    """Streams every sample to a temporary file while sampling; `write` assembles the file."""

    format_name = "binary"
    default_extension = "bin"
    # gc and blocking are the run's --no-gc and --blocking, which the header records (see BinaryWriter).
    option_defaults = {"compression": "auto", "format_version": DEFAULT_FORMAT_VERSION, "gc": None, "blocking": False}
    cli_flag = "--binary"
    cli_help = "every sample, compact (Tachyon's binary format); convert it later with `heatline replay`"
    cli_options = {"compression": "--compression"}
    replayable = False
    streaming = True
    binary_output = True
    # struct prefix for fixed-width fields: "=" is native order, as Tachyon writes. Tests set
    # ">" or "<" to make files of the other byte order.
    byte_order = "="

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--compression", choices=("auto", "zstd", "none"), default=None,
            help="sample data compression for --binary (default: auto = zstd)",
        )

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The format's own flags, plus the run's --no-gc and --blocking, which the header records."""
        options = super().options_from_args(args)
        gc = getattr(args, "gc", None)
        if gc is not None:
            options["gc"] = bool(gc)
        options["blocking"] = bool(getattr(args, "blocking", False))
        return options

    def __init__(self, profile: Profile, **options: Any) -> None:
        super().__init__(profile, **options)
        # Samples come through the profile (a sink registered on it), launcher frames already cut.
        self.writer = BinaryWriter(profile.stats, byte_order=self.byte_order, **self.options)

    def collect(self, timestamp_us: int, threads: Sequence[ThreadSample], weight: int = 1) -> None:
        self.writer.collect(timestamp_us, threads, weight)

    def _write_profile(self) -> None:
        """A profile that was never streamed (built in memory): its stacks as weighted samples.

        The aggregate has no timeline, so samples get consecutive timestamps one interval apart
        and each thread's most frequent status.
        """
        stats = self.profile.stats
        ts = stats.start_monotonic_us
        self.writer.start(ts)
        interval = max(stats.interval_usec, 1)
        for tid, frames, weight in self.profile.iter_stacks():
            counts = self.profile.status_counts.get(tid) or {0: 1}
            status = max(counts, key=counts.get)
            for _ in range(weight):
                ts += interval
                self.writer.add(ts, ThreadSample(tid, status, frames))

    def dump(self, fh: BinaryIO) -> None:
        if not self.writer.finished and self.writer.total_samples == 0 and self.profile.stacks:
            self._write_profile()
        self.writer.dump(fh)

    def write(self, path: str | os.PathLike[str]) -> str:
        written = super().write(path)
        print(self.writer.writer_stats(), file=sys.stderr)
        return written

    def writer_stats(self) -> str:
        return self.writer.writer_stats()

    def __getattr__(self, name: str) -> Any:
        # The writer's statistics as the collector's own, which tests and benchmarks read.
        if name in _WRITER_FIGURES:
            return getattr(self.writer, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


_WRITER_FIGURES = frozenset({
    "total_samples", "repeat_records", "repeat_samples", "full_records", "suffix_records", "pop_push_records",
    "frames_written", "frames_saved", "raw_bytes", "truncated_stacks", "sample_data_size", "compression",
    "_buf", "_tmp",
})
