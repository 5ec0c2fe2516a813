"""Profiling a pytest test from its lens: a real server (pytest-lsp) lists the "Profile" lenses of
tests/targets/pytest_project/test_split.py, finds tests at lines, and runs `heatline.profileTest`
on a test whose work splits 70/30 between two helpers; pytest's own frames get no heat."""

from __future__ import annotations

import glob
import os
import re

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from test_lsp_server import (
    SERVER, execute, expect_error, heat_for, init_params, make_client, open_doc, wait_for_settings, wait_until,
)

from conftest import TARGETS, _pyenv_root
from sampler.harness import is_harness_file
from server.testrun import project_root

PROJECT = os.path.join(TARGETS, "pytest_project")
TEST_FILE = os.path.join(PROJECT, "test_split.py")
INVALID, FAILED = -32602, -32803

# 0-based lines of tests/targets/pytest_project/test_split.py
LENSES = {
    30: ("heatline.profileTest", "test_split"),
    36: ("heatline.profileTest", "test_params"),  # at its @parametrize: all its parameters run
    41: ("heatline.profileTest", "TestGroup"),
    42: ("heatline.profileTest", "TestGroup::test_inside"),
    48: ("heatline.profileTest", "TestGroup::test_async_inside"),
    52: ("heatline.profileTest", "test_async"),
    60: ("heatline.run", None),  # if __name__ == "__main__": runs the file as a script
}
HEAVY_CALL, LIGHT_CALL = 32, 33  # the calls in test_split: 70% and 30% of its work
HEAVY_LOOP = {18, 19}  # heavy()'s loop: its hottest lines


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, client_factory=make_client))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(init_params())
    yield
    await lsp_client.shutdown_session()


async def lenses_of(client: LanguageClient, uri: str) -> list[types.CodeLens]:
    found = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    return found or []


def interpreter_without_pytest() -> str | None:
    """A pyenv CPython with no pytest installed (pyenv's builds come bare)."""
    for exe in sorted(glob.glob(f"{_pyenv_root()}/versions/3.*.*/bin/python3.*")):
        site = os.path.join(os.path.dirname(os.path.dirname(exe)), "lib", "python3.*", "site-packages", "pytest")
        if re.search(r"python3\.\d+$", exe) and not glob.glob(site):
            return exe
    return None


def test_project_root_is_pytests_rootdir(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "tests" / "conftest.py").write_text("")
    test = str(tmp_path / "tests" / "unit" / "test_a.py")
    assert project_root(test, ()) == str(tmp_path)
    assert project_root(TEST_FILE, (os.path.dirname(TARGETS),)) == PROJECT  # its pytest.ini
    os.remove(tmp_path / "pyproject.toml")
    # no marker up to the workspace folder holding the test: that folder
    assert project_root(test, (str(tmp_path / "tests"),)) == str(tmp_path / "tests")


async def test_profile_a_test_from_its_lens(client: LanguageClient):
    uri = open_doc(client, TEST_FILE)
    # no profile is loaded: the test lenses are there all the same, at their exact lines
    lenses = await lenses_of(client, uri)
    got = {lens.range.start.line: (lens.command.command, lens.command.arguments[0].get("node")) for lens in lenses}
    assert got == LENSES
    assert all(lens.command.title == "Profile" for lens in lenses)
    assert lenses[0].command.arguments[0]["path"] == TEST_FILE

    # a file pytest would not collect: its __main__ block only; a text that does not parse: none
    other = open_doc(client, os.path.join(TARGETS, "known_lines.py"))
    assert [(lens.range.start.line, lens.command.command) for lens in await lenses_of(client, other)] == [(23, "heatline.run")]
    broken = open_doc(client, os.path.join(PROJECT, "test_broken.py"), "def test_a(:\n    pass\n")
    assert await lenses_of(client, broken) == []

    # the test at a line: a function, else the class holding it
    at = {line: await execute(client, "heatline.testAt", {"path": TEST_FILE, "line": line})
          for line in (0, 31, 36, 45, 49, 56)}
    assert at[0] is None and at[56] is None  # an import, a plain function
    assert at[31] == {"path": TEST_FILE, "node": "test_split", "kind": "function"}
    assert at[36]["node"] == "test_params"  # its decorator's line
    assert at[45] == {"path": TEST_FILE, "node": "TestGroup", "kind": "class"}  # a helper method
    assert at[49]["node"] == "TestGroup::test_async_inside"

    # malformed arguments and an interpreter without pytest: one line each, nothing runs
    assert "missing argument(s) 'node'" in await expect_error(client, INVALID, "heatline.profileTest", {"path": TEST_FILE})
    assert "'line' must be an integer" in await expect_error(client, INVALID, "heatline.testAt", {"path": TEST_FILE, "line": "x"})
    bare = interpreter_without_pytest()
    if bare is not None:
        message = await expect_error(client, FAILED, "heatline.profileTest", {"path": TEST_FILE, "node": "test_split", "python": bare})
        assert message == f"pytest is not installed for {bare}: install it with `{bare} -m pip install pytest`"

    # the lens's own command, as a client sends it on a click
    profile_lens = next(lens for lens in lenses if lens.range.start.line == 30)
    started = await execute(client, profile_lens.command.command, {**profile_lens.command.arguments[0], "rate": 1000})
    assert started["pid"] > 0
    final = await wait_until(lambda: heat_for(client, uri, live=False), "the test's final heat")
    assert final["profile"]["label"].endswith("test_split.py::test_split")
    lines = {entry["line"]: entry for entry in final["lines"]}
    heavy, light = lines[HEAVY_CALL]["totalPct"], lines[LIGHT_CALL]["totalPct"]
    share = heavy / (heavy + light)
    print(f"heavy {heavy}% light {light}% share {share:.3f}")
    assert 0.62 < share < 0.78, (heavy, light)
    assert heavy + light > 30, final["lines"]  # the test's work, not pytest's start, is most of the run
    assert max(final["lines"], key=lambda e: e["selfPct"])["line"] in HEAVY_LOOP

    # pytest's frames are nowhere in the hottest lines and functions: the test's code is on top
    top_lines = await execute(client, "heatline.hottest", {"count": 10})
    top_funcs = await execute(client, "heatline.hottest", {"count": 10, "kind": "functions", "by": "total"})
    assert top_lines[0]["file"] == TEST_FILE and top_lines[0]["line"] in HEAVY_LOOP
    assert top_funcs[0]["file"] == TEST_FILE and top_funcs[0]["function"] == "test_split"
    assert not [e for e in top_lines + top_funcs if is_harness_file(e["file"]) or "runpy" in e["file"]]

    # testLenses off: the heat lenses stay, the Profile lenses go
    client.set_configuration({"heatline": {"testLenses": False}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await wait_for_settings(client, lambda s: s["testLenses"] is False)
    commands = {lens.command.command for lens in await lenses_of(client, uri)}
    assert commands == {"heatline.flamegraph"}, commands
