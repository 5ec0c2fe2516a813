"""Hostile input files: what a file claims must not set how much memory or time loading takes.

A valid binary header in front of a gigabyte of sparse zeros, FIFOs and device nodes where a
profile should be, and crafted pstats and collapsed files (a callers table shared by every row,
non-finite or non-integer line numbers, negative and huge counts) must each end quickly, with
small memory, in one line naming what is wrong: from `heatline replay` and from the loaders the
language server uses. (The server itself is fed the same files in tests/test_lsp_server.py.)
"""

from __future__ import annotations

import marshal
import os
import resource
import stat
import subprocess
import sys
import time

import pytest

from conftest import ROOT, heatline
from sampler.collectors.binary import BinaryCollector
from sampler.collectors.pstats import PstatsCollector
from sampler.errors import ProfileFileError
from sampler.loaders import load_profile
from sampler.model import MAIN_THREAD, Frame, Profile, RunStats, ThreadSample
from sampler.replay import open_binary_profile

GIB = 1 << 30
PEAK_LIMIT_KB = 300 * 1024
START_US = 7_000_000_000


def small_profile() -> Profile:
    profile = Profile(RunStats(pid=4242, python_version="3.12.1", mode="wall", interval_usec=1000,
                               start_monotonic_us=START_US))
    stack = (Frame("a.py", "f", 3), Frame("a.py", "main", 9))
    for i in range(100):
        profile.collect(START_US + i * 1000, [ThreadSample(1, MAIN_THREAD, stack)], 1)
    return profile


def write_binary(path, compression: str = "none") -> None:
    profile = small_profile()
    collector = BinaryCollector(Profile(profile.stats), compression=compression)
    stack = (Frame("a.py", "f", 3), Frame("a.py", "main", 9))
    for i in range(100):
        collector.collect(START_US + i * 1000, [ThreadSample(1, MAIN_THREAD, stack)])
    collector.write(str(path))


def sparse_after_header(path, size: int = GIB) -> None:
    """A real header (and its tables) followed by zeros up to `size`: no disk used."""
    write_binary(path)
    with open(path, "r+b") as fh:
        fh.truncate(size)


def one_line(message: str) -> str:
    assert "\n" not in message.strip() and "Traceback" not in message, message
    return message


def load_error(path) -> str:
    started = time.monotonic()
    with pytest.raises(ProfileFileError) as info:
        load_profile(str(path))
    assert time.monotonic() - started < 5, "loading a hostile file must end within seconds"
    return one_line(str(info.value))


def measured(*command: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, int]:
    """`command` run in a subprocess, and its peak RSS in KiB.

    Measured from a small intermediate process that runs `command` and reads its own
    RUSAGE_CHILDREN ru_maxrss: Linux carries a process's peak across exec, so a child forked
    straight from this (large) pytest process would report pytest's peak, not its own."""
    code = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(proc.stderr); sys.stdout.write(proc.stdout)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(proc.returncode)\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code, *command],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    *lines, peak = proc.stderr.strip().splitlines()
    proc.stderr = "\n".join(lines) + "\n"
    return proc, int(peak)


def run_measured(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, int]:
    """The CLI run in a subprocess, and its peak RSS in KiB."""
    return measured(sys.executable, "-m", "sampler", *args, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("heatline:")]


# -- binary files --------------------------------------------------------------------------------


def test_replay_of_a_header_and_a_gigabyte_of_sparse_zeros_stays_small(tmp_path):
    path = tmp_path / "sparse.bin"
    sparse_after_header(path)
    assert os.stat(path).st_blocks * 512 < 1 << 20  # sparse indeed: no disk used
    started = time.monotonic()
    proc, peak_kb = run_measured("replay", str(path), "--collapsed", "-o", str(tmp_path / "out.txt"))
    assert time.monotonic() - started < 20
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(error_lines(proc.stderr)) == 1, proc.stderr
    assert peak_kb < PEAK_LIMIT_KB, f"replay peaked at {peak_kb // 1024} MiB"


def test_sparse_tables_claiming_many_entries_are_read_piecewise(tmp_path):
    """A footer claiming a million strings and frames over the zeros: the zeros do hold that
    many (empty strings, frames naming the first string), so the file replays; but the tables
    are walked entry by entry (equal entries shared), never read whole."""
    path = tmp_path / "claims.bin"
    sparse_after_header(path, 256 << 20)
    with open(path, "r+b") as fh:
        fh.seek(-32, os.SEEK_END)
        fh.write((10**6).to_bytes(4, "little") + (10**6).to_bytes(4, "little"))
    proc, peak_kb = run_measured("replay", str(path), "--collapsed", "-o", str(tmp_path / "out.txt"))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0 or len(error_lines(proc.stderr)) == 1, proc.stderr
    assert peak_kb < PEAK_LIMIT_KB, f"replay peaked at {peak_kb // 1024} MiB"


def test_a_huge_string_length_is_cut_not_held(tmp_path):
    """A string whose length spans 200 MB of zeros comes back cut short with a marker."""
    path = tmp_path / "long.bin"
    write_binary(path)
    data = bytearray(path.read_bytes())
    reader = open_binary_profile(path)
    s_off = reader.string_table_offset
    # Make the first string 200 MB long: its length varint, then zeros up to the old tables.
    length = 200 << 20
    varint = bytearray()
    n = length
    while True:
        byte = n & 0x7F
        n >>= 7
        varint.append(byte | (0x80 if n else 0))
        if not n:
            break
    first_len = data[s_off]
    rest = data[s_off + 1 + first_len:]
    new = data[:s_off] + varint + bytes(length) + rest
    delta = len(new) - len(data)
    new[48:56] = (int.from_bytes(new[48:56], "little") + delta).to_bytes(8, "little")  # frame table
    new[-24:-16] = len(new).to_bytes(8, "little")  # footer's file size
    path.write_bytes(new)
    reader = open_binary_profile(path)
    assert reader.strings[0].endswith("[truncated]") and len(reader.strings[0]) < 100_000


def test_a_zstd_bomb_is_cut_at_what_the_samples_can_hold(tmp_path):
    import zstandard

    path = tmp_path / "bomb.bin"
    write_binary(path, compression="zstd")
    data = bytearray(path.read_bytes())
    reader = open_binary_profile(path)
    s_off = reader.string_table_offset
    compressor = zstandard.ZstdCompressor(level=19).compressobj()
    zeros = bytes(1 << 20)
    bomb = b"".join(compressor.compress(zeros) for _ in range(512)) + compressor.flush()  # 512 MiB of zeros
    new = data[:64] + bomb + data[s_off:]
    delta = len(new) - len(data)
    for offset in (40, 48):
        new[offset:offset + 8] = (int.from_bytes(new[offset:offset + 8], "little") + delta).to_bytes(8, "little")
    new[-24:-16] = len(new).to_bytes(8, "little")
    path = tmp_path / "bomb2.bin"
    path.write_bytes(new)
    proc, peak_kb = run_measured("replay", str(path), "--collapsed", "-o", str(tmp_path / "out.txt"))
    assert proc.returncode != 0 and len(error_lines(proc.stderr)) == 1, proc.stderr
    assert peak_kb < PEAK_LIMIT_KB, f"replay peaked at {peak_kb // 1024} MiB"
    # Zeros fail the decoder's first record; the decompressed stream itself (read directly here)
    # stops once it exceeds what the header's 100 samples could ever need.
    with pytest.raises(ProfileFileError, match="decompresses to more than 100 samples can hold"):
        for _ in open_binary_profile(path)._zstd_pieces():
            pass


# -- not regular files ---------------------------------------------------------------------------


def special_files(tmp_path) -> dict[str, str]:
    """A FIFO, and copies of /dev/zero and /dev/null made with mknod (where allowed)."""
    fifo = tmp_path / "profile.fifo"
    os.mkfifo(fifo)
    files = {"a FIFO": str(fifo), "a directory": str(tmp_path)}
    for name in ("zero", "null"):
        node = tmp_path / f"{name}.bin"
        try:
            os.mknod(node, stat.S_IFCHR | 0o600, os.stat(f"/dev/{name}").st_rdev)
        except PermissionError:
            continue
        files[f"a character device ({name})"] = str(node)
    return files


def test_replay_refuses_fifos_and_devices_at_once(tmp_path):
    for kind, path in special_files(tmp_path).items():
        started = time.monotonic()
        proc = heatline("replay", path, "--collapsed", "-o", str(tmp_path / "out.txt"), timeout=30)
        assert time.monotonic() - started < 10, kind
        assert proc.returncode == 1, (kind, proc.stderr)
        (line,) = error_lines(proc.stderr)
        assert f"is {kind.split(' (')[0]}, not a profile file" in line, line


def test_loaders_refuse_fifos_and_devices_at_once(tmp_path):
    for kind, path in special_files(tmp_path).items():
        assert f"is {kind.split(' (')[0]}, not a profile file" in load_error(path)


def test_loaders_keep_memory_small_on_sparse_files(tmp_path):
    """Through the loaders (the server's path): the sparse binary file, and a sparse file that
    is not binary (a NUL-filled 'collapsed' file, whose first line never ends)."""
    sparse = tmp_path / "sparse.bin"
    sparse_after_header(sparse)
    text = tmp_path / "zeros.txt"
    with open(text, "wb") as fh:
        fh.truncate(GIB)
    code = (
        "import sys\n"
        "from sampler.loaders import load_profile\n"
        "from sampler.errors import ProfileFileError\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        load_profile(path)\n"
        "    except ProfileFileError as err:\n"
        "        print(err)\n"
    )
    proc, peak_kb = measured(sys.executable, "-c", code, str(sparse), str(text))
    assert proc.returncode == 0, proc.stderr
    errors = proc.stdout.strip().splitlines()
    assert len(errors) == 2, proc.stdout
    assert "Invalid frame index" in errors[0]
    assert "not a profile heatline can open" in errors[1]
    assert peak_kb < PEAK_LIMIT_KB, f"loading peaked at {peak_kb // 1024} MiB"


# -- pstats --------------------------------------------------------------------------------------


def write_pstats(path, rows) -> str:
    path.write_bytes(marshal.dumps(rows))
    return str(path)


def test_a_callers_table_shared_by_every_row_is_refused_quickly(tmp_path):
    callers = {("b.py", j, "g"): (1, 1, 0.001, 0.001) for j in range(3000)}
    rows = {("a.py", i, "f"): (1000, 1000, 1.0, 1.0, callers) for i in range(5000)}
    path = write_pstats(tmp_path / "shared.pstats", rows)
    assert os.path.getsize(path) < 400_000  # the table is written once, referenced 5000 times
    assert "more callers than the file holds" in load_error(path)


@pytest.mark.parametrize("lineno", [float("inf"), float("nan"), "abc", -1, 2**40, 1.5, True])
def test_pstats_line_numbers_must_be_integers(tmp_path, lineno):
    path = write_pstats(tmp_path / "line.pstats", {("a.py", lineno, "f"): (5, 5, 0.005, 0.005, {})})
    assert "line number" in load_error(path)


@pytest.mark.parametrize("lineno", [float("inf"), "abc"])
def test_pstats_caller_line_numbers_must_be_integers(tmp_path, lineno):
    row = (5, 5, 0.005, 0.005, {("b.py", lineno, "g"): (5, 5, 0.005, 0.005)})
    path = write_pstats(tmp_path / "caller.pstats", {("a.py", 3, "f"): row})
    assert "line number" in load_error(path)


@pytest.mark.parametrize("value", [
    (-5, 5, 0.005, 0.005, {}),
    (5, -5, 0.005, 0.005, {}),
    (5, 5, float("inf"), 0.005, {}),
    (5, 5, 0.005, float("nan"), {}),
    (2**60, 2**60, 0.005, 0.005, {}),
    (5, 5, 0.005, 0.005, {("b.py", 1, "g"): (5, 5, float("inf"), 0.005)}),
    (5, 5, 0.005, 0.005, {("b.py", 1, "g"): -3}),
    ("5", 5, 0.005, 0.005, {}),
])
def test_pstats_counts_must_be_finite_and_non_negative(tmp_path, value):
    path = write_pstats(tmp_path / "counts.pstats", {("a.py", 3, "f"): value})
    assert "not finite non-negative numbers" in load_error(path)


@pytest.mark.parametrize("data", [
    b"{(" + (2**31 - 1).to_bytes(4, "little") + b"0",  # a tuple claiming 2**31 items
    b"{)\xff0",  # a small tuple claiming 255
    b"{l" + (2**30).to_bytes(4, "little"),  # an int claiming 2**30 digits
    b"{u" + (2**31 - 1).to_bytes(4, "little"),  # a string claiming 2 GiB
    b"{r\x05\x00\x00\x00",  # a reference to nothing
    b"{\xe3" + bytes(40),  # a code object
])
def test_marshal_sizes_are_checked_before_unmarshalling(tmp_path, data):
    path = tmp_path / "bomb.pstats"
    path.write_bytes(data)
    assert "corrupt or truncated pstats file" in load_error(path)


def test_heatline_pstats_files_still_load(tmp_path):
    path = tmp_path / "real.pstats"
    PstatsCollector(small_profile()).write(str(path))
    loaded = load_profile(str(path))
    assert loaded.kind == "pstats" and loaded.profile.total_weight == 100


# -- collapsed -----------------------------------------------------------------------------------


@pytest.mark.parametrize("content, expected", [
    (b"tid:1;a.py:f:3 inf\n", "not a collapsed-stack line"),
    (b"tid:1;a.py:f:3 nan\n", "not a collapsed-stack line"),
    (b"tid:1;a.py:f:3 -5\n", "not a collapsed-stack line"),
    ("tid:1;a.py:f:3 \u00b2\n".encode(), "not a collapsed-stack line"),  # a digit int() refuses
    (b"tid:1;a.py:f:3 " + b"9" * 5000 + b"\n", "not a collapsed-stack line"),
    (b"tid:1;a.py:f:3 9007199254740993\n", "out of range"),
    (b"a.py:f:3 9007199254740000\nb.py:g:4 9007199254740000\n", "out of range"),
    (b"tid:1;a.py:f:" + b"9" * 5000 + b" 5\n", "line number"),
    (b"tid:1;a.py:f:99999999999 5\n", "line number"),
])
def test_collapsed_counts_and_lines_are_checked(tmp_path, content, expected):
    path = tmp_path / "bad.collapsed"
    path.write_bytes(content)
    assert expected in load_error(path)


def test_a_collapsed_line_of_many_megabytes_is_refused(tmp_path):
    path = tmp_path / "long.collapsed"
    path.write_bytes(b"tid:1;" + b"a.py:f:1;" * (2 << 20) + b"a.py:f:1 5\n")
    assert "line longer than" in load_error(path)


def test_ordinary_collapsed_files_still_load(tmp_path):
    path = tmp_path / "ok.collapsed"
    path.write_bytes(b"tid:1;a.py:main:9;a.py:f:3 7\r\n<GC> 2\n\nb.py:g:1 1\n")
    loaded = load_profile(str(path))
    assert loaded.kind == "collapsed" and loaded.profile.total_weight == 10


def test_pstats_times_that_overflow_the_interval_are_clamped(tmp_path):
    """A denormal tottime makes the interval tiny and a caller's share infinite: clamped to the
    row's own count, never an OverflowError."""
    row = (5, 5, 5e-324, 5e-324, {("b.py", 1, "g"): (5, 5, 1.0, 1.0)})
    path = write_pstats(tmp_path / "tiny.pstats", {("a.py", 3, "f"): row})
    loaded = load_profile(str(path))
    assert loaded.profile.total_weight == 5
