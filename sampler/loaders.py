"""Saved profiles back into a `Profile`: `--binary` files, and the formats that carry lines.

`load_profile(path)` recognises the kind from the content, not the name:
- binary (heatline's or Tachyon's `--binary`): every stack, exact;
- pprof (gzipped profile.proto: heatline's `--pprof`, or a fleet profiler's export): every
  stack, exact, weighed by its sample count (or its time over the period);
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
import math
import os
import re
import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable

from .errors import HeatlineError, ProfileFileError
from .model import MAIN_THREAD, NATIVE_FRAME, Frame, Profile, RunStats, SampleSink, ThreadSample
from .replay import BinaryProfile, open_binary_profile, open_regular_file, replay

Progress = Callable[[int, int], None]  # (done, total) in samples

_COLLAPSED_FRAME = re.compile(r"^(?P<file>.*):(?P<func>[^:]*):(?P<line>[0-9]+)$")
_COUNT = re.compile(r"[0-9]{1,16}")

# Limits that keep loading proportional to what a file holds, whatever it claims.
MAX_LINENO = 2**31 - 1  # CPython's own line numbers are C ints
MAX_COUNT = 2**53  # samples, per row and in all: exact as JSON numbers in an editor
MAX_COLLAPSED_LINE = 16 << 20  # one stack, thousands of frames deep, fits easily
# pstats files are unmarshalled whole; real ones are a few MB even for long runs.
MAX_PSTATS_BYTES = 256 << 20


@dataclass
class Loaded:
    profile: Profile
    kind: str  # "binary", "pprof", "collapsed", "pstats"
    exact_totals: bool = True
    # (filename, line) -> samples with that line on the stack, when the file states them itself
    line_totals: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def recorded_start(self) -> float | None:
        """When the run began, if the file says so (collapsed and pstats files do not: their
        RunStats start is the time they were loaded)."""
        if self.kind in ("binary", "pprof") and self.profile.stats.start_time:
            return self.profile.stats.start_time
        return None


def replay_binary(reader: BinaryProfile, progress: Progress | None = None, sink: SampleSink | None = None) -> Profile:
    """Every sample of an opened `--binary` reader (sampler.replay) in one Profile, and in time
    order into `sink` when given."""
    profile = Profile(reader.run_stats())
    total = reader.sample_count
    try:
        replay(reader, profile, sink, progress=None if progress is None else lambda done: progress(done, total))
    except HeatlineError:
        raise
    except Exception as err:  # the reader's own checks should have raised ProfileFileError already
        raise ProfileFileError(f"cannot read the profile {reader.path}: {err}") from err
    return profile


def _collapsed_lines(fh: BinaryIO, path: str) -> Iterable[tuple[int, str]]:
    """`(number, text)` per line, read one at a time and never longer than MAX_COLLAPSED_LINE."""
    number = 0
    while True:
        raw = fh.readline(MAX_COLLAPSED_LINE + 1)
        if not raw:
            return
        number += 1
        if b"\0" in raw:
            raise ProfileFileError(
                f"{path} is not a profile heatline can open (expected --binary, --pprof, --collapsed or --pstats output)"
            )
        if len(raw) > MAX_COLLAPSED_LINE:
            raise ProfileFileError(
                f"{path}:{number}: line longer than {MAX_COLLAPSED_LINE >> 20} MiB: not a collapsed-stack file"
            )
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProfileFileError(
                f"{path} is not a profile heatline can open (expected --binary, --pprof, --collapsed or --pstats output)"
            ) from None


def _collapsed_lineno(text: str, path: str, number: int) -> int:
    lineno = int(text) if len(text) <= 10 else MAX_LINENO + 1
    if lineno > MAX_LINENO:
        raise ProfileFileError(f"{path}:{number}: line number {text[:20]} is out of range")
    return lineno


def _load_collapsed(lines: Iterable[tuple[int, str]], path: str) -> Profile:
    profile = Profile(RunStats())
    total = 0
    for number, line in lines:
        line = line.strip()
        if not line:
            continue
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not _COUNT.fullmatch(count_text):
            raise ProfileFileError(f"{path}:{number}: not a collapsed-stack line (expected 'frame;frame;... count')")
        count = int(count_text)
        total += count
        if count > MAX_COUNT or total > MAX_COUNT:
            raise ProfileFileError(f"{path}:{number}: sample count {count_text} is out of range")
        parts = stack_text.split(";")
        tid = 0
        if parts[0].startswith("tid:") and parts[0][4:].isdecimal() and len(parts[0]) <= 24:
            tid = int(parts.pop(0)[4:])
        frames = []
        for part in parts:
            m = _COLLAPSED_FRAME.match(part)
            # Synthetic frames (<GC>) and frames written without a location have no line to heat.
            if m:
                frames.append(Frame(m["file"], m["func"], _collapsed_lineno(m["line"], path, number)))
            else:
                frames.append(Frame("~", part, 0))
        frames.reverse()  # the file is root first, the model leaf first
        profile.add(ThreadSample(tid, MAIN_THREAD, tuple(frames)), count)
    if not profile.stacks:
        raise ProfileFileError(f"{path}: no samples in this collapsed-stack file")
    profile.stats.samples = profile.total_weight
    # a collapsed file keeps no options, but <native> frames say --native was on
    profile.stats.native = NATIVE_FRAME in profile.frames
    return profile


# -- pstats --------------------------------------------------------------------------------------

# marshal type codes a pstats file may hold (dicts, tuples, strings, numbers, None, references);
# anything else (code objects, lists, sets, bytes) has no place in one.
_FLAG_REF = 0x80
_FIXED = {b"0"[0]: 0, b"N"[0]: 0, b"F"[0]: 0, b"T"[0]: 0, b"i"[0]: 4, b"g"[0]: 8, b"r"[0]: 4}
_STR32 = set(b"uatA")  # u32 length + bytes
_STR8 = set(b"zZ")  # u8 length + bytes


def _check_marshal(raw: bytes, path: str) -> None:
    """Walk the marshal data without building it, before `marshal.loads` may.

    marshal allocates a container for the item count the data states, before reading the items:
    ten bytes could make it allocate (and touch) gigabytes. Every count here is checked against
    the bytes left, each item taking at least one, so what loads is bounded by the file's size.
    References are checked against the objects already flagged for reference.
    """

    def bad(why: str) -> ProfileFileError:
        return ProfileFileError(f"{path}: corrupt or truncated pstats file ({why})")

    end = len(raw)
    pos = 0
    refs = 0
    # Items still to read in each open container; -1 for a dict (ended by a NULL, type '0').
    pending: list[int] = [1]
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        if pos >= end:
            raise bad("it ends early")
        code = raw[pos]
        pos += 1
        kind = code & ~_FLAG_REF
        if code & _FLAG_REF:
            refs += 1
        if pending[-1] > 0:
            pending[-1] -= 1
        if kind == b"0"[0]:
            if pending[-1] != -1:
                raise bad("NULL outside a dict")
            pending.pop()
            continue
        if kind in _FIXED:
            size = _FIXED[kind]
            if end - pos < size:
                raise bad("it ends early")
            if kind == b"r"[0] and struct.unpack_from("<I", raw, pos)[0] >= refs:
                raise bad("a reference to an unknown object")
            pos += size
        elif kind == b"l"[0] or kind in _STR32 or kind in (b"("[0], b"["[0]):
            if end - pos < 4:
                raise bad("it ends early")
            (n,) = struct.unpack_from("<i", raw, pos)
            pos += 4
            if kind == b"l"[0]:
                n = abs(n) * 2
            if n < 0 or n > end - pos:
                raise bad(f"a size of {n} in {end} bytes")
            if kind == b"("[0]:
                pending.append(n)
            elif kind == b"["[0]:
                raise bad("a list")
            else:
                pos += n
        elif kind in _STR8 or kind == b")"[0]:
            if end - pos < 1:
                raise bad("it ends early")
            n = raw[pos]
            pos += 1
            if kind == b")"[0]:
                if n > end - pos:
                    raise bad(f"a size of {n} in {end} bytes")
                pending.append(n)
            else:
                if n > end - pos:
                    raise bad("it ends early")
                pos += n
        elif kind == b"{"[0]:
            pending.append(-1)
        else:
            raise bad(f"type code {chr(kind)!r}")


def _nonneg_count(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNT


def _nonneg_number(value: object) -> bool:
    if type(value) is int:
        return 0 <= value <= MAX_COUNT
    return type(value) is float and math.isfinite(value) and value >= 0.0


def _pstats_location(key: object) -> tuple[str, int, str] | None:
    """`(file, line, func)` when `key` is one: strings and a line number within C's int."""
    if not (type(key) is tuple and len(key) == 3):
        return None
    filename, lineno, funcname = key
    if type(filename) is not str or type(funcname) is not str:
        return None
    if type(lineno) is not int or not 0 <= lineno <= MAX_LINENO:
        return None
    return filename, lineno, funcname


def _bad_location(what: str, key: object, path: str) -> ProfileFileError:
    if type(key) is tuple and len(key) == 3 and type(key[0]) is str and type(key[2]) is str:
        return ProfileFileError(
            f"{path}: not a pstats file (the line number {_short(key[1])} of {what} {_short(key[0])}:{_short(key[2])} "
            f"is not an integer from 0 to {MAX_LINENO})"
        )
    return ProfileFileError(f"{path}: not a pstats file (unexpected {what} {_short(key)})")


def _check_pstats(data: object, path: str, size: int) -> None:
    """Every row and caller the right shape, every number finite, non-negative and in range;
    and the caller entries, counted with shared tables counted each time they are used, no more
    than the file's bytes could hold written out (a caller takes more than one byte)."""
    if type(data) is not dict or not data:
        raise ProfileFileError(f"{path}: not a profile heatline can read")
    work = 0
    for key, value in data.items():
        if key == ("__sampled__",):  # Tachyon's marker row
            continue
        if _pstats_location(key) is None:
            raise _bad_location("row", key, path)
        if not (type(value) is tuple and len(value) == 5):
            raise ProfileFileError(f"{path}: not a pstats file (unexpected row {_short(key)})")
        direct, cumulative, tottime, cumtime, callers = value
        if not (_nonneg_count(direct) and _nonneg_count(cumulative) and _nonneg_number(tottime)
                and _nonneg_number(cumtime) and type(callers) is dict):
            raise ProfileFileError(
                f"{path}: not a pstats file (counts or times of row {_short(key)} are not finite non-negative numbers)"
            )
        work += len(callers) + 1
        if work > size:
            raise ProfileFileError(
                f"{path}: corrupt pstats file (its rows refer to more callers than the file holds)"
            )
        for caller, counts in callers.items():
            if _pstats_location(caller) is None:
                raise _bad_location("caller", caller, path)
            if type(counts) is tuple:
                ok = len(counts) == 4 and all(_nonneg_number(c) for c in counts)
            else:
                ok = _nonneg_count(counts)
            if not ok:
                raise ProfileFileError(
                    f"{path}: not a pstats file (caller counts of row {_short(key)} are not finite non-negative numbers)"
                )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


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
            raise ProfileFileError(f"{path}: not a pstats file (unexpected row {_short(key)})")
        filename, lineno, funcname = key
        direct, cumulative, tottime, _ct, callers = value
        if not (isinstance(direct, int) and isinstance(cumulative, int) and isinstance(callers, dict)):
            raise ProfileFileError(f"{path}: not a pstats file (unexpected row {_short(key)})")
        frame = Frame(filename, funcname, lineno)
        totals[(frame.filename, frame.lineno)] = totals.get((frame.filename, frame.lineno), 0) + cumulative
        # A sampling interval is a fraction of a second; a ratio past an hour is no interval.
        if direct and tottime and interval is None and tottime / direct <= 3600.0:
            interval = tottime / direct
        # Direct samples, split by the caller they ran under where the file says so.
        left = direct
        for caller, counts in callers.items():
            leaf_part = _leaf_part(counts, interval)
            if leaf_part <= 0 or not (isinstance(caller, tuple) and len(caller) == 3):
                continue
            leaf_part = min(leaf_part, left)
            left -= leaf_part
            caller_frame = Frame(caller[0], caller[2], caller[1])
            profile.add(ThreadSample(0, MAIN_THREAD, (frame, caller_frame)), leaf_part)
        if left > 0:
            profile.add(ThreadSample(0, MAIN_THREAD, (frame,)), left)
    if not profile.stacks:
        raise ProfileFileError(f"{path}: this pstats file has no sampled lines")
    if profile.total_weight > MAX_COUNT:
        raise ProfileFileError(f"{path}: corrupt pstats file ({profile.total_weight} samples)")
    if interval:
        profile.stats.interval_usec = max(1, round(interval * 1_000_000))
    profile.stats.samples = profile.total_weight
    return Loaded(profile, "pstats", exact_totals=False, line_totals=totals)


def _leaf_part(counts: object, interval: float | None) -> int:
    """Samples a callee ran as the leaf under one caller: heatline writes cProfile's 4-tuple
    (n, n, leaf seconds, seconds), Tachyon a plain count of calls (no leaf split)."""
    if isinstance(counts, tuple) and len(counts) == 4 and interval:
        share = counts[2] / interval  # a tiny interval can overflow: the caller clamps to what is left
        return round(share) if math.isfinite(share) and share < MAX_COUNT else MAX_COUNT
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


def load_profile(path: str, progress: Progress | None = None,
                 sink_for: Callable[[BinaryProfile], SampleSink] | None = None) -> Loaded:
    """The profile saved in `path`; `ProfileFileError` (one line) when it is not one. A
    `--binary` file's samples also go, in time order, to the sink `sink_for(reader)` makes.

    Only regular files are read (a FIFO, a device or a directory is refused at once), and
    what is read is bounded by what the file holds: collapsed files line by line, pstats
    files checked before and after unmarshalling, binary files streamed by sampler.replay.
    """
    with open_regular_file(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            head = fh.read(4)
            if head in (b"HCAT", b"TACH"):
                reader = open_binary_profile(path)
                sink = sink_for(reader) if sink_for is not None else None
                return Loaded(replay_binary(reader, progress, sink), "binary")
            if head[:2] == b"\x1f\x8b":  # gzip: pprof files are gzipped profile.proto
                from .pprof.reading import load_pprof  # it takes this module's limits

                fh.seek(0)
                return Loaded(load_pprof(fh, path), "pprof")
            # marshal's dict type code, possibly with its "referenced" flag bit (0x80) set; text
            # profiles never start with "{".
            if head[:1] and head[0] & 0x7F == ord("{"):
                if size > MAX_PSTATS_BYTES:
                    raise ProfileFileError(
                        f"{path}: a pstats file of {size:,} bytes is larger than heatline reads "
                        f"({MAX_PSTATS_BYTES >> 20} MiB)"
                    )
                raw = head + fh.read(MAX_PSTATS_BYTES + 1 - len(head))
                return _load_pstats_bytes(raw, path)
            fh.seek(0)
            return Loaded(_load_collapsed(_collapsed_lines(fh, path), path), "collapsed")
        except OSError as err:
            raise ProfileFileError(f"Cannot read {path}: {err.strerror or err}") from None


def _load_pstats_bytes(raw: bytes, path: str) -> Loaded:
    _check_marshal(raw, path)
    try:
        data = marshal.loads(raw)
    except (EOFError, ValueError, TypeError, MemoryError):
        raise ProfileFileError(f"{path}: corrupt or truncated pstats file") from None
    _check_pstats(data, path, len(raw))
    if _looks_like_cprofile(data):
        raise ProfileFileError(
            f"{path} was written by cProfile, which counts calls per function: it cannot show "
            "hot lines. Profile with heatline (`heatline run --binary`) instead."
        )
    return _load_pstats(data, path)
