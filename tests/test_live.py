"""The live profiling child (`python -m sampler.live`) through a real pipe, and the reader that
rebuilds its profile. Targets are real processes under every CPython on the machine."""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import subprocess
import sys

import pytest

import sid_root
from conftest import ROOT, target, wait_ready
from sampler.collectors.base import Collector
from sampler.errors import LiveStreamError
from sampler.live import DeltaSink, LiveProfileReader, StreamWriter
from sampler.model import HAS_GIL, ON_CPU, Frame, Profile, RunStats, ThreadSample
from sampler.replay import open_binary_profile

KNOWN_LINES = target("known_lines.py")


class Stream:
    """The read end of a live stream: messages, each applied to a `LiveProfileReader`."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.reader = LiveProfileReader()
        self.messages: list[dict] = []

    def next_message(self, timeout: float = 60) -> dict | None:
        """The next message; None once the writer closed the stream."""
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            assert ready, f"no message on the live stream within {timeout} s"
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                assert not self.buf, f"the stream ended inside a line: {self.buf!r}"
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        message = self.reader.feed(line)
        self.messages.append(message)
        return message

    def read_all(self) -> list[dict]:
        while self.next_message() is not None:
            pass
        return self.messages

    def types(self) -> list[str]:
        return [m["type"] for m in self.messages]

    def close_stream(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LiveChild(Stream):
    """`python -m sampler.live` writing to a pipe we read."""

    def __init__(self, tmp_path, *args: str, flush: float = 0.5, cwd: str = ROOT) -> None:
        read_fd, write_fd = os.pipe()
        super().__init__(read_fd)
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        self.out = open(tmp_path / "child.out", "w+")
        self.err = open(tmp_path / "child.err", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sampler.live", "--stream-fd", str(write_fd), "--flush-interval", str(flush), *args],
            pass_fds=(write_fd,), cwd=cwd, env=env, stdout=self.out, stderr=self.err,
        )
        os.close(write_fd)

    def next_message(self, timeout: float = 60) -> dict | None:
        try:
            return super().next_message(timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the child's stderr: {self.stderr()}") from None

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.close_stream()
        self.out.close()
        self.err.close()


@pytest.fixture
def live(tmp_path):
    children: list[LiveChild] = []

    def start(*args: str, **kw) -> LiveChild:
        child = LiveChild(tmp_path, *args, **kw)
        children.append(child)
        return child

    yield start
    for child in children:
        child.close()


def _version(interpreter) -> str:
    out = subprocess.run(interpreter.python("-c", "import sys; print('%d.%d' % sys.version_info[:2])"),
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _self_shares(profile: Profile) -> dict[tuple[str, str, int], float]:
    """Share of samples per leaf line: (file basename, function, line)."""
    weights: collections.Counter = collections.Counter()
    for _tid, frames, weight in Collector(profile).stacks():
        leaf = frames[0]
        weights[(os.path.basename(leaf.filename), leaf.funcname, leaf.lineno)] += weight
    total = sum(weights.values())
    return {key: w / total for key, w in weights.items()}


def _pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_run_streams_the_growing_profile(host_interpreter, live, tmp_path):
    # `run` launches the interpreter; the sid root's are covered by the attach test below.
    interpreter = host_interpreter
    child = live("run", "--python", interpreter.path, "-d", "2", KNOWN_LINES, "30", flush=0.5, cwd=str(tmp_path))
    start = child.next_message()
    assert start["type"] == "start", child.stderr()
    assert start["python_version"].startswith(_version(interpreter) + ".")
    assert start["cwd"] == str(tmp_path)
    assert start["argv"][-2:] == [KNOWN_LINES, "30"]
    assert start["mode"] == "wall" and start["interval_usec"] == 1000 and start["all_threads"] is False
    # The launched target must not hold the stream open, or the reader would never see its end.
    stream_inode = os.fstat(child.fd).st_ino
    for fd in os.listdir(f"/proc/{start['pid']}/fd"):
        try:
            assert os.stat(f"/proc/{start['pid']}/fd/{fd}").st_ino != stream_inode, "the target inherited the stream"
        except FileNotFoundError:
            pass
    child.read_all()
    assert child.proc.wait(timeout=30) == 0, child.stderr()
    types = child.types()
    assert types[0] == "start" and types[-1] == "end" and types.count("delta") >= 2, types
    # Progress grows delta by delta.
    samples = [m["stats"]["samples"] for m in child.messages if m["type"] == "delta"]
    assert samples == sorted(samples) and samples[0] > 0
    end = child.messages[-1]
    reader = child.reader
    assert reader.started and reader.finished and reader.error is None and reader.output is None
    assert end["stats"]["samples"] == reader.samples == reader.profile.stats.samples > 200  # 2,000 when idle
    assert end["stats"]["interrupted"] is False and end["target_exit_status"] is not None
    shares = _self_shares(reader.profile)
    hottest = max(shares, key=shares.get)
    assert hottest == ("known_lines.py", "inner", 8), sorted(shares.items(), key=lambda kv: -kv[1])[:5]
    assert shares[hottest] > 0.5
    assert _pid_gone(start["pid"])  # -d ended the run: the target was stopped


def test_attach_then_sigint_ends_cleanly(interpreter, live, spawn, tmp_path):
    p = spawn(interpreter, KNOWN_LINES, cwd=str(tmp_path))
    wait_ready(p)
    child = live("attach", str(p.pid), flush=0.3)
    start = child.next_message()
    assert start["type"] == "start", child.stderr()
    assert start["pid"] == p.pid
    assert start["cwd"] == (sid_root.root_path() if interpreter.rooted else str(tmp_path))
    assert start["argv"] == [interpreter.path, interpreter.script_path(KNOWN_LINES)]
    assert start["python_version"].startswith(_version(interpreter) + ".")
    assert child.next_message()["type"] == "delta"
    child.proc.send_signal(signal.SIGINT)
    child.read_all()
    assert child.proc.wait(timeout=30) == 0, child.stderr()
    end = child.messages[-1]
    assert end["type"] == "end", child.types()
    assert end["stats"]["interrupted"] is True and end["stats"]["samples"] > 0
    assert end["target_exit_status"] is None
    assert child.reader.profile.total_weight > 0
    assert p.poll() is None  # attaching never stops the target


def test_sigterm_stops_a_launched_target(live):
    child = live("run", KNOWN_LINES, flush=0.3)
    start = child.next_message()
    assert start["type"] == "start", child.stderr()
    assert child.next_message()["type"] == "delta"
    child.proc.send_signal(signal.SIGTERM)
    child.read_all()
    assert child.proc.wait(timeout=30) == 0, child.stderr()
    end = child.messages[-1]
    assert end["type"] == "end" and end["stats"]["interrupted"] is True
    assert end["target_exit_status"] is not None and _pid_gone(start["pid"])


def test_reader_leaving_stops_sampling_and_the_target(live):
    child = live("run", KNOWN_LINES, flush=0.2)
    start = child.next_message()
    assert start["type"] == "start", child.stderr()
    child.close_stream()
    assert child.proc.wait(timeout=30) == 0, child.stderr()
    assert _pid_gone(start["pid"])
    assert "Traceback" not in child.stderr()


ORPHANING_PARENT = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:], pass_fds=(int(sys.argv[1]),), stdin=subprocess.DEVNULL)
print(child.pid, flush=True)
sys.stdin.read()  # until the test lets go
os._exit(0)  # without waiting: the live child is orphaned
"""


def test_orphaned_child_stops(tmp_path):
    """The server died but something still holds the pipe open: the child notices its new parent."""
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, PYTHONPATH=ROOT)
    with open(tmp_path / "pid", "w+") as out:
        parent = subprocess.Popen(
            [sys.executable, "-c", ORPHANING_PARENT, str(write_fd), sys.executable, "-m", "sampler.live",
             "--stream-fd", str(write_fd), "--flush-interval", "0.2", "run", KNOWN_LINES],
            pass_fds=(write_fd,), env=env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT,
        )
        os.close(write_fd)
        stream = Stream(read_fd)
        live_pid = None
        try:
            start = stream.next_message()
            assert start["type"] == "start"
            out.seek(0)
            live_pid = int(out.readline())
            parent.stdin.close()  # the parent exits now, mid-run
            assert parent.wait(timeout=60) == 0
            messages = stream.read_all()  # EOF once the live child exited: it stopped by itself
        finally:
            stream.close_stream()
            if parent.poll() is None:
                parent.kill()
                parent.wait()
            if live_pid is not None and not _pid_gone(live_pid):
                os.kill(live_pid, signal.SIGTERM)  # it stops its target on the way out
    assert messages[-1]["type"] == "end", [m["type"] for m in messages]
    assert messages[-1]["stats"]["interrupted"] is True
    assert _pid_gone(messages[0]["pid"])


def test_attach_to_dead_pid(live):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    child = live("attach", str(gone.pid))
    child.read_all()
    assert child.proc.wait(timeout=30) == 1
    assert child.types() == ["error"]
    assert child.messages[0]["kind"] == "ProcessNotFoundError"
    assert str(gone.pid) in child.messages[0]["message"] and "\n" not in child.messages[0]["message"]
    assert child.reader.error_kind == "ProcessNotFoundError" and child.reader.finished


def test_usage_error_is_streamed(live):
    child = live("attach")
    child.read_all()
    assert child.proc.wait(timeout=30) == 2
    assert child.types() == ["error"] and child.messages[0]["kind"] == "UsageError"
    assert "pid" in child.messages[0]["message"]


def test_async_conflicts_are_refused_before_sampling(live):
    """The child applies the CLI's --async-aware rules itself, not only its callers."""
    child = live("run", "--async-aware", "--mode", "cpu", target("async_split.py"))
    child.read_all()
    assert child.proc.wait(timeout=30) == 2
    assert child.types() == ["error"] and child.messages[0]["kind"] == "UsageError"
    assert "--mode=cpu are incompatible with --async-aware" in child.messages[0]["message"]


def test_binary_output_matches_the_stream(live, tmp_path):
    out = tmp_path / "x.bin"
    child = live("run", "-d", "1", "--binary", "-o", str(out), KNOWN_LINES, "30", flush=0.3)
    child.read_all()
    assert child.proc.wait(timeout=30) == 0, child.stderr()
    end = child.messages[-1]
    assert end["type"] == "end" and end["output"] == str(out) == child.reader.output
    streamed = collections.Counter()
    for tid, frames, weight in Collector(child.reader.profile).stacks():
        streamed[(tid, frames)] += weight
    replayed = collections.Counter()
    reader = open_binary_profile(out)
    for _ts, threads, weight in reader.samples():
        for t in threads:
            replayed[(t.thread_id, t.frames)] += weight
    assert sum(replayed.values()) == reader.sample_count == child.reader.profile.total_weight > 500
    # Samples caught in the launcher alone are kept by the file as empty stacks, never shown.
    assert collections.Counter({key: w for key, w in replayed.items() if key[1]}) == streamed


def test_no_output_file_without_o(live, tmp_path):
    child = live("run", "-d", "0.5", KNOWN_LINES, "30", flush=0.2, cwd=str(tmp_path))
    child.read_all()
    assert child.proc.wait(timeout=30) == 0, child.stderr()
    assert child.messages[-1]["output"] is None
    assert sorted(os.listdir(tmp_path)) == ["child.err", "child.out"]
    assert "ready" in open(tmp_path / "child.out").read()  # the target's own output is untouched


# -- the delta encoding, in process -------------------------------------------------------------


def _sample(tid: int, *frames: Frame, status: int = HAS_GIL | ON_CPU) -> ThreadSample:
    return ThreadSample(tid, status, frames)


def test_deltas_rebuild_the_exact_profile():
    """Samples arrive between flushes in any mix; the reader's profile equals the source's."""
    a, b, c = Frame("/x/a.py", "f", 3, 3, 4, 9), Frame("/x/a.py", "g", 7), Frame("/x/\udcff.py", "h", 1, 2, 0, 5)
    profile = Profile(RunStats(pid=1))
    read_fd, write_fd = os.pipe()
    lost = []
    sink = DeltaSink(profile, StreamWriter(write_fd), 1.0, lambda: lost.append(True))
    reader = LiveProfileReader()
    reader.feed(json.dumps({"type": "start", "pid": 1, "python_version": "3.12.1", "mode": "wall",
                            "all_threads": True, "interval_usec": 1000, "cwd": None, "argv": None,
                            "start_time": 1.0}))
    batches = [
        [_sample(1, a, b)] * 3 + [_sample(2, b, status=0)],
        [],
        [_sample(1, a, b), _sample(1, c, a, b)],
        [_sample(2, c, status=ON_CPU), _sample(1, a, b)] * 5,
    ]
    names = [{1: "MainThread"}, {}, {2: "worker"}, {2: "renamed"}]
    with os.fdopen(read_fd, "rb") as fh:
        for batch, new_names in zip(batches, names):
            for s in batch:
                profile.add(s)
                profile.stats.samples += 1
            profile.thread_names.update(new_names)
            assert sink.flush()
            message = reader.feed(fh.readline())
            assert message["type"] == "delta"
            assert reader.profile.stacks == profile.stacks
            assert reader.profile.status_counts == profile.status_counts
            assert reader.profile.frames == profile.frames
            assert reader.profile.thread_names == profile.thread_names
            assert reader.samples == profile.stats.samples
        assert message["frames"] == [] and len(message["stacks"]) == 2  # only what changed
        os.close(write_fd)
    assert not lost


def test_reader_rejects_malformed_lines():
    start = {"type": "start", "pid": 5, "python_version": "3.12.1", "mode": "wall", "all_threads": False,
             "interval_usec": 1000, "cwd": "/tmp", "argv": ["python", "x.py"], "start_time": 1.5}
    delta = {"type": "delta", "frames": [["/x.py", "f", 3, 3, 0, 4]], "stacks": [[9, [0], 2]],
             "status": [[9, 1, 2]], "threads": {"9": "MainThread"},
             "stats": {"samples": 2, "attempts": 2, "errors": 0, "elapsed_s": 0.5}}
    reader = LiveProfileReader()
    with pytest.raises(LiveStreamError, match="before start"):
        reader.feed(json.dumps(delta))
    reader.feed(json.dumps(start).encode())
    assert reader.started and reader.cwd == "/tmp" and reader.pid == 5

    def bad(**changes):
        return json.dumps({**delta, **changes})

    full = json.dumps(delta)
    for line in (
        full[: len(full) // 2],  # truncated
        "",
        b"\xff\xfe{}",
        "[1, 2]",
        json.dumps({"type": "mystery"}),
        bad(stacks=[[9, [1], 2]]),  # frame id never sent
        bad(stacks=[[9, [-1], 2]]),
        bad(stacks=[[9, 0, 2]]),
        bad(stacks=[[9, [0]]]),
        bad(stacks=[[9, [0], -2]]),
        bad(frames=[["/x.py", "f", 3]]),
        bad(frames=[["/x.py", "f", "3", 3, 0, 4]]),
        bad(status=[[9, 1]]),
        bad(threads={"main": "x"}),
        bad(threads=[]),
        bad(stats={"samples": 2}),
        json.dumps(start),  # a second start
    ):
        with pytest.raises(LiveStreamError) as info:
            reader.feed(line)
        assert "\n" not in str(info.value)
    # Rejected lines changed nothing: the good delta still applies on a clean profile.
    reader.feed(full)
    assert reader.profile.stacks == {(9, (0,)): 2}
    assert reader.profile.frames == [Frame("/x.py", "f", 3, 3, 0, 4)]
    assert reader.profile.status_counts == {9: {1: 2}} and reader.profile.thread_names == {9: "MainThread"}
    with pytest.raises(LiveStreamError):
        reader.feed(json.dumps({"type": "end", "stats": {"samples": "many"}, "output": None,
                                "target_exit_status": None}))
    reader.feed(json.dumps({"type": "end", "stats": {"samples": 3, "interrupted": True, "duration_s": 1.25},
                            "output": "/tmp/p.bin", "target_exit_status": 0}))
    assert reader.finished and reader.samples == 3 and reader.profile.stats.interrupted
    assert reader.output == "/tmp/p.bin" and reader.elapsed_s == 1.25
    with pytest.raises(LiveStreamError, match="after the stream ended"):
        reader.feed(full)
