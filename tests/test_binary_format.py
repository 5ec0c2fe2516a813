"""The binary format (`--binary`, `--compression`) and `heatline replay`.

Real runs are profiled into binary files and replayed into collapsed and pstats outputs that
must show the targets' known functions, lines and proportions; in-process sample lists must
come back exactly (Tachyon's round-trip cases); malformed files must fail with Tachyon's
messages; and a few thousand mutated real files must fail cleanly or decode.
"""

from __future__ import annotations

import marshal
import os
import pstats
import random
import re
import signal
import struct
import sys
from collections import defaultdict

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import INTERPRETERS, has_func, heatline, parse_collapsed, target, weight_where
from sampler.collectors import COLLECTORS
from sampler.binaryfile.layout import HEADER, HEADER_OLD, MAX_STACK_DEPTH, STATS_SIGNATURE
from sampler.collectors.binary import BinaryCollector
from sampler.errors import ProfileFileError, UsageError
from sampler.model import (
    GC_FRAME,
    GIL_REQUESTED,
    HAS_EXCEPTION,
    HAS_GIL,
    MAIN_THREAD,
    ON_CPU,
    UNKNOWN,
    Frame,
    Profile,
    RunStats,
    ThreadSample,
)
from sampler.replay import CORRUPT, CORRUPT_TABLES, NOT_A_PROFILE, open_binary_profile

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
START_US = 7_000_000_000
LE = sys.byteorder == "little"
NATIVE_MAGIC = b"HCAT" if LE else b"TACH"

# Header offsets (see sampler/collectors/binary.py): CPython 3.15.2's layout, which both format
# versions use, and the one heatline's version-1 files had before 2026-12.
WIDE = {"samples": (28, "Q"), "threads": (36, "I"), "strings": (40, "Q"), "frames": (48, "Q"), "compression": (56, "I"),
        "flags": (60, "I")}
OLD = {"samples": (28, "I"), "threads": (32, "I"), "strings": (36, "Q"), "frames": (44, "Q"), "compression": (52, "I"),
       "flags": (60, "I")}
OFFSETS = {1: WIDE, 2: WIDE}


# -- helpers ------------------------------------------------------------------------------------


def stats(**kw) -> RunStats:
    defaults = dict(pid=4242, python_version="3.12.1", mode="wall", interval_usec=1000, start_monotonic_us=START_US)
    defaults.update(kw)
    return RunStats(**defaults)


def encode(path, ticks, *, compression="none", format_version=1, order="=", run=None, capsys=None):
    """Write `ticks` [(timestamp_us, [ThreadSample])] through the collector as sampling does."""
    cls = BinaryCollector if order == "=" else type("OrderedCollector", (BinaryCollector,), {"byte_order": order})
    collector = cls(Profile(run or stats()), compression=compression, format_version=format_version)
    for ts, threads in ticks:
        collector.collect(ts, threads)
    collector.write(str(path))
    return collector


def to_old_layout(data: bytes, order: str = "=") -> bytes:
    """The same file with the header heatline wrote before 2026-12 (version 1, sample count u32,
    everything after it 4 bytes earlier, mode + 1 alone at 60)."""
    fields = struct.unpack_from(order + HEADER, data)
    assert fields[1] == 1 and fields[8] <= 0xFFFFFFFF
    header = struct.pack(order + HEADER_OLD, *fields[:13]) + bytes(4) + struct.pack(order + "I", fields[13] & 0x7)
    assert len(header) == 64
    return header + data[64:]


def decode(path, batch=False):
    reader = open_binary_profile(path)
    items = list(reader.samples(batch=batch))
    reader.check_complete(sum(w for _, _, w in items))
    return reader, items


def by_thread_expected(ticks):
    out = defaultdict(list)
    for ts, threads in ticks:
        for t in threads:
            out[(t.interpreter_id, t.thread_id)].append((ts, t.status, t.frames[:MAX_STACK_DEPTH]))
    return dict(out)


def by_thread_decoded(items):
    out = defaultdict(list)
    for ts, threads, weight in items:
        assert weight == 1 and len(threads) == 1
        t = threads[0]
        out[(t.interpreter_id, t.thread_id)].append((ts, t.status, t.frames))
    return dict(out)


def patch(path, offset, fmt, value):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(struct.pack("=" + fmt, value))


def read_field(path, offset, fmt):
    with open(path, "rb") as fh:
        fh.seek(offset)
        return struct.unpack("=" + fmt, fh.read(struct.calcsize("=" + fmt)))[0]


def patch_footer(path, offset, fmt, value):
    patch(path, os.path.getsize(path) - 32 + offset, fmt, value)


def open_error(path) -> str:
    with pytest.raises(ProfileFileError) as info:
        decode(path)
    return str(info.value)


# Frames with everything a frame can hold: unicode, 100000-line files, unknown columns, an
# unknown end line with a known start, synthetic frames.
F_MAIN = Frame("/srv/app/main.py", "main", 12, 12, 4, 20)
F_RUN = Frame("/srv/app/main.py", "Runner.run", 40, 42, 8, 31)
F_LEAF = Frame("/srv/app/hot.py", "leaf", 7, 7, 12, 30)
F_UNI = Frame("/srv/ünïcødé/💩.py", "функция_名前", 3, 3, 0, 11)
F_HTML = Frame('/tmp/<script>"q\'.py', "<lambda>", 1, 1, 0, 5)
F_BIG = Frame("/srv/gen/huge.py", "generated", 100000, 100003, 0, 120)
F_NOCOL = Frame("/usr/lib/python3.9/json/decoder.py", "decode", 337, -1, -1, -1)  # 3.9: lines only
F_ENDLESS = Frame("/srv/app/odd.py", "odd", 50, -1, 3, -1)
F_NATIVE = Frame("~", "<native>", 0)


def rich_ticks(n=300, seed=1):
    """Two interpreters sharing a thread id, a 64-bit thread id, every status, stacks that grow,
    shrink and change, timestamps with jitter and gaps."""
    rng = random.Random(seed)
    stacks = [
        (F_LEAF, F_RUN, F_MAIN),
        (F_UNI, F_LEAF, F_RUN, F_MAIN),
        (F_BIG, F_RUN, F_MAIN),
        (F_NOCOL, F_ENDLESS, F_RUN, F_MAIN),
        (GC_FRAME, F_LEAF, F_RUN, F_MAIN),
        (F_HTML,),
        (F_NATIVE, F_MAIN),
        (),
        (F_RUN, F_MAIN),
    ]
    statuses = [0, HAS_GIL, ON_CPU, UNKNOWN, GIL_REQUESTED, HAS_EXCEPTION, MAIN_THREAD | HAS_GIL | ON_CPU,
                HAS_GIL | HAS_EXCEPTION, HAS_GIL | ON_CPU | GIL_REQUESTED]
    ts = START_US
    ticks = []
    current = {k: rng.choice(stacks) for k in range(4)}
    for i in range(n):
        ts += 1000 + rng.randint(-40, 400) + (250_000 if i == n // 2 else 0)
        threads = []
        for k, (tid, interp) in enumerate([(4242, 0), (4242, 1), (0x7FFF12345678, 0), (2**64 - 1, 3)]):
            if rng.random() < 0.3:
                current[k] = rng.choice(stacks)
            if k == 3 and i % 5:
                continue  # a thread that is sampled only sometimes
            threads.append(ThreadSample(tid, rng.choice(statuses), current[k], interp))
        ticks.append((ts, threads))
    return ticks


# -- exact round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "zstd"])
@pytest.mark.parametrize("format_version", [1, 2])
def test_round_trip_exact(tmp_path, compression, format_version):
    ticks = rich_ticks()
    path = tmp_path / "p.bin"
    collector = encode(path, ticks, compression=compression, format_version=format_version)
    reader, items = decode(path)
    assert by_thread_decoded(items) == by_thread_expected(ticks)
    assert reader.sample_count == collector.total_samples == sum(len(t) for _, t in ticks)
    assert reader.thread_count == 4
    assert reader.compression == compression and reader.version == format_version
    assert reader.python_version == "3.12.1"
    # Every encoding was exercised.
    assert collector.repeat_records and collector.full_records
    assert collector.suffix_records and collector.pop_push_records
    # Synthetic frames are stored as Tachyon's "no location" and come back as heatline's.
    frames = {f for _, t, _ in items for f in t[0].frames}
    assert GC_FRAME in frames and F_NATIVE in frames


def test_rle_of_1000_identical_samples(tmp_path):
    stack = (F_LEAF, F_RUN, F_MAIN)
    statuses = [HAS_GIL | ON_CPU] * 600 + [GIL_REQUESTED] * 150 + [HAS_GIL | ON_CPU] * 250
    ticks = [(START_US + 1000 * (i + 1) + (i % 3), [ThreadSample(1, statuses[i], stack)]) for i in range(1000)]
    path = tmp_path / "rle.bin"
    collector = encode(path, ticks)
    # The first sample carries the stack; the 999 others are one REPEAT record.
    assert (collector.full_records, collector.repeat_records, collector.repeat_samples) == (1, 1, 999)
    assert collector.suffix_records == collector.pop_push_records == 0
    assert os.path.getsize(path) < 64 + 13 + 10 + 999 * 3 + 200  # ~3 bytes a sample, no stacks
    _, items = decode(path)
    assert by_thread_decoded(items) == by_thread_expected(ticks)  # every timestamp and status
    # Batched: runs of one status come weighted, with the run's first timestamp.
    _, batched = decode(path, batch=True)
    assert [(ts, t[0].status, w) for ts, t, w in batched] == [
        (ticks[0][0], HAS_GIL | ON_CPU, 1),
        (ticks[1][0], HAS_GIL | ON_CPU, 599),
        (ticks[600][0], GIL_REQUESTED, 150),
        (ticks[750][0], HAS_GIL | ON_CPU, 250),
    ]


def test_suffix_and_pop_push_records(tmp_path):
    a, b, c, d, e = (Frame("s.py", f"f{i}", i + 1, i + 1, 0, 4) for i in range(5))
    sequence = [
        (c, b, a),  # FULL
        (d, c, b, a),  # a call: SUFFIX (shared 3, push d)
        (e, b, a),  # return from d and c, call e: POP_PUSH (pop 2, push e)
        (b, a),  # returns only: POP_PUSH (pop 1, push 0)
        (b, a),  # REPEAT
        (e,),  # nothing shared: FULL
    ]
    ticks = [(START_US + 1000 * (i + 1), [ThreadSample(9, HAS_GIL, s)]) for i, s in enumerate(sequence)]
    path = tmp_path / "delta.bin"
    collector = encode(path, ticks)
    assert collector.full_records == 2
    assert collector.suffix_records == 1
    assert collector.pop_push_records == 2
    assert collector.repeat_records == 1
    _, items = decode(path)
    assert [t[0].frames for _, t, _ in items] == sequence


def test_timestamps_modulo_2_64_and_first_delta_from_start(tmp_path):
    # A thread's first delta counts from the header's start time; deltas wrap like the C reader.
    ticks = [(START_US + 5, [ThreadSample(1, 0, (F_MAIN,))]), (START_US + 3, [ThreadSample(1, 0, (F_MAIN,))]),
             (2**64 - 1, [ThreadSample(1, 0, (F_RUN,))]), (0, [ThreadSample(1, 0, (F_RUN,))])]
    path = tmp_path / "ts.bin"
    encode(path, ticks)
    _, items = decode(path)
    assert [ts for ts, _, _ in items] == [START_US + 5, START_US + 3, 2**64 - 1, 0]


def test_stacks_deeper_than_256_keep_the_innermost(tmp_path, capsys):
    deep = tuple(Frame("r.py", "recurse", 10, 10, 11, 22) for _ in range(400))
    deep = (Frame("r.py", "leaf", 5, 5, 4, 9),) + deep
    path = tmp_path / "deep.bin"
    encode(path, [(START_US + 1000, [ThreadSample(1, 0, deep)])])
    assert f"the format keeps the innermost {MAX_STACK_DEPTH}" in capsys.readouterr().err
    _, items = decode(path)
    assert items[0][1][0].frames == deep[:MAX_STACK_DEPTH]


def test_every_position_round_trips_through_the_frame_table(tmp_path):
    frames = [F_MAIN, F_NOCOL, F_ENDLESS, F_BIG, Frame("x.py", "neg", 3, 1, 9, 2), Frame("x.py", "zero", 0, 0, 0, 0)]
    path = tmp_path / "pos.bin"
    encode(path, [(START_US + i, [ThreadSample(1, 0, (f,))]) for i, f in enumerate(frames)])
    _, items = decode(path)
    assert [t[0].frames[0] for _, t, _ in items] == frames


def test_header_footer_and_stats_layout(tmp_path):
    run = stats(python_version="3.9.18", mode="cpu", interval_usec=250, duration_s=2.0, samples=7000,
                attempts=7100, errors=100, missed=1000)
    path = tmp_path / "v1.bin"
    encode(path, rich_ticks(50), run=run, compression="zstd")
    data = path.read_bytes()
    assert data[:4] == NATIVE_MAGIC
    assert read_field(path, 4, "I") == 1
    assert data[8:11] == bytes([3, 9, 18])  # the TARGET's version, not heatline's interpreter's
    assert read_field(path, 12, "Q") == START_US
    assert read_field(path, 20, "Q") == 250
    reader = open_binary_profile(path)
    assert not reader.old_layout
    assert read_field(path, 28, "Q") == reader.sample_count == sum(len(t) for _, t in rich_ticks(50))
    assert read_field(path, 36, "I") == 4
    assert read_field(path, 56, "I") == 1  # zstd
    assert read_field(path, 60, "I") == 1 + 1  # mode + 1 (cpu = 1); no capture configuration known
    assert reader.capture_config is None
    string_offset, frame_offset = read_field(path, 40, "Q"), read_field(path, 48, "Q")
    assert (string_offset, frame_offset) == (reader.string_table_offset, reader.frame_table_offset)
    assert 64 < string_offset < frame_offset < len(data)
    strings, frames, size = struct.unpack_from("=IIQ", data, len(data) - 32)
    assert (strings, frames, size) == (reader.string_count, reader.frame_count, len(data))
    assert data[-16:] == bytes(16)
    ext = data[-32 - 56:-32]
    assert ext[40:48] == STATS_SIGNATURE
    duration, rate, error_pct, missed_pct, _flags, _res, _sig, version, ext_size = struct.unpack("=ddddII8sII", ext)
    assert (duration, rate, version, ext_size) == (2.0, 3500.0, 1, 56)
    assert error_pct == pytest.approx(100 * 100 / 7100)
    assert missed_pct == pytest.approx(100 * 1000 / 8000)
    # replay gets the real run's statistics back
    back = reader.run_stats()
    assert (back.mode, back.interval_usec, back.start_monotonic_us, back.python_version) == ("cpu", 250, START_US, "3.9.18")
    assert back.duration_s == 2.0 and back.sample_rate == pytest.approx(3500.0)
    assert back.error_rate == pytest.approx(100 * 100 / 7100, abs=0.01)
    assert back.missed == 1000


def test_header_layout_version_2(tmp_path):
    path = tmp_path / "v2.bin"
    encode(path, rich_ticks(20), format_version=2, run=stats(mode="exception"))
    reader = open_binary_profile(path)
    assert read_field(path, 4, "I") == 2
    assert read_field(path, 28, "Q") == reader.sample_count
    assert read_field(path, 36, "I") == 4
    assert read_field(path, 40, "Q") == reader.string_table_offset
    assert read_field(path, 48, "Q") == reader.frame_table_offset
    assert read_field(path, 56, "I") == 0
    assert read_field(path, 60, "I") == 4 + 1  # exception = 4
    assert reader.mode == "exception"
    assert reader.stats_extension is None  # nothing was measured


@pytest.mark.parametrize(
    "mode, all_threads, gc, flags",
    [("wall", False, True, 0x49), ("cpu", True, True, 0x5A), ("gil", False, False, 0x0B),
     ("exception", True, False, 0x1D), ("wall", False, None, 0x01)],
)
def test_flags_record_mode_and_capture_config(tmp_path, mode, all_threads, gc, flags):
    """The flags word as Tachyon 3.15.2 writes it (0x49: wall, config present, gc; 0x5A: cpu,
    all_threads + gc), and no capture configuration when the run's options are not known."""
    path = tmp_path / "f.bin"
    options = {} if gc is None else {"gc": gc}
    collector = BinaryCollector(Profile(stats(mode=mode, all_threads=all_threads)), compression="none", **options)
    collector.collect(START_US + 1, [ThreadSample(1, HAS_GIL, (F_LEAF, F_MAIN))])
    collector.write(str(path))
    assert read_field(path, 60, "I") == flags
    reader = open_binary_profile(path)
    assert reader.mode == mode
    if gc is None:
        assert reader.capture_config is None
    else:
        assert reader.capture_config == {"all_threads": all_threads, "native": False, "gc": gc, "opcodes": False,
                                         "blocking": False}
        assert reader.run_stats().all_threads == all_threads


def test_a_blocking_run_is_recorded_as_tachyon_records_it(tmp_path):
    """--blocking sets capture feature 16 (bit 8 of the flags word), as Tachyon 3.15.2 writes it."""
    path = tmp_path / "f.bin"
    collector = BinaryCollector(Profile(stats(mode="wall")), compression="none", gc=True, blocking=True)
    collector.collect(START_US + 1, [ThreadSample(1, HAS_GIL, (F_LEAF, F_MAIN))])
    collector.write(str(path))
    assert read_field(path, 60, "I") == 0x149
    assert open_binary_profile(path).capture_config["blocking"] is True


def test_capture_features_outside_the_known_five_are_ignored(tmp_path):
    path = one_sample_file(tmp_path, 1)
    patch(path, 60, "I", 0xFFFFFF09)  # wall, config present, features 0x...f0 -> blocking only
    reader, _ = decode(path)
    assert reader.mode == "wall" and reader.capture_config == {
        "all_threads": False, "native": False, "gc": False, "opcodes": False, "blocking": True}
    patch(path, 60, "I", 0x40)  # feature bits without bit 3: nothing is known
    assert open_binary_profile(path).capture_config is None and open_binary_profile(path).mode is None


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_old_heatline_files_still_read(tmp_path, order, compression):
    """Files heatline wrote before it followed 3.15.2's header (sample count u32, tables at 36 and
    44, compression at 52, mode + 1 at 60) decode exactly, told apart by their offsets."""
    ticks = rich_ticks(80, seed=11)
    path = tmp_path / "new.bin"
    run = stats(mode="gil", duration_s=1.0, samples=320, attempts=330)
    encode(path, ticks, order=order, compression=compression, run=run)
    old = tmp_path / "old.bin"
    old.write_bytes(to_old_layout(path.read_bytes(), order))
    reader, items = decode(old)
    assert reader.old_layout and reader.version == 1
    assert (reader.sample_count, reader.thread_count, reader.compression) == (sum(len(t) for _, t in ticks), 4, compression)
    assert by_thread_decoded(items) == by_thread_expected(ticks)
    assert reader.mode == "gil" and reader.capture_config is None
    assert reader.run_stats().duration_s == 1.0
    fresh, _ = decode(path)
    assert not fresh.old_layout
    assert (fresh.string_table_offset, fresh.frame_table_offset) == (reader.string_table_offset,
                                                                      reader.frame_table_offset)
    # An old file whose offsets are damaged is refused (in the current layout's words).
    data = bytearray(old.read_bytes())
    struct.pack_into(order + "Q", data, 36, len(data) + 1)
    old.write_bytes(bytes(data))
    assert open_error(old).startswith("Invalid string table offset: ")


def test_old_layout_is_only_tried_for_version_1(tmp_path):
    path = tmp_path / "v2.bin"
    encode(path, rich_ticks(5))
    data = bytearray(to_old_layout(path.read_bytes()))
    data[4:8] = struct.pack("=I", 2)  # an old-layout header claiming version 2 (never written)
    path.write_bytes(bytes(data))
    assert open_error(path).startswith("Invalid string table offset: ")


@pytest.mark.parametrize("order", ["<", ">"])
def test_both_byte_orders(tmp_path, order):
    ticks = rich_ticks(120, seed=5)
    path = tmp_path / "o.bin"
    encode(path, ticks, order=order, compression="zstd", run=stats(duration_s=1.0, samples=120, attempts=120))
    assert path.read_bytes()[:4] == (b"HCAT" if order == "<" else b"TACH")
    reader, items = decode(path)
    assert reader.byte_order == ("little" if order == "<" else "big")
    assert by_thread_decoded(items) == by_thread_expected(ticks)
    assert reader.run_stats().duration_s == 1.0


def test_a_profile_built_in_memory_is_written_too(tmp_path):
    profile = Profile(stats())
    profile.add(ThreadSample(1, HAS_GIL, (F_LEAF, F_MAIN)), 30)
    profile.add(ThreadSample(1, HAS_GIL, (F_RUN, F_MAIN)), 10)
    path = tmp_path / "mem.bin"
    BinaryCollector(profile).write(str(path))
    _, items = decode(path)
    counts = defaultdict(int)
    for _ts, threads, weight in items:
        counts[threads[0].frames] += weight
    assert counts == {(F_LEAF, F_MAIN): 30, (F_RUN, F_MAIN): 10}


def test_samples_stream_to_disk_while_sampling():
    collector = BinaryCollector(Profile(stats()), compression="zstd")
    rng = random.Random(3)
    pool = [Frame("m.py", f"f{i}", i, i, 0, 3) for i in range(60)]
    for i in range(60_000):
        stack = tuple(rng.sample(pool, 12))
        collector.collect(START_US + i * 100, [ThreadSample(1, 0, stack), ThreadSample(2, 0, stack[:3])])
        assert len(collector._buf) < 512 * 1024 + 2000  # the in-memory buffer never grows past 512 KiB
    assert collector._tmp.tell() > 0  # compressed data already went to the temporary file
    assert collector.raw_bytes > 2 * 512 * 1024


def test_options_and_registry():
    assert COLLECTORS["binary"] is BinaryCollector
    assert list(COLLECTORS)[-1] == "binary"
    assert BinaryCollector.default_extension == "bin" and not BinaryCollector.replayable
    assert BinaryCollector(Profile(stats())).compression == 1  # auto = zstd here
    assert BinaryCollector(Profile(stats()), compression="none").compression == 0
    with pytest.raises(UsageError):
        BinaryCollector(Profile(stats()), compression="lz4")
    with pytest.raises(UsageError):
        BinaryCollector(Profile(stats()), format_version=3)


# -- Tachyon's malformed-file expectations --------------------------------------------------------


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def version(request):
    return request.param


def one_sample_file(tmp_path, version, threads=1, name="one.bin"):
    path = tmp_path / name
    encode(path, [(START_US + 1000, [ThreadSample(t + 1, 0, (F_LEAF, F_MAIN)) for t in range(threads)])],
           format_version=version)
    return path


def test_more_threads_than_declared(tmp_path, version):
    path = one_sample_file(tmp_path, version, threads=2)
    offset, fmt = OFFSETS[version]["threads"]
    patch(path, offset, fmt, 1)
    assert open_binary_profile(path).thread_count == 1
    assert open_error(path) == (
        "Invalid thread count: sample data contains more unique threads than declared in header "
        "(declared 1, found at least 2)"
    )


def test_sample_count_mismatch(tmp_path, version):
    path = one_sample_file(tmp_path, version)
    offset, fmt = OFFSETS[version]["samples"]
    patch(path, offset, fmt, 2)
    reader = open_binary_profile(path)
    assert reader.sample_count == 2
    decoded = sum(w for _, _, w in reader.samples())
    with pytest.raises(ProfileFileError) as info:
        reader.check_complete(decoded)
    assert str(info.value) == "Sample count mismatch: header declares 2 samples but replay decoded 1"


def test_trailing_partial_sample_header(tmp_path, version):
    path = tmp_path / "empty.bin"
    encode(path, [], format_version=version)
    for name in ("strings", "frames"):
        offset, fmt = OFFSETS[version][name]
        patch(path, offset, fmt, 64 + 1)
    assert open_error(path) == "Truncated sample data: 1 trailing bytes"


def test_string_and_frame_counts_larger_than_the_file(tmp_path, version):
    path = one_sample_file(tmp_path, version)
    size = os.path.getsize(path)
    str_off = read_field(path, *OFFSETS[version]["strings"])
    frame_off = read_field(path, *OFFSETS[version]["frames"])
    patch_footer(path, 0, "I", 0xFFFFFFFF)
    assert open_error(path) == f"Invalid string count 4294967295 exceeds maximum possible {size - str_off}"
    path = one_sample_file(tmp_path, version, name="two.bin")
    max_frames = (size - frame_off) // 7
    patch_footer(path, 4, "I", 0xFFFFFFFF)
    assert open_error(path) == f"Invalid frame count 4294967295 exceeds maximum possible {max_frames}"
    patch_footer(path, 4, "I", max_frames + 1)
    assert open_error(path) == f"Invalid frame count {max_frames + 1} exceeds maximum possible {max_frames}"


def test_sample_count_uses_64_bits(tmp_path, version):
    path = tmp_path / "big.bin"
    encode(path, [], format_version=version)
    for value in (0xFFFFFFFF - 1, 0xFFFFFFFF, 0x1_0002_0003):
        patch(path, 28, "Q", value)
        assert open_binary_profile(path).sample_count == value


@pytest.mark.parametrize(
    "name, data",
    [("empty", b""), ("short", NATIVE_MAGIC + bytes(59)), ("text", b"tid:1;a.py:f:1 10\n" * 10),
     ("pstats", marshal.dumps({("a.py", 1, "f"): (1, 1, 0.001, 0.001, {})}) + bytes(64))],
)
def test_not_a_binary_profile(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    assert open_error(path) == NOT_A_PROFILE


def test_missing_file_and_directory(tmp_path):
    assert open_error(tmp_path / "nope.bin") == f"Input file not found: {tmp_path / 'nope.bin'}"
    assert "is a directory" in open_error(tmp_path)


def rewrite(path, fn):
    data = bytearray(path.read_bytes())
    fn(data)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d.__setitem__(slice(4, 8), struct.pack("=I", 7)),
         "Unsupported format version 7 (this reader supports versions 1 and 2; the file says it was written by "
         "Python 3.12.1)"),
        (lambda d: d.__setitem__(slice(56, 60), struct.pack("=I", 9)),
         "Unsupported compression type 9 (0 = none and 1 = zstd are known)"),
        (lambda d: d.__setitem__(slice(40, 48), struct.pack("=Q", 10**6)), "Invalid string table offset: 1000000 "),
        (lambda d: d.__setitem__(slice(48, 56), struct.pack("=Q", 10)), "Invalid frame table offset: 10 is before"),
        (lambda d: d.__setitem__(slice(48, 56), struct.pack("=Q", 70)), "Invalid table offsets: string table"),
        (lambda d: d.__setitem__(slice(60, 64), struct.pack("=I", 0x4E)), "Invalid profiling mode in header: 6"),
        (lambda d: d.__delitem__(slice(-40, -32)), "File size mismatch: the footer records"),
        (lambda d: d.__setitem__(slice(64 + 12, 64 + 13), b"\x07"), "Unknown stack encoding: 7"),
    ],
    ids=["version", "compression", "str-offset", "frame-offset", "order", "mode", "truncated", "encoding"],
)
def test_malformed_headers_and_records(tmp_path, damage, message):
    path = one_sample_file(tmp_path, 1)
    rewrite(path, damage)
    assert open_error(path).startswith(message)


def test_malformed_sample_data(tmp_path):
    def fresh(stack=(F_LEAF, F_MAIN)):
        path = tmp_path / "s.bin"
        encode(path, [(START_US + 1000, [ThreadSample(1, 0, stack)])])
        return path

    # FULL record at 64: tid(8) interp(4) enc(1) delta(2) status(1) depth(1) indices
    path = fresh()
    rewrite(path, lambda d: d.__setitem__(slice(64 + 16, 64 + 18), b"\x81\x04"))  # depth 513
    assert open_error(path) == "Stack depth 513 exceeds capacity 256"
    path = fresh()
    rewrite(path, lambda d: d.__setitem__(64 + 17, 0x33))
    assert open_error(path) == "Invalid frame index: 51"
    path = fresh()
    rewrite(path, lambda d: d.__setitem__(slice(64 + 13, 64 + 19), b"\xff" * 6))  # a varint that never ends
    assert open_error(path).startswith("Malformed varint in sample data")


def test_zstd_damage(tmp_path):
    path = tmp_path / "z.bin"
    encode(path, rich_ticks(100), compression="zstd")
    data = path.read_bytes()
    str_off = read_field(path, 40, "Q")
    # Garbage in place of the zstd stream.
    bad = bytearray(data)
    bad[64:68] = b"\x00\x01\x02\x03"
    path.write_bytes(bytes(bad))
    assert open_error(path).startswith("zstd decompression error")
    # A stream cut short: the tables move up and the offsets follow.
    cut = 10
    short = bytearray(data[: str_off - cut] + data[str_off:])
    short[40:48] = struct.pack("=Q", str_off - cut)
    short[48:56] = struct.pack("=Q", read_field(path, 48, "Q") - cut)
    short[-24:-16] = struct.pack("=Q", len(short))
    path.write_bytes(bytes(short))
    assert open_error(path) == "Incomplete zstd frame: data may be truncated"


def test_what_other_writers_may_put_in_a_file(tmp_path):
    """Opcodes, concatenated zstd frames, the older 32-byte stats block, no recorded file size."""
    frame = Frame("a.py", "f", 5, 5, 1, 3)  # every field a one-byte varint: a 7-byte entry
    ticks = [(START_US + 1000 * (i + 1), [ThreadSample(1, HAS_GIL, (frame,) if i % 3 else (frame, F_MAIN))])
             for i in range(30)]
    path = tmp_path / "plain.bin"
    encode(path, ticks)
    data = bytearray(path.read_bytes())
    str_off, frame_off = read_field(path, 40, "Q"), read_field(path, 48, "Q")
    assert data[frame_off:frame_off + 7] == bytes([0, 1, 10, 0, 2, 4, 255])
    data[frame_off + 6] = 90  # an opcode (Tachyon's --opcodes): kept in Frame.opcode
    region = bytes(data[64:str_off])
    split = len(region) // 2
    packed = zstandard.ZstdCompressor(level=5).compress(region[:split]) + zstandard.ZstdCompressor().compress(
        region[split:])
    tail = bytes(data[str_off:-32])
    old_stats = struct.pack("=dd8sII", 3.0, 1000.0, STATS_SIGNATURE, 1, 32)
    out = bytearray(data[:64]) + packed + tail + old_stats + bytes(32)
    struct.pack_into("=QQI", out, 40, 64 + len(packed), 64 + len(packed) + frame_off - str_off, 1)
    struct.pack_into("=II", out, len(out) - 32, *struct.unpack_from("=II", data, len(data) - 32))  # size 0
    path.write_bytes(bytes(out))
    reader, items = decode(path)
    assert reader.compression == "zstd"
    with_opcode = frame._replace(opcode=90)
    assert by_thread_decoded(items) == by_thread_expected(
        [(t, [s._replace(frames=tuple(with_opcode if f == frame else f for f in s.frames)) for s in samples])
         for t, samples in ticks])
    run = reader.run_stats()
    assert (run.duration_s, run.samples, run.errors, run.missed) == (3.0, 3000, 0, 0)
    assert run.opcodes and not run.native  # no capture flags: the frames say it


# -- hypothesis: any sample sequence comes back exactly ---------------------------------------------

FRAME_POOL = [F_MAIN, F_RUN, F_LEAF, F_UNI, F_HTML, F_BIG, F_NOCOL, F_ENDLESS, F_NATIVE, GC_FRAME] + [
    Frame(f"/p/m{i}.py", f"g{i}", i * 37 + 1, i * 37 + 1 + i % 3, i % 50, i % 50 + 7) for i in range(150)
]

sample_lists = st.lists(
    st.tuples(
        st.integers(0, 5_000),  # timestamp step
        st.lists(
            st.tuples(
                st.sampled_from([1, 2, 0x7FFF12345678, 2**64 - 1]),
                st.sampled_from([0, 1, 7]),
                st.integers(0, 255),
                st.lists(st.sampled_from(FRAME_POOL), max_size=40).map(tuple),
            ),
            max_size=4,
            unique_by=lambda t: (t[0], t[1]),
        ),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=sample_lists, compression=st.sampled_from(["none", "zstd"]), fmt=st.sampled_from([1, 2]),
       order=st.sampled_from(["<", ">"]))
def test_hypothesis_round_trip(tmp_path, raw, compression, fmt, order):
    ts = START_US
    ticks = []
    for step, threads in raw:
        ts += step
        ticks.append((ts, [ThreadSample(tid, status, frames, interp) for tid, interp, status, frames in threads]))
    path = tmp_path / "h.bin"
    encode(path, ticks, compression=compression, format_version=fmt, order=order)
    _, items = decode(path)
    assert by_thread_decoded(items) == by_thread_expected(ticks)


# -- real runs -------------------------------------------------------------------------------------


def replay(*args):
    res = heatline("replay", *args)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return res


RUN_INTERPRETERS = [i for i in INTERPRETERS if i.label.startswith(("current", "pyenv-3.9", "pyenv-3.13"))]


@pytest.mark.parametrize("interp", RUN_INTERPRETERS, ids=[i.label for i in RUN_INTERPRETERS])
def test_real_run_replays_to_collapsed_and_pstats(tmp_path, interp):
    binary = tmp_path / "run.bin"
    res = heatline("run", "--python", interp.path, "-d", "1.5", "--binary", "-o", str(binary),
                   target("known_lines.py"), "30")
    assert res.returncode == 0, res.stderr
    assert "Binary profile statistics:" in res.stderr and "Pop-push records:" in res.stderr
    reader = open_binary_profile(binary)
    target_version = os.path.basename(os.path.dirname(os.path.dirname(interp.path)))
    if re.fullmatch(r"\d+\.\d+\.\d+", target_version):
        assert reader.python_version == target_version
    assert reader.compression == "zstd" and reader.version == 1 and reader.mode == "wall"
    assert reader.capture_config == {"all_threads": False, "native": False, "gc": True, "opcodes": False,
                                     "blocking": False}
    assert read_field(binary, 60, "I") == 0x49  # what Tachyon 3.15.2 writes for the same options
    run = reader.run_stats()
    assert 1.3 < run.duration_s < 2.5 and run.interval_usec == 1000 and run.sample_rate > 500
    assert reader.sample_count > 700

    collapsed = tmp_path / "run.txt"
    res = replay(str(binary), "--collapsed", "-o", str(collapsed))
    assert f"Replaying {reader.sample_count:,} samples from {binary}" in res.stderr
    assert "Compression: zstd" in res.stderr and f"Replayed {reader.sample_count:,} samples" in res.stderr
    rows = parse_collapsed(str(collapsed))
    total = sum(c for *_x, c in rows)
    # samples taken while only heatline's launcher ran have no stack: a few ms of start-up, more on
    # a busy machine
    assert reader.sample_count - max(3, reader.sample_count // 100) <= total <= reader.sample_count
    assert not any(has_func(f, "_run_script") for _t, f, _c in rows)  # heatline's launcher is left out
    inner = weight_where(rows, lambda f: f[-1] in ("known_lines.py:inner:7", "known_lines.py:inner:8"))
    assert inner / total > 0.95  # the loop in inner() is where the time goes
    assert weight_where(rows, lambda f: f[-1] == "known_lines.py:inner:8") > 0.3 * total
    under_main = weight_where(rows, lambda f: has_func(f, "inner") and f[-2] == "known_lines.py:main:21")
    assert under_main >= 0.99 * inner  # inner() is called from main() line 21

    stats_file = tmp_path / "run.pstats"
    replay(str(binary), "--pstats", "-o", str(stats_file))
    st_ = pstats.Stats(str(stats_file))
    hot = [v for k, v in st_.stats.items() if k[2] == "inner" and k[1] == 8]
    assert hot and hot[0][0] > 0.3 * total
    main_rows = [v for k, v in st_.stats.items() if k[2] == "main" and k[1] == 21]
    assert main_rows and main_rows[0][1] > 0.95 * total  # cumulative: main is under every sample

    table = replay(str(binary), "--pstats", "--sort", "cumtime", "-l", "3").stdout
    assert "known_lines.py:8(inner)" in table or "known_lines.py:21(main)" in table


def test_real_run_proportions_uncompressed(tmp_path):
    """A 70/30 target keeps its split through --binary --compression none and replay."""
    binary = tmp_path / "hot.bin"
    res = heatline("run", "-d", "2.5", "--binary", "--compression", "none", "-o", str(binary),
                   os.path.join(EXAMPLES, "hotspots.py"), "10")
    assert res.returncode == 0, res.stderr
    reader = open_binary_profile(binary)
    assert reader.compression == "none" and read_field(binary, 56, "I") == 0
    collapsed = tmp_path / "hot.txt"
    res = replay(str(binary), "--collapsed", "-o", str(collapsed))
    assert "Compression: none" in res.stderr
    rows = parse_collapsed(str(collapsed))
    parse = weight_where(rows, lambda f: has_func(f, "parse_records"))
    check = weight_where(rows, lambda f: has_func(f, "checksum"))
    assert abs(parse / (parse + check) - 0.70) <= 0.05


def test_real_run_all_threads_and_mode(tmp_path, spawn):
    from conftest import wait_ready

    p = spawn(sys.executable, target("io_vs_cpu.py"))
    wait_ready(p)
    binary = tmp_path / "threads.bin"
    res = heatline("attach", str(p.pid), "-a", "-d", "1", "--mode", "cpu", "--binary", "-o", str(binary))
    assert res.returncode == 0, res.stderr
    reader = open_binary_profile(binary)
    assert reader.mode == "cpu"
    assert reader.capture_config["all_threads"] and reader.capture_config["gc"]
    collapsed = tmp_path / "threads.txt"
    replay(str(binary), "--collapsed", "-o", str(collapsed))
    rows = parse_collapsed(str(collapsed))
    assert weight_where(rows, lambda f: has_func(f, "busy")) > 500
    assert weight_where(rows, lambda f: has_func(f, "blocked_in_io")) == 0  # off CPU: not in a cpu profile
    # Without --mode cpu both threads are there, each with its own thread id.
    res = heatline("attach", str(p.pid), "-a", "-d", "1", "--no-gc", "--binary", "-o", str(binary))
    assert res.returncode == 0, res.stderr
    reader = open_binary_profile(binary)
    assert reader.thread_count == 2
    assert reader.capture_config["all_threads"] and not reader.capture_config["gc"]
    _, items = decode(binary)
    tids = {t[0].thread_id for _, t, _ in items}
    assert len(tids) == 2 and p.pid in tids
    statuses = {t[0].status for _, t, _ in items if any(f.funcname == "blocked_in_io" for f in t[0].frames)}
    assert statuses and not any(s & ON_CPU for s in statuses)


def test_replay_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a profile at all" * 10)
    for path, expected in [(bad, NOT_A_PROFILE), (tmp_path / "missing.bin", "Input file not found")]:
        res = heatline("replay", str(path), "--collapsed", "-o", str(tmp_path / "out.txt"))
        assert res.returncode == 1
        assert "Traceback" not in res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("heatline: ") and expected in lines[0]
        assert not (tmp_path / "out.txt").exists()
    # A file that fails half-way through its samples: still one line, and no output written.
    path = one_sample_file(tmp_path, 1)
    patch(path, 28, "Q", 5)
    res = heatline("replay", str(path), "--collapsed", "-o", str(tmp_path / "out.txt"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        "heatline: Sample count mismatch: header declares 5 samples but replay decoded 1"
    )
    assert not (tmp_path / "out.txt").exists()
    # --compression belongs to --binary; replay does not write binary files.
    res = heatline("run", "--compression", "none", "--collapsed", target("known_lines.py"))
    assert res.returncode == 2 and "--compression" in res.stderr
    res = heatline("replay", str(path), "--binary")
    assert res.returncode == 2


# -- fuzz: mutated real files fail cleanly ----------------------------------------------------------


class Hang(Exception):
    pass


def _alarm(_signum, _frame):
    raise Hang


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory):
    """Small real profiles: a real run (zstd and none), a big-endian version-2 file, and a file with
    the header older heatline versions wrote."""
    d = tmp_path_factory.mktemp("fuzz")
    files: list = []
    for compression in ("zstd", "none"):
        path = d / f"real-{compression}.bin"
        res = heatline("run", "-d", "0.25", "-r", "2khz", "--binary", "--compression", compression, "-o", str(path),
                       target("known_lines.py"), "30")
        assert res.returncode == 0, res.stderr
        files.append(path.read_bytes())
    path = d / "rich.bin"
    encode(path, rich_ticks(40), format_version=2, order=">", run=stats(duration_s=0.1, samples=40, attempts=41))
    files.append(path.read_bytes())
    files.append(to_old_layout(files[0]))
    return [Seed(data, d / "seed.bin") for data in files]


class Seed:
    """A real file split into header, sample data (decompressed) and tables + footer."""

    def __init__(self, data: bytes, path) -> None:
        path.write_bytes(data)
        reader = open_binary_profile(path)
        self.data = data
        self.order = "<" if reader.byte_order == "little" else ">"
        self.offsets = OLD if reader.old_layout else OFFSETS[reader.version]
        self.zstd = reader.compression == "zstd"
        self.string_offset, self.frame_offset = reader.string_table_offset, reader.frame_table_offset
        region = data[64:self.string_offset]
        self.raw = zstandard.ZstdDecompressor().decompressobj().decompress(region) if self.zstd else region

    def build(self, raw: bytes, tail_edit=None) -> bytes:
        """The file around new sample data (and optionally edited tables), offsets and size fixed."""
        region = zstandard.ZstdCompressor(level=5).compress(raw) if self.zstd else raw
        tables = bytearray(self.data[self.string_offset:])
        shift = 0
        if tail_edit is not None:
            shift = tail_edit(tables)  # bytes added (or removed) inside the string table
        header = bytearray(self.data[:64])
        string_offset = 64 + len(region)
        for name, value in (("strings", string_offset), ("frames", string_offset + self.frame_offset
                                                          - self.string_offset + shift)):
            offset, fmt = self.offsets[name]
            struct.pack_into(self.order + fmt, header, offset, value)
        data = bytearray(header + region + tables)
        if len(data) >= 32:
            struct.pack_into(self.order + "Q", data, len(data) - 24, len(data))
        return bytes(data)


def _edit(buf: bytearray, rng: random.Random) -> int:
    """One random edit in place; returns the change in length and where it happened."""
    n = len(buf)
    pos = rng.randrange(n) if n else 0
    kind = rng.randrange(7)
    if kind == 0 and n:  # bit flips
        for _ in range(rng.randint(1, 3)):
            p = rng.randrange(n)
            buf[p] ^= 1 << rng.randrange(8)
        return 0
    if kind == 1:  # insertion
        extra = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        buf[pos:pos] = extra
        return len(extra)
    if kind == 2:  # deletion
        gone = len(buf[pos:pos + rng.randint(1, 16)])
        del buf[pos:pos + gone]
        return -gone
    if kind == 3:  # a varint that overflows, or one cut short at the end
        extra = b"\xff" * rng.randint(5, 12) + rng.choice((b"\x7f", b""))
        buf[pos:pos] = extra
        return len(extra)
    if kind == 4:  # truncation
        gone = n - pos
        del buf[pos:]
        return -gone
    if kind == 5 and n:  # random bytes over a span
        span = min(rng.randint(1, 8), n - pos)
        buf[pos:pos + span] = bytes(rng.randrange(256) for _ in range(span))
        return 0
    span = bytes(buf[pos:pos + rng.randint(1, 64)])  # a repeated span (records, table entries)
    buf[pos:pos] = span
    return len(span)


def mutate(seed: Seed, rng: random.Random) -> bytes:
    """Damage at one of three depths, so every parser stage sees broken input:
    the sample records (re-compressed, with the container repaired around them), the string
    and frame tables (container repaired), or the raw file (header, footer, zstd stream)."""
    depth = rng.random()
    if depth < 0.5:
        raw = bytearray(seed.raw)
        for _ in range(rng.choice((1, 1, 2, 3))):
            _edit(raw, rng)
        return seed.build(bytes(raw))
    if depth < 0.7:
        def edit_tables(tables: bytearray) -> int:
            body = bytearray(tables[:-32])
            limit = seed.frame_offset - seed.string_offset
            before = len(body)
            _edit(body, rng)
            tables[:-32] = body
            # Edits inside the string table move the frame table (known when the edit was there).
            return len(body) - before if rng.random() < 0.5 or limit >= len(body) else 0
        return seed.build(seed.raw, edit_tables)
    data = bytearray(seed.data)
    for _ in range(rng.choice((1, 1, 2))):
        if rng.random() < 0.4 and len(data) >= 96:  # a header or footer field set to an extreme value
            n = len(data)
            field = rng.choice([4, 8, 12, 20, 28, 32, 36, 40, 44, 48, 52, 56, 60, n - 32, n - 28, n - 24])
            value = rng.choice([0, 1, 2, 0xFF, 0xFFFF, 0xFFFFFFFF, 2**63, 2**64 - 1, n, n + 1, rng.randrange(2**32)])
            width = rng.choice((4, 8))
            if 0 <= field <= n - width:
                data[field:field + width] = value.to_bytes(8, rng.choice(("little", "big")))[:width]
        else:
            _edit(data, rng)
    return bytes(data)


def replay_bytes(path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        reader = open_binary_profile(path)
        reader.run_stats()
        done = 0
        for batch in (False, True):
            done = 0
            for ts, threads, weight in reader.samples(batch=batch):
                assert weight >= 1 and len(threads) == 1 and 0 <= ts < 2**64
                done += weight
                assert done <= reader.sample_count
        reader.check_complete(done)
    except ProfileFileError as err:
        message = str(err)
        assert message and "\n" not in message
        assert not message.startswith((CORRUPT, CORRUPT_TABLES)), message  # every case has its own message


def test_fuzz_mutated_real_files(tmp_path, seed_files):
    rng = random.Random(20260917)
    path = tmp_path / "fuzz.bin"
    old = signal.signal(signal.SIGALRM, _alarm)
    cases = 0
    try:
        for i in range(3600):
            data = mutate(seed_files[i % len(seed_files)], rng)
            signal.setitimer(signal.ITIMER_REAL, 20.0)  # a hang guard, not a timing check
            try:
                replay_bytes(path, data)
            except Hang:
                pytest.fail(f"case {i} did not finish")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            cases += 1
    finally:
        signal.signal(signal.SIGALRM, old)
    assert cases == 3600


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_hypothesis(tmp_path, seed_files, data):
    seed = data.draw(st.sampled_from(seed_files)).data
    n = len(seed)
    edits = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.binary(max_size=12), st.integers(0, 12)),
                               min_size=1, max_size=4))
    buf = bytearray(seed)
    for pos, insert, delete in edits:
        pos = min(pos, len(buf))
        buf[pos:pos + delete] = insert
    replay_bytes(tmp_path / "h.bin", bytes(buf))


def test_every_truncation_of_a_small_file(tmp_path):
    path = tmp_path / "t.bin"
    encode(path, rich_ticks(12), compression="zstd", run=stats(duration_s=0.1, samples=12, attempts=12))
    data = path.read_bytes()
    for cut in range(len(data)):
        replay_bytes(tmp_path / "cut.bin", data[:cut])
        with pytest.raises(ProfileFileError):
            decode(tmp_path / "cut.bin")
