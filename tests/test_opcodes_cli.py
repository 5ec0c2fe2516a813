"""--opcodes and --native at the command line: Tachyon's refusals, `dump`, the live stream and
the --binary file's opcode bytes and capture bits."""

from __future__ import annotations

import re
import struct

import pytest

from conftest import heatline, start_ready, target, wait_ready
from sampler.binaryfile.layout import CAPTURE_SHIFT, FLAGS_OFFSET
from sampler.binaryfile.writer import BinaryWriter
from sampler.cpython.opcodes import opcode_table
from sampler.model import HAS_GIL, NATIVE_FRAME, Frame, RunStats, ThreadSample
from sampler.replay import open_binary_profile
from test_live import live  # noqa: F401 - the fixture

OPCODES_REFUSED = ("heatline: error: --opcodes is only compatible with --live, --gecko, --flamegraph, "
                   "--diff_flamegraph, --heatmap, --binary.")
NOBODY = str(2**22 + 7)  # above pid_max's default: no such process


@pytest.mark.parametrize("fmt", ["", "--collapsed", "--pstats", "--jsonl", "--speedscope"])
def test_opcodes_refused_where_no_output_shows_them(fmt):
    res = heatline("attach", NOBODY, "--opcodes", *([fmt] if fmt else []))
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1] == OPCODES_REFUSED


@pytest.mark.parametrize("fmt", ["--gecko", "--flamegraph", "--heatmap", "--binary", "--live"])
def test_opcodes_taken_where_an_output_shows_them(fmt):
    res = heatline("attach", NOBODY, "--opcodes", "--native", fmt)
    # refused for another reason: no such process, or (--live) no terminal
    assert "only compatible" not in res.stderr and res.returncode in (1, 2), res.stderr
    assert "cannot find the process" in res.stderr or "terminal" in res.stderr, res.stderr


@pytest.mark.parametrize("command", ["attach", "dump"])
def test_native_refused_with_async_aware(command):
    res = heatline(command, NOBODY, "--native", "--async-aware")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        "heatline: error: Options --native are incompatible with --async-aware. "
        "Async-aware profiling uses task-based stack reconstruction.")


def test_help_says_what_the_flags_do():
    for command in ("run", "attach", "dump"):
        text = re.sub(r"\s+", " ", heatline(command, "--help").stdout)
        assert "--native Include artificial `<native>` frames to denote calls to non-Python code" in text
        assert "--opcodes" in text


def test_dump_names_each_frames_instruction(interpreter, spawn):
    proc = start_ready(spawn, interpreter, target("native_share.py"))
    res = heatline("dump", str(proc.pid), "--opcodes", "--native")
    assert res.returncode == 0, res.stderr
    files = [line for line in res.stdout.splitlines() if line.startswith("  File ")]
    assert files
    version = re.search(r"(\d+\.\d+)", interpreter.label).group(1) if "current" not in interpreter.label else ""
    table = opcode_table(version) if version else None
    for line in files:
        m = re.search(r"  opcode=([A-Z_0-9]+)( \(([A-Z_0-9]+)\))?$", line)
        assert m, line
        assert m.group(1) != "CACHE", line  # a 3.11/3.12 caller is read at its call, not its caches
        if table is not None:
            assert m.group(1) in table.mapping()["names"].values()
    # the interpreter's own entry from C sits at the root from 3.11 on
    if version and tuple(map(int, version.split("."))) >= (3, 11):
        lines = res.stdout.splitlines()
        assert lines[1] == "  <native>", res.stdout
    plain = heatline("dump", str(proc.pid))
    assert "opcode=" not in plain.stdout and "<native>" not in plain.stdout


def test_dump_task_tree_names_each_coroutines_instruction(interpreter, spawn):
    if interpreter.label.startswith(("pyenv-3.9", "pyenv-3.10")):
        pytest.skip("no asyncio reading before 3.11")
    proc = spawn(interpreter, target("async_tree.py"))
    wait_ready(proc)
    res = heatline("dump", str(proc.pid), "--opcodes", "--async-aware")
    assert res.returncode == 0, res.stderr
    frames = [line for line in res.stdout.splitlines() if re.match(r"\s+\S.* \(.*:\d+\)", line)]
    assert frames, res.stdout
    for line in frames:
        m = re.search(r"\)  opcode=([A-Z_0-9]+)( \([A-Z_0-9]+\))?$", line)
        assert m and m.group(1) != "CACHE", line


def test_live_stream_carries_opcodes_and_native(live):  # noqa: F811 - the fixture
    child = live("run", "-d", "1", "--opcodes", "--native", target("native_share.py"))
    start = child.next_message()
    assert start["type"] == "start", child.stderr()
    assert start["opcodes"] is True and start["native"] is True
    child.read_all()
    profile = child.reader.profile
    assert profile.stats.opcodes and profile.stats.native
    sent = [f for m in child.messages if m["type"] == "delta" for f in m["frames"]]
    assert sent and all(len(f) == 7 for f in sent)
    python = [f for f in sent if f[0] != "~"]
    assert sum(f[6] >= 0 for f in python) >= 0.9 * len(python)
    assert ["~", "<native>", 0, -1, -1, -1, -1] in sent


def test_binary_stores_opcodes_and_capture_bits(tmp_path):
    leaf = Frame("a.py", "f", 3, 3, 4, 9, 122)
    caller = Frame("a.py", "g", 7, 7, 0, 3, 171)
    stats = RunStats(python_version="3.12.1", opcodes=True, native=True)
    writer = BinaryWriter(stats, gc=True, compression="none")
    for i in range(5):
        writer.collect(1000 * (i + 1), [ThreadSample(1, HAS_GIL, (NATIVE_FRAME, leaf, caller))])
    path = tmp_path / "o.bin"
    with open(path, "wb") as fh:
        writer.dump(fh)
    flags = struct.unpack_from("=I", path.read_bytes(), FLAGS_OFFSET)[0]
    assert (flags >> CAPTURE_SHIFT) & 0b1010 == 0b1010  # native 2, opcodes 8
    reader = open_binary_profile(str(path))
    stacks = {t.frames for _ts, threads, _w in reader.samples() for t in threads}
    assert stacks == {(NATIVE_FRAME, leaf, caller)}
    run = reader.run_stats()
    assert run.opcodes and run.native and reader.capture_config["opcodes"] and reader.capture_config["native"]
