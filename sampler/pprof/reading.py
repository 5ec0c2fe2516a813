"""A pprof file (gzipped profile.proto, ours or a fleet profiler's) into a `Profile`.

Bounded by the file: the gzip stream is inflated to at most MAX_PPROF_BYTES, every length in
it is checked by the decoder, and the frames samples expand to (a location may hold many lines,
and many samples may name it) are counted against a budget proportional to the inflated size.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

from ..errors import ProfileFileError
from ..loaders import MAX_COUNT, MAX_LINENO
from ..model import HAS_GIL, MAIN_THREAD, ON_CPU, SYNTHETIC_FILENAME, UNKNOWN, Frame, Profile, RunStats, ThreadSample
from .messages import PprofProfile, decode
from .wire import WireError

MAX_PPROF_BYTES = 256 << 20  # inflated; real profiles are a few MB even from long runs
_FRAMES_PER_BYTE = 16  # frames all distinct stacks may expand to, per inflated byte


def inflate(fh: BinaryIO, path: str) -> bytes:
    """The gzip stream in `fh`, inflated, refusing more than MAX_PPROF_BYTES."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    try:
        while not inflater.eof:
            chunk = inflater.unconsumed_tail or fh.read(1 << 20)
            if not chunk:
                raise ProfileFileError(f"{path}: truncated pprof file (the gzip stream ends early)")
            out += inflater.decompress(chunk, MAX_PPROF_BYTES + 1 - len(out))
            if len(out) > MAX_PPROF_BYTES:
                raise ProfileFileError(
                    f"{path}: a pprof file inflating to more than {MAX_PPROF_BYTES >> 20} MiB is larger than heatline reads"
                )
    except zlib.error as err:
        raise ProfileFileError(f"{path}: corrupt gzip stream in this pprof file ({err})") from None
    return bytes(out)


def load_pprof(fh: BinaryIO, path: str) -> Profile:
    """The profile in the gzipped pprof file `fh` (positioned at its start)."""
    raw = inflate(fh, path)
    try:
        p = decode(raw)
    except WireError as err:
        raise ProfileFileError(f"{path}: corrupt or truncated pprof file ({err})") from None
    return to_profile(p, path, budget=_FRAMES_PER_BYTE * len(raw) + 1024)


def _weight_index(p: PprofProfile) -> tuple[int, int]:
    """(index of the value counted as samples, what one sample is worth in that value)."""
    units = [(p.string(vt.type), p.string(vt.unit)) for vt in p.sample_types]
    for i, (_kind, unit) in enumerate(units):
        if unit == "count":
            return i, 1
    # Time only (Pyroscope's cpu nanoseconds, say): samples are the time over the period.
    index = len(units) - 1
    for i, vt in enumerate(p.sample_types):
        if vt.type == p.default_sample_type and p.default_sample_type:
            index = i
    if p.period_type is not None and p.period > 0 and p.string(p.period_type.unit) == units[index][1]:
        return index, p.period
    return index, 1


def _interval_usec(p: PprofProfile) -> int:
    per_usec = {"nanoseconds": 1000, "microseconds": 1, "milliseconds": 0.001, "seconds": 1e-6}
    if p.period_type is None or p.period <= 0:
        return 1000
    scale = per_usec.get(p.string(p.period_type.unit))
    return max(1, round(p.period / scale)) if scale else 1000


def to_profile(p: PprofProfile, path: str, budget: int) -> Profile:
    if not p.sample_types:
        raise ProfileFileError(f"{path}: this pprof file has no sample types")
    index, per_sample = _weight_index(p)
    functions = {fn.id: fn for fn in p.functions}
    frames_of: dict[int, tuple[Frame, ...]] = {}
    for loc in p.locations:
        frames = []
        for line in loc.lines:  # inlined callees first: leaf first, as the model keeps frames
            fn = functions[line.function_id]
            name = p.string(fn.name) or p.string(fn.system_name) or "<unknown>"
            filename = p.string(fn.filename)
            if not 0 <= line.line <= MAX_LINENO:
                raise ProfileFileError(f"{path}: line number {line.line} in this pprof file is out of range")
            frames.append(Frame(filename, name, line.line) if filename else Frame(SYNTHETIC_FILENAME, name, 0))
        frames_of[loc.id] = tuple(frames)
    profile = Profile(RunStats(
        interval_usec=_interval_usec(p),
        start_time=p.time_nanos / 1e9 if p.time_nanos > 0 else 0.0,
        duration_s=max(0, p.duration_nanos) / 1e9,
    ))
    mode = "cpu" if p.period_type is not None and p.string(p.period_type.type) == "cpu" else "wall"
    stacks: dict[tuple[int, ...], tuple[Frame, ...]] = {}
    total = 0
    for sample in p.samples:
        weight = sample.values[index] // per_sample
        if weight <= 0:  # a diff profile's negative values, or less than a period: no samples
            continue
        total += weight
        if total > MAX_COUNT:
            raise ProfileFileError(f"{path}: corrupt pprof file (more than {MAX_COUNT} samples)")
        ids = tuple(sample.location_ids)
        frames = stacks.get(ids)
        if frames is None:
            frames = stacks[ids] = tuple(f for lid in ids for f in frames_of[lid])
            budget -= len(frames) + 1
            if budget < 0:
                raise ProfileFileError(f"{path}: corrupt pprof file (its samples expand to more frames than it could hold)")
        tid, status = 0, MAIN_THREAD
        labels = {p.string(label.key): label for label in sample.labels}
        if "thread_id" in labels:
            tid = labels["thread_id"].num or _int(p.string(labels["thread_id"].str))
            status = 0
        if "thread_name" in labels and tid not in profile.thread_names:
            profile.thread_names[tid] = p.string(labels["thread_name"].str)
        status |= _status(p, labels)
        if "mode" in labels:
            mode = p.string(labels["mode"].str) or mode
        profile.add(ThreadSample(tid, status, frames), weight)
    if not profile.stacks:
        raise ProfileFileError(f"{path}: no samples in this pprof file")
    for index in p.comments:  # heatline's own "key: value" comments (collectors/pprof.py)
        key, _, value = p.string(index).partition(": ")
        if key == "pid" and value.isdecimal() and len(value) <= 10:
            profile.stats.pid = int(value)
        elif key == "python" and len(value) <= 40:
            profile.stats.python_version = value
    profile.stats.mode = mode if mode in ("wall", "cpu", "gil", "exception") else "wall"
    profile.stats.samples = profile.total_weight
    profile.stats.native = any(f.funcname == "<native>" and f.is_synthetic for f in profile.frames)
    return profile


def _status(p: PprofProfile, labels: dict) -> int:
    gil = p.string(labels["gil"].str) if "gil" in labels else ""
    cpu = p.string(labels["cpu"].str) if "cpu" in labels else ""
    if "unknown" in (gil, cpu):
        return UNKNOWN
    return (HAS_GIL if gil == "held" else 0) | (ON_CPU if cpu == "on" else 0)


def _int(text: str) -> int:
    return int(text) if text.isdecimal() and len(text) <= 20 else 0
