"""A saved run's samples split into consecutive stretches of time, one `LineIndex` each.

`sampler.compare` estimates how much a share wanders within a run from how it differs between
these blocks (batch means): wall-clock samples are not independent draws, since a scheduler
freeze of the target lands every sample it spans on one line. Only files that keep samples in
time order can be split: heatline's and Tachyon's `--binary`. The blocks are filled by the same
replay that loads the whole profile, so a file is read once.
"""

from __future__ import annotations

from typing import Sequence

from .lineindex import LineIndex
from .loaders import Loaded, load_profile
from .model import Profile, RunStats, ThreadSample

BLOCKS = 20  # enough blocks for a stable spread, each still hundreds of samples in a 2 s run


class TimeBlocks:
    """A replay sink: sample k of `total` (by weight, in file order) goes to block k*count//total."""

    def __init__(self, stats: RunStats, total: int, count: int = BLOCKS) -> None:
        self.total = total
        self.profiles = [Profile(stats) for _ in range(count)] if total >= count else []
        self._done = 0

    def collect(self, timestamp_us: int, threads: Sequence[ThreadSample], weight: int = 1) -> None:
        if self.profiles:
            count = len(self.profiles)
            self.profiles[min(count - 1, self._done * count // self.total)].collect(timestamp_us, threads, weight)
        self._done += weight

    def indexes(self) -> list[LineIndex] | None:
        """One index per block, None when the run had fewer samples than blocks."""
        return [LineIndex.from_profile(p) for p in self.profiles] or None


def load_with_time_blocks(path: str, count: int = BLOCKS) -> tuple[Loaded, list[LineIndex] | None]:
    """The profile in `path` and, for a `--binary` file, its `count` time blocks (else None)."""
    made: list[TimeBlocks] = []

    def sink_for(reader) -> TimeBlocks:
        made.append(TimeBlocks(reader.run_stats(), reader.sample_count, count))
        return made[0]

    loaded = load_profile(path, sink_for=sink_for)
    return loaded, (made[0].indexes() if made else None)
