"""The `--binary` file layout (Tachyon's binary sampling format), shared by the reader and the writer.

Every sample, in order, delta-encoded.

Layout (all fixed-width fields in the writer's native byte order; readers byte-swap):

    header      64 bytes, as CPython 3.15.2 writes and reads it:
                 0 magic u32 0x54414348 ("TACH" as a u32, so "HCAT" on little-endian machines)
                 4 format version u32        8 the target's Python version (3 bytes + 1 zero)
                12 start time u64 (µs, monotonic)   20 sample interval u64 (µs)
                28 sample count u64         36 thread count u32
                40 string table offset u64  48 frame table offset u64
                56 compression u32 (0 none, 1 zstd)
                60 flags u32: bits 0-2 profiling mode + 1 (0 = unknown), bit 3 "capture
                   configuration recorded", bits 4-8 the capture features (all_threads 1,
                   native 2, gc 4, opcodes 8, blocking 16)
    samples     from offset 64 to the string table: one record per thread sample, a zstd
                stream when compressed (level 5)
    strings     varint length + UTF-8, in first-use order
    frames      filename idx, funcname idx (varints), lineno, end_lineno - lineno, column,
                end_column - column (zigzag varints), opcode u8 (255 = none)
    TACHSTAT    optional 56 bytes: duration s, sample rate, error %, missed % (doubles),
                flags, reserved, b"TACHSTAT", extension version 1, extension size 56
    footer      32 bytes: string count u32, frame count u32, file size u64, 16 zero bytes

A sample record is `thread_id u64, interpreter_id u32, encoding u8` and then, against the same
(interpreter, thread)'s previous stack (frame indices innermost first; at most 256 frames):

    0 REPEAT    count varint, count x (timestamp delta varint, status u8)
    1 FULL      delta, status, depth varint, depth x frame index
    2 SUFFIX    delta, status, shared varint, new varint, new x frame index
    3 POP_PUSH  delta, status, pop varint, push varint, push x frame index

Timestamp deltas are per thread; a thread's first delta counts from the header's start time.

Format versions. CPython's reader accepts exactly its own version, and 3.15.2 says 1: it
widened the header (sample count u64, the fields after it moved by 4, flags at 60) without
raising the number. heatline writes that layout, stamped 1 by default so that 3.15's `replay`
reads its files (`format_version=2` stamps 2, for CPython builds that moved on). heatline
before 2026-12 wrote version 1 with a narrower header (sample count u32 at 28, thread count at
32, string table at 36, frame table at 44, compression at 52, mode + 1 at 60); the reader still
takes those files (see `reader.py` for how the two are told apart).
"""

from __future__ import annotations

MAGIC = 0x54414348
HEADER_SIZE = 64
FOOTER_SIZE = 32
FORMAT_VERSIONS = (1, 2)
DEFAULT_FORMAT_VERSION = 1

COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1
COMPRESSION_NAMES = {COMPRESSION_NONE: "none", COMPRESSION_ZSTD: "zstd"}
ZSTD_LEVEL = 5

REPEAT, FULL, SUFFIX, POP_PUSH = 0, 1, 2, 3
MAX_STACK_DEPTH = 256
RECORD_FIXED_SIZE = 13  # thread id u64 + interpreter id u32 + encoding u8
OPCODE_NONE = 255
NO_LOCATION = -1

STATS_SIGNATURE = b"TACHSTAT"
STATS_SIZE = 56
STATS_SIZE_OLD = 32  # duration and rate only, read but never written
STATS_VERSION = 1
STATS_HAS_ERROR_RATE = 1 << 0
STATS_HAS_MISSED = 1 << 1

# Tachyon's PROFILING_MODE_* values; the header stores value + 1 so that 0 means "unknown".
MODE_CODES = {"wall": 0, "cpu": 1, "gil": 2, "exception": 4}
MODE_NAMES = {0: "wall", 1: "cpu", 2: "gil", 3: "wall", 4: "exception"}  # 3 = ALL: nothing filtered

# Header layouts: "=" is native order with standard sizes, as the C writer's memcpy.
# magic, version, py major/minor/micro/0, start, interval, samples u64, threads, strings, frames,
# compression, flags: what CPython 3.15.2 writes (and what heatline writes).
HEADER = "IIBBBBQQQIQQII"
# heatline's version-1 files before 2026-12: samples u32, threads, strings, frames, compression;
# bytes 56-59 zero and mode + 1 at 60 (read, never written).
HEADER_OLD = "IIBBBBQQIIQQI"
FLAGS_OFFSET = 60

# The flags word at 60. A file without bit 3 says nothing about how it was captured (older
# files, or a profile heatline built in memory).
FLAG_MODE_MASK = 0x7  # profiling mode + 1; 0 = unknown
FLAG_CAPTURE_CONFIG = 1 << 3
CAPTURE_SHIFT = 4
CAPTURE_FEATURES = {"all_threads": 1 << 0, "native": 1 << 1, "gc": 1 << 2, "opcodes": 1 << 3, "blocking": 1 << 4}
CAPTURE_MASK = 0x1F  # the five features above; higher bits are ignored, as 3.15.2 does
FOOTER = "IIQ16s"
STATS = "ddddII8sII"

U32_MAX = 0xFFFFFFFF
U64_MASK = 0xFFFFFFFFFFFFFFFF


def encode_varint(value: int, out: bytearray) -> None:
    """Unsigned LEB128."""
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def varint_size(value: int) -> int:
    n = 1
    while value >= 0x80:
        value >>= 7
        n += 1
    return n


def zigzag32(value: int) -> int:
    """Signed -> unsigned as Tachyon's int32 zigzag (-1 -> 1, 1 -> 2)."""
    return ((value << 1) ^ (value >> 63)) & U32_MAX


def unzigzag32(value: int) -> int:
    return (value >> 1) ^ -(value & 1)
