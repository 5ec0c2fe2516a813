"""Writing `--binary` files: every thread sample, delta-encoded as `layout.py` describes.

`BinaryWriter` encodes samples as they come into a temporary file (compressed with zstd on the
way) and assembles the file (header, sample data, string and frame tables, TACHSTAT, footer) in
`dump`. `sampler/collectors/binary.py` is the `--binary` collector over it.

Where heatline's writer differs from Tachyon's (files stay readable by both): heatline's
launcher frames are left out, as in every other output (the Profile cuts them before its sinks,
the `--binary` collector among them, see them); synthetic frames (`<GC>`) are stored
with no location, as Tachyon's; an unknown end line or end column next to a known start is
stored as the delta that gives -1 back (Tachyon stores 0, which reads back as "same as the
start"); each changed stack takes the smallest of FULL, SUFFIX and POP_PUSH by byte count.
"""

from __future__ import annotations

import io
import math
import re
import shutil
import struct
import tempfile
from typing import BinaryIO, Sequence

from ..errors import HeatlineError, UsageError
from ..model import SYNTHETIC_FILENAME, Frame, RunStats, ThreadSample
from .layout import (
    CAPTURE_FEATURES,
    CAPTURE_SHIFT,
    COMPRESSION_NAMES,
    COMPRESSION_NONE,
    COMPRESSION_ZSTD,
    DEFAULT_FORMAT_VERSION,
    FLAG_CAPTURE_CONFIG,
    FOOTER,
    FOOTER_SIZE,
    FORMAT_VERSIONS,
    FULL,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_STACK_DEPTH,
    MODE_CODES,
    NO_LOCATION,
    OPCODE_NONE,
    POP_PUSH,
    REPEAT,
    STATS,
    STATS_HAS_ERROR_RATE,
    STATS_HAS_MISSED,
    STATS_SIGNATURE,
    STATS_SIZE,
    STATS_VERSION,
    SUFFIX,
    U32_MAX,
    U64_MASK,
    ZSTD_LEVEL,
    encode_varint,
    varint_size,
    zigzag32,
)

try:  # the one third-party dependency; auto compression falls back to none without it
    import zstandard as _zstd
except ImportError:  # pragma: no cover - installed with heatline
    _zstd = None

WRITE_BUFFER_SIZE = 512 * 1024
RLE_BUFFER_SIZE = 16 * 1024  # pending REPEAT bytes per thread before the record is written
STACK_CACHE_LIMIT = 100_000

_PY_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?")


def zstd_available() -> bool:
    return _zstd is not None


def python_version_bytes(text: str) -> tuple[int, int, int]:
    m = _PY_VERSION.match(text or "")
    if not m:
        return (0, 0, 0)
    return tuple(min(int(g or 0), 255) for g in m.groups())  # type: ignore[return-value]


def _int32(value: int) -> int:
    """Positions outside int32 cannot be stored (Tachyon's fields are int32): unknown instead."""
    return value if -(2**31) <= value < 2**31 else NO_LOCATION


class _Thread:
    """Per-(interpreter, thread) encoder state."""

    __slots__ = ("prefix", "prev_ts", "prev_stack", "rle", "rle_count")

    def __init__(self, thread_id: int, interpreter_id: int, start_us: int, order: str) -> None:
        self.prefix = struct.pack(order + "QI", thread_id & U64_MASK, interpreter_id & U32_MAX)
        self.prev_ts = start_us
        self.prev_stack: tuple[int, ...] = ()  # a new thread starts from an empty stack
        self.rle = bytearray()
        self.rle_count = 0


class BinaryWriter:
    """Encodes samples as they come into a temporary file; `dump` writes the whole file.

    `stats` is read when the first sample comes (the start time) and at `dump` (header, TACHSTAT),
    so the sampling loop may fill it in meanwhile.
    """

    def __init__(self, stats: RunStats, *, compression: str = "auto", format_version: int = DEFAULT_FORMAT_VERSION,
                 gc: bool | None = None, blocking: bool = False, byte_order: str = "=") -> None:
        if compression not in ("auto", "zstd", "none"):
            raise UsageError(f"invalid compression {compression!r} (choose from auto, zstd, none)")
        if compression == "zstd" and _zstd is None:
            raise UsageError("zstd compression needs the zstandard package (pip install zstandard)")
        if format_version not in FORMAT_VERSIONS:
            raise UsageError(f"unsupported binary format version {format_version!r}")
        self.stats = stats
        self.format_version = format_version
        # gc: whether <GC> frames were sampled (the run's --no-gc), recorded in the capture flags;
        # None = not known (a profile built in memory), and then no capture configuration is stored.
        # blocking: whether the run stopped the target's threads for each sample (--blocking).
        self.gc = gc
        self.blocking = blocking
        # struct prefix for fixed-width fields: "=" is native order, as Tachyon writes.
        self.byte_order = byte_order
        self.compression = COMPRESSION_ZSTD if compression != "none" and _zstd is not None else COMPRESSION_NONE
        self._start_us: int | None = None
        self._threads: dict[tuple[int, int], _Thread] = {}
        self._strings: dict[str, int] = {}
        self._string_table = bytearray()
        self._frames: dict[Frame, int] = {}
        self._frame_table = bytearray()
        self._stack_cache: dict[tuple[Frame, ...], tuple[tuple[int, ...], bool]] = {}
        self._buf = bytearray()
        self._tmp: BinaryIO = tempfile.TemporaryFile(prefix="heatline-binary-")  # type: ignore[assignment]
        self._compressor = _zstd.ZstdCompressor(level=ZSTD_LEVEL).compressobj() if self.compression else None
        self._finished = False
        self.sample_data_size = 0  # bytes of sample data in the file (after compression)
        # Writer statistics, as Tachyon prints them after a binary run.
        self.total_samples = 0
        self.repeat_records = 0
        self.repeat_samples = 0
        self.full_records = 0
        self.suffix_records = 0
        self.pop_push_records = 0
        self.frames_written = 0
        self.frames_saved = 0
        self.raw_bytes = 0  # sample data before compression
        self.truncated_stacks = 0

    # -- encoding ---------------------------------------------------------------------------

    def _string(self, text: str) -> int:
        idx = self._strings.get(text)
        if idx is None:
            idx = self._strings[text] = len(self._strings)
            data = text.encode("utf-8", "surrogatepass")
            encode_varint(len(data), self._string_table)
            self._string_table += data
        return idx

    def _frame(self, frame: Frame) -> int:
        idx = self._frames.get(frame)
        if idx is not None:
            return idx
        lineno, end_lineno, col, end_col = (_int32(v) for v in frame[2:6])
        if (frame.filename == SYNTHETIC_FILENAME or frame.is_task) and lineno == 0:
            # Tachyon's "location None": its <GC>/<native> frames and its `<task>` markers.
            lineno = end_lineno = col = end_col = NO_LOCATION
        out = self._frame_table
        encode_varint(self._string(frame.filename), out)
        encode_varint(self._string(frame.funcname), out)
        encode_varint(zigzag32(lineno), out)
        # The end delta is kept even when the end is unknown (-1): a reader that adds it to
        # the start gets -1 back, so every position round-trips. Tachyon stores 0 there.
        encode_varint(zigzag32(_int32(end_lineno - lineno)) if lineno != NO_LOCATION else 0, out)
        encode_varint(zigzag32(col), out)
        encode_varint(zigzag32(_int32(end_col - col)) if col != NO_LOCATION else 0, out)
        out.append(frame.opcode if 0 <= frame.opcode < OPCODE_NONE else OPCODE_NONE)
        idx = self._frames[frame] = len(self._frames)
        return idx

    def _stack(self, frames: tuple[Frame, ...]) -> tuple[int, ...]:
        """Frame indices of a sample's stack, at most the innermost 256 (what Tachyon's writer keeps)."""
        cached = self._stack_cache.get(frames)
        if cached is None:
            cached = (tuple(self._frame(f) for f in frames[:MAX_STACK_DEPTH]), len(frames) > MAX_STACK_DEPTH)
            if len(self._stack_cache) >= STACK_CACHE_LIMIT:
                self._stack_cache.clear()
            self._stack_cache[frames] = cached
        if cached[1]:
            self.truncated_stacks += 1
        return cached[0]

    def collect(self, timestamp_us: int, threads: Sequence[ThreadSample], weight: int = 1) -> None:
        if self._finished:
            raise RuntimeError("the binary profile was already written")
        if self._start_us is None:
            self._start_us = self.stats.start_monotonic_us
        for sample in threads:
            for _ in range(max(weight, 1)):
                self.add(timestamp_us, sample)
        if len(self._buf) >= WRITE_BUFFER_SIZE:
            self._flush_buffer()

    def add(self, timestamp_us: int, sample: ThreadSample) -> None:
        """One thread sample (what `collect` does per sample; `start` must have been set)."""
        key = (sample.interpreter_id, sample.thread_id)
        thread = self._threads.get(key)
        if thread is None:
            thread = self._threads[key] = _Thread(
                sample.thread_id, sample.interpreter_id, self._start_us or 0, self.byte_order
            )
        stack = self._stack(sample.frames)
        delta = (timestamp_us - thread.prev_ts) & U64_MASK  # the reader adds modulo 2**64
        thread.prev_ts = timestamp_us
        status = sample.status & 0xFF
        self.total_samples += 1
        if stack == thread.prev_stack:
            encode_varint(delta, thread.rle)
            thread.rle.append(status)
            thread.rle_count += 1
            if len(thread.rle) >= RLE_BUFFER_SIZE:
                self._flush_rle(thread)
            return
        if thread.rle_count:
            self._flush_rle(thread)
        self._write_change(thread, delta, status, stack)
        thread.prev_stack = stack

    def _write_change(self, thread: _Thread, delta: int, status: int, stack: tuple[int, ...]) -> None:
        """FULL, SUFFIX or POP_PUSH, whichever is smallest."""
        prev = thread.prev_stack
        depth, prev_depth = len(stack), len(prev)
        shared = 0
        limit = min(depth, prev_depth)
        while shared < limit and stack[depth - 1 - shared] == prev[prev_depth - 1 - shared]:
            shared += 1
        pop, push = prev_depth - shared, depth - shared
        encoding = FULL
        if shared:
            delta_encoding = SUFFIX if pop == 0 else POP_PUSH
            # FULL repeats the shared frames (>= 1 byte each); the delta forms pay two counts.
            delta_cost = varint_size(shared if pop == 0 else pop) + varint_size(push)
            if shared >= delta_cost or sum(varint_size(i) for i in stack[push:]) + varint_size(depth) > delta_cost:
                encoding = delta_encoding
        out = self._buf
        start = len(out)
        out += thread.prefix
        out.append(encoding)
        encode_varint(delta, out)
        out.append(status)
        if encoding == FULL:
            encode_varint(depth, out)
            new = stack
            self.full_records += 1
        else:
            encode_varint(shared if encoding == SUFFIX else pop, out)
            encode_varint(push, out)
            new = stack[:push]
            self.frames_saved += shared
            if encoding == SUFFIX:
                self.suffix_records += 1
            else:
                self.pop_push_records += 1
        for idx in new:
            if idx < 0x80:
                out.append(idx)
            else:
                encode_varint(idx, out)
        self.frames_written += len(new)
        self.raw_bytes += len(out) - start

    def _flush_rle(self, thread: _Thread) -> None:
        out = self._buf
        start = len(out)
        out += thread.prefix
        out.append(REPEAT)
        encode_varint(thread.rle_count, out)
        out += thread.rle
        self.raw_bytes += len(out) - start
        self.repeat_records += 1
        self.repeat_samples += thread.rle_count
        self.frames_saved += thread.rle_count * len(thread.prev_stack)
        thread.rle.clear()
        thread.rle_count = 0

    def _flush_buffer(self) -> None:
        if not self._buf:
            return
        data = bytes(self._buf)
        self._buf.clear()
        try:
            self._tmp.write(self._compressor.compress(data) if self._compressor else data)
        except OSError as err:
            raise HeatlineError(f"cannot write the binary sample data: {err.strerror or err}") from err

    def start(self, start_us: int) -> None:
        """Timestamps count from `start_us` (a profile written without streaming sets it)."""
        self._start_us = start_us

    @property
    def finished(self) -> bool:
        return self._finished

    def _finish(self) -> None:
        if self._finished:
            return
        for thread in self._threads.values():
            if thread.rle_count:
                self._flush_rle(thread)
        self._flush_buffer()
        if self._compressor is not None:
            self._tmp.write(self._compressor.flush())
        self.sample_data_size = self._tmp.tell()
        self._finished = True

    # -- the file ---------------------------------------------------------------------------

    def flags(self) -> int:
        """The header's flags word: mode + 1, and the capture configuration when the run's
        options are known (`RunStats` says whether --native and --opcodes were on)."""
        stats = self.stats
        mode = MODE_CODES.get(stats.mode)
        flags = mode + 1 if mode is not None else 0
        gc = self.gc
        if gc is not None:
            features = CAPTURE_FEATURES["all_threads"] if stats.all_threads else 0
            if gc:
                features |= CAPTURE_FEATURES["gc"]
            if self.blocking:
                features |= CAPTURE_FEATURES["blocking"]
            if stats.native:
                features |= CAPTURE_FEATURES["native"]
            if stats.opcodes:
                features |= CAPTURE_FEATURES["opcodes"]
            flags |= FLAG_CAPTURE_CONFIG | features << CAPTURE_SHIFT
        return flags

    def _header(self, string_offset: int, frame_offset: int) -> bytes:
        stats = self.stats
        major, minor, micro = python_version_bytes(stats.python_version)
        start = (self._start_us if self._start_us is not None else stats.start_monotonic_us) & U64_MASK
        interval = max(stats.interval_usec, 0) & U64_MASK
        header = struct.pack(
            self.byte_order + HEADER, MAGIC, self.format_version, major, minor, micro, 0,
            start, interval, self.total_samples, len(self._threads), string_offset, frame_offset,
            self.compression, self.flags(),
        )
        assert len(header) == HEADER_SIZE
        return header

    def _stats_extension(self) -> bytes:
        stats = self.stats
        if stats.duration_s <= 0 and stats.samples <= 0:
            return b""  # nothing measured (a profile built in memory)
        expected = stats.expected_samples
        missed_pct = 100.0 * stats.missed / expected if expected else 0.0
        values = [stats.duration_s, stats.sample_rate, stats.error_rate, missed_pct]
        values = [v if math.isfinite(v) and v >= 0 else 0.0 for v in values]
        return struct.pack(
            self.byte_order + STATS, *values, STATS_HAS_ERROR_RATE | STATS_HAS_MISSED, 0,
            STATS_SIGNATURE, STATS_VERSION, STATS_SIZE,
        )

    def dump(self, fh: BinaryIO) -> None:
        self._finish()
        string_offset = HEADER_SIZE + self.sample_data_size
        frame_offset = string_offset + len(self._string_table)
        extension = self._stats_extension()
        file_size = frame_offset + len(self._frame_table) + len(extension) + FOOTER_SIZE
        fh.write(self._header(string_offset, frame_offset))
        self._tmp.seek(0)
        shutil.copyfileobj(self._tmp, fh, 1024 * 1024)
        self._tmp.seek(0, io.SEEK_END)
        fh.write(self._string_table)
        fh.write(self._frame_table)
        fh.write(extension)
        fh.write(struct.pack(self.byte_order + FOOTER, len(self._strings), len(self._frames), file_size, bytes(16)))

    def writer_stats(self) -> str:
        """Tachyon-style encoding statistics, printed after the file is written."""
        records = self.repeat_records + self.full_records + self.suffix_records + self.pop_push_records
        potential = self.frames_written + self.frames_saved
        saved_pct = 100.0 * self.frames_saved / potential if potential else 0.0
        compression = COMPRESSION_NAMES[self.compression]
        lines = [
            "Binary profile statistics:",
            f"  Samples: {self.total_samples:,} from {len(self._threads):,} thread(s) in {records:,} records",
            f"  Repeat (RLE) records: {self.repeat_records:,} holding {self.repeat_samples:,} samples",
            f"  Full stack records: {self.full_records:,}",
            f"  Suffix records: {self.suffix_records:,}",
            f"  Pop-push records: {self.pop_push_records:,}",
            f"  Frames written: {self.frames_written:,}, saved by delta encoding: {self.frames_saved:,} "
            f"({saved_pct:.1f}%)",
            f"  Strings: {len(self._strings):,}, unique frames: {len(self._frames):,}",
        ]
        if self.compression:
            ratio = self.raw_bytes / self.sample_data_size if self.sample_data_size else 0.0
            lines.append(
                f"  Sample data: {self.raw_bytes:,} bytes before compression, "
                f"{self.sample_data_size:,} after {compression} ({ratio:.1f}x)"
            )
        else:
            lines.append(f"  Sample data: {self.raw_bytes:,} bytes (uncompressed)")
        if self.truncated_stacks:
            lines.append(
                f"  Note: {self.truncated_stacks:,} samples had more than {MAX_STACK_DEPTH} frames; "
                f"the format keeps the innermost {MAX_STACK_DEPTH}"
            )
        return "\n".join(lines)
