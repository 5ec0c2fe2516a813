"""A saved run's samples split into consecutive stretches of time, one `LineIndex` each.

`sampler.compare` estimates how much a share wanders within a run from how it differs between
these blocks (batch means): wall-clock samples are not independent draws, since a scheduler
freeze of the target lands every sample it spans on one line. Only files that keep samples in
time order can be split: heatline's and Tachyon's `--binary`.
"""

from __future__ import annotations

from .lineindex import LineIndex
from .model import Profile
from .replay import open_binary_profile

BLOCKS = 20  # enough blocks for a stable spread, each still hundreds of samples in a 2 s run


def time_blocks(path: str, count: int = BLOCKS) -> list[LineIndex] | None:
    """`count` indexes of consecutive samples of a `--binary` file (None: too few samples)."""
    reader = open_binary_profile(path)
    total = reader.sample_count
    if total < count:
        return None
    profiles = [Profile(reader.run_stats()) for _ in range(count)]
    done = 0
    for timestamp_us, threads, weight in reader.samples(batch=True):
        profiles[min(count - 1, done * count // total)].collect(timestamp_us, threads, weight)
        done += weight
    return [LineIndex.from_profile(profile) for profile in profiles]
