"""`--blocking`: every sample is taken with all of the target's threads stopped by ptrace, and the
target is resumed whatever happens to heatline (sampler/target/freeze.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, heatline, parse_collapsed, target, wait_ready
from sampler.cpython.unwinder import Unwinder
from sampler.errors import HeatlineError, ProcessPermissionError
from sampler.model import ON_CPU
from sampler.target.freeze import BlockingSource, Freezer, PtraceRefusedError
from sampler.target.threads import task_ids

DEADLINE_S = 30.0
TARGET = target("blocking_target.py")


# -- helpers --------------------------------------------------------------------------------------


def _poll(predicate, what: str, deadline_s: float = DEADLINE_S):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


def _states(pid: int) -> dict[int, str]:
    """Each thread's state letter from /proc (R, S, t for a ptrace-stop, T for a group-stop)."""
    out = {}
    for tid in task_ids(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        out[tid] = chr(data[data.rfind(b")") + 2])
    return out


def _tracers(pid: int) -> set[int]:
    found = set()
    for tid in task_ids(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as fh:
                found |= {int(line.split()[1]) for line in fh if line.startswith("TracerPid:")}
        except OSError:
            pass
    return found


def _start(spawn, interpreter, *args: str) -> subprocess.Popen:
    """The target, once its main thread is inside its leaf for good (its counter moved)."""
    p = spawn(interpreter, TARGET, *args, stdin=subprocess.PIPE)
    wait_ready(p)
    _poll(lambda: _ask(p, "count")["n"] > 0, "the target to reach its leaf")
    return p


def _ask(p: subprocess.Popen, command: str) -> dict[str, int] | str:
    p.stdin.write(command + "\n")
    p.stdin.flush()
    line = p.stdout.readline().strip()
    if "=" not in line:
        return line
    return {k: int(v) for k, v in (part.split("=") for part in line.split())}


def _assert_runs_free(p: subprocess.Popen) -> None:
    """Nothing traces the target, no thread of it is stopped, and its work goes on."""
    assert _tracers(p.pid) == {0}, _tracers(p.pid)
    assert not [s for s in _states(p.pid).values() if s in "tT"], _states(p.pid)
    before = _ask(p, "count")["n"]
    _poll(lambda: _ask(p, "count")["n"] > before, "the target's progress counter to advance")


def _attach(*args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "sampler", "attach", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def _caught_frozen(pid: int) -> bool:
    """Polls until a thread of `pid` is seen in a ptrace-stop: heatline is inside a freeze."""
    return any(s == "t" for s in _states(pid).values())


# -- the freezer itself ---------------------------------------------------------------------------


def test_freeze_stops_every_thread_and_thaw_resumes_them(interpreter, spawn):
    p = _start(spawn, interpreter, "--threads", "3")
    _poll(lambda: len(task_ids(p.pid)) >= 5, "the target's threads")  # main, 3 spinners, stdin
    f = Freezer(p.pid)
    for _ in range(20):
        stopped = f.freeze()
        assert sorted(stopped) == task_ids(p.pid)
        assert set(_states(p.pid).values()) == {"t"}
        before = _states(p.pid)
        f.thaw()
        assert _tracers(p.pid) == {0}
        assert "t" not in _states(p.pid).values(), before
    f.close()
    _assert_runs_free(p)


def test_frozen_sample_is_exactly_the_known_stack(interpreter, spawn):
    p = _start(spawn, interpreter)
    path = interpreter.script_path(TARGET)
    source = BlockingSource(Unwinder(p.pid), p.pid)
    try:
        for _ in range(200):
            (main,) = source.sample()  # raises on any read error: a frozen stack reads clean
            frames = [(f.filename, f.funcname, f.lineno) for f in main.frames]
            assert frames[1:] == [(path, "middle", 29), (path, "top", 33), (path, "main", 78),
                                  (path, "<module>", 81)], frames
            assert frames[0][:2] == (path, "leaf") and frames[0][2] in (24, 25), frames
    finally:
        source.close()
    _assert_runs_free(p)


def test_cpu_mode_still_sees_the_spinning_thread(spawn):
    """Stopped threads read as 't' in /proc: cpu mode must judge them from before the freeze."""
    p = _start(spawn, sys.executable)
    source = BlockingSource(Unwinder(p.pid, mode="cpu"), p.pid)
    try:
        on_cpu = sum(bool(source.sample()) for _ in range(200))
    finally:
        source.close()
    assert on_cpu > 0  # the main thread spins: a wrongly read 't' would make every sample empty
    _assert_runs_free(p)


def test_native_walker_statuses_come_from_before_the_freeze(spawn):
    """The native core reads /proc itself, where every stopped thread is 't': its on-CPU bits
    are replaced by the states read just before the freeze."""
    from sampler.cpython import native

    if not native.native_status()[0]:
        pytest.skip(native.native_status()[1])
    p = _start(spawn, sys.executable)
    source = BlockingSource(native.NativeUnwinder(p.pid), p.pid)
    try:
        on_cpu = [bool(s.status & ON_CPU) for _ in range(100) for s in source.sample()]
    finally:
        source.close()
    assert any(on_cpu)  # the main thread spins in its leaf
    _assert_runs_free(p)


def test_cli_cpu_mode_with_the_default_walker_keeps_the_spinning_thread(spawn, tmp_path):
    """`attach --blocking --mode cpu` as users run it (the native core when built): the
    spinning main thread is counted, as it is without --blocking."""
    p = _start(spawn, sys.executable)
    out = tmp_path / "cpu.txt"
    res = heatline("attach", str(p.pid), "--blocking", "--mode", "cpu", "-d", "1", "--collapsed", "-o", str(out))
    assert res.returncode == 0, res.stderr
    rows = parse_collapsed(str(out))
    assert sum(c for _t, frames, c in rows if frames and ":leaf:" in frames[-1]) > 50, rows[:3]
    _assert_runs_free(p)


class _Failing:
    """An inner source that checks the target is stopped, then fails as a sample can."""

    def __init__(self, pid: int, exc: BaseException) -> None:
        self.pid, self.exc, self.seen = pid, exc, []
        self.runtime = "the inner runtime"

    def sample(self):
        self.seen.append(set(_states(self.pid).values()))
        raise self.exc

    def run(self, *args):  # the native core's batch loop: blocking must not use it
        raise AssertionError("run() must not be reachable through BlockingSource")

    def alive(self) -> bool:
        return True

    def thread_names(self) -> dict[int, str]:
        return {}

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()], ids=["exception", "ctrl-c"])
def test_an_exception_inside_the_sample_still_thaws(spawn, exc):
    p = _start(spawn, sys.executable, "--threads", "2")
    inner = _Failing(p.pid, exc)
    source = BlockingSource(inner, p.pid)
    assert not hasattr(source, "run")
    assert source.runtime == "the inner runtime" and source.alive()
    with pytest.raises(type(exc)):
        source.sample()
    assert inner.seen == [{"t"}]
    _assert_runs_free(p)
    source.close()
    assert inner.closed


@pytest.mark.parametrize("at", ["seize", "interrupt"])
def test_a_ctrl_c_inside_freeze_leaves_no_thread_traced(spawn, monkeypatch, at):
    """A KeyboardInterrupt can land at any bytecode of freeze(): right after a seize, before the
    thread is recorded or interrupted. Nothing may stay traced or stopped."""
    import sampler.target.freeze as freeze

    p = _start(spawn, sys.executable, "--threads", "3")
    real_call = freeze._call
    seizes = []

    def call(request, tid, addr=0, data=0):
        err = real_call(request, tid, addr, data)
        if request == freeze.PTRACE_SEIZE:
            seizes.append(tid)
        wanted = freeze.PTRACE_SEIZE if at == "seize" else freeze.PTRACE_INTERRUPT
        if request == wanted and len(seizes) == 3:
            raise KeyboardInterrupt
        return err

    monkeypatch.setattr(freeze, "_call", call)
    with pytest.raises(KeyboardInterrupt):
        Freezer(p.pid).freeze()
    monkeypatch.undo()
    _assert_runs_free(p)


def test_threads_that_start_and_end_while_freezing(spawn):
    code = (
        "import threading\n"
        "def work():\n"
        "    sum(range(2000))\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    t = threading.Thread(target=work); t.start(); t.join()\n"
    )
    p = spawn(sys.executable, "-c", code)
    wait_ready(p)
    f = Freezer(p.pid)
    seen: set[int] = set()

    def one_more() -> bool:
        seen.update(f.freeze())
        f.thaw()
        return len(seen) > 20

    _poll(one_more, "freezes that catch thread after thread")
    f.close()
    assert _tracers(p.pid) == {0}
    assert p.poll() is None


# -- through the CLI ------------------------------------------------------------------------------


def test_recursion_sampled_blocking_shows_only_possible_stacks(interpreter, spawn, tmp_path):
    """The 150-deep recursion unwinds and rebuilds itself all the time: frozen, every sample is a
    chain <module> -> recurse x k (k <= 151) in which every caller waits at its call line."""
    p = spawn(interpreter, target("recursion.py"), "150")
    wait_ready(p)
    out = tmp_path / "rec.txt"
    res = heatline("attach", "--blocking", "-r", "1000", "-d", "2", "--collapsed", "-o", str(out), str(p.pid))
    assert res.returncode == 0, res.stderr
    assert "Error rate: 0.00" in res.stdout, res.stdout
    rows = parse_collapsed(str(out))
    total = sum(c for _t, _f, c in rows)
    assert total > 100
    deepest = 0
    for _tid, frames, count in rows:
        calls = [f.rsplit(":", 2)[1:] for f in frames]  # [func, line], root first
        rec = calls[1:]
        # the module's loop: its call line while recursing, else its call or its `while`
        assert calls[0][0] == "<module>" and calls[0][1] in (("16",) if rec else ("15", "16")), frames
        assert all(func == "recurse" for func, _ in rec), frames
        assert len(rec) <= 151, len(rec)
        assert all(line == "10" for _, line in rec[:-1]), frames  # callers wait at their call
        if rec:
            leaf_line = int(rec[-1][1])
            if len(rec) == 151:
                # the bottom (n == 0) just entered (its RESUME is on the def line) or runs its loop
                assert 4 <= leaf_line <= 9, frames
            else:
                assert leaf_line in (4, 5, 10), frames  # entering, testing n, calling or returning
        deepest = max(deepest, len(rec))
    assert deepest == 151


def test_target_signals_are_delivered_during_a_blocking_run(interpreter, spawn):
    p = _start(spawn, interpreter, "--signals", "--threads", "1")
    run = _attach("--blocking", "-a", "-r", "10000", "-d", "60", "--collapsed", "-o", os.devnull, str(p.pid))
    try:
        _poll(lambda: _caught_frozen(p.pid), "heatline to stop the target for a sample")
        start = _ask(p, "count")
        sent = 3000
        for _ in range(sent):  # real-time signals queue: any one lost shows in the count
            os.kill(p.pid, signal.SIGRTMIN)
            # spread over many freezes, so that some land between a seize and its stop and
            # come back as signal-delivery-stops that must be re-injected
            _caught_frozen(p.pid)
        for _ in range(10):  # each child's exit must be seen before the next is started
            before = _ask(p, "count")["chld"]
            assert _ask(p, "spawn") == "spawned"
            _poll(lambda: _ask(p, "count")["chld"] > before, "SIGCHLD to be handled")
        _poll(lambda: _ask(p, "count")["alrm"] > start["alrm"] + 100, "the interval timer to keep firing")
        _poll(lambda: _ask(p, "count")["rt"] == start["rt"] + sent, f"all {sent} SIGRTMIN to be handled")
        # Our ptrace-stops are not job control: the target's parent (this test) never sees a stop.
        assert os.waitid(os.P_PID, p.pid, os.WSTOPPED | os.WNOHANG | os.WNOWAIT) is None
        assert run.poll() is None, run.communicate()
    finally:
        run.send_signal(signal.SIGINT)
        _out, err = run.communicate(timeout=DEADLINE_S)
    assert run.returncode == 0, err
    assert _ask(p, "count")["rt"] == start["rt"] + sent  # and none delivered twice
    _assert_runs_free(p)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_killing_heatline_mid_sample_leaves_the_target_running(interpreter, spawn, tmp_path, signum):
    p = _start(spawn, interpreter, "--threads", "2")
    out = tmp_path / "out.txt"
    for _round in range(3):
        run = _attach("--blocking", "-a", "-r", "10000", "--collapsed", "-o", str(out), str(p.pid))
        try:
            # kill while a thread is seen stopped: most likely in the middle of a freeze
            _poll(lambda: _caught_frozen(p.pid), "heatline to stop the target for a sample")
            os.kill(run.pid, signum)
            _out, err = run.communicate(timeout=DEADLINE_S)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
        if signum == signal.SIGINT:
            # the profile is written, even if the Ctrl-C ended the very first sample
            assert run.returncode == 0 and "Traceback" not in err and out.exists(), err
        else:  # `attach` leaves SIGTERM's default action (today): it dies like SIGKILL
            assert run.returncode in (0, -signum), err
            assert "Traceback" not in err, err
        _assert_runs_free(p)


def test_a_group_stop_is_not_turned_into_a_resume(spawn):
    """Someone `kill -STOP`s the target during a blocking run: it stays stopped after us."""
    p = _start(spawn, sys.executable, "--threads", "1")
    run = _attach("--blocking", "-a", "-r", "1000", "-d", "60", "--collapsed", "-o", os.devnull, str(p.pid))
    try:
        _poll(lambda: _caught_frozen(p.pid), "heatline to stop the target for a sample")
        os.kill(p.pid, signal.SIGSTOP)
        # the stop reaches every thread and the sampler keeps stopping it and letting it go
        _poll(lambda: set(_states(p.pid).values()) == {"T"}, "the group-stop")
        _poll(lambda: _caught_frozen(p.pid), "a sample of the stopped target")
        _poll(lambda: set(_states(p.pid).values()) == {"T"}, "the group-stop after a sample")
        assert run.poll() is None
    finally:
        run.send_signal(signal.SIGINT)
        _out, err = run.communicate(timeout=DEADLINE_S)
    assert run.returncode == 0, err
    assert set(_states(p.pid).values()) == {"T"}  # still stopped: we did not resume it
    os.kill(p.pid, signal.SIGCONT)
    _assert_runs_free(p)


def test_run_blocking_keeps_the_childs_exit_status(tmp_path):
    """`heatline run`'s target is heatline's child: its exit while it may be traced must still
    reach the launcher as its own exit status."""
    out = tmp_path / "out.txt"
    res = heatline("run", "--blocking", "-r", "10000", "--collapsed", "-o", str(out),
                   target("exits_mid_run.py"), "0.5")
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr
    assert parse_collapsed(str(out))


# -- ptrace refused -------------------------------------------------------------------------------

_TRACER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
pid = int(sys.argv[1])
for tid in os.listdir(f"/proc/{pid}/task"):
    if libc.ptrace(0x4206, int(tid), None, None) != 0:  # PTRACE_SEIZE: traced, not stopped
        sys.exit(f"seize failed: {os.strerror(ctypes.get_errno())}")
print("ready", flush=True)
sys.stdin.read()
"""


def test_another_tracer_gives_one_line_with_the_fix(interpreter, spawn):
    p = _start(spawn, interpreter)
    other = spawn(sys.executable, "-c", _TRACER, str(p.pid), stdin=subprocess.PIPE)
    wait_ready(other)
    with pytest.raises(PtraceRefusedError) as err:
        Freezer(p.pid).freeze()
    assert isinstance(err.value, ProcessPermissionError)
    assert f"already traced by PID {other.pid}" in str(err.value)
    res = heatline("attach", "--blocking", "-d", "1", str(p.pid))
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"already traced by PID {other.pid}" in lines[0] and "detach it" in lines[0], lines
    other.stdin.close()
    other.wait(timeout=DEADLINE_S)
    _assert_runs_free(p)


def test_an_unprivileged_tracer_is_refused_with_the_fix(spawn):
    p = _start(spawn, sys.executable)
    code = (
        "import sys\n"
        "from sampler.target.freeze import Freezer\n"
        "from sampler.errors import HeatlineError\n"
        "try:\n"
        f"    Freezer({p.pid}).freeze()\n"
        "except HeatlineError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT},
                         timeout=DEADLINE_S)
    assert res.stdout.startswith("PtraceRefusedError --blocking cannot stop the target: the kernel refused"), res
    assert "CAP_SYS_PTRACE" in res.stdout
    _assert_runs_free(p)


def test_errors_are_heatline_errors():
    assert issubclass(PtraceRefusedError, HeatlineError)
    assert "\n" not in str(PtraceRefusedError(1))


def test_dump_blocking_prints_the_known_stack(interpreter, spawn):
    p = _start(spawn, interpreter)
    res = heatline("dump", "--blocking", str(p.pid))
    assert res.returncode == 0, res.stderr
    text = res.stdout
    order = [text.find(f" {name}") for name in ("<module>", "main", "top", "middle", "leaf")]
    assert -1 not in order, text
    assert order == sorted(order) or order == sorted(order, reverse=True), text
    _assert_runs_free(p)


# A target killed while heatline traces its threads: the kernel reports the leader's exit only
# once the other threads are collected, and traced ones are heatline's to collect. Each case runs
# in a child process (the tracer) so that a hang fails the test at DEADLINE_S instead of hanging
# the suite; the target must then be collected by its parent (this test) too.
_KILL_WHILE_FROZEN = """
import os, signal, sys
from sampler.errors import ProcessGoneError
import sampler.target.freeze as freeze
pid, when = int(sys.argv[1]), sys.argv[2]
f = freeze.Freezer(pid)
if when == "frozen":
    f.freeze()
    os.kill(pid, signal.SIGKILL)
else:  # while the other threads are being seized, after the leader is stopped
    real_call = freeze._call
    def call(request, tid, addr=0, data=0):
        err = real_call(request, tid, addr, data)
        if request == freeze.PTRACE_INTERRUPT and tid != pid:
            os.kill(pid, signal.SIGKILL)
        return err
    freeze._call = call
    try:
        f.freeze()
    except ProcessGoneError:
        pass
f.close()
print("closed", flush=True)
"""


@pytest.mark.parametrize("when", ["frozen", "freezing"])
def test_a_target_killed_while_traced_is_let_go(spawn, when):
    p = _start(spawn, sys.executable, "--threads", "3")
    res = subprocess.run([sys.executable, "-c", _KILL_WHILE_FROZEN, str(p.pid), when], capture_output=True,
                         text=True, timeout=DEADLINE_S, cwd=ROOT)
    assert res.returncode == 0 and res.stdout == "closed\n", res.stderr
    assert p.wait(timeout=DEADLINE_S) == -signal.SIGKILL
