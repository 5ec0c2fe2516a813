"""Bad input: one clear line on stderr, the right exit status, never a traceback."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import threading

import pytest

from conftest import ROOT, heatline, target, wait_ready


def _one_line_error(res: subprocess.CompletedProcess, status: int, *fragments: str) -> str:
    assert res.returncode == status, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    last = lines[-1]
    assert not last.startswith("heatline: heatline"), last  # one prefix, not two
    for fragment in fragments:
        assert fragment in last, last
    return last


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("command", ["attach", "dump"])
def test_unknown_pid(command):
    pid = _dead_pid()
    res = heatline(command, str(pid), *(["-d", "1"] if command == "attach" else []))
    _one_line_error(res, 1, f"no process with PID {pid} exists")


def test_not_a_python_process(spawn):
    p = spawn("sleep", "30")
    res = heatline("attach", str(p.pid), "-d", "1")
    _one_line_error(res, 1, f"process {p.pid} is not a CPython process")


def test_unsupported_version(spawn):
    py38 = os.path.expanduser("~/.pyenv/versions/3.8.18/bin/python3.8")
    if not os.path.exists(py38):
        pytest.skip("no CPython 3.8 on this machine to stand for an unsupported version")
    p = spawn(py38, target("known_lines.py"))
    wait_ready(p)
    res = heatline("attach", str(p.pid), "-d", "1")
    _one_line_error(res, 1, "Python 3.8.18", "does not support")


def test_permission_denied(spawn):
    """A non-root user may not read a root-owned process: the message says how to fix it."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run heatline as an unprivileged user")
    p = spawn(sys.executable, target("known_lines.py"))
    wait_ready(p)
    nobody = pwd.getpwnam("nobody")
    env = dict(os.environ, PYTHONPATH=ROOT, HOME="/tmp")
    res = subprocess.run(
        ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
         sys.executable, "-m", "sampler", "attach", str(p.pid), "-d", "1"],
        capture_output=True, text=True, env=env, cwd="/", timeout=60,
    )
    if "Permission denied" in res.stderr and "sampler" in res.stderr and "heatline" not in res.stderr:
        pytest.skip("the unprivileged user cannot read heatline's own files here")
    _one_line_error(res, 1, "denied access", "ptrace_scope", "CAP_SYS_PTRACE")


def test_script_not_found(tmp_path):
    res = heatline("run", str(tmp_path / "nope.py"))
    _one_line_error(res, 1, "cannot find the target", "nope.py")


def test_module_not_found():
    res = heatline("run", "-m", "no_such_module_xyz")
    _one_line_error(res, 1, "cannot find the target", "no_such_module_xyz")


def test_target_exits_before_first_sample():
    # An "interpreter" that exits at once never reaches heatline's start-up handshake.
    res = heatline("run", "--python", shutil.which("true"), target("known_lines.py"))
    _one_line_error(res, 1, "exited", "before heatline could sample it")


def test_unknown_interpreter():
    res = heatline("run", "--python", "/no/such/python", target("known_lines.py"))
    _one_line_error(res, 1, "cannot find the interpreter")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["attach", "1", "-r", "10 khz"], "Invalid sampling rate format"),
        (["attach", "1", "-r", "0"], "Sampling rate must be positive"),
        (["attach", "1", "-r", "2000khz"], "Sampling rate too high"),
        (["attach", "1", "-d", "-3"], "duration must be positive"),
        (["attach", "notapid"], "invalid int value"),
        (["attach", "1", "--mode", "bogus"], "invalid choice"),
        (["attach", "1", "--collapsed", "--sort", "name"], "only valid with --pstats"),
        (["attach", "1", "--collapsed", "--pstats"], "not allowed with argument"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_argument_errors(args, fragment):
    res = heatline(*args)
    _one_line_error(res, 2, fragment)


def test_rate_parsing():
    from sampler.cli import parse_sampling_rate

    assert parse_sampling_rate("1000") == 1000
    assert parse_sampling_rate("10khz") == 100
    assert parse_sampling_rate("10k") == 100
    assert parse_sampling_rate("10KHz") == 100
    assert parse_sampling_rate("100hz") == 10000
    assert parse_sampling_rate("1.5k") == 666


def test_deleted_interpreter_binary(tmp_path, spawn):
    """A Python whose binary was replaced or deleted while running is still readable."""
    system = "/usr/bin/python3.11"
    if not os.path.exists(system) or "libpython" in subprocess.run(
        ["ldd", system], capture_output=True, text=True
    ).stdout:
        pytest.skip("needs a statically linked system python3.11 to copy")
    copy = tmp_path / "python3.11"
    shutil.copy2(system, copy)
    p = spawn(str(copy), target("known_lines.py"))
    wait_ready(p)
    copy.unlink()
    assert os.readlink(f"/proc/{p.pid}/exe").endswith("(deleted)")
    out = tmp_path / "out.txt"
    res = heatline("attach", str(p.pid), "-d", "1", "--collapsed", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "known_lines.py:inner:" in out.read_text()


def test_dump_of_a_target_exiting_mid_read(spawn):
    """Whatever moment the target exits at, dump prints stacks or one line, never a traceback."""
    code = ("import sys, threading\n"
            "for _ in range(4): threading.Thread(target=sys.stdin.read, daemon=True).start()\n"
            "print('ready', flush=True); sys.stdin.read()\n")
    for _ in range(15):
        p = spawn(sys.executable, "-c", code, stdin=subprocess.PIPE)
        wait_ready(p)
        p.stdin.close()  # it exits now, while dump starts reading it
        res = heatline("dump", str(p.pid), "-a")
        if res.returncode:
            _one_line_error(res, 1, str(p.pid))
        assert "Traceback" not in res.stderr


# -- PIDs that are not live Python processes -------------------------------------------------------


def _kernel_thread_pid() -> int | None:
    """PID 2 (kthreadd) when this machine shows kernel threads (not in every PID namespace)."""
    try:
        with open("/proc/2/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return 2 if int(fields[6]) & 0x00200000 else None  # PF_KTHREAD


@pytest.mark.parametrize("command", ["attach", "dump"])
def test_zombie_pid(command):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped: a zombie
        res = heatline(command, str(p.pid), *(["-d", "1"] if command == "attach" else []))
        _one_line_error(res, 1, f"process {p.pid} has exited", "zombie")
    finally:
        p.wait()


@pytest.mark.parametrize("command", ["attach", "dump"])
def test_kernel_thread_pid(command):
    pid = _kernel_thread_pid()
    if pid is None:
        pytest.skip("no kernel thread visible in this PID namespace")
    res = heatline(command, str(pid), *(["-d", "1"] if command == "attach" else []))
    _one_line_error(res, 1, f"process {pid} is not a CPython process", "kernel thread")


@pytest.mark.parametrize("command", ["attach", "dump"])
def test_heatline_attaching_to_itself(command):
    # `exec` makes the shell's PID ($$) heatline's own.
    env = dict(os.environ, PYTHONPATH=ROOT)
    extra = "-d 1" if command == "attach" else ""
    res = subprocess.run(["sh", "-c", f'exec "{sys.executable}" -m sampler {command} {extra} $$'],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    _one_line_error(res, 1, "heatline process itself", "cannot profile itself")


def test_targets_exiting_while_heatline_attaches(tmp_path):
    """Targets ending at every moment of heatline's start-up and first samples (reaped at once,
    so their /proc entries vanish too): a profile or one line, never a traceback."""
    out = tmp_path / "out.txt"
    for i in range(20):
        life = 0.04 * i
        code = f"import time\nend = time.time() + {life}\nwhile time.time() < end: pass\n"
        p = subprocess.Popen([sys.executable, "-c", code])
        reaper = threading.Thread(target=p.wait, daemon=True)
        reaper.start()
        res = heatline("attach", "-d", "2", "--collapsed", "-o", str(out), str(p.pid))
        reaper.join()
        if res.returncode:
            _one_line_error(res, 1, str(p.pid))
        assert "Traceback" not in res.stderr, res.stderr


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "1e400", "--duration=-inf"])
def test_non_finite_duration(value):
    args = [value] if value.startswith("--") else ["-d", value]
    res = heatline("attach", "1", *args)
    _one_line_error(res, 2, "duration must be positive and finite")
