"""Replaying a `--binary` file into a `Profile`: the one loop `heatline replay`, the loaders
(and so the server) and `--diff-flamegraph`'s baseline go through.

An output that only aggregates gets the file's samples counted per distinct (thread, status,
stack) by the reader, without a sample object or a timestamp per sample, and the Profile gets
one weighted sample per distinct key, in the order the keys first occur in the file, so the
Profile (its frame ids, its stack order) is what feeding every sample would have made. A
streaming output (one that keeps the timeline) gets every sample, as the Profile does.
"""

from __future__ import annotations

from typing import Callable

from .binaryfile.reader import (  # noqa: F401 - the reader's public names, imported from here too
    CORRUPT,
    CORRUPT_TABLES,
    NOT_A_PROFILE,
    BinaryProfile,
    NotRegularFileError,
    open_binary_profile,
    open_regular_file,
)
from .model import Profile, SampleSink, ThreadSample


def replay(reader: BinaryProfile, profile: Profile, sink: SampleSink | None = None,
           progress: Callable[[int], None] | None = None) -> int:
    """Every sample of `reader` into `profile`, and with its timestamp into `sink` (a streaming
    output) when given; returns how many. `progress(done)` is called about every 1% and at the
    end. Raises `ProfileFileError` (one line) when the file is bad or its count is not the
    header's."""
    done = 0
    if sink is None:
        counts = reader.stack_counts(progress)
        for (thread_id, interp_id, status, stack), weight in counts.items():
            sample = ThreadSample(thread_id, status, reader.stack_frames(stack), interp_id)
            profile.collect(reader.start_time_us, [sample], weight)
            done += weight
    else:
        # Registered on the profile, the sink gets each sample after the profile has counted it,
        # launcher frames cut, as during a run.
        step = max(1, reader.sample_count // 100)
        next_report = step
        profile.add_sink(sink)
        try:
            for timestamp_us, threads, weight in reader.samples():
                profile.collect(timestamp_us, threads, weight)
                done += weight
                if progress is not None and done >= next_report:
                    progress(done)
                    next_report = done + step
        finally:
            profile.remove_sink(sink)
    reader.check_complete(done)
    if progress is not None:
        progress(done)
    return done
