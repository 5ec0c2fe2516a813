"""The VS Code extension (editors/vscode): it installs from its lockfile, builds, its mocha unit
tests pass, and its flame graph page holds under a strict CSP in the real Chromium, even when a
function's name is an attempt to break out of the data element."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT
from sampler.collectors.flamegraph import flamegraph_data
from sampler.model import HAS_GIL, ON_CPU, Frame, Profile, RunStats, ThreadSample

EXT = os.path.join(ROOT, "editors", "vscode")
HOSTILE = "</script><script>window.pwned=1</script>"


def _npm(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, CI="1", NO_UPDATE_NOTIFIER="1", npm_config_fund="false", npm_config_audit="false")
    return subprocess.run(["npm", *args], cwd=EXT, capture_output=True, text=True, timeout=timeout, env=env)


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"


@pytest.fixture(scope="module")
def built() -> subprocess.CompletedProcess:
    """npm ci, npm run build, npm test, once per module; returns npm test's result."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: the VS Code extension cannot be built here")
    _check(_npm("ci", "--no-fund", "--no-audit"), "npm ci")
    _check(_npm("run", "build"), "npm run build")
    return _npm("test", timeout=120)


def test_build_and_mocha_unit_tests_pass(built):
    _check(built, "npm test")
    out = built.stdout
    # mocha's summary: "N passing (12ms)", and "N failing" / "N pending" when there are any
    counts = {k: int(v) for v, k in re.findall(r"^\s*(\d+) (passing|failing|pending)\b", out, re.M)}
    assert counts.get("passing", 0) >= 20, (counts, out[-2000:])
    assert counts.get("failing", 0) == 0 and counts.get("pending", 0) == 0, (counts, out[-4000:])
    assert os.path.isfile(os.path.join(EXT, "out", "extension.js"))
    for name in ("flamegraph.js", "flamegraph.css"):
        with open(os.path.join(EXT, "media", name), "rb") as a, open(
            os.path.join(ROOT, "sampler", "collectors", "flamegraph_assets", name), "rb"
        ) as b:
            assert a.read() == b.read(), f"media/{name} is not the viewer's current copy"
    bundle = open(os.path.join(EXT, "out", "extension.js"), encoding="utf-8").read()
    assert 'require("vscode")' in bundle and "function activate(" in bundle
    # a `transport` makes the languageclient append --stdio, which the server's argparse refuses
    source = open(os.path.join(EXT, "src", "extension.ts"), encoding="utf-8").read()
    assert "transport:" not in source and "TransportKind" not in source


def test_manifest_commands_and_settings():
    manifest = json.load(open(os.path.join(EXT, "package.json"), encoding="utf-8"))
    commands = {c["command"] for c in manifest["contributes"]["commands"]}
    assert {"heatline.runFile", "heatline.attachProcess", "heatline.showFlamegraph", "heatline.toggleHeat"} <= commands
    # the languageclient registers the server's own commands; ours must not collide with them
    assert not commands & {"heatline.run", "heatline.attach", "heatline.stop", "heatline.open", "heatline.diff",
                           "heatline.flamegraph", "heatline.diffFlamegraph", "heatline.hottest", "heatline.clear"}
    props = manifest["contributes"]["configuration"]["properties"]
    assert props["heatline.serverCommand"]["default"] == [] and props["heatline.inlayHints"]["default"] is False
    colors = {c["id"] for c in manifest["contributes"]["colors"]}
    assert {"heatline.heat", "heatline.stale"} <= colors
    assert manifest["main"] == "./out/extension.js" and manifest["engines"]["vscode"] == "^1.91.0"
    assert {"heatline.runModule", "heatline.openWith"} <= commands and props["heatline.serverPath"]["default"] == ""
    menus = manifest["contributes"]["menus"]
    assert {"command": "heatline.runFile", "when": "resourceLangId == python"}.items() <= menus["editor/title"][0].items()
    assert any(m["command"] == "heatline.openWith" and ".bin" in m["when"] for m in menus["explorer/context"])
    editor = manifest["contributes"]["customEditors"][0]
    assert editor["viewType"] == "heatline.profile" and editor["priority"] == "option"
    assert editor["selector"] == [{"filenamePattern": "*.bin"}]
    assert {"onWebviewPanel:heatline.flamegraph", "onWebviewPanel:heatline.diff"} <= set(manifest["activationEvents"])
    assert "mocha" in manifest["devDependencies"] and manifest["scripts"]["test"].endswith("mocha")


def _hostile_profile() -> Profile:
    profile = Profile(RunStats(pid=4242, interval_usec=1000))
    outer = Frame("/work/app.py", "main", 3, 3)
    hot = Frame("/work/app.py", HOSTILE, 10, 10)
    cool = Frame("/work/app.py", "cool", 20, 20)
    profile.add(ThreadSample(1, HAS_GIL | ON_CPU, (hot, outer)), 90)
    profile.add(ThreadSample(1, HAS_GIL | ON_CPU, (cool, outer)), 10)
    return profile


def test_webview_page_renders_under_csp_and_hostile_name_stays_data(built, page, tmp_path):
    _check(built, "npm test")  # the page builder is the compiled one under test
    data = flamegraph_data(_hostile_profile(), title=f"profile {HOSTILE}")
    data_path, html_path = tmp_path / "data.json", tmp_path / "page.html"
    data_path.write_text(json.dumps(data), encoding="utf-8")
    proc = subprocess.run(["node", os.path.join(EXT, "scripts", "render-html.js"), str(data_path), str(html_path)],
                          capture_output=True, text=True, timeout=30)
    _check(proc, "render-html.js")
    html = html_path.read_text(encoding="utf-8")
    assert "default-src 'none'" in html and HOSTILE not in html

    page.goto(html_path.as_uri())
    page.wait_for_function("() => !!window.heatline", timeout=10_000)
    assert page.evaluate("() => window.pwned") is None
    names = page.evaluate("() => window.heatline.visibleFrames().map(f => f.funcname)")
    assert HOSTILE in names and "main" in names, names
    hot = page.evaluate(f"() => window.heatline.visibleFrames().find(f => f.funcname === {json.dumps(HOSTILE)})")
    assert hot["width"] > 0 and abs(hot["share"] - 0.9) < 0.01
    # the nonce'd scripts ran and the CSP blocked nothing of ours
    assert not [e for e in page.errors if "Content Security Policy" in e or "Refused" in e], page.errors
    assert page.evaluate("() => document.querySelectorAll('script').length") == 4


def test_vsix_packages(built, tmp_path):
    _check(built, "npm test")
    vsix = tmp_path / "heatline.vsix"
    proc = subprocess.run(
        ["npx", "--no-install", "vsce", "package", "--no-dependencies", "--allow-missing-repository", "-o", str(vsix)],
        cwd=EXT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    _check(proc, "vsce package")
    import zipfile

    names = set(zipfile.ZipFile(vsix).namelist())
    assert {"extension/package.json", "extension/out/extension.js", "extension/media/flamegraph.js",
            "extension/media/flamegraph.css"} <= names, names
    assert not [n for n in names if "/src/" in n or "node_modules" in n], names
