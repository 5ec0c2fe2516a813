"""The VS Code extension in a real VS Code: code-server (VS Code's own workbench, whose extension
host runs in node and spawns the real language server) driven in Debian's Chromium.

A user opens known_lines.py from the explorer, runs "Heatline: Profile Current File" from the
palette, stops the run, and sees the hot line, the code lens above the hot function and the flame
graph beside the code. Everything is asserted on what the page shows.

code-server is installed once into a cache directory outside the repository (about 40 s cold).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request

import pytest

from conftest import ROOT, TARGETS
from test_server_opcodes import ADD_EXPR, ADD_TEXT, marked

EXT = os.path.join(ROOT, "editors", "vscode")
CODE_SERVER_VERSION = "4.100.3"
RIPGREP_CACHE = "vscode-ripgrep-cache-1.15.11"
RIPGREP_TARBALL = "ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"

SETTINGS = {
    "workbench.startupEditor": "none",
    "security.workspace.trust.enabled": False,
    "telemetry.telemetryLevel": "off",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "workbench.tips.enabled": False,
    "chat.disableAIFeatures": True,
    "workbench.colorTheme": "Default Dark Modern",
    "editor.minimap.enabled": False,
    "heatline.serverCommand": [sys.executable, "-m", "server"],
    "heatline.pythonPath": sys.executable,
    "heatline.codeLens": True,
}


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "heatline-tests", f"code-server-{CODE_SERVER_VERSION}")


def _run(cmd: list[str], what: str, timeout: float, **kw) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{what} timed out after {timeout:.0f} s:\n{(err.stdout or b'')[-3000:]!r}\n{(err.stderr or b'')[-3000:]!r}")
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _npm_env(**extra: str) -> dict[str, str]:
    return dict(os.environ, CI="1", NO_UPDATE_NOTIFIER="1", npm_config_fund="false", npm_config_audit="false", **extra)


def _install_code_server(dest: str) -> str:
    """code-server from npm into `dest` (once); its ripgrep dependency is fed Debian's rg."""
    binary = os.path.join(dest, "node_modules", ".bin", "code-server")
    marker = os.path.join(dest, ".installed")
    if os.path.exists(marker) and os.access(binary, os.X_OK):
        return binary
    rg = shutil.which("rg")
    if rg is None:
        pytest.fail("ripgrep (rg) is missing, code-server needs it: run tests/install-system-deps.sh")
    shutil.rmtree(dest, ignore_errors=True)
    tmp = os.path.join(dest, ".tmp")
    stage = os.path.join(tmp, RIPGREP_CACHE, "stage")
    os.makedirs(stage)
    shutil.copy(rg, os.path.join(stage, "rg"))
    with tarfile.open(os.path.join(tmp, RIPGREP_CACHE, RIPGREP_TARBALL), "w:gz") as tar:
        tar.add(os.path.join(stage, "rg"), arcname="rg")
    env = _npm_env(TMPDIR=tmp, npm_config_unsafe_perm="true", npm_config_yes="true", npm_config_nodedir="/usr")
    try:
        _run(["npm", "install", "--foreground-scripts", "--no-fund", "--no-audit", f"code-server@{CODE_SERVER_VERSION}"],
             f"installing code-server {CODE_SERVER_VERSION} into {dest} (needs tests/install-system-deps.sh's packages)",
             timeout=600, cwd=dest, env=env)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    if not os.access(binary, os.X_OK):
        pytest.fail(f"code-server installed but {binary} is missing")
    open(marker, "w").close()
    return binary


# Screenshots are kept as test artifacts here (and in each test's tmp_path).
ARTIFACTS = os.environ.get("HEATLINE_TEST_ARTIFACTS") or os.path.join(ROOT, "tests", "artifacts")


def _screenshot(page, tmp_path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name))
    os.makedirs(ARTIFACTS, exist_ok=True)
    shutil.copy(tmp_path / name, os.path.join(ARTIFACTS, f"vscode-{name}"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exthost_logs(user: str) -> str:
    out = []
    # heatline's own channel last, so the cut below keeps it
    paths = sorted(glob.glob(os.path.join(user, "logs", "*", "**", "*.log"), recursive=True))
    for path in sorted(paths, key=lambda p: ("heatline" in p, p)):
        if "exthost" in path:
            with open(path, encoding="utf-8", errors="replace") as fh:
                out.append(f"--- {os.path.relpath(path, user)}\n{fh.read()[-3000:]}")
    return "\n".join(out)[-12000:]


@pytest.fixture(scope="module")
def code_server(tmp_path_factory):
    """A running code-server with the freshly built .vsix installed; yields (url, user_dir, workspace)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: VS Code (code-server) cannot run here")
    dest = _cache_dir()
    os.makedirs(dest, exist_ok=True)
    binary = _install_code_server(dest)

    run = tmp_path_factory.mktemp("vscode")
    if not os.path.exists(os.path.join(EXT, "node_modules", ".package-lock.json")):
        _run(["npm", "ci", "--no-fund", "--no-audit"], "npm ci", timeout=300, cwd=EXT, env=_npm_env())
    _run(["npm", "run", "build"], "npm run build", timeout=240, cwd=EXT, env=_npm_env())
    vsix = str(run / "heatline.vsix")
    _run(["npx", "--no-install", "vsce", "package", "--no-dependencies", "--allow-missing-repository", "-o", vsix],
         "vsce package", timeout=180, cwd=EXT, env=_npm_env())

    user, exts, workspace = run / "user", run / "ext", run / "workspace"
    (user / "User").mkdir(parents=True)
    exts.mkdir()
    workspace.mkdir()
    (user / "User" / "settings.json").write_text(json.dumps(SETTINGS, indent=2), encoding="utf-8")
    shutil.copy(os.path.join(TARGETS, "known_lines.py"), workspace / "known_lines.py")
    base = [binary, "--config", "/dev/null", "--user-data-dir", str(user), "--extensions-dir", str(exts)]
    _run([*base, "--install-extension", vsix], "code-server --install-extension", timeout=120)
    assert glob.glob(str(exts / "heatline.heatline-*")), os.listdir(exts)

    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")  # `-m server` and `-m sampler`
    log = open(run / "code-server.log", "w")
    proc = subprocess.Popen(
        [*base, "--bind-addr", f"127.0.0.1:{port}", "--auth", "none", "--disable-telemetry",
         "--disable-update-check", "--disable-workspace-trust", str(workspace)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"code-server did not come up:\n{(run / 'code-server.log').read_text()[-4000:]}")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/?folder={workspace}", str(user), str(workspace)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        log.close()


def _palette(page, title: str, wait_hidden: bool = True) -> None:
    # The extension's commands join the palette once the extension host has scanned the
    # extensions, which can come after the workbench shows: reopen the palette until it is there.
    deadline = time.time() + 60
    while not _palette_pick(page, title):
        if time.time() > deadline:
            pytest.fail(f"{title!r} is not in the command palette")
        page.keyboard.press("Escape")
        time.sleep(1)
    page.keyboard.press("Enter")
    if wait_hidden:
        page.locator(".quick-input-widget").wait_for(state="hidden", timeout=10_000)


def _palette_pick(page, title: str) -> bool:
    """Open the palette with `title` typed and focus its exact row; False when it has none."""
    page.keyboard.press("F1")
    box = page.locator(".quick-input-widget input")
    box.wait_for(state="visible", timeout=10_000)
    box.fill(f">{title}")
    # Enter runs the focused row, and fuzzy matching can rank a longer title first
    # ("Show Diff Flame Graph" for "Show Flame Graph"): walk down to the exact title.
    page.locator(".quick-input-list .monaco-list-row").first.wait_for(state="visible", timeout=10_000)
    rows = page.locator(".quick-input-list .monaco-list-row").count()
    for _ in range(min(rows, 20)):
        focused = page.locator(".quick-input-list .monaco-list-row.focused .label-name")
        if focused.count() and re.sub(r"\s+", " ", focused.first.inner_text()).strip() == title:
            return True
        page.keyboard.press("ArrowDown")
        time.sleep(0.1)
    return False


# Every view-line of the visible editor: its text and the ::after content of its decoration spans.
LINES_JS = r"""() => {
  const editor = document.querySelector('.editor-instance .monaco-editor .view-lines');
  if (!editor) return [];
  return [...editor.querySelectorAll('.view-line')].map(line => {
    const after = [...line.querySelectorAll('span')]
      .map(s => getComputedStyle(s, '::after').content)
      .filter(c => c && c !== 'none' && c !== 'normal');
    const r = line.getBoundingClientRect();
    return {text: line.textContent.replace(/\u00a0/g, ' '), after, top: r.top, bottom: r.bottom};
  });
}"""

LENSES_JS = r"""() => [...document.querySelectorAll('.editor-instance .codelens-decoration')].map(el => {
  const r = el.getBoundingClientRect();
  return {text: el.textContent.replace(/\u00a0/g, ' '), top: r.top, bottom: r.bottom};
})"""


STATUS_JS = "[...document.querySelectorAll('.part.statusbar .statusbar-item')].map(e => e.textContent)"
# the run's status-bar item is shown / hidden
RUN_SHOWN = "() => " + STATUS_JS + ".some(t => /heatline: [\\d,]+ samples/.test(t))"
RUN_HIDDEN = "() => !" + STATUS_JS + ".some(t => /heatline: [\\d,]+ samples/.test(t))"


def _self_pct(after: list[str]) -> float | None:
    for content in after:
        m = re.search(r"(\d+(?:\.\d+)?)%", content)
        if m:
            return float(m.group(1))
    return None


def test_profile_current_file_shows_heat_lens_and_flamegraph(code_server, page, tmp_path):
    url, user, workspace = code_server
    try:
        page.goto(url)
        page.locator(".monaco-workbench").wait_for(timeout=60_000)
        page.locator(".explorer-folders-view").wait_for(timeout=30_000)
        page.locator(".monaco-workbench").click(position={"x": 700, "y": 400})
        _open_known_lines(page)
        page.locator(".editor-instance .view-lines").click()

        _palette(page, "Heatline: Profile Current File")
        # live heat arrives about once a second while the script runs
        page.wait_for_function(
            f"() => ({LINES_JS})().some(l => /x \\+= i \\* i/.test(l.text) && l.after.some(c => /%/.test(c)))",
            timeout=60_000,
        )
        # the status-bar item of the live run: samples and elapsed time
        page.wait_for_function("() => " + STATUS_JS + ".some(t => /heatline: [\\d,]+ samples · [\\d.]+ s/.test(t))", timeout=15_000)
        time.sleep(3)  # a few seconds of samples
        _palette(page, "Heatline: Stop Profiling")
        page.wait_for_function(RUN_HIDDEN, timeout=20_000)

        def settled():
            lines = page.evaluate(LINES_JS)
            hot = next(l for l in lines if re.search(r"x \+= i \* i", l["text"]))
            return lines, hot

        deadline = time.time() + 15
        while True:
            lines, hot = settled()
            pct = _self_pct(hot["after"])
            if pct is not None and pct > 50 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert pct is not None and pct > 50, (hot, lines)
        others = [(l["text"], _self_pct(l["after"])) for l in lines if l is not hot and _self_pct(l["after"]) is not None]
        assert all(p < pct for _t, p in others), (pct, others)

        # the code lens right above `def inner` gives its self time
        page.wait_for_function(f"() => ({LENSES_JS})().some(l => /self/.test(l.text))", timeout=30_000)
        lenses = page.evaluate(LENSES_JS)
        inner = next(l for l in page.evaluate(LINES_JS) if l["text"].startswith("def inner"))
        above = [l for l in lenses if l["bottom"] <= inner["top"] + 1]
        assert above, (lenses, inner)
        lens = max(above, key=lambda l: l["bottom"])
        assert inner["top"] - lens["bottom"] < 30, (lens, inner)
        # inner() is the leaf of nearly every sample: its own time is nearly all of the profile
        lens_pct = re.search(r"self\s+(\d+(?:\.\d+)?)%", lens["text"])
        assert lens_pct and float(lens_pct.group(1)) > 90, lens

        _palette(page, "Heatline: Show Flame Graph")
        frame = None
        deadline = time.time() + 30
        while frame is None and time.time() < deadline:
            for f in page.frames:
                try:
                    if f.evaluate("() => !!window.heatline"):
                        frame = f
                        break
                except Exception:
                    pass
            else:
                time.sleep(0.5)
        assert frame is not None, [f.url for f in page.frames]
        names = frame.evaluate("() => window.heatline.visibleFrames().map(f => f.funcname)")
        assert "inner" in names and "main" in names, names
        inner_frame = frame.evaluate("() => window.heatline.visibleFrames().find(f => f.funcname === 'inner')")
        assert inner_frame["width"] > 0 and inner_frame["share"] > 0.5, inner_frame
        assert frame.locator("body").inner_text(timeout=5_000).count("inner") >= 1
        time.sleep(1)
        _screenshot(page, tmp_path, "vscode.png")
    except BaseException:
        try:
            _screenshot(page, tmp_path, "failure.png")
        except Exception:
            pass
        print(f"screenshot: {tmp_path}\nextension host logs:\n{_exthost_logs(user)}")
        raise



def _load_workbench(page, url: str) -> None:
    page.goto(url)
    page.locator(".monaco-workbench").wait_for(timeout=60_000)
    page.locator(".explorer-folders-view").wait_for(timeout=30_000)
    page.locator(".monaco-workbench").click(position={"x": 700, "y": 400})


def _open_file(page, name: str, line_text: str) -> None:
    """Open workspace file `name` from the explorer and wait for a line holding `line_text`."""
    page.locator(".explorer-folders-view .monaco-list-row", has_text=name).click()
    page.locator(".editor-instance .view-line", has_text=line_text).wait_for(timeout=30_000)


def _open_known_lines(page) -> None:
    _open_file(page, "known_lines.py", "def inner")


def _start_clean(page) -> None:
    """Clear what an earlier test left shown: the window remembers its profile across reloads,
    and each test must see only the heat it makes."""
    _palette(page, "Heatline: Clear Profile")
    page.wait_for_function("() => " + STATUS_JS + ".some(t => /heatline: profile cleared/.test(t))", timeout=30_000)
    page.wait_for_function(
        f"() => !({LINES_JS})().some(l => l.after.some(c => /%/.test(c)))", timeout=20_000)


def _hot_pct(page, timeout: float) -> tuple[float | None, list[dict]]:
    """The percentage drawn after `x += i * i`, once it is above 50 % or the time is up."""
    deadline = time.time() + timeout
    while True:
        lines = page.evaluate(LINES_JS)
        hot = next((l for l in lines if re.search(r"x \+= i \* i", l["text"])), None)
        pct = _self_pct(hot["after"]) if hot else None
        if pct is not None and pct > 50 or time.time() > deadline:
            return pct, lines
        time.sleep(0.5)


def _heatline_frame(page, timeout: float = 30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for f in page.frames:
            try:
                if f.evaluate("() => !!window.heatline"):
                    return f
            except Exception:
                pass
        time.sleep(0.5)
    return None


def _fail_artifacts(page, tmp_path, user: str, name: str) -> None:
    try:
        _screenshot(page, tmp_path, f"{name}-failure.png")
    except Exception:
        pass
    try:  # what the notification centre holds (an error toast can hide before the screenshot)
        page.keyboard.press("Escape")
        _palette(page, "Notifications: Show Notifications")
        print("notifications:", page.locator(".notifications-center").inner_text(timeout=5_000))
    except Exception:
        pass
    print(f"screenshot: {tmp_path}\nextension host logs:\n{_exthost_logs(user)}")


def _pick_process(page, pid: int) -> None:
    """In the attach quick pick (one row per Python process, labelled with its pid): filter on
    the pid, check the focused row is known_lines.py's, choose it."""
    _pick_pid(page, "attach to a Python process", pid, r"known_lines\.py")


def test_attach_from_palette_shows_heat_and_stop_leaves_target_running(code_server, page, tmp_path):
    url, user, workspace = code_server
    target = subprocess.Popen(
        [sys.executable, os.path.join(workspace, "known_lines.py")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, cwd=workspace,
    )
    try:
        assert target.stdout.readline().strip() == "ready"
        _load_workbench(page, url)
        _open_known_lines(page)
        page.locator(".editor-instance .view-lines").click()
        _start_clean(page)

        _palette(page, "Heatline: Attach to Process\u2026")
        _pick_process(page, target.pid)
        page.locator(".quick-input-widget").wait_for(state="hidden", timeout=10_000)

        page.wait_for_function(RUN_SHOWN, timeout=30_000)
        pct, lines = _hot_pct(page, timeout=30)
        assert pct is not None and pct > 50, lines
        _screenshot(page, tmp_path, "attach.png")

        _palette(page, "Heatline: Stop Profiling")
        page.wait_for_function(RUN_HIDDEN, timeout=20_000)
        time.sleep(1)
        assert target.poll() is None, "stopping the profiler ended the attached process"
        os.kill(target.pid, 0)
    except BaseException:
        _fail_artifacts(page, tmp_path, user, "attach")
        raise
    finally:
        target.kill()
        target.wait(timeout=10)


def test_saved_profile_opens_in_custom_editor_and_heats_source(code_server, page, tmp_path):
    url, user, workspace = code_server
    profile = os.path.join(workspace, "known.bin")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    made = _run([sys.executable, "-m", "sampler", "run", "--binary", "-o", profile, os.path.join(workspace, "known_lines.py"), "1.5"],
                "recording known.bin", timeout=60, cwd=ROOT, env=env)
    captured = re.search(r"Captured ([\d,]+) samples", made.stdout + made.stderr)
    assert captured and os.path.getsize(profile) > 0, made.stdout + made.stderr
    samples = captured.group(1)
    try:
        _load_workbench(page, url)
        _open_known_lines(page)
        page.locator(".editor-instance .view-lines").click()
        _start_clean(page)
        row = page.locator(".explorer-folders-view .monaco-list-row", has_text="known.bin")
        row.wait_for(timeout=30_000)
        # extension menus register once the extension host has scanned the extensions, which can
        # come after the explorer shows: reopen the context menu until the item is there
        item = page.locator(".context-view .action-item", has_text="Open with heatline")
        deadline = time.time() + 60
        while True:
            row.click(button="right")
            try:
                item.first.wait_for(state="visible", timeout=3_000)
                break
            except Exception:
                assert time.time() < deadline, page.locator(".context-view").inner_text()
                page.keyboard.press("Escape")
                time.sleep(1)
        # monaco menus act on the focused entry: hover to focus it, then Enter
        item.first.hover()
        page.wait_for_timeout(300)
        page.keyboard.press("Enter")
        page.locator(".context-view .monaco-menu").wait_for(state="hidden", timeout=10_000)

        frame = _heatline_frame(page)
        assert frame is not None, [f.url for f in page.frames]
        names = frame.evaluate("() => window.heatline.visibleFrames().map(f => f.funcname)")
        assert "inner" in names, names
        # the graph sits below the summary and its frames are in the window, not scrolled off
        inner = frame.evaluate("() => ({...window.heatline.visibleFrames().find(f => f.funcname === 'inner'),"
                               " viewport: window.innerHeight})")
        assert inner["onScreen"] and 0 <= inner["y"] and inner["y"] + inner["height"] <= inner["viewport"], inner
        summary = frame.locator(".heatline-summary").inner_text(timeout=5_000)
        assert re.search(rf"Samples\s*{re.escape(samples)}", summary), (samples, summary)
        # the custom editor's tab is the profile's
        assert page.locator(".tabs-container .tab.active", has_text="known.bin").count() == 1
        time.sleep(1)
        _screenshot(page, tmp_path, "profile-editor.png")

        _open_known_lines(page)
        pct, lines = _hot_pct(page, timeout=20)
        assert pct is not None and pct > 50, lines
    except BaseException:
        _fail_artifacts(page, tmp_path, user, "profile-editor")
        raise


def test_flame_graph_click_opens_the_line_and_a_reload_brings_the_profile_back(code_server, page, tmp_path):
    url, user, workspace = code_server
    try:
        _load_workbench(page, url)
        _open_known_lines(page)
        page.locator(".editor-instance .view-lines").click()
        _start_clean(page)
        _palette(page, "Heatline: Profile Current File")
        page.wait_for_function(RUN_SHOWN, timeout=30_000)
        time.sleep(2)
        _palette(page, "Heatline: Stop Profiling")
        page.wait_for_function(RUN_HIDDEN, timeout=20_000)
        pct, lines = _hot_pct(page, timeout=20)
        assert pct is not None and pct > 50, lines

        # move the cursor away from line 8, then click inner()'s line-8 frame in the flame graph
        page.locator(".editor-instance .view-line", has_text="import sys").click()
        page.wait_for_function("() => " + STATUS_JS + ".some(t => /Ln 1, Col/.test(t))", timeout=10_000)
        _palette(page, "Heatline: Show Flame Graph")
        frame = _heatline_frame(page)
        assert frame is not None, [f.url for f in page.frames]
        hot = frame.evaluate("() => window.heatline.visibleFrames().find(f => f.funcname === 'inner' && f.line === 8)")
        assert hot and hot["onScreen"], frame.evaluate("() => window.heatline.visibleFrames()")
        frame.locator("body").click(position={"x": hot["x"] + hot["width"] / 2, "y": hot["y"] + hot["height"] / 2})
        # the source editor beside the graph now has the cursor on that line
        page.wait_for_function("() => " + STATUS_JS + ".some(t => /Ln 8, Col 1/.test(t))", timeout=15_000)
        assert page.locator(".tabs-container .tab.active", has_text="known_lines.py").count() >= 1

        # a window reload restarts the extension host and the server: the profile comes back,
        # in the restored flame graph panel and as heat on the source. (Reload Window, not the
        # browser's reload: it waits for the workbench to save its layout before reloading.)
        with page.expect_navigation(timeout=60_000):
            _palette(page, "Developer: Reload Window", wait_hidden=False)
        page.locator(".monaco-workbench").wait_for(timeout=60_000)
        frame = _heatline_frame(page, timeout=60)
        assert frame is not None, [f.url for f in page.frames]
        names = frame.evaluate("() => window.heatline.visibleFrames().map(f => f.funcname)")
        assert "inner" in names and "main" in names, names
        page.locator(".tabs-container .tab", has_text="known_lines.py").first.click()
        page.locator(".editor-instance .view-line", has_text="def inner").wait_for(timeout=30_000)
        pct_after, lines = _hot_pct(page, timeout=30)
        assert pct_after is not None and abs(pct_after - pct) < 0.05, (pct, pct_after, lines)
        _screenshot(page, tmp_path, "reload.png")
    except BaseException:
        _fail_artifacts(page, tmp_path, user, "reload")
        raise


# A module that spins until the file named by its argument exists: the test ends it on cue.
SPIN_UNTIL = """import os
import sys

while not os.path.exists(sys.argv[1]):
    sum(i * i for i in range(20000))
"""


def test_with_no_python_file_open_the_run_item_follows_profile_module_and_attach(code_server, page, tmp_path):
    """No document open: the server's document-less heat notifications alone show the run's
    status-bar item and hide it when the run ends by itself (not by Stop, which hides it directly)."""
    url, user, workspace = code_server
    stop_file = tmp_path / "stop-now"
    with open(os.path.join(workspace, "spin_until.py"), "w", encoding="utf-8") as fh:
        fh.write(SPIN_UNTIL)
    target = None
    try:
        _load_workbench(page, url)
        _palette(page, "View: Close All Editors")
        page.wait_for_function("() => !document.querySelector('.tabs-container .tab')", timeout=10_000)
        _start_clean(page)

        # Profile Module…: name, then arguments, in two input boxes
        _palette(page, "Heatline: Profile Module\u2026", wait_hidden=False)
        page.locator(".quick-input-widget .quick-input-title", has_text="profile a module").wait_for(timeout=10_000)
        page.locator(".quick-input-widget input").fill("spin_until")
        page.keyboard.press("Enter")
        page.locator(".quick-input-widget .quick-input-title", has_text="arguments for spin_until").wait_for(timeout=10_000)
        page.locator(".quick-input-widget input").fill(str(stop_file))
        page.keyboard.press("Enter")
        page.wait_for_function(RUN_SHOWN, timeout=30_000)
        stop_file.touch()  # the module returns: the run ends by itself
        page.wait_for_function(RUN_HIDDEN, timeout=30_000)

        target = subprocess.Popen(
            [sys.executable, os.path.join(workspace, "known_lines.py")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, cwd=workspace,
        )
        assert target.stdout.readline().strip() == "ready"
        _palette(page, "Heatline: Attach to Process\u2026", wait_hidden=False)
        _pick_process(page, target.pid)
        page.wait_for_function(RUN_SHOWN, timeout=30_000)
        _screenshot(page, tmp_path, "no-document-run.png")
        target.kill()  # the attached process exits: the run ends by itself
        target.wait(timeout=10)
        page.wait_for_function(RUN_HIDDEN, timeout=30_000)
        assert page.locator(".editor-instance .view-lines").count() == 0, "a document was opened during the test"
    except BaseException:
        _fail_artifacts(page, tmp_path, user, "no-document")
        raise
    finally:
        stop_file.touch()
        os.unlink(os.path.join(workspace, "spin_until.py"))
        if target is not None and target.poll() is None:
            target.kill()
            target.wait(timeout=10)


@contextlib.contextmanager
def user_settings_and_file(user: str, workspace: str, settings: dict, name: str):
    """The window's user settings with `settings` added and tests/targets/NAME in the workspace,
    both put back as they were afterwards (one code-server serves a module's tests)."""
    path = os.path.join(user, "User", "settings.json")
    with open(path, encoding="utf-8") as fh:
        saved = fh.read()
    copy = os.path.join(workspace, name)
    shutil.copy(os.path.join(TARGETS, name), copy)
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({**json.loads(saved), **settings}, fh, indent=2)
        yield
    finally:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(saved)
        os.unlink(copy)


def test_async_aware_setting_reaches_the_run_and_heats_the_awaiting_line(code_server, page, tmp_path):
    """heatline.asyncAware on: "Profile Current File" sends it, the status-bar item says the run is
    async, and the awaiting task's `await job` line (tests/targets/async_awaits.py: on no plain
    stack) gets the awaited worker's time."""
    url, user, workspace = code_server
    with user_settings_and_file(user, workspace, {"heatline.asyncAware": True}, "async_awaits.py"):
        _async_aware_run(page, url, user, tmp_path)


def _async_aware_run(page, url: str, user: str, tmp_path) -> None:
    try:
        _load_workbench(page, url)
        _open_file(page, "async_awaits.py", "await job")
        page.locator(".editor-instance .view-lines").click()

        _palette(page, "Heatline: Profile Current File")  # the script works 3 s, then exits
        page.wait_for_function("() => " + STATUS_JS + ".some(t => /heatline: [\\d,]+ samples.*async \\(running\\)/.test(t))",
                               timeout=30_000)
        page.wait_for_function(RUN_HIDDEN, timeout=30_000)

        def awaited() -> float | None:
            line = next((l for l in page.evaluate(LINES_JS) if "await job" in l["text"]), None)
            found = re.search(r"·\s*(\d+(?:\.\d+)?)%", " ".join(line["after"])) if line else None
            return float(found.group(1)) if found else None

        deadline = time.time() + 15
        while (total := awaited()) is None or total <= 50:
            assert time.time() < deadline, (total, page.evaluate(LINES_JS))
            time.sleep(0.5)
        _screenshot(page, tmp_path, "async.png")
    except BaseException:
        _fail_artifacts(page, tmp_path, user, "async")
        raise


# -- --opcodes and --native: hot columns and the instruction hovers --------------------------------
# With heatline.opcodes and heatline.native on, "Profile Current File" on
# tests/targets/add_and_compress.py draws the add line's hot columns as decorations on its
# additions, and the hovers name the add instruction and the compress line's time in C.

COMPRESS_TEXT = marked("COMPRESS")[1]

# The view-line holding a text and the screen box of one character in it (Monaco cuts a line
# into token spans, and shows spaces as U+00A0).
LINE_JS = r"""
const lineOf = (needle) => [...document.querySelectorAll('.editor-instance .view-line')]
  .find(l => l.textContent.replace(/\u00a0/g, ' ').includes(needle));
const charBox = (line, offset) => {
  const walk = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const node = walk.currentNode;
    if (offset < node.length) {
      const r = document.createRange();
      r.setStart(node, offset);
      r.setEnd(node, offset + 1);
      return r.getBoundingClientRect();
    }
    offset -= node.length;
  }
  return null;
};
"""

# On the add line: the x span of each column decoration (drawn with a 2px radius: line heat
# has none), and the left of the additions' first character and the right of their last.
COLUMNS_JS = "([needle, first, last]) => {" + LINE_JS + r"""
  const line = lineOf(needle);
  if (!line) return null;
  const box = line.getBoundingClientRect();
  const pieces = [...document.querySelectorAll('.editor-instance .view-overlays div')]
    .filter(d => getComputedStyle(d).borderTopLeftRadius === '2px')
    .map(d => d.getBoundingClientRect())
    .filter(r => r.width > 0 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1)
    .map(r => [r.left, r.right]);
  return {pieces, from: charBox(line, first).left, to: charBox(line, last - 1).right};
}"""

POINT_JS = "([needle, offset]) => {" + LINE_JS + r"""
  const r = charBox(lineOf(needle), offset);
  return {x: r.left + r.width / 2, y: r.top + r.height / 2};
}"""


def _hover(page, line_text: str, column: int, text: str) -> str:
    """The hover shown with the mouse on character `column` of the line reading `line_text`."""
    point = page.evaluate(POINT_JS, [line_text.strip(), column])
    page.mouse.move(point["x"], point["y"])
    hover = page.locator(".monaco-hover", has_text=text)
    hover.first.wait_for(timeout=30_000)
    shown = hover.first.inner_text().replace("\u00a0", " ")
    page.mouse.move(5, 5)
    return shown


def test_opcodes_settings_draw_hot_columns_and_hovers_name_the_instructions(code_server, page, tmp_path):
    url, user, workspace = code_server
    settings = {"heatline.opcodes": True, "heatline.native": True}
    with user_settings_and_file(user, workspace, settings, "add_and_compress.py"):
        try:
            _load_workbench(page, url)
            _open_file(page, "add_and_compress.py", "def add_loop")
            page.locator(".editor-instance .view-lines").click()

            _palette(page, "Heatline: Profile Current File")  # the script works 2 s, then exits
            page.wait_for_function(RUN_SHOWN, timeout=30_000)
            page.wait_for_function(RUN_HIDDEN, timeout=30_000)

            deadline = time.time() + 20
            while not (found := page.evaluate(COLUMNS_JS, [ADD_TEXT.strip(), *ADD_EXPR])) or not found["pieces"]:
                assert time.time() < deadline, found
                time.sleep(0.5)
            # Drawn on the add line's text, mostly on its additions.
            start, end = found["from"], found["to"]
            on_additions = sum(r - l for l, r in found["pieces"] if l >= start - 1 and r <= end + 1)
            assert on_additions > 0 and on_additions >= sum(r - l for l, r in found["pieces"]) / 2, found
            _screenshot(page, tmp_path, "opcodes-columns.png")

            add_hover = _hover(page, ADD_TEXT, ADD_EXPR[0] + 6, "instructions:")
            assert re.search(r"instructions: BINARY_OP_ADD_INT \d+%", add_hover), add_hover
            c_hover = _hover(page, COMPRESS_TEXT, COMPRESS_TEXT.index("zlib"), "in C:")
            share = re.search(r"in C: (\d+)%", c_hover)
            assert share and int(share.group(1)) >= 60, c_hover
        except BaseException:
            _fail_artifacts(page, tmp_path, user, "opcodes")
            raise


# -- a "Profile" lens above a pytest test ---------------------------------------------------------


def test_profile_lens_above_a_test_runs_it_and_heats_its_hot_line(code_server, page, tmp_path):
    """tests/targets/pytest_project/test_split.py in the workspace (its pytest.ini makes the
    workspace the project root): the "Profile" lens right above `def test_split` runs that test
    under pytest, and the heavy helper's loop ends up the hottest line drawn."""
    url, user, workspace = code_server
    copies = [os.path.join(workspace, name) for name in ("pytest.ini", "test_split.py")]
    for copy in copies:
        shutil.copy(os.path.join(TARGETS, "pytest_project", os.path.basename(copy)), copy)
    try:
        _profile_lens_run(page, url, user, tmp_path)
    finally:
        for copy in copies:
            os.unlink(copy)
        shutil.rmtree(os.path.join(workspace, ".pytest_cache"), ignore_errors=True)


def _profile_lens_run(page, url: str, user: str, tmp_path) -> None:
    try:
        _load_workbench(page, url)
        _start_clean(page)
        _open_file(page, "test_split.py", "def test_split")
        # the lens is there with no profile loaded: click the one right above `def test_split`
        page.wait_for_function(f"() => ({LENSES_JS})().some(l => /Profile/.test(l.text))", timeout=30_000)
        target_line = next(l for l in page.evaluate(LINES_JS) if l["text"].startswith("def test_split"))
        links = page.locator(".editor-instance .codelens-decoration a", has_text="Profile")
        boxes = [links.nth(i).bounding_box() for i in range(links.count())]
        above = [b for b in boxes if b and b["y"] + b["height"] <= target_line["top"] + 1]
        assert above, (boxes, target_line)
        box = max(above, key=lambda b: b["y"])
        assert target_line["top"] - (box["y"] + box["height"]) < 30, (box, target_line)
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

        page.wait_for_function(RUN_SHOWN, timeout=30_000)
        page.wait_for_function(RUN_HIDDEN, timeout=90_000)

        def drawn() -> dict[str, float]:
            return {l["text"]: pct for l in page.evaluate(LINES_JS) if (pct := _self_pct(l["after"])) is not None}

        deadline = time.time() + 20
        shown = drawn()
        while not any("# heavy line" in text for text in shown):
            assert time.time() < deadline, page.evaluate(LINES_JS)
            time.sleep(0.5)
            shown = drawn()
        heavy = next(pct for text, pct in shown.items() if "# heavy line" in text)
        assert heavy == max(shown.values()), shown
        light = next((pct for text, pct in shown.items() if "# light line" in text), 0.0)
        assert heavy > light, shown
        _screenshot(page, tmp_path, "test-lens.png")
    except BaseException:
        _fail_artifacts(page, tmp_path, user, "test-lens")
        raise


# -- heat from afar: the overview ruler's hottest lines, the "Hot functions" view -----------------
# A run of split_run.py (two_paths.py's slow_path and fast_path, 70/30 by work, until a stop file
# exists) with heatline.overviewRulerLines 3 and the ruler's colours set to pure green (hottest)
# and blue (the others), so the marks can be found among the ruler's pixels.

SPLIT_RUN = """import os
from two_paths import fast_path, slow_path

while not os.path.exists({stop!r}):
    slow_path(14000)
    fast_path(6000)
"""
RULER_SETTINGS = {
    "heatline.overviewRulerLines": 3,
    "workbench.colorCustomizations": {"heatline.overviewRulerHottest": "#00ff00", "heatline.overviewRuler": "#0000ff"},
}
# The rows of the visible editor's overview ruler canvas holding pure green / blue pixels.
RULER_JS = r"""() => {
  const canvas = document.querySelector('.editor-instance .decorationsOverviewRuler');
  if (!canvas) return null;
  const {width, height} = canvas;
  const px = canvas.getContext('2d').getImageData(0, 0, width, height).data;
  const rows = {green: [], blue: []};
  for (let y = 0; y < height; y++) {
    let green = false, blue = false;
    for (let x = 0; x < width; x++) {
      const i = 4 * (y * width + x), [r, g, b, a] = [px[i], px[i + 1], px[i + 2], px[i + 3]];
      if (a > 200 && r < 40 && g > 215 && b < 40) green = true;
      if (a > 200 && r < 40 && g < 40 && b > 215) blue = true;
    }
    if (green) rows.green.push(y);
    if (blue) rows.blue.push(y);
  }
  return {rows, width, height};
}"""
HOT_VIEW_ROWS = "() => [...document.querySelectorAll('.part.sidebar .monaco-list-row .label-name')].map(e => e.textContent)"


def _bands(rows: list[int]) -> list[tuple[int, int]]:
    """Runs of consecutive pixel rows: (first, last)."""
    out: list[tuple[int, int]] = []
    for y in rows:
        if out and y == out[-1][1] + 1:
            out[-1] = (out[-1][0], y)
        else:
            out.append((y, y))
    return out


def _hot_view_share(label: str) -> tuple[str, float, float]:
    m = re.fullmatch(r"(\S+) — self ([\d.]+)% · total ([\d.]+)%", label.replace("\u00a0", " "))
    assert m, label
    return m[1], float(m[2]), float(m[3])


def test_overview_ruler_marks_the_hottest_lines_and_hot_functions_view_lists_them_live(code_server, page, tmp_path):
    url, user, workspace = code_server
    stop = tmp_path / "stop-split"
    with open(os.path.join(workspace, "split_run.py"), "w", encoding="utf-8") as fh:
        fh.write(SPLIT_RUN.format(stop=str(stop)))
    try:
        with user_settings_and_file(user, workspace, RULER_SETTINGS, "two_paths.py"):
            _ruler_and_hot_functions(page, url, user, tmp_path, stop)
    finally:
        stop.touch()
        os.unlink(os.path.join(workspace, "split_run.py"))


def _ruler_and_hot_functions(page, url: str, user: str, tmp_path, stop) -> None:
    try:
        _load_workbench(page, url)
        _start_clean(page)
        # the heatline container on the activity bar: empty, it says how to get a profile
        page.locator(".part.activitybar .action-label[aria-label^='heatline']").first.click()
        page.locator(".part.sidebar .welcome-view-content", has_text="No profile is shown").wait_for(timeout=30_000)
        _palette(page, "Go to File...", wait_hidden=False)  # Quick Open: the explorer is hidden now
        page.keyboard.type("split_run.py")
        page.locator(".quick-input-list .monaco-list-row", has_text="split_run.py").first.wait_for(timeout=10_000)
        page.keyboard.press("Enter")
        page.locator(".editor-instance .view-line", has_text="slow_path(14000)").wait_for(timeout=30_000)
        page.locator(".editor-instance .view-lines").click()

        _palette(page, "Heatline: Profile Current File")
        # live: the view lists the functions while the run streams (a second of samples at least)
        page.wait_for_function(
            "() => " + STATUS_JS + ".some(t => /heatline: ([\\d,]{5,}|[1-9]\\d{3}) samples/.test(t))", timeout=60_000)
        page.wait_for_function(f"() => ({HOT_VIEW_ROWS})().length >= 2", timeout=30_000)
        assert page.evaluate(RUN_SHOWN), "the view filled only after the run ended"
        live = [_hot_view_share(label)[0] for label in page.evaluate(HOT_VIEW_ROWS)]
        assert live[:2] == ["slow_path", "fast_path"], live
        stop.touch()
        page.wait_for_function(RUN_HIDDEN, timeout=30_000)

        # every answer holds the split (a second of samples at least): no need to catch the last
        page.wait_for_function(f"() => ({HOT_VIEW_ROWS})().some(l => l.startsWith('<module>'))", timeout=30_000)
        shown = [_hot_view_share(label) for label in page.evaluate(HOT_VIEW_ROWS)]
        names = [name for name, _s, _t in shown]
        assert names[:2] == ["slow_path", "fast_path"] and "<module>" in names, shown
        (_, slow, _), (_, fast, _) = shown[:2]
        assert abs(slow - 70) < 10 and abs(fast - 30) < 10, shown
        assert [s for _n, s, _t in shown] == sorted((s for _n, s, _t in shown), reverse=True), shown
        _screenshot(page, tmp_path, "hot-functions.png")

        # a click opens the function at its def line
        page.locator(".part.sidebar .monaco-list-row", has_text="slow_path").first.click()
        page.wait_for_function("() => " + STATUS_JS + ".some(t => /Ln 14, Col 1/.test(t))", timeout=15_000)
        assert page.locator(".tabs-container .tab.active", has_text="two_paths.py").count() == 1

        # the ruler: slow_path's body (line 17) in green over the whole width; its loop (16) and
        # fast_path's body (10) in blue; fast_path's loop (9), the fourth, unmarked
        deadline = time.time() + 20
        while not (ruler := page.evaluate(RULER_JS)) or not ruler["rows"]["green"] or not ruler["rows"]["blue"]:
            assert time.time() < deadline, ruler
            time.sleep(0.5)
        green, blue = _bands(ruler["rows"]["green"]), _bands(ruler["rows"]["blue"])
        _screenshot(page, tmp_path, "overview-ruler.png")
        print("ruler bands:", ruler["height"], green, blue)
        assert len(green) == 1, (green, blue)
        line_px = green[0][1] - green[0][0] + 1  # one line's height on the ruler
        green_mid = (green[0][0] + green[0][1]) / 2
        # at the ruler's scale the line above the hottest touches it; fast_path's body is 7 lines up
        above = [b for b in blue if b[1] < green[0][0] - 2 * line_px]
        assert len(above) == 1, (green, blue)
        fast_mid = (above[0][0] + above[0][1]) / 2
        assert abs((green_mid - fast_mid) / line_px - 7) < 1.5, (green, blue, line_px)
        assert above[0][1] - above[0][0] + 1 <= 1.5 * line_px, ("fast_path's loop is marked too", green, blue)
        near = [b for b in blue if b not in above]
        assert near and all(abs(b[1] - green[0][0]) <= line_px for b in near), (green, blue)

        # Toggle Heat hides the marks with the heat, and brings them back
        no_marks = f"() => {{ const r = ({RULER_JS})(); return r && !r.rows.green.length && !r.rows.blue.length; }}"
        _palette(page, "Heatline: Toggle Heat")
        page.wait_for_function(no_marks, timeout=20_000)
        _palette(page, "Heatline: Toggle Heat")
        page.wait_for_function(f"() => ({RULER_JS})().rows.green.length > 0", timeout=20_000)

        _palette(page, "Heatline: Clear Profile")
        page.locator(".part.sidebar .welcome-view-content", has_text="No profile is shown").wait_for(timeout=30_000)
        assert page.evaluate(HOT_VIEW_ROWS) == []
        page.wait_for_function(no_marks, timeout=20_000)
    except BaseException:
        _fail_artifacts(page, tmp_path, user, "hot")
        raise


def _pick_pid(page, title: str, pid: int, row_text: str) -> None:
    """In a quick pick titled `title` listing processes by pid: filter on the pid, check the
    focused row also matches `row_text` (a regex), choose it."""
    page.locator(".quick-input-widget .quick-input-title", has_text=title).wait_for(timeout=30_000)
    page.locator(".quick-input-widget input").fill(str(pid))
    focused = page.locator(".quick-input-list .monaco-list-row.focused")
    deadline = time.time() + 20
    while not (focused.count() and re.search(rf"(?<!\d){pid}(?!\d).*{row_text}", focused.first.inner_text(), re.S)):
        assert time.time() < deadline, page.locator(".quick-input-list").inner_text()
        time.sleep(0.2)
    page.keyboard.press("Enter")
