"""Reading `--binary` profiles (heatline's and Tachyon's): `heatline replay`, the loaders.

`open_binary_profile(path)` checks the header, footer and tables at once; `samples()` then
streams the sample data (decompressing zstd in bounded pieces), so memory stays flat however
long the run was. Both byte orders ("HCAT" files from little-endian writers, "TACH" from
big-endian ones) and format versions 1 and 2 are read; the layout is described in `layout.py`.

Two header layouts carry version 1: CPython 3.15.2's (and heatline's since 2026-12), with the
string table offset at 40, and the one older heatline files have, with it at 36. They are told
apart by that offset, for free: read in the wrong layout, the offset's u64 picks up the next
field's low half (the frame table offset, at least 64, or a thread count) as its high half, so it
lands at 256 GiB or beyond: past the end of any real file. The layout whose table offsets fit
the file is the one it was written in; when neither fits, the error names the current layout.

Every malformed input raises `ProfileFileError` with one line (Tachyon's wording where it has
one) and never loops longer than the bytes present allow: each record consumes bytes, and
counts read from the file are checked against what is left before they drive a loop.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import struct
from typing import BinaryIO, Callable, Iterator

from ..errors import ProfileFileError
from ..model import NATIVE_FRAME, Frame, RunStats, ThreadSample
from .layout import (
    CAPTURE_FEATURES,
    CAPTURE_MASK,
    CAPTURE_SHIFT,
    COMPRESSION_NAMES,
    COMPRESSION_NONE,
    COMPRESSION_ZSTD,
    FLAG_CAPTURE_CONFIG,
    FLAG_MODE_MASK,
    FOOTER,
    FOOTER_SIZE,
    FORMAT_VERSIONS,
    FULL,
    HEADER,
    HEADER_OLD,
    HEADER_SIZE,
    MAX_STACK_DEPTH,
    MODE_NAMES,
    NO_LOCATION,
    OPCODE_NONE,
    POP_PUSH,
    RECORD_FIXED_SIZE,
    REPEAT,
    STATS,
    STATS_SIGNATURE,
    STATS_SIZE,
    STATS_SIZE_OLD,
    SUFFIX,
    U32_MAX,
    U64_MASK,
    unzigzag32,
)

try:
    import zstandard as _zstd
except ImportError:  # pragma: no cover - installed with heatline
    _zstd = None

NOT_A_PROFILE = (
    "Input file is not a binary sampling profile. The replay command only accepts files created with --binary"
)
CORRUPT = "Corrupt binary profile: the sample data cannot be decoded"
CORRUPT_TABLES = "Corrupt binary profile: the header or tables cannot be decoded"
MIN_STRING_ENTRY = 1  # a zero-length string: its length varint
MIN_FRAME_ENTRY = 7  # seven one-byte fields
# The largest record other than REPEAT: fixed part, delta, status, two counts, 256 indices.
MAX_RECORD = RECORD_FIXED_SIZE + 10 + 1 + 5 + 5 + MAX_STACK_DEPTH * 5
READ_CHUNK = 1 << 20
# Small compressed pieces bound what one decompress call returns: a zstd block of at most 128 KiB
# takes at least 4 bytes (an RLE block), so 256 bytes of input yield at most 8 MiB.
ZSTD_INPUT_PIECE = 1 << 8
WINDOW_TARGET = 1 << 18
MAX_FRAME_ENTRY = 6 * 5 + 1  # six varint32 fields and the opcode byte
# Names longer than this are cut (with TRUNCATED appended) so that a crafted length cannot make
# replay hold gigabytes of one string; real file and function names are far shorter.
MAX_STRING_BYTES = 1 << 16
TRUNCATED = "\u2026[truncated]"
# Caps on the tables' entry counts: real profiles hold thousands of strings and frames; these
# bound the per-entry lists (a pointer each) a file of sparse zeros could otherwise claim.
MAX_TABLE_ENTRIES = 1 << 22
# Decoded stacks' frames kept for reuse; past this many distinct stacks the cache starts again.
STACK_CACHE_LIMIT = 100_000
# A REPEAT record's (timestamp delta, status) pairs are matched in blocks of 2**k pairs, one regex
# call each: at most _BLOCK_BITS + 1 calls for a record, whatever its count. A block only takes
# deltas of at most 8 bytes and statuses below 0x80 (every real one): anything else (a longer
# delta, a malformed or cut pair) is read one pair at a time, which has the exact error messages.
_BLOCK_BITS = 12
_PAIR = rb"[\x80-\xff]{0,7}[\x00-\x7f][\x00-\x7f]"
_PAIR_BLOCK_MATCHES = [re.compile(rb"(?:%s){%d}" % (_PAIR, 1 << k)).match for k in range(_BLOCK_BITS + 1)]
_HIGH_BYTES = bytes(range(0x80, 0x100))
# A frame table entry's varints, named in the error a malformed one raises.
_FRAME_FIELDS = ("filename", "funcname", "lineno", "end_lineno_delta", "column", "end_column_delta")
_ONE_BYTE = [bytes((i,)) for i in range(256)]
StackKey = tuple[int, int, int, tuple[int, ...]]  # thread id, interpreter id, status, frame indices
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)


class NotRegularFileError(ProfileFileError):
    """The path names a FIFO, a device, a directory or a socket: never a saved profile, and
    reading one could block forever or never end (/dev/zero)."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a profile file: give the path of a saved profile")
        self.path = path
        self.kind = kind


def open_regular_file(path: str) -> BinaryIO:
    """`path` opened for reading, refused unless it is a regular file.

    Opened without blocking (a FIFO with no writer would block `open` itself) and checked on the
    opened descriptor, so a path swapped after a check cannot slip a device in.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ProfileFileError(f"Input file not found: {path}") from None
    except IsADirectoryError:
        raise NotRegularFileError(path, "a directory") from None
    except OSError as err:
        raise ProfileFileError(f"Cannot read {path}: {err.strerror or err}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
            raise NotRegularFileError(path, kind)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _Malformed(Exception):
    """Internal: a varint ran off the data or overflowed."""


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Unsigned LEB128 at `pos` (at most 10 bytes, < 2**64)."""
    result = shift = 0
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result > U64_MASK:
                raise _Malformed
            return result, pos
        shift += 7
        if shift >= 64:
            raise _Malformed
    raise _Malformed


def _varint32(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value, pos = _varint(buf, pos, end)
    if value > U32_MAX:
        raise _Malformed
    return value, pos


def _delta_and_status(buf: bytes, pos: int, end: int, rle: bool) -> tuple[int, int, int]:
    """A sample's timestamp delta and status byte at `pos`, and the position after them (the
    errors say RLE inside a REPEAT record, as Tachyon's)."""
    try:
        delta, pos = _varint(buf, pos, end)
    except _Malformed:
        raise ProfileFileError(f"Malformed varint in {'RLE ' if rle else ''}sample data") from None
    if pos >= end:
        raise ProfileFileError("Unexpected end of sample data in RLE" if rle else "Unexpected end of sample data")
    return delta, buf[pos], pos + 1


def _position(start: int, end_delta: int) -> tuple[int, int]:
    """A frame's (line, end line) or (column, end column) from their zigzag varints."""
    first = unzigzag32(start)
    return first, NO_LOCATION if first == NO_LOCATION else first + unzigzag32(end_delta)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:  # lone surrogates a target's strings can hold, as heatline writes them
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")


def _finite(value: float, low: float = 0.0, high: float = 1e12) -> float | None:
    return value if math.isfinite(value) and low <= value <= high else None


def _block_deltas(span: bytes) -> list[int]:
    """The timestamp deltas of a block of well-formed pairs (see _PAIR_BLOCK_MATCHES)."""
    deltas = []
    value = shift = 0
    status_next = False
    for byte in span:
        if status_next:
            status_next = False
        elif byte >= 0x80:
            value |= (byte & 0x7F) << shift
            shift += 7
        else:
            deltas.append(value | byte << shift)
            value = shift = 0
            status_next = True
    return deltas


class _Chunks:
    """The sample data as a window over decompressed bytes: `buf[pos:]` is what is left."""

    def __init__(self, pieces: Iterator[bytes], total: int | None) -> None:
        self._pieces = pieces
        self.buf = b""
        self.pos = 0
        self.eof = False
        self.dropped = 0  # bytes before buf[0]
        self.total = total  # the data's size when known (uncompressed files)

    def fill(self, need: int) -> None:
        """Make at least `need` bytes available after `pos`, unless the data ends first."""
        if self.eof or len(self.buf) - self.pos >= need:
            return
        parts = [self.buf[self.pos:]]
        have = len(parts[0])
        self.dropped += self.pos
        want = max(need, WINDOW_TARGET)
        while have < want:
            piece = next(self._pieces, None)
            if piece is None:
                self.eof = True
                break
            parts.append(piece)
            have += len(piece)
        self.buf = b"".join(parts)
        self.pos = 0

    def remaining(self, pos: int) -> int | None:
        return None if self.total is None else self.total - self.dropped - pos


class _TableStream:
    """The file from `start` to `end` through a bounded window: `buf[pos:]` is what is read
    and not yet consumed; `fill` reads more only as entries need it."""

    def __init__(self, fh: BinaryIO, start: int, end: int) -> None:
        fh.seek(start)
        self._fh = fh
        self._unread = end - start  # bytes in the file after buf
        self._base = start  # file offset of buf[0]
        self.buf = b""
        self.pos = 0

    def fill(self, need: int) -> None:
        """At least `need` bytes after `pos`, unless the range ends first."""
        have = len(self.buf) - self.pos
        if have >= need or not self._unread:
            return
        want = min(max(need - have, READ_CHUNK), self._unread)
        more = self._fh.read(want)
        if len(more) < want:
            raise ProfileFileError("Truncated file: the tables end early")
        self._unread -= want
        self._base += self.pos
        self.buf = self.buf[self.pos:] + more
        self.pos = 0

    def left(self) -> int:
        return len(self.buf) - self.pos + self._unread

    def skip(self, count: int) -> None:
        """Consume `count` bytes (at most `left()`), seeking over those not read yet."""
        have = len(self.buf) - self.pos
        if count <= have:
            self.pos += count
            return
        beyond = count - have
        self._fh.seek(beyond, os.SEEK_CUR)
        self._unread -= beyond
        self._base += len(self.buf) + beyond
        self.buf, self.pos = b"", 0

    def offset(self) -> int:
        return self._base + self.pos


class BinaryProfile:
    """A `--binary` file: its header facts at hand, its samples streamed on demand."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stack_frames: dict[tuple[int, ...], tuple[Frame, ...]] = {}
        try:
            with open_regular_file(path) as fh:
                self.file_size = os.fstat(fh.fileno()).st_size
                self.mtime = os.fstat(fh.fileno()).st_mtime
                self._parse(fh)
        except FileNotFoundError:
            raise ProfileFileError(f"Input file not found: {path}") from None
        except IsADirectoryError:
            raise ProfileFileError(f"Input file is a directory, not a binary sampling profile: {path}") from None
        except OSError as err:
            raise ProfileFileError(f"Cannot read {path}: {err.strerror or err}") from None
        except (IndexError, KeyError, ValueError, OverflowError, TypeError, struct.error) as err:
            raise ProfileFileError(f"{CORRUPT_TABLES} ({type(err).__name__}: {err})") from None

    # -- header, footer, tables -------------------------------------------------------------

    def _parse(self, fh: BinaryIO) -> None:
        size = self.file_size
        head = fh.read(HEADER_SIZE)
        if size < HEADER_SIZE or len(head) < HEADER_SIZE:
            raise ProfileFileError(NOT_A_PROFILE)
        if head[:4] == b"HCAT":
            order = "<"
        elif head[:4] == b"TACH":
            order = ">"
        else:
            raise ProfileFileError(NOT_A_PROFILE)
        self.byte_order = "little" if order == "<" else "big"
        (version,) = struct.unpack_from(order + "I", head, 4)
        if version not in FORMAT_VERSIONS:
            raise ProfileFileError(
                f"Unsupported format version {version} (this reader supports versions 1 and 2; "
                f"the file says it was written by Python {head[8]}.{head[9]}.{head[10]})"
            )
        self.version = version
        fields = struct.unpack_from(order + HEADER, head)
        self.old_layout = False
        if version == 1 and not self._offsets_fit(fields[10], fields[11], size):
            old = struct.unpack_from(order + HEADER_OLD, head)
            if self._offsets_fit(old[10], old[11], size):
                fields, self.old_layout = old + (fields[13],), True
        (_, _, major, minor, micro, _, self.start_time_us, self.interval_usec, self.sample_count,
         self.thread_count, self.string_table_offset, self.frame_table_offset, compression, flags) = fields
        self.flags = flags
        mode_code = (flags & FLAG_MODE_MASK) - 1
        if mode_code >= 0 and mode_code not in MODE_NAMES:
            raise ProfileFileError(f"Invalid profiling mode in header: {flags & FLAG_MODE_MASK}")
        self.mode: str | None = MODE_NAMES.get(mode_code)
        # What the run captured, when the writer recorded it (3.15.2's capture flags).
        self.capture_config: dict[str, bool] | None = None
        if flags & FLAG_CAPTURE_CONFIG and not self.old_layout:
            features = (flags >> CAPTURE_SHIFT) & CAPTURE_MASK
            self.capture_config = {name: bool(features & bit) for name, bit in CAPTURE_FEATURES.items()}
        self.python_version = f"{major}.{minor}.{micro}" if (major or minor or micro) else ""
        if compression not in COMPRESSION_NAMES:
            raise ProfileFileError(f"Unsupported compression type {compression} (0 = none and 1 = zstd are known)")
        if compression == COMPRESSION_ZSTD and _zstd is None:  # pragma: no cover
            raise ProfileFileError("File uses zstd compression but the zstandard package is not installed")
        self._compression = compression
        self.compression = COMPRESSION_NAMES[compression]

        if size < HEADER_SIZE + FOOTER_SIZE:
            raise ProfileFileError(f"Truncated file: {size} bytes cannot hold the 64-byte header and 32-byte footer")
        fh.seek(size - FOOTER_SIZE)
        footer = fh.read(FOOTER_SIZE)
        if len(footer) < FOOTER_SIZE:
            raise ProfileFileError("Truncated file: the footer could not be read")
        self.string_count, self.frame_count, footer_size, _ = struct.unpack(order + FOOTER, footer)
        if footer_size not in (0, size):  # Tachyon writes the size; 0 would mean "not recorded"
            raise ProfileFileError(
                f"File size mismatch: the footer records {footer_size} bytes but the file has {size} "
                "(truncated or corrupted)"
            )
        s_off, f_off = self.string_table_offset, self.frame_table_offset
        if s_off > size:
            raise ProfileFileError(f"Invalid string table offset: {s_off} exceeds file size {size}")
        if f_off > size:
            raise ProfileFileError(f"Invalid frame table offset: {f_off} exceeds file size {size}")
        if s_off < HEADER_SIZE:
            raise ProfileFileError(f"Invalid string table offset: {s_off} is before data section")
        if f_off < HEADER_SIZE:
            raise ProfileFileError(f"Invalid frame table offset: {f_off} is before data section")
        if s_off > f_off:
            raise ProfileFileError(
                f"Invalid table offsets: string table ({s_off}) is after frame table ({f_off})"
            )
        max_strings = (size - s_off) // MIN_STRING_ENTRY
        if self.string_count > max_strings:
            raise ProfileFileError(f"Invalid string count {self.string_count} exceeds maximum possible {max_strings}")
        max_frames = (size - f_off) // MIN_FRAME_ENTRY
        if self.frame_count > max_frames:
            raise ProfileFileError(f"Invalid frame count {self.frame_count} exceeds maximum possible {max_frames}")

        for what, count in (("string", self.string_count), ("frame", self.frame_count)):
            if count > MAX_TABLE_ENTRIES:
                raise ProfileFileError(
                    f"Invalid {what} count {count}: more than the {MAX_TABLE_ENTRIES} this reader accepts"
                )
        # The tables are read piecewise, never whole: what a table's entries can hold bounds
        # memory, not the file's size (a valid header plus a gigabyte of sparse zeros).
        self.strings = self._parse_strings(_TableStream(fh, s_off, size))
        table_end = self._parse_frames(_TableStream(fh, f_off, size))
        tail_start = max(table_end, size - FOOTER_SIZE - STATS_SIZE)
        fh.seek(tail_start)
        self.stats_extension = self._parse_stats(fh.read(size - tail_start), table_end - tail_start, order)

    @staticmethod
    def _offsets_fit(string_offset: int, frame_offset: int, size: int) -> bool:
        return HEADER_SIZE <= string_offset <= frame_offset <= size

    def _parse_strings(self, stream: _TableStream) -> list[str]:
        strings: list[str] = []
        unique: dict[str, str] = {}  # equal strings share one object
        for _ in range(self.string_count):
            stream.fill(5)
            try:
                length, stream.pos = _varint32(stream.buf, stream.pos, len(stream.buf))
            except _Malformed:
                raise ProfileFileError("Malformed varint in string table") from None
            if length > stream.left():
                raise ProfileFileError("String table overflow")
            keep = min(length, MAX_STRING_BYTES)
            stream.fill(keep)
            text = _decode(stream.buf[stream.pos:stream.pos + keep])
            stream.skip(length)
            if keep < length:
                text += TRUNCATED
            strings.append(unique.setdefault(text, text))
        return strings

    def _parse_frames(self, stream: _TableStream) -> int:
        """Fill `self.frames` (None for an entry whose string indices are out of range); returns
        the offset just past the frame table."""
        strings = self.strings
        n_strings = len(strings)
        frames: list[Frame | None] = []
        unique: dict[Frame, Frame] = {}  # equal frames share one object
        field = "filename"
        pos = stream.pos
        try:
            for _ in range(self.frame_count):
                stream.pos = pos
                stream.fill(MAX_FRAME_ENTRY)
                data, pos, end = stream.buf, stream.pos, len(stream.buf)
                raw = []
                for field in _FRAME_FIELDS:
                    value, pos = _varint32(data, pos, end)
                    raw.append(value)
                file_idx, func_idx = raw[0], raw[1]
                lineno, end_lineno = _position(raw[2], raw[3])
                col, end_col = _position(raw[4], raw[5])
                if pos >= end:
                    raise ProfileFileError("Unexpected end of frame table (opcode)")
                opcode = data[pos]
                pos += 1
                if file_idx >= n_strings or func_idx >= n_strings:
                    frames.append(None)
                    continue
                filename = strings[file_idx]
                if lineno == NO_LOCATION:
                    # No location: <GC> and <native> (heatline's synthetic frames sit on line 0),
                    # `<task>` markers of --async-aware stacks (model.task_frame), and frames
                    # Tachyon keeps that have none, such as 3.15's `__init__` shim; Tachyon's
                    # readers show all of them on line 0 too.
                    lineno = 0
                frame = Frame(filename, strings[func_idx], lineno, end_lineno, col, end_col,
                              -1 if opcode == OPCODE_NONE else opcode)
                frames.append(unique.setdefault(frame, frame))
        except _Malformed:
            raise ProfileFileError(f"Malformed varint in frame table ({field})") from None
        self.frames = frames
        stream.pos = pos
        return stream.offset()

    def _parse_stats(self, data: bytes, table_end: int, order: str) -> dict[str, float | None] | None:
        """The optional TACHSTAT block just before the footer, or None. `data` is the file's
        tail through the footer; `table_end` is where the frame table ends, relative to it."""
        footer_start = len(data) - FOOTER_SIZE
        if footer_start - table_end < STATS_SIZE_OLD:
            return None
        if data[footer_start - 16:footer_start - 8] != STATS_SIGNATURE:
            return None
        ext_size = struct.unpack_from(order + "I", data, footer_start - 4)[0]
        if ext_size not in (STATS_SIZE, STATS_SIZE_OLD) or footer_start - ext_size < table_end:
            return None
        start = footer_start - ext_size
        if ext_size == STATS_SIZE:
            duration, rate, error_pct, missed_pct, _flags, _, _, _, _ = struct.unpack_from(order + STATS, data, start)
        else:
            duration, rate = struct.unpack_from(order + "dd", data, start)
            error_pct = missed_pct = float("nan")
        return {
            "duration_s": _finite(duration),
            "sample_rate": _finite(rate),
            "error_rate": _finite(error_pct, 0.0, 100.0),
            "missed_pct": _finite(missed_pct, 0.0, 1e6),
        }

    # -- what cmd_replay asks ---------------------------------------------------------------

    def run_stats(self) -> RunStats:
        """The run as recorded: interval, mode, start, and duration/rate/errors/missed from the
        TACHSTAT block when the file has one (otherwise duration 0 and one sample per record)."""
        interval = int(self.interval_usec) if self.interval_usec <= 10**12 else 0
        config = self.capture_config
        all_threads = config["all_threads"] if config is not None else self.thread_count > 1
        # --opcodes and --native as the header records them; a file without the capture
        # configuration says so by its frames (an instruction byte, a <native> frame).
        frames = [f for f in self.frames if f is not None]
        opcodes = config["opcodes"] if config is not None else any(f.opcode >= 0 for f in frames)
        native = config["native"] if config is not None else NATIVE_FRAME in frames
        stats = RunStats(
            python_version=self.python_version, mode=self.mode or "wall",
            all_threads=all_threads, interval_usec=interval,
            start_monotonic_us=self.start_time_us, samples=self.sample_count, attempts=self.sample_count,
            opcodes=opcodes, native=native,
        )
        ext = self.stats_extension or {}
        duration = ext.get("duration_s")
        if duration:
            stats.duration_s = duration
            rate = ext.get("sample_rate")
            if rate is not None:
                stats.samples = stats.attempts = round(rate * duration)
            error_pct = ext.get("error_rate")
            if error_pct is not None and stats.samples:
                if error_pct < 100.0:
                    stats.attempts = round(stats.samples / (1.0 - error_pct / 100.0))
                stats.errors = stats.attempts - stats.samples
            missed_pct = ext.get("missed_pct")
            if missed_pct is not None:
                stats.missed = round(missed_pct / 100.0 * stats.expected_samples)
        # The wall-clock start is not in the file; the file was written as the run ended.
        stats.start_time = max(self.mtime - stats.duration_s, 0.0)
        return stats

    def check_complete(self, replayed_count: int) -> None:
        """Tachyon's end-of-replay check: the header's count against what was decoded."""
        if replayed_count != self.sample_count:
            raise ProfileFileError(
                f"Sample count mismatch: header declares {self.sample_count} samples "
                f"but replay decoded {replayed_count}"
            )

    # -- sample data ------------------------------------------------------------------------

    def _raw_pieces(self) -> Iterator[bytes]:
        end = self.string_table_offset
        try:
            with open_regular_file(self.path) as fh:
                fh.seek(HEADER_SIZE)
                left = end - HEADER_SIZE
                while left > 0:
                    piece = fh.read(min(READ_CHUNK, left))
                    if not piece:
                        raise ProfileFileError("Truncated file: the sample data ends early")
                    left -= len(piece)
                    yield piece
        except OSError as err:
            raise ProfileFileError(f"Cannot read {self.path}: {err.strerror or err}") from None

    def _zstd_pieces(self) -> Iterator[bytes]:
        """Decompressed sample data; concatenated frames are read as one stream, as Tachyon.

        No record holds more than MAX_RECORD bytes per sample, so more output than the header's
        samples can fill is corrupt: stop there rather than inflate a zstd bomb for hours."""
        decompressor = None
        limit = self.sample_count * MAX_RECORD
        produced = 0
        for chunk in self._raw_pieces():
            for i in range(0, len(chunk), ZSTD_INPUT_PIECE):
                piece = chunk[i:i + ZSTD_INPUT_PIECE]
                while piece:
                    if decompressor is None:
                        decompressor = _zstd.ZstdDecompressor().decompressobj()
                    try:
                        out = decompressor.decompress(piece)
                    except _zstd.ZstdError as err:
                        raise ProfileFileError(f"zstd decompression error: {err}") from None
                    if out:
                        produced += len(out)
                        if produced > limit:
                            raise ProfileFileError(
                                f"Corrupt binary profile: the sample data decompresses to more than "
                                f"{self.sample_count} samples can hold"
                            )
                        yield out
                    if decompressor.eof:
                        piece = decompressor.unused_data
                        decompressor = None
                    else:
                        piece = b""
        if decompressor is not None:
            raise ProfileFileError("Incomplete zstd frame: data may be truncated")

    def samples(self, batch: bool = False) -> Iterator[tuple[int, list[ThreadSample], int]]:
        """`(timestamp_us, [ThreadSample], weight)` per decoded record sample, in file order.

        File order is time order within each thread; threads interleave by record (a REPEAT
        run of one thread arrives as one block). Each sample comes alone with weight 1 and its
        own timestamp and status, so streaming formats keep the timeline exactly. With
        `batch=True`, consecutive samples of a REPEAT run with the same status come as one
        item weighted by their number, with the first one's timestamp: fewer calls for
        outputs that only aggregate.
        """
        with self._corrupt_as_one_line():
            yield from self._samples(batch)

    def _samples(self, batch: bool) -> Iterator[tuple[int, list[ThreadSample], int]]:
        start = self.start_time_us
        clocks: dict[tuple[int, int], int] = {}
        lasts: dict[tuple[int, int], ThreadSample] = {}
        for thread_id, interp_id, stack, statuses, deltas in self._records(want_deltas=True):
            key = (thread_id, interp_id)
            ts = clocks.get(key, start)
            last = lasts.get(key)
            frames = self.stack_frames(stack)
            run_ts = run_status = run_sample = None
            run_n = 0
            for delta, status in zip(deltas, statuses):  # type: ignore[arg-type]
                ts = (ts + delta) & U64_MASK
                if last is None or last.status != status or last.frames is not frames:
                    last = ThreadSample(thread_id, status, frames, interp_id)
                if not batch:
                    yield ts, [last], 1
                elif run_n and status == run_status:
                    run_n += 1
                else:
                    if run_n:
                        yield run_ts, [run_sample], run_n  # type: ignore[list-item]
                    run_ts, run_status, run_sample, run_n = ts, status, last, 1
            if run_n:
                yield run_ts, [run_sample], run_n  # type: ignore[list-item]
            clocks[key], lasts[key] = ts, last  # type: ignore[assignment]

    def stack_counts(self, progress: Callable[[int], None] | None = None) -> dict[StackKey, int]:
        """Samples per `(thread id, interpreter id, status, stack)`, the stack as frame indices
        leaf first (`stack_frames` turns it into frames), in the order each key first occurs in
        the file: what an aggregate needs, without a timestamp or a sample object per sample.
        `progress(done)` is called about every 1% of the samples."""
        counts: dict[StackKey, int] = {}
        get = counts.get
        done = 0
        step = max(1, self.sample_count // 100)
        next_report = step
        with self._corrupt_as_one_line():
            for thread_id, interp_id, stack, statuses, _ in self._records(want_deltas=False):
                n = len(statuses)
                first = statuses[0]
                if n == 1 or statuses.count(first) == n:
                    key = (thread_id, interp_id, first, stack)
                    counts[key] = get(key, 0) + n
                else:
                    for status in dict.fromkeys(statuses):  # in order of first occurrence
                        key = (thread_id, interp_id, status, stack)
                        counts[key] = get(key, 0) + statuses.count(status)
                done += n
                if progress is not None and done >= next_report:
                    progress(done)
                    next_report = done + step
        return counts

    def stack_frames(self, stack: tuple[int, ...]) -> tuple[Frame, ...]:
        """The frames of a stack of frame indices (checked as they were decoded)."""
        frames = self._stack_frames.get(stack)
        if frames is None:
            if len(self._stack_frames) >= STACK_CACHE_LIMIT:
                self._stack_frames.clear()
            frames = self._stack_frames[stack] = tuple(map(self.frames.__getitem__, stack))  # type: ignore[arg-type]
        return frames

    @contextlib.contextmanager
    def _corrupt_as_one_line(self) -> Iterator[None]:
        try:
            yield
        except (IndexError, KeyError, ValueError, OverflowError, TypeError, struct.error) as err:
            # Not reached by any input the tests know of: each malformed case has its own
            # message. Should one slip through, the user still gets one line, not a traceback.
            raise ProfileFileError(f"{CORRUPT} ({type(err).__name__}: {err})") from None

    def _records(self, want_deltas: bool) -> Iterator[tuple[int, int, tuple[int, ...], bytes, list[int] | None]]:
        """Per record, in file order: `(thread id, interpreter id, stack, statuses, deltas)`.

        The stack is frame indices leaf first, each checked against the frame table; `statuses`
        holds one byte per sample (a REPEAT record's whole run at once), `deltas` their
        timestamp deltas when `want_deltas` (else None). The samples are checked against the
        header's count before they are handed out.
        """
        if self._compression == COMPRESSION_NONE:
            stream = _Chunks(self._raw_pieces(), self.string_table_offset - HEADER_SIZE)
        else:
            stream = _Chunks(self._zstd_pieces(), None)
        frame_table = self.frames
        n_frames = len(frame_table)
        unusable = {i for i, frame in enumerate(frame_table) if frame is None}
        declared = self.sample_count
        stacks: dict[tuple[int, int], tuple[int, ...]] = {}  # each thread's current stack
        record_head = struct.Struct(("<" if self.byte_order == "little" else ">") + "QIB")
        unpack_head = record_head.unpack_from
        pair_blocks = _PAIR_BLOCK_MATCHES
        one_status = _ONE_BYTE
        # The stack a valid inline record (encoding, count byte, indices) makes of the stack before
        # it, keyed by that stack's id and holding it (so the id stays its own): programs move
        # between the same few stacks, so most records need no decoding. The stacks made are
        # kept one object per value (`known`), so that their ids recur in turn.
        moves: dict[tuple[int, int, int, bytes], tuple[tuple[int, ...], tuple[int, ...]]] = {}
        known: dict[tuple[int, ...], tuple[int, ...]] = {}  # one object per distinct stack made here
        # Finds a byte that is not a whole valid frame index: a multi-byte varint's first byte,
        # an index past the table or one of an unusable frame (all for the general path).
        not_index = re.compile(b"[%s]" % b"".join(
            b"\\x%02x" % i for i in range(256) if i >= n_frames or i >= 0x80 or frame_table[i] is None
        )).search
        decoded = 0

        def check(indices: tuple[int, ...]) -> None:
            if indices and (max(indices) >= n_frames or (unusable and not unusable.isdisjoint(indices))):
                for idx in indices:  # the first bad one, in order
                    if idx >= n_frames:
                        raise ProfileFileError(f"Invalid frame index: {idx}")
                    if frame_table[idx] is None:
                        raise ProfileFileError("Invalid string index in frame")

        def read_indices(buf: bytes, pos: int, end: int, count: int) -> tuple[tuple[int, ...], int]:
            chunk = buf[pos:pos + count]
            if len(chunk) == count and chunk.isascii():  # every index one byte (below 128)
                return tuple(chunk), pos + count
            indices = []
            for _ in range(count):
                idx, pos = _varint32(buf, pos, end)
                indices.append(idx)
            return tuple(indices), pos

        buf, pos = stream.buf, stream.pos
        while True:
            end = len(buf)
            if end - pos < MAX_RECORD and not stream.eof:
                stream.pos = pos
                stream.fill(MAX_RECORD)
                buf, pos, end = stream.buf, stream.pos, len(stream.buf)
            if pos >= end:
                break
            if end - pos < RECORD_FIXED_SIZE:
                raise ProfileFileError(f"Truncated sample data: {end - pos} trailing bytes")
            thread_id, interp_id, encoding = unpack_head(buf, pos)
            pos += RECORD_FIXED_SIZE
            key = (thread_id, interp_id)
            stack = stacks.get(key)
            if stack is None:
                if len(stacks) >= self.thread_count:
                    raise ProfileFileError(
                        "Invalid thread count: sample data contains more unique threads than declared in "
                        f"header (declared {self.thread_count}, found at least {len(stacks) + 1})"
                    )
                stack = stacks[key] = ()
            if encoding == REPEAT:
                try:
                    count, pos = _varint32(buf, pos, end)
                except _Malformed:
                    raise ProfileFileError("Malformed varint for RLE count") from None
                left = stream.remaining(pos)
                if left is not None and count > left // 2:
                    raise ProfileFileError(
                        f"Invalid RLE count {count} exceeds maximum possible {left // 2} for remaining data"
                    )
                if count == 0:
                    raise ProfileFileError("Invalid RLE count 0: a repeat record holds at least one sample")
                if decoded + count > declared:
                    raise ProfileFileError(
                        f"Sample count mismatch: header declares {declared} samples but the sample data "
                        "holds more"
                    )
                parts = []
                deltas: list[int] | None = [] if want_deltas else None
                todo = count
                while todo:
                    if end - pos < 11 and not stream.eof:
                        stream.pos = pos
                        stream.fill(11)
                        buf, pos, end = stream.buf, stream.pos, len(stream.buf)
                    # The largest block of whole pairs (a power of two, at most `todo`) that matches here.
                    k = min(todo.bit_length() - 1, _BLOCK_BITS)
                    while k >= 0:
                        match = pair_blocks[k](buf, pos)
                        if match is not None:
                            stop = match.end()
                            span = buf[pos:stop]
                            # Each pair holds two bytes below 0x80: its delta's last byte, then its status.
                            parts.append(span.translate(None, _HIGH_BYTES)[1::2])
                            if deltas is not None:
                                deltas += _block_deltas(span)
                            todo -= 1 << k
                            pos = stop
                            break
                        k -= 1
                    else:
                        # A delta longer than 8 bytes, or a malformed or cut pair: one at a time.
                        delta, status, pos = _delta_and_status(buf, pos, end, rle=True)
                        parts.append(one_status[status])
                        if deltas is not None:
                            deltas.append(delta)
                        todo -= 1
                decoded += count
                yield thread_id, interp_id, stack, parts[0] if len(parts) == 1 else b"".join(parts), deltas
                continue
            if encoding not in (FULL, SUFFIX, POP_PUSH):
                raise ProfileFileError(f"Unknown stack encoding: {encoding}")
            # Most records take this path, inline since it runs per record: a delta of one or two
            # bytes, counts below 128 and valid frame indices below 128 (a byte each). Any other
            # record, and any near the data's end, goes through the general path after, which
            # alone raises (with its exact messages) for a malformed one.
            new = None
            if end - pos > 4:  # the bytes read here: two of delta, status, two counts
                delta = buf[pos]
                at = pos + 1
                if delta >= 0x80:
                    high = buf[at]
                    at += 1
                    delta = (delta & 0x7F) | high << 7 if high < 0x80 else -1
                if delta >= 0:
                    status = buf[at]
                    first = buf[at + 1]
                    if encoding == FULL:
                        push, at = first, at + 2
                    else:
                        push, at = buf[at + 2], at + 3
                    chunk = buf[at:at + push]
                    move_key = (id(stack), encoding, first, chunk)
                    move = moves.get(move_key)
                    if move is not None and move[0] is stack and len(chunk) == push:
                        new = move[1]
                    else:
                        if encoding == FULL:
                            kept: tuple[int, ...] = ()
                        elif encoding == POP_PUSH:
                            kept = stack[first:]
                        elif first <= len(stack):
                            kept = stack[len(stack) - first:] if first else ()
                        else:
                            first = 0x80  # the general path names the bad count
                        if (
                            first < 0x80 and push < 0x80 and len(kept) + push <= MAX_STACK_DEPTH
                            and len(chunk) == push and not_index(chunk) is None
                        ):
                            new = tuple(chunk) + kept
                            if len(moves) >= STACK_CACHE_LIMIT:
                                moves.clear()
                                known.clear()
                            new = known.setdefault(new, new)
                            moves[move_key] = (stack, new)
                    if new is not None:
                        stack = new
                        pos = at + push
            if new is None:
                delta, status, pos = _delta_and_status(buf, pos, end, rle=False)
                try:
                    first, pos = _varint32(buf, pos, end)
                    if encoding == FULL:
                        if first > MAX_STACK_DEPTH:
                            raise ProfileFileError(f"Stack depth {first} exceeds capacity {MAX_STACK_DEPTH}")
                        stack, pos = read_indices(buf, pos, end, first)
                        check(stack)
                    else:
                        push, pos = _varint32(buf, pos, end)
                        if encoding == SUFFIX:
                            if first > len(stack):
                                raise ProfileFileError(f"Shared count {first} exceeds current stack depth {len(stack)}")
                            kept = stack[len(stack) - first:] if first else ()
                        else:
                            kept = stack[first:]
                        if len(kept) + push > MAX_STACK_DEPTH:
                            raise ProfileFileError(
                                f"Final stack depth {len(kept) + push} exceeds capacity {MAX_STACK_DEPTH}"
                            )
                        new, pos = read_indices(buf, pos, end, push)
                        check(new)
                        stack = new + kept
                except _Malformed:
                    raise ProfileFileError("Malformed varint in sample data") from None
            if decoded >= declared:
                raise ProfileFileError(
                    f"Sample count mismatch: header declares {declared} samples but the sample data holds more"
                )
            stacks[key] = stack
            decoded += 1
            yield thread_id, interp_id, stack, one_status[status], [delta] if want_deltas else None
        self.decoded = decoded


def open_binary_profile(path: str | os.PathLike[str]) -> BinaryProfile:
    """Open and check a `--binary` profile; raises `ProfileFileError` with one line if it is bad."""
    return BinaryProfile(os.fspath(path))
