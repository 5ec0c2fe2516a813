"""Saved profiles back into a `Profile`: `--binary` files, and the formats that carry lines.

`load_profile(path)` recognises the kind from the content, not the name:
- binary (heatline's or Tachyon's `--binary`): every stack, exact;
- collapsed stacks (`tid:N;file:func:line;... count`, heatline's and Tachyon's `--collapsed`,
  or flamegraph.pl-style lines without the `tid:` part): every stack, exact;
- pstats files written by heatline or Tachyon (`(file, line, func)` keys): per-line direct
  counts are exact, but stacks are only one caller deep, so `Loaded.exact_totals` is False and
  line totals come from the file's own cumulative counts (`Loaded.line_totals`).
cProfile's own pstats files key rows by a function's first line and count calls, not samples,
so they cannot say which lines were hot: they are refused with a message saying so.
"""

from __future__ import annotations

import marshal
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from .errors import HeatlineError, ProfileFileError
from .model import MAIN_THREAD, Frame, Profile, RunStats, ThreadSample

Progress = Callable[[int, int], None]  # (done, total) in samples

_COLLAPSED_FRAME = re.compile(r"^(?P<file>.*):(?P<func>[^:]*):(?P<line>\d+)$")


@dataclass
class Loaded:
    profile: Profile
    kind: str  # "binary", "collapsed", "pstats"
    exact_totals: bool = True
    # (filename, line) -> samples with that line on the stack, when the file states them itself
    line_totals: dict[tuple[str, int], int] = field(default_factory=dict)


def replay_binary(reader, progress: Progress | None = None) -> Profile:
    """Every sample of an opened `--binary` reader (sampler.replay) in one Profile."""
    profile = Profile(reader.run_stats())
    total = reader.sample_count
    done = 0
    next_report = 0
    try:
        for timestamp_us, threads, weight in reader.samples(batch=True):
            profile.collect(timestamp_us, threads, weight)
            done += weight
            if progress is not None and done >= next_report:
                progress(done, total)
                next_report = done + max(1, total // 100)
        reader.check_complete(done)
    except HeatlineError:
        raise
    except Exception as err:  # the reader's own checks should have raised ProfileFileError already
        raise ProfileFileError(f"cannot read the profile {reader.path}: {err}") from err
    if progress is not None:
        progress(done, total)
    return profile


def _load_collapsed(text: str, path: str) -> Profile:
    profile = Profile(RunStats())
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            raise ProfileFileError(f"{path}:{number}: not a collapsed-stack line (expected 'frame;frame;... count')")
        parts = stack_text.split(";")
        tid = 0
        if parts[0].startswith("tid:") and parts[0][4:].isdigit():
            tid = int(parts.pop(0)[4:])
        frames = []
        for part in parts:
            m = _COLLAPSED_FRAME.match(part)
            # Synthetic frames (<GC>) and frames written without a location have no line to heat.
            frames.append(Frame(m["file"], m["func"], int(m["line"])) if m else Frame("~", part, 0))
        frames.reverse()  # the file is root first, the model leaf first
        profile.add(ThreadSample(tid, MAIN_THREAD, tuple(frames)), int(count_text))
    if not profile.stacks:
        raise ProfileFileError(f"{path}: no samples in this collapsed-stack file")
    profile.stats.samples = profile.total_weight
    return profile


def _load_pstats(data: object, path: str) -> Loaded:
    if not isinstance(data, dict) or not data:
        raise ProfileFileError(f"{path}: not a profile heatline can read")
    profile = Profile(RunStats())
    totals: dict[tuple[str, int], int] = {}
    interval = None
    for key, value in data.items():
        if key == ("__sampled__",):  # Tachyon's marker row
            continue
        if not (isinstance(key, tuple) and len(key) == 3 and isinstance(value, tuple) and len(value) == 5):
            raise ProfileFileError(f"{path}: not a pstats file (unexpected row {key!r})")
        filename, lineno, funcname = key
        direct, cumulative, tottime, _ct, callers = value
        if not (isinstance(direct, int) and isinstance(cumulative, int) and isinstance(callers, dict)):
            raise ProfileFileError(f"{path}: not a pstats file (unexpected row {key!r})")
        frame = Frame(str(filename), str(funcname), int(lineno))
        totals[(frame.filename, frame.lineno)] = totals.get((frame.filename, frame.lineno), 0) + cumulative
        if direct and tottime and interval is None:
            interval = tottime / direct
        # Direct samples, split by the caller they ran under where the file says so.
        left = direct
        for caller, counts in callers.items():
            leaf_part = _leaf_part(counts, interval)
            if leaf_part <= 0 or not (isinstance(caller, tuple) and len(caller) == 3):
                continue
            leaf_part = min(leaf_part, left)
            left -= leaf_part
            caller_frame = Frame(str(caller[0]), str(caller[2]), int(caller[1]))
            profile.add(ThreadSample(0, MAIN_THREAD, (frame, caller_frame)), leaf_part)
        if left > 0:
            profile.add(ThreadSample(0, MAIN_THREAD, (frame,)), left)
    if not profile.stacks:
        raise ProfileFileError(f"{path}: this pstats file has no sampled lines")
    if interval:
        profile.stats.interval_usec = max(1, round(interval * 1_000_000))
    profile.stats.samples = profile.total_weight
    return Loaded(profile, "pstats", exact_totals=False, line_totals=totals)


def _leaf_part(counts: object, interval: float | None) -> int:
    """Samples a callee ran as the leaf under one caller: heatline writes cProfile's 4-tuple
    (n, n, leaf seconds, seconds), Tachyon a plain count of calls (no leaf split)."""
    if isinstance(counts, tuple) and len(counts) == 4 and interval:
        return round(counts[2] / interval)
    return 0


def _looks_like_cprofile(data: object) -> bool:
    """Sampling profilers (heatline, Tachyon) derive tottime from counts, so tottime / direct
    is the sampling interval on every row; cProfile measures time, so the ratio varies."""
    if not isinstance(data, dict):
        return False
    ratios = set()
    for value in data.values():
        if isinstance(value, tuple) and len(value) == 5 and isinstance(value[0], int) and value[0] > 0:
            if not isinstance(value[2], (int, float)) or value[2] <= 0:
                return True
            ratios.add(round(value[2] / value[0], 9))
    return len(ratios) > 1


def load_profile(path: str, progress: Progress | None = None) -> Loaded:
    """The profile saved in `path`; `ProfileFileError` (one line) when it is not one."""
    if not os.path.exists(path):
        raise ProfileFileError(f"Input file not found: {path}")
    if os.path.isdir(path):
        raise ProfileFileError(f"{path} is a directory, not a profile")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as err:
        raise ProfileFileError(f"Cannot read {path}: {err.strerror or err}") from None
    if head in (b"HCAT", b"TACH"):
        from .replay import open_binary_profile

        return Loaded(replay_binary(open_binary_profile(path), progress), "binary")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise ProfileFileError(f"Cannot read {path}: {err.strerror or err}") from None
    # marshal's dict type code, possibly with its "referenced" flag bit (0x80) set; text profiles
    # never start with "{".
    if raw[:1] and raw[0] & 0x7F == ord("{"):
        try:
            data = marshal.loads(raw)
        except (EOFError, ValueError, TypeError):
            raise ProfileFileError(f"{path}: corrupt or truncated pstats file") from None
        if _looks_like_cprofile(data):
            raise ProfileFileError(
                f"{path} was written by cProfile, which counts calls per function: it cannot show "
                "hot lines. Profile with heatline (`heatline run --binary`) instead."
            )
        return _load_pstats(data, path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileFileError(
            f"{path} is not a profile heatline can open (expected --binary, --collapsed or --pstats output)"
        ) from None
    return Loaded(_load_collapsed(text, path), "collapsed")
