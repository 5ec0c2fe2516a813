"""`heatline run --live` / `attach --live`, driven for real in tmux: keys sent with `send-keys`,
the screen read with `capture-pane`, polled with a deadline (never a sleep to synchronise).

On the venv's CPython and the sid root's 3.15 (a target started in the root and attached to from
the host): the hottest function tops the table with its share; each key does what it says;
target exit shows the banner; `q` restores the terminal and, on attach, leaves the target
running; a small terminal gets a message; no terminal, and output options, are refused.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import pytest

import sid_root
from conftest import ROOT, Interpreter, favoured, target, wait_ready

TMUX = "/usr/bin/tmux"
DEADLINE_S = 40.0  # generous: the machine may be loaded; a pass is usually seconds
POLL_S = 0.05
EXITED = "heatline exited with "

# A target whose two functions each do all their work on one line (a C call), split 75/25 by
# work, so the shares hold however the machine schedules it.
SHARES = '''\
import sys, time

def hot_function_live(n):
    return sum(range(n))  # hot line

def warm_function_live(n):
    return sum(range(n))  # warm line

print("ready", flush=True)
deadline = time.time() + float(sys.argv[1]) if len(sys.argv) > 1 else None
while deadline is None or time.time() < deadline:
    hot_function_live(300_000)
    warm_function_live(100_000)
'''

# Names from the target that try to act on the terminal: an OSC title change, a screen clear,
# a newline, a bidi override.
HOSTILE_FUNC = "ev\x1b]0;pwned\x07\x1b[2J\nx\u202e"
HOSTILE = f'''\
import threading

def spin():
    x = 0
    while True:
        x += 1

spin.__code__ = spin.__code__.replace(co_name={HOSTILE_FUNC!r}, co_qualname={HOSTILE_FUNC!r})
threading.Thread(target=spin, name="thr\\x1b[31mred\\x07", daemon=True).start()
print("ready", flush=True)
spin()
'''

def _interpreters() -> list:
    params = [pytest.param(Interpreter("current", sys.executable), id="current")]
    reason = sid_root.unavailable_reason()
    if reason is None and sid_root.version_of("3.15") is None:
        reason = f"python3.15 does not run in the sid root {sid_root.root_path()}"
    marks = [pytest.mark.skip(reason=f"CPython 3.15 in the sid root: {reason}")] if reason else []
    params.append(pytest.param(Interpreter("sid-3.15", "/usr/bin/python3.15", rooted=True), id="sid-3.15",
                               marks=marks))
    return params


INTERPRETERS = _interpreters()


def heatline_argv(*args: str) -> list[str]:
    return [*favoured(), sys.executable, "-m", "sampler", *args]


class Pane:
    """One tmux server of its own (its own socket) with one pane running a command under `sh`,
    which then says how heatline exited and stays, so the pane can be read after it."""

    def __init__(self, argv: list[str], width: int = 150, height: int = 40) -> None:
        # A socket path of its own, short (a socket path holds at most 107 bytes), removed by close().
        self.socket_dir = tempfile.mkdtemp(prefix="hl-tmux-", dir="/tmp")
        self.socket = os.path.join(self.socket_dir, "s")
        env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8",
                   PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("PYTHONWARNINGS", None)
        command = f'{shlex.join(argv)}; echo "{EXITED}$?"; exec sleep 3600'
        subprocess.run([TMUX, "-S", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "live",
                        "-x", str(width), "-y", str(height), "-c", ROOT, command], env=env, check=True)
        self.tmux("set-option", "-g", "remain-on-exit", "on")

    def tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-S", self.socket, *args], capture_output=True, text=True,
                              check=True).stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "live", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "live", "-l", "--", text)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "live")

    def wait(self, predicate: Callable[[str], bool], what: str, timeout: float = DEADLINE_S) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not seen within {timeout:.0f} s; the screen:\n{text}")
            time.sleep(POLL_S)

    def wait_for(self, needle: str, timeout: float = DEADLINE_S) -> str:
        return self.wait(lambda text: needle in text, repr(needle), timeout)

    def exit_status(self) -> int:
        text = self.wait_for(EXITED)
        return int(re.search(re.escape(EXITED) + r"(\d+)", text).group(1))

    def heatline_pid(self) -> int:
        """heatline's PID: the child of the pane's shell."""
        shell = int(self.tmux("display-message", "-p", "-t", "live", "#{pane_pid}").strip())
        for task in os.listdir(f"/proc/{shell}/task"):
            with open(f"/proc/{shell}/task/{task}/children") as fh:
                children = fh.read().split()
            if children:
                return int(children[0])
        raise AssertionError("heatline is not running in the pane")

    def close(self) -> None:
        subprocess.run([TMUX, "-S", self.socket, "kill-server"], capture_output=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)


@pytest.fixture
def shares_script(tmp_path) -> str:
    path = tmp_path / "live_shares.py"
    path.write_text(SHARES)
    return str(path)


@pytest.fixture
def panes():
    opened: list[Pane] = []

    def open_pane(argv: list[str], width: int = 150, height: int = 40) -> Pane:
        pane = Pane(argv, width, height)
        opened.append(pane)
        return pane

    yield open_pane
    for pane in opened:
        pane.close()


# -- reading the screen ------------------------------------------------------------------------------


@dataclass
class ShownRow:
    direct: int
    cumulative: int
    direct_pct: float
    cumulative_pct: float
    function: str
    location: str


def table(screen: str) -> tuple[str, list[ShownRow]]:
    """The table's title line and rows (a 150-column screen: every column shown)."""
    lines = screen.splitlines()
    at = next(i for i, line in enumerate(lines) if "nsamples" in line and "file:line" in line)
    header = lines[at]
    func_at, loc_at = header.index("function"), header.index("file:line")
    rows = []
    for line in lines[at + 1:]:
        numbers = line[:func_at].split()
        if len(numbers) != 5 or "/" not in numbers[0]:
            break
        direct, cumulative = map(int, numbers[0].split("/"))
        rows.append(ShownRow(direct, cumulative, float(numbers[1]), float(numbers[3]),
                             line[func_at:loc_at].strip(), line[loc_at:].strip()))
    return header, rows


def samples_total(screen: str) -> int:
    return int(re.search(r"Samples: ([\d,]+) total", screen).group(1).replace(",", ""))


def has_rows(min_samples: int) -> Callable[[str], bool]:
    def check(screen: str) -> bool:
        try:
            return samples_total(screen) >= min_samples and len(table(screen)[1]) >= 2
        except (AttributeError, StopIteration):
            return False
    return check


def start_target(spawn, interp: Interpreter, path: str, *args: str) -> subprocess.Popen:
    proc = spawn(*favoured(), *interp.command(path, *args))
    wait_ready(proc)
    return proc


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# -- the screen and its keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_table_and_keys(interp, spawn, panes, shares_script, tmp_path):
    """attach --live: the hot function tops the table at ~75%; s, /, c, Enter, p, h and o do what
    they say; q leaves the target running and the terminal as it was, with the summary."""
    proc = start_target(spawn, interp, shares_script)
    pane = panes(heatline_argv("attach", "--live", str(proc.pid)))

    screen = pane.wait(has_rows(1500), "a table of 1,500 samples")
    header, rows = table(screen)
    assert "▼tottime" in header, header
    assert rows[0].function == "hot_function_live", screen
    assert rows[1].function == "warm_function_live", screen
    # 75/25 by work; a loaded machine's scheduling moves it some.
    assert 55 <= rows[0].direct_pct <= 90 and 10 <= rows[1].direct_pct <= 45, screen
    assert rows[0].direct_pct + rows[1].direct_pct > 95, screen
    assert [r.direct for r in rows] == sorted((r.direct for r in rows), reverse=True), screen

    # s: the next sort key, cumulative %: the marker moves, and the module body's call of the hot
    # function (no direct samples, last by total time) rises to the top two, beside it.
    pane.keys("s")
    screen = pane.wait_for("Sort: Cumulative %")
    header, rows = table(screen)
    assert "▼%" in header and "▼tottime" not in header, header
    assert {r.function for r in rows[:2]} == {"<module>", "hot_function_live"}, screen
    assert 55 <= rows[0].cumulative_pct <= 90, screen
    assert [r.cumulative for r in rows] == sorted((r.cumulative for r in rows), reverse=True), screen
    pane.keys("S")
    pane.wait_for("Sort: Total Time")

    # /: only rows whose file or function holds the text; c clears.
    pane.keys("/")
    pane.wait_for("Filter (Enter applies")
    pane.type("WARM_func")
    pane.keys("Enter")
    screen = pane.wait(lambda s: "Filter: WARM_func" in s and all(
        r.function == "warm_function_live" for r in table(s)[1]) and table(s)[1], "the filtered table")
    assert "hot_function_live" not in screen.split("file:line", 1)[1], screen
    pane.keys("c")
    pane.wait(lambda s: "Filter:" not in s and any(r.function == "hot_function_live" for r in table(s)[1]),
              "the whole table again")

    # Enter: the top row's function, line by line; Esc goes back.
    pane.keys("Enter")
    screen = pane.wait_for("Source: hot_function_live")
    hot_line = next(line for line in screen.splitlines() if "# hot line" in line)
    assert hot_line.startswith(">"), screen
    assert int(hot_line[1:].split()[1]) > 0, hot_line  # its direct samples
    pane.keys("Escape")
    pane.wait(lambda s: "Source:" not in s and "file:line" in s, "the table after Esc")
    # j selects the top row, j again the next: Enter then shows that one's function.
    pane.keys("j", "j", "Enter")
    pane.wait_for("Source: warm_function_live")
    pane.keys("q")  # in the source view, q goes back
    pane.wait(lambda s: "Source:" not in s and "file:line" in s, "the table after q")

    # p: PAUSED, and the numbers hold still however long one looks; p again resumes.
    pane.keys("p")
    paused = pane.wait_for("PAUSED")
    frozen = (samples_total(paused), table(paused)[1])
    watch_until = time.monotonic() + 1.5  # 15 refreshes at 10 Hz
    while time.monotonic() < watch_until:
        now = pane.screen()
        assert "PAUSED" in now and (samples_total(now), table(now)[1]) == frozen, now
        time.sleep(POLL_S)
    pane.keys("p")
    pane.wait(lambda s: "PAUSED" not in s and samples_total(s) > frozen[0], "the numbers moving again")

    # h: the help, any key closes it.
    pane.keys("h")
    screen = pane.wait_for("heatline --live: keys")
    assert "the target keeps running" in screen, screen
    pane.keys("h")
    pane.wait(lambda s: "heatline --live: keys" not in s and "file:line" in s, "the table after the help")

    # o: the profile shown, written in the format typed at the prompt.
    out = tmp_path / "live flame.html"
    pane.keys("o")
    pane.wait_for("Write the profile shown")
    pane.type(f"--flamegraph -o {shlex.quote(str(out))}")
    pane.keys("Enter")
    pane.wait_for("flamegraph profile written to")
    assert "hot_function_live" in out.read_text(encoding="utf-8")
    pane.keys("o")
    pane.wait_for("Write the profile shown")
    pane.type("--gecko")
    pane.keys("Enter")
    pane.wait_for("needs each sample's time")

    # q: heatline ends, the target does not; the screen is the shell's again, with the summary.
    pane.keys("q")
    assert pane.exit_status() == 0
    screen = pane.screen()
    assert "Captured" in screen and "heatline --live" not in screen and "file:line" not in screen, screen
    assert proc.poll() is None and pid_alive(proc.pid)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_threads_by_name(interp, spawn, panes):
    """t: one thread at a time, named; → and ← move between them, each its own rows."""
    proc = start_target(spawn, interp, target("gil_contention.py"))
    pane = panes(heatline_argv("attach", "--live", "-a", str(proc.pid)))
    pane.wait(has_rows(600), "the table")
    label = re.compile(r"Thread: (.+?) \(TID (\d+)\)  (\d)/(\d)")
    names = {"MainThread": "<module>", "Thread-1 (spin_a)": "spin_a", "Thread-2 (spin_b)": "spin_b"}
    pane.keys("t")
    seen = {}
    for _ in range(3):
        screen = pane.wait(lambda s: label.search(s) is not None and label.search(s).group(2) not in seen
                           and table(s)[1], "a thread not seen yet")
        name, tid, _, count = label.search(screen).groups()
        assert count == "3" and name in names, screen
        rows = table(screen)[1]
        others = set(names.values()) - {names[name], "<module>"}
        if rows[0].function != names[name] or any(r.function in others for r in rows):
            # Seen once in a full run (a thread view showing the other spinner's rows): say
            # which thread runs what, from a plain dump taken now, to tell the view from the walk.
            dump = subprocess.run(heatline_argv("dump", "-a", str(proc.pid)), capture_output=True, text=True)
            pytest.fail(f"thread {name} (TID {tid}) shows {[r.function for r in rows]}\n{screen}\n"
                        f"dump now:\n{dump.stdout}{dump.stderr}")
        seen[tid] = name
        pane.keys("Right")
    assert sorted(seen.values()) == sorted(names)
    pane.keys("Left")
    pane.wait(lambda s: label.search(s) is not None and label.search(s).group(3) == "3", "← back to thread 3")
    pane.keys("t")
    pane.wait_for("Thread: ALL")
    pane.keys("q")
    assert pane.exit_status() == 0
    assert proc.poll() is None


def test_names_from_the_target_cannot_drive_the_terminal(spawn, panes, tmp_path):
    """Escape sequences, newlines and bidi controls in function and thread names are drawn as
    visible escapes: the screen stays whole and the pane's title unchanged."""
    script = tmp_path / "hostile_live.py"
    script.write_text(HOSTILE)
    proc = start_target(spawn, Interpreter("current", sys.executable), str(script))
    pane = panes(heatline_argv("attach", "--live", "-a", str(proc.pid)))
    screen = pane.wait_for("ev\\x1b]0;pwned\\x07\\x1b[2J\\x0ax\\u202e")
    assert "heatline --live" in screen and "file:line" in screen
    pane.keys("t")
    screen = pane.wait(lambda s: "Thread: ALL" not in s, "a thread view")
    if "thr\\x1b[31mred\\x07" not in screen:
        pane.keys("Right")
    pane.wait_for("Thread: thr\\x1b[31mred\\x07 (TID")
    assert "pwned" not in pane.tmux("display-message", "-p", "-t", "live", "#{pane_title}")
    pane.keys("q")
    assert pane.exit_status() == 0


# -- lifecycle ------------------------------------------------------------------------------------------


def test_run_finishes_with_banner_then_q_restores(panes, tmp_path):
    """run --live: the target's exit leaves the final table with the banner until q; then the
    terminal is the shell's again, with the target's output and the summary; its status is heatline's."""
    script = tmp_path / "live_shares.py"
    script.write_text(SHARES.replace('print("ready"', 'print("target says hello"'))
    pane = panes(heatline_argv("run", "--live", str(script), "3"))
    screen = pane.wait_for("FINISHED")
    assert "press q to quit" in screen and "the target exited" in screen, screen
    _, rows = table(screen)
    assert rows[0].function == "hot_function_live", screen
    assert "target says hello" not in screen  # its output waits until the terminal is back
    pane.keys("q")
    assert pane.exit_status() == 0
    screen = pane.screen()
    assert "target says hello" in screen and "Captured" in screen, screen
    assert "FINISHED" not in screen and "file:line" not in screen, screen


@pytest.mark.parametrize("how", ["q", "SIGTERM"])
def test_run_ends_the_target(how, panes, shares_script):
    """q, or SIGTERM to heatline: the view closes, the terminal is restored, the target ends."""
    pane = panes(heatline_argv("run", "--live", shares_script))
    screen = pane.wait(has_rows(300), "the table")
    pid = int(re.search(r"PID (\d+)", screen).group(1))
    assert pid_alive(pid)
    if how == "q":
        pane.keys("q")
    else:
        os.kill(pane.heatline_pid(), signal.SIGTERM)
    assert pane.exit_status() == 0
    screen = pane.screen()
    assert "Captured" in screen and "file:line" not in screen, screen
    assert ("Interrupted by user." in screen) == (how == "SIGTERM"), screen
    assert not pid_alive(pid)


def test_small_terminal_then_resize(panes, shares_script):
    pane = panes(heatline_argv("run", "--live", shares_script), width=50, height=10)
    screen = pane.wait_for("terminal too small")
    assert "60x12" in screen and "file:line" not in screen, screen
    pane.tmux("resize-window", "-t", "live", "-x", "150", "-y", "40")
    pane.wait(has_rows(100), "the table after the resize")
    pane.keys("q")
    assert pane.exit_status() == 0


# -- refusals -------------------------------------------------------------------------------------------


def test_no_terminal_is_one_line_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    script = tmp_path / "t.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    for argv in (["run", "--live", str(script)], ["attach", "--live", str(os.getpid())]):
        p = subprocess.run([sys.executable, "-m", "sampler", *argv], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
        assert p.returncode == 2, p.stderr
        assert p.stderr == "heatline: --live needs a terminal: stdout is not a terminal\n", p.stderr
        assert p.stdout == ""
    assert not marker.exists()


@pytest.mark.parametrize("flags, message", [
    (["--flamegraph"], "--live is incompatible with --flamegraph. Live mode uses a TUI interface."),
    (["--binary"], "--live is incompatible with --binary. Live mode uses a TUI interface."),
    (["-o", "x.pstats"], "--live is incompatible with -o. Live mode uses a TUI interface."),
    (["--sort", "tottime", "--no-summary"],
     "Options --sort, --no-summary are incompatible with --live. Live mode uses a TUI interface with its own controls."),
    (["--limit", "5"],
     "Options --limit are incompatible with --live. Live mode uses a TUI interface with its own controls."),
])
def test_output_options_are_refused(flags, message):
    env = dict(os.environ, PYTHONPATH=ROOT)
    for command in (["run", "--live", *flags, target("split_work.py")], ["attach", "--live", *flags, "1"]):
        p = subprocess.run([sys.executable, "-m", "sampler", *command], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=60)
        assert p.returncode == 2, p.stderr
        assert p.stderr == f"heatline: error: {message}\n"
