"""Output paths (issue 11): devices, FIFOs and stdout are written into, never replaced; a bad
destination is refused before the target starts; a write that fails at the end saves the profile
elsewhere and says where.

Devices are copies made with mknod in a temporary directory (never the real /dev ones); the
profiles are checked for the functions the target is known to run, not just for bytes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import stat
import subprocess
import sys
import threading

import pytest

from conftest import ROOT, heatline, parse_collapsed

from sampler.errors import OutputPathError, OutputSavedElsewhereError
from sampler.output_path import check_output, own_fd, write_output

HOTSPOTS = os.path.join(ROOT, "examples", "hotspots.py")
KNOWN = (b"parse_records", b"checksum")  # what hotspots.py spends its time in
RUN_S = "0.4"  # hotspots.py's own run length (its argument), not a timing assertion
FORMATS = ["--collapsed", "--pstats", "--jsonl", "--gecko", "--speedscope", "--flamegraph", "--binary"]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


def char_device_copy(path) -> str:
    """A character device with /dev/null's numbers: writes vanish, as into /dev/null."""
    os.mknod(path, 0o666 | stat.S_IFCHR, os.stat("/dev/null").st_rdev)
    return str(path)


def full_device_copy(path) -> str:
    """/dev/full's numbers: every write fails with ENOSPC."""
    os.mknod(path, 0o666 | stat.S_IFCHR, os.stat("/dev/full").st_rdev)
    return str(path)


class FifoReader:
    """Reads a FIFO to its end in a thread, whatever the writer does.

    The test holds a write end of its own until `result()`, so the reader never waits on an
    open that may never come (a FIFO replaced by a file has no writer): it sees the end of the
    data once heatline has exited and that end is closed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.data = b""
        self._read_fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._keeper = os.open(path, os.O_WRONLY)
        os.set_blocking(self._read_fd, True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self._read_fd, "rb") as fh:
            self.data = fh.read()

    def result(self) -> bytes:
        os.close(self._keeper)
        self.thread.join()
        return self.data


def assert_known_profile(data: bytes) -> None:
    for name in KNOWN:
        assert name in data, f"{name!r} missing from the output ({len(data)} bytes): {data[:300]!r}"


def assert_known_rows(rows: list[tuple[int, list[str], int]]) -> None:
    # a synthetic leaf (`<GC>`, collected during an import) has no file:func:line form
    leaves = {frames[-1].split(":")[1] for _tid, frames, _count in rows if frames and frames[-1].count(":") >= 2}
    assert {"parse_records", "checksum"} <= leaves, leaves
    assert all(count > 0 for _tid, _frames, count in rows)


def assert_known_collapsed(text: str, tmp_path) -> None:
    """`text` is a whole collapsed profile of hotspots-like work (parsed as conftest does)."""
    copy = tmp_path / "collapsed-copy.txt"
    copy.write_text(text, encoding="utf-8")
    assert_known_rows(parse_collapsed(str(copy)))


def marker_script(tmp_path, extra: str = "") -> tuple[str, str]:
    """A target that leaves a marker file the moment it starts (then does `extra` and works)."""
    marker = str(tmp_path / "started.marker")
    script = tmp_path / "marked.py"
    script.write_text(
        "import os, shutil, sys, time\n"
        f"open({marker!r}, 'w').close()\n"
        f"{extra}\n"
        "def parse_records(n):\n"
        "    return sum(len(str(i * 7919)) for i in range(n))\n"
        "def checksum(n):\n"
        "    acc = 0\n"
        "    for i in range(n):\n"
        "        acc = (acc * 31 + i) & 0xFFFFFFFF\n"
        "    return acc\n"
        "end = time.process_time() + 0.4\n"
        "while time.process_time() < end:\n"
        "    parse_records(2000)\n"
        "    checksum(2000)\n"
    )
    return str(script), marker


# -- written into, never replaced ------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("flag", FORMATS)
def test_a_character_device_stays_a_device(tmp_path, flag):
    device = char_device_copy(tmp_path / "null")
    result = heatline("run", flag, "-o", device, HOTSPOTS, RUN_S)
    assert result.returncode == 0, result.stderr
    st = os.lstat(device)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.stat("/dev/null").st_rdev
    assert [p.name for p in tmp_path.iterdir()] == ["null"]  # no temporary file left behind


@pytest.mark.parametrize("flag", FORMATS)
def test_a_fifo_reader_gets_the_whole_profile(tmp_path, flag):
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    result = heatline("run", flag, "-o", fifo, HOTSPOTS, RUN_S)
    data = reader.result()
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert_known_profile(data)
    if flag == "--collapsed":
        assert_known_collapsed(data.decode(), tmp_path)
    elif flag == "--binary":  # complete: it replays
        saved = tmp_path / "copy.bin"
        saved.write_bytes(data)
        replayed = heatline("replay", str(saved), "--collapsed", "-o", str(tmp_path / "r.txt"))
        assert replayed.returncode == 0, replayed.stderr
        assert_known_rows(parse_collapsed(str(tmp_path / "r.txt")))


@needs_root
def test_a_symlink_to_a_device_keeps_both(tmp_path):
    device = char_device_copy(tmp_path / "null")
    link = tmp_path / "out.txt"
    link.symlink_to(device)
    result = heatline("run", "--collapsed", "-o", str(link), HOTSPOTS, RUN_S)
    assert result.returncode == 0, result.stderr
    assert os.readlink(link) == device and stat.S_ISCHR(os.lstat(device).st_mode)


def test_a_symlink_to_a_regular_file_replaces_the_file_and_keeps_the_link(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    result = heatline("run", "--collapsed", "-o", str(link), HOTSPOTS, RUN_S)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.is_file() and not real.is_symlink()
    assert_known_rows(parse_collapsed(str(real)))


def test_a_symlink_to_own_stdout_writes_to_stdout(tmp_path):
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")  # what /dev/stdout is
    result = heatline("run", "--collapsed", "-o", str(link), HOTSPOTS, RUN_S)
    assert result.returncode == 0, result.stderr
    assert os.readlink(link) == "/proc/self/fd/1"
    assert_known_collapsed(result.stdout, tmp_path)  # the summary went to stderr, not into the profile


def test_dash_is_stdout_for_text_formats(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = heatline("run", "--collapsed", "-o", "-", HOTSPOTS, RUN_S, cwd=str(cwd))
    assert result.returncode == 0, result.stderr
    assert_known_collapsed(result.stdout, tmp_path)
    assert list(cwd.iterdir()) == []  # no file named "-"
    assert "Captured" in result.stderr


def test_dash_binary_goes_to_a_pipe_and_replays(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-m", "sampler", "run", "--binary", "-o", "-", HOTSPOTS, RUN_S],
                            capture_output=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    saved = tmp_path / "piped.bin"
    saved.write_bytes(result.stdout)
    replayed = heatline("replay", str(saved), "--collapsed", "-o", str(tmp_path / "r.txt"))
    assert replayed.returncode == 0, replayed.stderr
    assert_known_rows(parse_collapsed(str(tmp_path / "r.txt")))


def test_dash_binary_is_refused_on_a_terminal(tmp_path):
    import pty

    script, marker = marker_script(tmp_path)
    leader, follower = pty.openpty()
    try:
        env = dict(os.environ, PYTHONPATH=ROOT)
        result = subprocess.run([sys.executable, "-m", "sampler", "run", "--binary", "-o", "-", script],
                                stdout=follower, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 1
    assert result.stderr.startswith("heatline: ") and "terminal" in result.stderr
    assert not os.path.exists(marker)


def test_dash_for_a_heatmap_is_refused_before_the_run(tmp_path):
    script, marker = marker_script(tmp_path)
    result = heatline("run", "--heatmap", "-o", "-", script)
    assert result.returncode == 1 and "heatline: " in result.stderr
    assert not os.path.exists(marker)


# -- refused before anything runs ------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--collapsed", "--binary", "--heatmap", "--pstats"])
@pytest.mark.parametrize("case", ["missing directory", "file as directory", "under /proc", "heatmap over a file"])
def test_a_bad_destination_is_refused_before_the_target_starts(tmp_path, flag, case):
    script, marker = marker_script(tmp_path)
    (tmp_path / "a_file").write_text("mine\n")
    output = {
        "missing directory": str(tmp_path / "no" / "such" / "out.txt"),
        "file as directory": str(tmp_path / "a_file" / "out.txt"),
        "under /proc": "/proc/heatline-output.txt",
        "heatmap over a file": str(tmp_path / "a_file"),
    }[case]
    result = heatline("run", flag, "-o", output, script)
    if case == "heatmap over a file" and flag != "--heatmap":
        # Any other format replaces a regular file: this one is fine.
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("heatline: "), result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(marker), "the target was started"
    assert (tmp_path / "a_file").read_text() == "mine\n"
    assert not os.path.exists("/proc/heatline-output.txt")


def test_attach_checks_the_destination_before_touching_the_process(tmp_path):
    # PID 1 exists but is never sampled: the output check comes first.
    result = heatline("attach", "--collapsed", "-o", str(tmp_path / "missing" / "x.txt"), "1")
    assert result.returncode == 1
    assert "does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_check_output_messages_say_what_is_wrong(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputPathError, match="does not exist"):
        check_output(str(tmp_path / "nope" / "x"))
    with pytest.raises(OutputPathError, match="is a file, not a directory"):
        check_output(str(tmp_path / "f" / "x"))
    with pytest.raises(OutputPathError, match="pseudo-filesystem"):
        check_output("/sys/heatline.txt")
    with pytest.raises(OutputPathError, match="not a directory"):
        check_output(str(tmp_path / "f"), directory=True)
    check_output(str(tmp_path / "new.txt"))
    check_output(str(tmp_path))  # a directory: the default name goes inside
    assert own_fd("/dev/stdout") == 1 and own_fd(str(tmp_path / "f")) is None


# -- a write that fails at the end keeps the profile -----------------------------------------------


def saved_path(stderr: str) -> str:
    match = re.search(r"saved to (\S+) instead", stderr)
    assert match, stderr
    return match.group(1)


@pytest.mark.parametrize("flag", ["--collapsed", "--binary"])
def test_a_directory_removed_mid_run_saves_the_profile_elsewhere(tmp_path, flag):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # The target itself removes the output directory once it runs: after the check, before the write.
    script, marker = marker_script(tmp_path, f"shutil.rmtree({str(out_dir)!r})")
    result = heatline("run", flag, "-o", str(out_dir / "profile.out"), script)
    assert result.returncode == 1
    assert os.path.exists(marker) and not out_dir.exists()
    saved = saved_path(result.stderr)
    try:
        assert "heatline: cannot write" in result.stderr and "Traceback" not in result.stderr
        if flag == "--collapsed":
            assert_known_rows(parse_collapsed(saved))
        else:
            replayed = heatline("replay", saved, "--collapsed", "-o", str(tmp_path / "r.txt"))
            assert replayed.returncode == 0, replayed.stderr
            assert_known_rows(parse_collapsed(str(tmp_path / "r.txt")))
    finally:
        os.unlink(saved)


def test_a_heatmap_whose_directory_vanished_is_saved_elsewhere(tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    script, _marker = marker_script(tmp_path, f"shutil.rmtree({str(out_dir)!r})")
    result = heatline("run", "--heatmap", "-o", str(out_dir / "hm"), script)
    assert result.returncode == 1, result.stderr
    saved = saved_path(result.stderr)
    try:
        index = open(os.path.join(saved, "index.html"), encoding="utf-8").read()
        assert "marked.py" in index
        pages = "".join(open(os.path.join(saved, n), encoding="utf-8").read() for n in os.listdir(saved))
        assert "parse_records" in pages
    finally:
        import shutil

        shutil.rmtree(saved)


@needs_root
def test_a_full_device_saves_the_profile_elsewhere(tmp_path):
    full = full_device_copy(tmp_path / "full")
    result = heatline("run", "--collapsed", "-o", full, HOTSPOTS, RUN_S)
    assert result.returncode == 1
    assert "No space left on device" in result.stderr
    assert stat.S_ISCHR(os.lstat(full).st_mode)
    saved = saved_path(result.stderr)
    try:
        assert_known_rows(parse_collapsed(saved))
    finally:
        os.unlink(saved)


def test_write_output_keeps_mode_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    assert write_output(str(path), lambda fh: fh.write(b"new")) == str(path)
    assert path.read_bytes() == b"new" and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["p.txt"]


def test_write_output_saves_elsewhere_when_the_directory_is_gone(tmp_path):
    gone = tmp_path / "gone"
    with pytest.raises(OutputSavedElsewhereError) as info:
        write_output(str(gone / "x.txt"), lambda fh: fh.write(b"the profile"))
    saved = saved_path(str(info.value))
    try:
        assert open(saved, "rb").read() == b"the profile"
    finally:
        os.unlink(saved)


# -- the language server's flame graph output ------------------------------------------------------


async def _flamegraph_outputs(profile: str, outputs: list[str]) -> list:
    from lsprotocol import types
    from pygls.exceptions import JsonRpcException
    from test_lsp_server import SERVER, init_params, make_client, plain

    client = make_client()
    await client.start_io(*SERVER)
    results = []
    try:
        await client.initialize_session(init_params())

        async def execute(command, *arguments):
            return plain(await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command=command, arguments=list(arguments))))

        await execute("heatline.open", profile)
        for out in outputs:
            try:
                results.append(await execute("heatline.flamegraph", {"output": out}))
            except JsonRpcException as err:
                results.append(err)
            results.append(await execute("heatline.status"))  # still serving
        await client.shutdown_session()
    finally:
        await client.stop()
    return results


@needs_root
def test_server_flamegraph_writes_into_devices_and_fifos(tmp_path):
    profile = str(tmp_path / "p.bin")
    made = heatline("run", "--binary", "-o", profile, HOTSPOTS, RUN_S)
    assert made.returncode == 0, made.stderr
    device = char_device_copy(tmp_path / "null")
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    missing = str(tmp_path / "missing" / "fg.html")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        results = pool.submit(asyncio.run, _flamegraph_outputs(profile, [device, fifo, missing])).result()
    data = reader.result()
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert results[0]["path"] == device and results[2]["path"] == fifo
    assert data.startswith(b"<!DOCTYPE html>") or data.lower().startswith(b"<!doctype html>")
    assert_known_profile(data)
    assert "does not exist" in str(results[4]) and not os.path.exists(os.path.dirname(missing))
    assert all(r["version"] for r in results[1::2])


# -- real filesystems: read-only and full ----------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs with the given options; unmounted after the test."""
    mounted = []

    def mount(name: str, options: str):
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=True)


@needs_root
def test_a_read_only_directory_is_refused_before_the_target_starts(tmp_path, tmpfs):
    read_only = tmpfs("ro", "ro,size=64k")
    script, marker = marker_script(tmp_path)
    result = heatline("run", "--collapsed", "-o", str(read_only / "out.txt"), script)
    assert result.returncode == 1
    assert result.stderr.strip() == f"heatline: cannot write {read_only / 'out.txt'}: the directory {read_only} is not writable"
    assert not os.path.exists(marker)


@needs_root
def test_a_full_filesystem_saves_the_profile_elsewhere(tmp_path, tmpfs):
    full = tmpfs("full", "size=64k")
    with open(full / "filler", "wb", buffering=0) as fh:  # unbuffered: nothing left to flush
        try:
            while fh.write(b"\0" * 4096):  # until no block is free
                pass
        except OSError:
            pass
    result = heatline("run", "--collapsed", "-o", str(full / "out.txt"), HOTSPOTS, RUN_S)
    assert result.returncode == 1
    assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in full.iterdir()) == ["filler"]  # the temporary file is gone
    saved = saved_path(result.stderr)
    try:
        assert_known_rows(parse_collapsed(saved))
    finally:
        os.unlink(saved)
