"""Shared fixtures: every CPython on the machine, and helpers to drive the real CLI."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

import sid_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = os.path.join(ROOT, "tests", "targets")
SUPPORTED_MINORS = [(3, 9), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14), (3, 15)]


@dataclass(frozen=True)
class Interpreter:
    """A CPython to start targets with: on the host, or inside the sid root (`rooted`), where
    `path` is the interpreter's path inside the root and `heatline run --python` cannot reach it
    (targets are started there and attached to, the container case)."""

    label: str
    path: str
    rooted: bool = False

    def command(self, script: str, *args: str) -> list[str]:
        """The argv that starts `script` (a host path) under this interpreter."""
        if self.rooted:
            return sid_root.in_root(self.path, sid_root.path_in_root(script), *args)
        return [self.path, script, *args]

    def python(self, *args: str) -> list[str]:
        """The argv that runs this interpreter with `args` (e.g. `-c CODE`)."""
        return sid_root.in_root(self.path, *args) if self.rooted else [self.path, *args]

    def script_path(self, script: str) -> str:
        """The path the target sees for a host script (its co_filename)."""
        return sid_root.path_in_root(script) if self.rooted else script


def _pyenv_root() -> str:
    return os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")


def find_interpreters() -> list[Interpreter]:
    """Every supported CPython present: the one running the tests, pyenv's, and the system's."""
    found: dict[str, Interpreter] = {}

    def add(label: str, path: str) -> None:
        real = os.path.realpath(path)
        if os.access(real, os.X_OK) and real not in {os.path.realpath(i.path) for i in found.values()}:
            found[label] = Interpreter(label, path)

    add(f"current-{sys.version_info[0]}.{sys.version_info[1]}", sys.executable)
    for major, minor in SUPPORTED_MINORS:
        for exe in sorted(glob.glob(f"{_pyenv_root()}/versions/{major}.{minor}.*/bin/python{major}.{minor}")):
            if re.search(r"/versions/\d+\.\d+\.\d+/", exe):  # skip -dev/-debug/free-threaded builds
                add(f"pyenv-{exe.split('/versions/')[1].split('/')[0]}", exe)
        for exe in (f"/usr/bin/python{major}.{minor}",):
            if os.path.exists(exe):
                add(f"system-{major}.{minor}", exe)
    return list(found.values())


def rooted_interpreters() -> list[Interpreter]:
    """The sid root's 3.14 and 3.15 (whatever patch versions sid has today)."""
    return [Interpreter(f"sid-{minor}", f"/usr/bin/python{minor}", rooted=True) for minor in sid_root.VERSIONS]


def _interpreter_params() -> list:
    reason = sid_root.unavailable_reason()
    params = [pytest.param(i, id=i.label) for i in INTERPRETERS]
    for i in rooted_interpreters():
        if reason is None and sid_root.version_of(i.path.rsplit("python", 1)[1]) is None:
            reason = f"{i.path} does not run in the sid root {sid_root.root_path()}"
        marks = [pytest.mark.skip(reason=f"CPython in the sid root: {reason}")] if reason else []
        params.append(pytest.param(i, id=i.label, marks=marks))
    return params


INTERPRETERS = find_interpreters()
ALL_INTERPRETERS = _interpreter_params()  # the host's, then the sid root's 3.14 and 3.15


@pytest.fixture(params=ALL_INTERPRETERS)
def interpreter(request) -> Interpreter:
    return request.param


@pytest.fixture(params=[p for p in ALL_INTERPRETERS if not p.values[0].rooted])
def host_interpreter(request) -> Interpreter:
    """Only the host's interpreters: for what `heatline run --python` must launch itself."""
    return request.param


def target(name: str) -> str:
    return os.path.join(TARGETS, name)


def favoured() -> list[str]:
    """A command prefix giving the process (and what it starts) the CPU ahead of ordinary work.

    For checks of proportions against a known truth: on a loaded machine a target that loses
    its CPU freezes wherever it is and every sample taken meanwhile lands there, so shares
    wander by chunks of scheduler time slices. nice -20 outweighs a nice-0 process ~87 to 1.
    """
    return ["nice", "-n", "-20"] if os.geteuid() == 0 else []


def realtime() -> list[str]:
    """A stronger `favoured()`: a real-time (FIFO) priority, which no ordinary process preempts
    however many there are (nice -20 only outweighs nice 0, and other tests' targets run at nice
    -20 too). For runs whose shares must hold beside any load; the target must rest now and then
    (tests/targets/gate_work.py), or the kernel's real-time budget (95% of each second) throttles
    it. favoured() where chrt is refused."""
    if os.geteuid() == 0 and subprocess.run(["chrt", "-f", "10", "true"], capture_output=True).returncode == 0:
        return ["chrt", "-f", "10"]
    return favoured()


def heatline(*args: str, timeout: float = 120, cwd: str | None = None, prefix: list[str] | None = None,
             **kw) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would (after `prefix`, e.g. `favoured()`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "sampler", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=env, **kw,
    )


def parse_collapsed(path: str) -> list[tuple[int, list[str], int]]:
    """(tid, frames root->leaf as 'file:func:line', count) per line."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, count = line.rsplit(" ", 1)
            parts = stack.split(";")
            rows.append((int(parts[0][4:]), parts[1:], int(count)))
    return rows


def weight_where(rows, predicate) -> int:
    return sum(c for _tid, frames, c in rows if predicate(frames))


def has_func(frames: list[str], func: str) -> bool:
    return any(f.split(":")[1] == func for f in frames if f.count(":") >= 2)


@pytest.fixture
def spawn():
    """Start target processes and make sure they are gone after the test."""
    procs: list[subprocess.Popen] = []

    def start(*cmd, prefix: list[str] | None = None, **kw) -> subprocess.Popen:
        """`start(interpreter, script, *args)` or `start(*argv)`, after `prefix` (e.g. `favoured()`)."""
        if cmd and isinstance(cmd[0], Interpreter):
            cmd = cmd[0].command(*cmd[1:])
        cmd = [*(prefix or []), *cmd]
        p = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        for s in (p.stdout, p.stderr):
            if s:
                s.close()


def wait_ready(proc: subprocess.Popen, marker: str = "ready") -> None:
    """Block until the target prints its ready line, so it is inside the code under test."""
    line = proc.stdout.readline()
    assert marker in line, f"target did not start: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"


def attach_binary(command: list[str], path: str, *flags: str, duration: str = "1.5",
                  prefix: list[str] | None = None) -> tuple[float, float]:
    """Start `command` (a target printing "ready"), attach to it for `duration` seconds with
    `flags`, write --binary to `path`, end the target; the wall-clock span of the attach."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(proc)
        before = time.time()
        res = heatline("attach", str(proc.pid), "-d", duration, *flags, "--binary", "-o", path, prefix=prefix)
        after = time.time()
        assert res.returncode == 0, res.stderr
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return before, after


# -- a real browser for HTML outputs ----------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven through Playwright (its own browser download unused).

    Per module, not per session: Playwright's sync API keeps an event loop running on the main
    thread while it is open, and the asyncio tests (the language server's) cannot run beside it.
    """
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: run tests/install-system-deps.sh (the README's test command does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page; console errors and uncaught exceptions are collected in `page.errors`."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.errors = []
    pg.on("console", lambda msg: pg.errors.append(msg.text) if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    yield pg
    context.close()


def start_ready(spawn, interpreter: Interpreter, script: str, *args: str, **kw) -> subprocess.Popen:
    """Start `script` under `interpreter` through tests/targets/announce.py, which prints "ready"
    once the interpreter is up and then runs the script as __main__: for scripts that print no
    ready line of their own but must be attached to (the sid root's interpreters cannot be
    launched by `heatline run`)."""
    p = spawn(interpreter, target("announce.py"), interpreter.script_path(script), *args, **kw)
    wait_ready(p)
    return p


# tests/targets/pytest_project is a target project (heatline profiles its tests), not our suite.
collect_ignore = [os.path.join("targets", "pytest_project")]


# -- the target's own tools (pytest, ipykernel) under every host CPython -------------------------

def host_minors() -> list:
    """One host interpreter per minor version, the running one first: targets that bring their
    own tools (a pytest run, a Jupyter kernel) run under each."""
    seen, params = set(), []
    for param in ALL_INTERPRETERS:
        interpreter = param.values[0]
        if interpreter.rooted:
            continue
        minor = ".".join(interpreter.label.split("-", 1)[1].split(".")[:2])  # current-3.11, pyenv-3.9.18
        if minor not in seen:
            seen.add(minor)
            params.append(param)
    return params


# What the target programs of those tests import: the project's tools, never heatline's.
TARGET_TOOLS = ("pytest", "ipykernel")


def python_with_tools(interpreter: Interpreter) -> str:
    """A Python of `interpreter`'s version that imports TARGET_TOOLS: the running one (its test
    extras have them), else a venv of that interpreter made once from PyPI and kept under
    ~/.cache/heatline-tests (one venv for both: a second one would cost CI its install time)."""
    if interpreter.path == sys.executable:
        return sys.executable
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    venv = os.path.join(base, "heatline-tests", "target-venvs", f"{interpreter.label}-{'-'.join(TARGET_TOOLS)}")
    python = os.path.join(venv, "bin", "python")
    ready = os.path.join(venv, ".ready")
    if not os.path.exists(ready):
        made = subprocess.run([interpreter.path, "-m", "venv", "--clear", venv], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"{interpreter.label} cannot make a venv: {made.stderr.strip().splitlines()[-1:]}")
        installed = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *TARGET_TOOLS],
                                   capture_output=True, text=True, timeout=600)
        assert installed.returncode == 0, installed.stderr[-2000:]
        open(ready, "w").close()
    return python
