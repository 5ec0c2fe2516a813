"""Which frames of a sample are heatline's own `run` plumbing, and the stack without them.

`heatline run` starts the target under `sampler/_coordinator.py`, which executes inside the
target and calls the user's code (through runpy for `-m`): its frames, the frames below it and
the runpy frames it calls into are never shown (Tachyon does the same for its
`_sync_coordinator.py`). The walkers report stacks as they are; `Profile` cuts them once, where
samples enter it, so everything that reads a profile (collectors, the live stream, the server)
sees user frames only. Matched as path suffixes, with "/" separators, so profiles from any
install and any OS are cut alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # model imports this module: only the type is needed here
    from .model import Frame

INTERNAL_FRAME_SUFFIXES: tuple[str, ...] = ("sampler/_coordinator.py",)
_RUNPY_SUFFIXES = ("/runpy.py", "<frozen runpy>")


def is_internal_frame(frame: "Frame") -> bool:
    return frame.filename.replace("\\", "/").endswith(INTERNAL_FRAME_SUFFIXES)


def strip_internal_frames(frames: tuple["Frame", ...]) -> tuple["Frame", ...]:
    """`frames` (leaf first) cut just above heatline's launcher and the runpy calls it made.

    Stacks without a launcher frame (threads the target started itself) are returned unchanged
    (the same object); a stack that is all plumbing comes back empty. Cutting a cut stack
    changes nothing.
    """
    for i, frame in enumerate(frames):
        if is_internal_frame(frame):
            while i > 0 and frames[i - 1].filename.replace("\\", "/").endswith(_RUNPY_SUFFIXES):
                i -= 1
            kept = frames[:i]
            # A <GC> on top of launcher code alone is the launcher's, not the user's.
            return kept if any(not f.is_synthetic for f in kept) else ()
    return frames
