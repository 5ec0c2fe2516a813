"""`heatline attach PID PID...` and `--all-python`: one run attached to a target on every CPython
at once, each written to its own file named by PID with its own labels; and the refusals."""

from __future__ import annotations

import argparse
import gzip
import subprocess

import pytest

import sid_root
from conftest import ALL_INTERPRETERS, heatline, target, wait_ready
from sampler.attach_many import target_pids
from sampler.pprof import decode

KNOWN = target("known_lines.py")


@pytest.fixture(scope="module")
def targets():
    """known_lines.py under every CPython the suite carries (the sid root's when it is ready)."""
    usable = [p.values[0] for p in ALL_INTERPRETERS
              if not p.values[0].rooted or sid_root.unavailable_reason() is None]
    procs = []
    try:
        for interpreter in usable:
            proc = subprocess.Popen(interpreter.command(KNOWN, "60"), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            procs.append((interpreter, proc))
            wait_ready(proc)
        yield procs
    finally:
        for _interpreter, proc in procs:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()


def test_every_process_gets_its_own_file_with_its_own_facts(targets, tmp_path):
    pids = [str(proc.pid) for _i, proc in targets]
    res = heatline("attach", *pids, "-d", "1.5", "-r", "200", "--pprof", "-o", str(tmp_path / "fleet.pb.gz"))
    assert res.returncode == 0, res.stderr
    assert f"Processes: {len(pids)} attached" in res.stdout
    for interpreter, proc in targets:
        path = tmp_path / f"fleet_{proc.pid}.pb.gz"
        assert f"PID {proc.pid}: " in res.stdout and str(path) in res.stdout, interpreter.label
        p = decode(gzip.decompress(path.read_bytes()))
        comments = dict(p.string(c).split(": ", 1) for c in p.comments)
        assert comments["pid"] == str(proc.pid), interpreter.label
        version = subprocess.run(interpreter.python("-c", "import platform; print(platform.python_version())"),
                                 capture_output=True, text=True).stdout.strip()
        assert comments["python"] == version, interpreter.label
        names = {fn.id: p.string(fn.name) for fn in p.functions}
        leaf = {loc.id: names[loc.lines[0].function_id] for loc in p.locations}
        total = sum(s.values[0] for s in p.samples)
        in_inner = sum(s.values[0] for s in p.samples if leaf[s.location_ids[0]] == "inner")
        assert total > 0 and in_inner > total * 0.5, interpreter.label  # the target's hot spot


def test_all_python_finds_a_running_target(targets):
    args = argparse.Namespace(all_python=True, pid=[])
    pids = target_pids(args)
    assert all(proc.pid in pids for interpreter, proc in targets if not interpreter.rooted)


@pytest.mark.parametrize("args, expected", [
    (["--live", "1", "2"], "--live takes one PID"),
    (["--subprocesses", "1", "2"], "--subprocesses takes one PID"),
    (["--all-python", "1"], "PIDs or --all-python, not both"),
    ([], "give a PID"),
    (["2147483646", "2147483645"], "no process with PID 2147483645"),  # the lowest
])
def test_refusals_are_one_line(args, expected):
    res = heatline("attach", *args, "-d", "1")
    assert res.returncode != 0 and expected in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_a_gone_pid_among_live_ones_is_reported(targets, tmp_path):
    _interpreter, proc = targets[0]
    res = heatline("attach", str(proc.pid), "2147483646", "-d", "0.5", "-r", "200", "--collapsed",
                   "-o", str(tmp_path / "x.txt"))
    assert res.returncode == 0, res.stderr
    assert "PID 2147483646: no such process" in res.stdout and (tmp_path / f"x_{proc.pid}.txt").exists()
