"""Listing the Python processes a user may attach to, against real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import sid_root
from conftest import ROOT, target, wait_ready
from sampler.processes import list_python_processes

KNOWN_LINES = target("known_lines.py")
NOBODY = 65534
# An interpreter every user may run (pyenv's live under /root, which only root may enter).
SHARED_PYTHONS = [p for p in ("/usr/bin/python3", "/usr/bin/python3.11") if os.path.exists(p)]


def _version(interpreter) -> str:
    out = subprocess.run(interpreter.python("-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"),
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _by_pid(pid: int):
    return {p.pid: p for p in list_python_processes()}.get(pid)


def test_lists_a_running_python(interpreter, spawn, tmp_path):
    p = spawn(interpreter, KNOWN_LINES, cwd=str(tmp_path))
    wait_ready(p)
    found = _by_pid(p.pid)
    assert found is not None
    assert found.python_version == _version(interpreter)  # read from the process: "3.12.1"
    assert found.needs_privileges is False and found.reason is None
    assert found.command == f"{interpreter.path} {interpreter.script_path(KNOWN_LINES)}"
    if interpreter.rooted:  # in another root (a container): where the host reaches its files
        assert found.cwd == sid_root.root_path()
        assert found.executable == os.path.realpath(sid_root.host_path(interpreter.path))
    else:
        assert found.cwd == str(tmp_path)
        assert found.executable == os.path.realpath(interpreter.path)


def test_skips_other_programs_and_itself(spawn, tmp_path):
    sleeper = spawn("sleep", "30")
    # A Python script run by another interpreter is not a Python process.
    script = tmp_path / "python3"
    script.write_text("sleep 30\n")
    shell = spawn("sh", str(script))
    python = spawn(sys.executable, KNOWN_LINES)
    wait_ready(python)
    listed = list_python_processes()
    pids = [p.pid for p in listed]
    assert python.pid in pids
    assert sleeper.pid not in pids and shell.pid not in pids
    assert os.getpid() not in pids
    assert pids == sorted(pids)
    assert python.pid not in [p.pid for p in list_python_processes(exclude=[python.pid])]


def test_zombies_are_skipped(spawn):
    zombie = spawn(sys.executable, "-c", "print('ready', flush=True)")
    wait_ready(zombie)
    # Not reaped yet: it stays a zombie until the fixture waits for it.
    for _ in range(2000):
        with open(f"/proc/{zombie.pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.005)
    else:
        pytest.fail("the exited child never showed as a zombie")
    assert zombie.pid not in [p.pid for p in list_python_processes()]


LISTER = """
import json, os, sys
from sampler.processes import list_python_processes
print(json.dumps([p.__dict__ for p in list_python_processes() if p.pid == int(sys.argv[1])]))
"""


def _drop_to_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def test_another_users_process_needs_privileges(interpreter, spawn):
    """As an unprivileged user, a root-owned Python is listed (from its argv and kernel name,
    as its maps and executable are hidden) and marked as needing privileges."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run the lister as another user")
    if not SHARED_PYTHONS:
        pytest.skip("no interpreter outside /root that an unprivileged user may run")
    if not all(os.stat(d).st_mode & 0o005 == 0o005 for d in (ROOT, os.path.join(ROOT, "sampler"))):
        pytest.skip(f"{ROOT} is not readable by other users")
    p = spawn(interpreter, KNOWN_LINES)
    wait_ready(p)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [SHARED_PYTHONS[0], "-c", LISTER, str(p.pid)], capture_output=True, text=True, cwd="/",
        env=env, preexec_fn=_drop_to_nobody, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    (found,) = json.loads(out.stdout)
    assert found["needs_privileges"] is True
    assert "owned by another user (uid 0)" in found["reason"]
    assert found["executable"] is None and found["cwd"] is None  # hidden from nobody
    assert found["command"] == f"{interpreter.path} {interpreter.script_path(KNOWN_LINES)}"
    # Only a guess from the program's name is possible: major.minor when the name carries it.
    major_minor = ".".join(_version(interpreter).split(".")[:2])
    if os.path.basename(interpreter.path) == f"python{major_minor}":
        assert found["python_version"] == major_minor
    else:
        assert found["python_version"] in (major_minor, None)
