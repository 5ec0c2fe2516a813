"""The language server, end to end: a real `heatline-lsp` process driven by pytest-lsp, profiling
real target processes, checked against what the targets are known to do."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import pathlib
import subprocess
import sys
import time
from typing import Any, Callable

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from conftest import ALL_INTERPRETERS, ROOT, heatline, target, wait_ready

SERVER = [sys.executable, "-m", "server"]
WAIT_S = 90.0  # a guard against hanging, not a performance bound


def as_uri(path: str) -> str:
    return pathlib.Path(path).as_uri()


def plain(value: Any) -> Any:
    """pygls hands custom payloads over as namedtuple-like Objects: make them dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def make_client() -> LanguageClient:
    client = pytest_lsp.make_test_lsp_client()
    client.heat = []
    client.refreshes = []

    @client.feature("heatline/heat")
    def on_heat(ls: LanguageClient, params: Any) -> None:
        ls.heat.append(plain(params))

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def on_lens_refresh(ls: LanguageClient, params: None) -> None:
        ls.refreshes.append("codeLens")

    @client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)
    def on_hint_refresh(ls: LanguageClient, params: None) -> None:
        ls.refreshes.append("inlayHint")

    return client


def init_params(capabilities: str = "visual-studio-code") -> types.InitializeParams:
    return types.InitializeParams(
        capabilities=client_capabilities(capabilities),
        root_uri=as_uri(ROOT),
        workspace_folders=[types.WorkspaceFolder(uri=as_uri(ROOT), name="heatline")],
    )


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, client_factory=make_client))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(init_params())
    yield
    await lsp_client.shutdown_session()


# vscode-languageclient and others add --stdio on their own: the server must accept it.
@pytest_lsp.fixture(config=ClientServerConfig(server_command=[*SERVER, "--stdio"], client_factory=make_client))
async def nvim_client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(init_params("neovim@v0.11"))
    yield
    await lsp_client.shutdown_session()


async def execute(client: LanguageClient, command: str, *arguments: Any) -> Any:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=list(arguments))
    )
    return plain(result)


async def wait_until(predicate: Callable[[], Any], what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def open_doc(client: LanguageClient, path: str, text: str | None = None, version: int = 1) -> str:
    uri = as_uri(path)
    if text is None:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
    ))
    return uri


def heat_for(client: LanguageClient, uri: str, *, live: bool | None = None, with_lines: bool = True,
             after: int = 0) -> dict | None:
    """The latest heat notification for `uri` (among those after index `after`) matching."""
    for note in reversed(client.heat[after:]):
        if note["uri"] != uri or note["profile"] is None:
            continue
        if live is not None and note["profile"]["live"] != live:
            continue
        if with_lines and not note["lines"]:
            continue
        return note
    return None


def hottest(note: dict) -> dict:
    return max(note["lines"], key=lambda line: line["selfPct"])


def line_of(note: dict, line: int) -> dict | None:
    return next((entry for entry in note["lines"] if entry["line"] == line), None)


@pytest.fixture(scope="module")
def profiles(tmp_path_factory) -> dict[str, str]:
    """Two binary profiles of tests/targets/two_paths.py: 20% and 80% of its work in slow_path."""
    out = tmp_path_factory.mktemp("profiles")
    paths = {}
    for name, share in (("baseline", "0.2"), ("current", "0.8")):
        path = str(out / f"{name}.bin")
        result = heatline("run", "--binary", "-o", path, target("two_paths.py"), share, "2")
        assert result.returncode == 0, result.stderr
        paths[name] = path
    return paths


# -- run -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("interpreter", ALL_INTERPRETERS)
async def test_run_streams_live_heat_then_lenses_and_hints(client: LanguageClient, interpreter, spawn):
    path = target("known_lines.py")
    uri = open_doc(client, path)
    if interpreter.rooted:
        # A target in another root (a container): attached to, its file known only as the
        # root sees it (/opt/heatline-tests/...), matched to the document by its trailing path.
        proc = spawn(interpreter, path, "3")
        wait_ready(proc)
        started = await execute(client, "heatline.attach", {"pid": proc.pid, "rate": 1000})
        assert started["pid"] == proc.pid
    else:
        started = await execute(client, "heatline.run",
                                {"script": path, "args": ["3"], "python": interpreter.path, "rate": 1000})
    assert started["pid"] > 0
    assert started["pythonVersion"].startswith(interpreter_version(interpreter))

    final = await wait_until(lambda: heat_for(client, uri, live=False), "the final heat")
    live = [n for n in client.heat if n["uri"] == uri and n["profile"] and n["profile"]["live"] and n["lines"]]
    assert live, "no heat arrived while the program ran"
    # inner()'s loop body (line 8) is where the time goes.
    top = hottest(final)
    assert top["line"] == 7 and top["selfPct"] > 50, final["lines"]
    assert final["profile"]["source"] == ("attach" if interpreter.rooted else "run")
    assert final["profile"]["totalSamples"] > 500
    assert not final["stale"] and not any(line["stale"] for line in final["lines"])

    # Progress: begun, reported while running, ended.
    kinds = {type(v).__name__ for reports in client.progress_reports.values() for v in reports}
    assert {"WorkDoneProgressBegin", "WorkDoneProgressReport", "WorkDoneProgressEnd"} <= kinds

    lenses = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    by_line = {lens.range.start.line: lens for lens in lenses}
    assert 4 in by_line and 16 in by_line, [(lens.range.start.line, lens.command.title) for lens in lenses]
    inner_pct = float(by_line[4].command.title.split("self ")[1].split("%")[0])
    main_total = float(by_line[16].command.title.split("total ")[1].split("%")[0])
    assert inner_pct > 50 and main_total > 90
    assert by_line[4].command.command == "heatline.flamegraph"

    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=30, character=0)),
    ))
    hint_lines = {h.position.line for h in hints}
    assert 7 in hint_lines and all(h.position.line in {n["line"] for n in final["lines"]} for h in hints)
    # Refresh requests only where the client said it handles them (this VS Code snapshot: lenses).
    ws = client.capabilities.workspace
    assert "codeLens" in client.refreshes
    assert ("inlayHint" in client.refreshes) == bool(ws.inlay_hint and ws.inlay_hint.refresh_support)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, client_factory=make_client))
async def own_indicator_client(lsp_client: LanguageClient):
    params = init_params()
    params.initialization_options = {"runProgress": False}
    await lsp_client.initialize_session(params)
    yield
    await lsp_client.shutdown_session()


async def test_a_client_with_its_own_run_indicator_gets_no_run_progress(own_indicator_client: LanguageClient):
    client = own_indicator_client
    path = target("known_lines.py")
    uri = open_doc(client, path)
    await execute(client, "heatline.run", {"script": path, "args": ["1.5"]})
    final = await wait_until(lambda: heat_for(client, uri, live=False), "the final heat")
    assert hottest(final)["line"] == 7
    assert not any(client.progress_reports.values()), client.progress_reports


async def test_run_saves_a_binary_profile_that_reopens_the_same(client: LanguageClient, tmp_path):
    path = target("known_lines.py")
    uri = open_doc(client, path)
    saved = tmp_path / "run.bin"
    await execute(client, "heatline.run", {"script": path, "args": ["1.5"], "output": str(saved)})
    final = await wait_until(lambda: heat_for(client, uri, live=False), "the final heat")
    assert saved.stat().st_size > 0
    before = len(client.heat)
    described = await execute(client, "heatline.open", {"path": str(saved)})
    reopened = await wait_until(lambda: heat_for(client, uri, after=before), "heat of the saved file")
    assert described["source"] == "file" and reopened["profile"]["source"] == "file"
    assert reopened["profile"]["totalSamples"] == final["profile"]["totalSamples"]
    assert [(n["line"], n["self"], n["total"]) for n in reopened["lines"]] == [
        (n["line"], n["self"], n["total"]) for n in final["lines"]]


async def test_without_open_documents_heat_still_says_what_the_run_is_doing(client: LanguageClient):
    # No document is open: each change still sends one heat notification, with no document
    # (uri null), carrying the profile's description, so an editor follows the run without
    # asking heatline.status.
    def documentless(*, live: bool | None = None) -> list[dict]:
        return [n for n in client.heat if n["uri"] is None and n["profile"] is not None
                and (live is None or n["profile"]["live"] == live)]

    await execute(client, "heatline.run", {"script": target("known_lines.py"), "args": ["1.5"], "rate": 1000})
    final = (await wait_until(lambda: documentless(live=False), "a final heat notification without a document"))[-1]
    live = documentless(live=True)
    assert live, "no heat notification arrived while the program ran"
    assert all(n["version"] is None and n["lines"] == [] and not n["stale"] and n["staleReason"] is None
               and n["maxSelfPct"] == 0 and n["maxTotalPct"] == 0 for n in client.heat)
    assert final["profile"]["source"] == "run" and final["profile"]["totalSamples"] > 500
    assert final["profile"]["totalSamples"] >= max(n["profile"]["totalSamples"] for n in live)

    before = len(client.heat)
    await execute(client, "heatline.clear")
    cleared = await wait_until(lambda: [n for n in client.heat[before:] if n["uri"] is None], "heat after clearing")
    assert cleared[-1]["profile"] is None


def interpreter_version(interpreter) -> str:
    out = subprocess.run(interpreter.python("-c", "import sys; print('%d.%d' % sys.version_info[:2])"),
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


# -- attach, list, stop ------------------------------------------------------------------------------


async def test_attach_lists_and_stops(client: LanguageClient, spawn):
    proc = spawn(sys.executable, target("known_lines.py"))
    wait_ready(proc)
    listed = await execute(client, "heatline.listProcesses")
    mine = [p for p in listed if p["pid"] == proc.pid]
    assert mine and mine[0]["needsPrivileges"] is False and "known_lines.py" in mine[0]["command"]
    assert mine[0]["pythonVersion"].startswith("%d.%d" % sys.version_info[:2])

    uri = open_doc(client, target("known_lines.py"))
    started = await execute(client, "heatline.attach", {"pid": proc.pid})
    assert started["pid"] == proc.pid
    await wait_until(lambda: heat_for(client, uri, live=True), "live heat from the attached process")

    summary = await execute(client, "heatline.stop")
    assert summary["interrupted"] is True and summary["samples"] > 0
    final = heat_for(client, uri, live=False)
    assert final is not None and hottest(final)["line"] == 7
    assert proc.poll() is None, "attaching and stopping must leave the target running"
    status = await execute(client, "heatline.status")
    assert status["running"] is False and status["profile"]["source"] == "attach"


async def test_a_target_that_exits_mid_run_still_leaves_its_profile(client: LanguageClient, spawn):
    proc = spawn(sys.executable, target("known_lines.py"), "2")  # exits by itself after 2 s
    wait_ready(proc)
    uri = open_doc(client, target("known_lines.py"))
    await execute(client, "heatline.attach", {"pid": proc.pid})
    final = await wait_until(lambda: heat_for(client, uri, live=False), "the final heat")
    shares = sorted((line["line"], round(line["selfPct"], 1)) for line in final["lines"])
    assert final["profile"]["totalSamples"] > 100, final["profile"]
    assert hottest(final)["line"] == 7, (shares, final["profile"])  # about 70/30 against line 6
    assert (await execute(client, "heatline.status"))["running"] is False
    assert not [m for m in client.messages if m.type == types.MessageType.Error]


# -- open, diff, hover, paths ------------------------------------------------------------------------


async def test_open_binary_then_diff_and_hover(client: LanguageClient, profiles, tmp_path):
    # The document is opened through a symlinked directory: it must still be matched.
    link = tmp_path / "linked-targets"
    link.symlink_to(os.path.dirname(target("two_paths.py")))
    uri = open_doc(client, str(link / "two_paths.py"))

    described = await execute(client, "heatline.open", {"path": profiles["current"]})
    assert described["source"] == "file" and described["totalSamples"] > 500
    note = await wait_until(lambda: heat_for(client, uri), "heat for the opened profile")
    assert hottest(note)["line"] == 16  # slow_path's loop, 80% of the work
    assert hottest(note)["selfPct"] > 40
    assert line_of(note, 9)["selfPct"] < hottest(note)["selfPct"] / 2  # fast_path's loop: 20%

    before = len(client.heat)
    result = await execute(client, "heatline.diff", {"baseline": profiles["baseline"]})
    assert result["baseline"]["totalSamples"] > 500
    diffed = await wait_until(lambda: heat_for(client, uri, after=before), "heat with the baseline")
    slow, fast = line_of(diffed, 16), line_of(diffed, 9)
    assert slow["deltaSelfPct"] > 20 and fast["deltaSelfPct"] < -20, diffed["lines"]
    assert result["changes"][0]["line"] in (9, 16)

    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=16, character=4)))
    text = hover.contents.value
    assert "Called from" in text and "main" in text and "vs baseline" in text
    # No hover on a line without samples.
    assert await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=0))) is None

    top = await execute(client, "heatline.hottest", {"count": 3})
    assert len(top) == 3 and top[0]["function"] == "slow_path" and top[0]["line"] == 16
    assert top[0]["path"] == target("two_paths.py") and top[0]["selfPct"] > 40
    funcs = await execute(client, "heatline.hottest", {"kind": "functions", "by": "total", "count": 2})
    # main() and the module code calling it are on (nearly) every stack.
    assert {f["function"] for f in funcs} == {"main", "<module>"} and all(f["totalPct"] > 90 for f in funcs)

    page = await execute(client, "heatline.diffFlamegraph", {"output": str(tmp_path / "diff.html"), "returnData": True})
    assert os.path.exists(page["path"]) and page["data"]["kind"] == "diff"


@pytest.mark.parametrize("flag", ["--collapsed", "--pstats"])
async def test_open_collapsed_and_pstats_files(client: LanguageClient, profiles, tmp_path, flag):
    saved = str(tmp_path / f"saved{flag}")
    result = heatline("replay", profiles["current"], flag, "-o", saved)
    assert result.returncode == 0, result.stderr
    uri = open_doc(client, target("two_paths.py"))
    await execute(client, "heatline.open", saved)
    note = await wait_until(lambda: heat_for(client, uri), "heat")
    assert hottest(note)["line"] == 16 and hottest(note)["selfPct"] > 40
    assert line_of(note, 24)["totalPct"] > 40  # main's call of slow_path: totals survive too


async def test_edits_move_heat_or_mark_it_stale(client: LanguageClient, profiles):
    path = target("two_paths.py")
    uri = open_doc(client, path)
    await execute(client, "heatline.open", profiles["current"])
    first = await wait_until(lambda: heat_for(client, uri), "heat")
    assert hottest(first)["line"] == 16 and not hottest(first)["stale"]

    def change(version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> int:
        mark = len(client.heat)
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=start[0], character=start[1]),
                                  end=types.Position(line=end[0], character=end[1])),
                text=text)],
        ))
        return mark

    # Two lines inserted at the top: everything moves down two lines, still exact.
    mark = change(2, (0, 0), (0, 0), "# one\n# two\n")
    moved = await wait_until(lambda: heat_for(client, uri, after=mark), "heat after inserting lines")
    assert hottest(moved)["line"] == 18 and not hottest(moved)["stale"]
    assert line_of(moved, 16) is None or line_of(moved, 16)["self"] < hottest(moved)["self"]

    lenses = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    assert {lens.range.start.line for lens in lenses} >= {15, 8}  # def slow_path / def fast_path, moved

    # Typing inside the hot line: its heat stays there but is marked stale; others stay exact.
    mark = change(3, (18, 8), (18, 8), "0 + ")
    edited = await wait_until(lambda: heat_for(client, uri, after=mark), "heat after editing the hot line")
    assert line_of(edited, 18)["stale"] is True
    assert line_of(edited, 11)["stale"] is False  # fast_path's loop, untouched
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=40, character=0))))
    assert any(h.position.line == 18 and "stale" in h.label for h in hints)

    # Deleting the hot line's whole block: its heat is gone, never moved onto other code.
    mark = change(4, (16, 0), (20, 0), "")
    gone = await wait_until(lambda: heat_for(client, uri, after=mark), "heat after deleting slow_path")
    assert all(entry["selfPct"] < 50 for entry in gone["lines"]), gone["lines"]
    assert line_of(gone, 11)["selfPct"] == line_of(edited, 11)["selfPct"]  # fast_path's, unmoved


async def test_unsaved_document_heat_is_stale(client: LanguageClient, profiles):
    path = target("two_paths.py")
    text = "# not what ran\n" + pathlib.Path(path).read_text(encoding="utf-8")
    uri = open_doc(client, path, text=text)
    await execute(client, "heatline.open", profiles["current"])
    note = await wait_until(lambda: heat_for(client, uri), "heat")
    assert note["stale"] is True and all(line["stale"] for line in note["lines"])
    assert "unsaved" in note["staleReason"]


async def test_settings_from_workspace_configuration(client: LanguageClient, profiles):
    uri = open_doc(client, target("two_paths.py"))
    await execute(client, "heatline.open", profiles["current"])
    await wait_until(lambda: heat_for(client, uri), "heat")
    ident = types.TextDocumentIdentifier(uri=uri)
    whole = types.Range(start=types.Position(line=0, character=0), end=types.Position(line=40, character=0))
    assert await client.text_document_inlay_hint_async(types.InlayHintParams(text_document=ident, range=whole))
    assert await client.text_document_code_lens_async(types.CodeLensParams(text_document=ident))

    client.set_configuration({"heatline": {"inlayHintThreshold": 99.5, "codeLens": False}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await wait_for_settings(client, lambda s: s["inlayHintThreshold"] == 99.5 and s["codeLens"] is False)
    assert not await client.text_document_inlay_hint_async(types.InlayHintParams(text_document=ident, range=whole))
    assert not await client.text_document_code_lens_async(types.CodeLensParams(text_document=ident))

    # A bad value keeps the default and says why.
    client.set_configuration({"heatline": {"mode": "sometimes"}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await wait_until(lambda: any("heatline.mode" in m.message for m in client.messages), "a settings message")
    await wait_for_settings(client, lambda s: s["mode"] == "wall" and s["inlayHintThreshold"] == 5.0)


async def wait_for_settings(client: LanguageClient, predicate: Callable[[dict], bool]) -> None:
    for _ in range(int(WAIT_S / 0.05)):
        if predicate((await execute(client, "heatline.status"))["settings"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server did not take the new settings")


async def test_neovim_client_gets_no_unsupported_refresh(nvim_client: LanguageClient, profiles):
    uri = open_doc(nvim_client, target("two_paths.py"))
    await execute(nvim_client, "heatline.open", profiles["current"])
    await wait_until(lambda: heat_for(nvim_client, uri), "heat")
    # Neovim 0.11 supports inlay-hint refresh but not code-lens refresh.
    assert "inlayHint" in nvim_client.refreshes and "codeLens" not in nvim_client.refreshes


# -- errors ----------------------------------------------------------------------------------------


async def expect_error(client: LanguageClient, code: int, command: str, *arguments: Any) -> str:
    with pytest.raises(JsonRpcException) as info:
        await execute(client, command, *arguments)
    assert info.value.code == code, info.value
    # The server is still serving.
    assert (await execute(client, "heatline.status"))["version"]
    return info.value.message


async def test_bad_requests_get_errors_and_the_server_keeps_serving(client: LanguageClient, tmp_path, spawn,
                                                                     profiles):
    invalid, failed = -32602, -32803
    message = await expect_error(client, invalid, "heatline.attach", {"pid": "abc"})
    assert "'pid' must be an integer" in message
    await expect_error(client, invalid, "heatline.run", {})
    await expect_error(client, invalid, "heatline.run", {"script": "x.py", "rate": -5})
    await expect_error(client, invalid, "heatline.open", {"path": "x", "colour": "red"})
    await expect_error(client, invalid, "heatline.hottest", {"kind": "everything"})
    await expect_error(client, invalid, "heatline.open", 1, 2)

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    message = await expect_error(client, failed, "heatline.attach", {"pid": gone.pid})
    assert "no process with PID" in message

    truncated = tmp_path / "truncated.bin"
    data = pathlib.Path(profiles["current"]).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    message = await expect_error(client, failed, "heatline.open", {"path": str(truncated)})
    assert "truncated" in message.lower(), message
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(b"\x00\xff not a profile")
    message = await expect_error(client, failed, "heatline.open", {"path": str(garbage)})
    assert "not a profile" in message
    message = await expect_error(client, failed, "heatline.open", {"path": str(tmp_path / "missing.bin")})
    assert "not found" in message
    await expect_error(client, failed, "heatline.stop")
    await expect_error(client, failed, "heatline.flamegraph")

    # One run at a time.
    proc = spawn(sys.executable, target("known_lines.py"))
    wait_ready(proc)
    await execute(client, "heatline.attach", {"pid": proc.pid})
    message = await expect_error(client, failed, "heatline.run", {"script": target("known_lines.py")})
    assert "already active" in message
    await execute(client, "heatline.stop")

    errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert any("no process with PID" in m for m in errors) and any("already active" in m for m in errors)


# -- flame graph pages --------------------------------------------------------------------------


async def _flamegraph_via_server(profile: str, doc: str, out: str) -> tuple[dict, list]:
    """A real server session outside pytest-asyncio (the browser test itself is synchronous)."""
    client = make_client()
    await client.start_io(*SERVER)
    try:
        await client.initialize_session(init_params())
        uri = open_doc(client, doc)
        await execute(client, "heatline.open", profile)
        await wait_until(lambda: heat_for(client, uri), "heat")
        lenses = await client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri)))
        lens = next(lens for lens in lenses if lens.range.start.line == 6)  # def fast_path
        # What a client does when the lens is clicked, with an output path of ours.
        arguments = dict(plain(lens.command.arguments[0]), output=out)
        result = await execute(client, lens.command.command, arguments)
        shown = list(client.shown_documents)
        await client.shutdown_session()
        return result, shown
    finally:
        await client.stop()


def test_code_lens_opens_the_flame_graph_focused_on_its_function(profiles, tmp_path, page):
    out = str(tmp_path / "focused.html")
    # Playwright's sync API keeps an event loop on this thread: the client gets a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        result, shown = pool.submit(
            asyncio.run, _flamegraph_via_server(profiles["current"], target("two_paths.py"), out)).result()
    assert result["path"] == out and result["focused"] is True
    assert shown and shown[0].uri == as_uri(out) and shown[0].external is True

    page.goto(as_uri(out))
    page.wait_for_function("window.heatline && window.heatline.root().funcname !== undefined")
    root = page.evaluate("window.heatline.root()")
    assert root["funcname"] == "fast_path", root
    assert page.errors == []


# -- TCP (for debugging a server started by hand) --------------------------------------------------


def test_tcp_transport_answers_initialize(tmp_path):
    import json
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*SERVER, "--tcp", f"127.0.0.1:{port}"], stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        assert f"listening on 127.0.0.1:{port}" in proc.stderr.readline()
        # the line comes just before pygls binds the port: try until it does
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.05)
        with conn:
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                               "params": {"processId": None, "rootUri": None, "capabilities": {}}}).encode()
            conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            data = b""
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
                    data.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0]):
                chunk = conn.recv(65536)
                assert chunk, data
                data += chunk
        reply = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert reply["id"] == 1 and reply["result"]["serverInfo"]["name"] == "heatline-lsp"
        commands = reply["result"]["capabilities"]["executeCommandProvider"]["commands"]
        assert {"heatline.run", "heatline.attach", "heatline.open", "heatline.hottest"} <= set(commands)
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize("bad", ["2087", "host:port", "127.0.0.1:0"])
def test_tcp_address_errors_are_one_line(bad):
    result = subprocess.run([*SERVER, "--tcp", bad], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "expected HOST:PORT" in result.stderr and "Traceback" not in result.stderr


def test_tcp_port_in_use_is_one_line():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*SERVER, "--tcp", f"127.0.0.1:{port}"], capture_output=True, text=True, cwd=ROOT,
                                timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == f"heatline-lsp: cannot listen on 127.0.0.1:{port}: Address already in use"


async def _attach_errors_via_server(cases: list[tuple[int | None, str]]) -> None:
    """A real server session outside pytest-asyncio (see the flame graph test); a pid of None
    stands for the server's own."""
    client = make_client()
    await client.start_io(*SERVER)
    try:
        await client.initialize_session(init_params())
        for pid, fragment in cases:
            with pytest.raises(JsonRpcException) as info:
                await execute(client, "heatline.attach", {"pid": _server_pid() if pid is None else pid})
            assert info.value.code == -32803, info.value
            assert fragment in info.value.message and "\n" not in info.value.message, info.value.message
            assert "Errno" not in info.value.message and not info.value.data, info.value
            assert (await execute(client, "heatline.status"))["version"]
            await wait_until(lambda: any(fragment in m.message for m in client.messages
                                         if m.type == types.MessageType.Error), f"a message saying {fragment!r}")
        await client.shutdown_session()
    finally:
        await client.stop()


def test_attach_to_pids_without_a_python_gets_one_line_errors():
    """A dead PID, a zombie, a kernel thread, the server itself: an LSP error of one line with no
    traceback in its data, a message to the user, and the server still answers."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
    cases = [(dead.pid, "no process with PID"), (zombie.pid, "zombie"), (None, "cannot profile itself")]
    if _stat_fields(2)[6].isdigit() and int(_stat_fields(2)[6]) & 0x00200000:  # PF_KTHREAD
        cases.append((2, "kernel thread"))
    try:
        # Its own thread and loop: a module-scoped browser keeps an event loop on this one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _attach_errors_via_server(cases)).result()
    finally:
        zombie.wait()


def _stat_fields(pid: int) -> list[bytes]:
    """/proc/PID/stat from the state on (field 3), or fields that match nothing if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return [b"?"] * 7


def _server_pid() -> int:
    """The `python -m server` this test process started (the client fixture's)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or _stat_fields(int(entry))[1] != str(os.getpid()).encode():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if fh.read().split(b"\0")[1:3] == [b"-m", b"server"]:
                    return int(entry)
        except OSError:
            continue
    raise AssertionError("the language server is not a child of this process")


def test_an_unexpected_exception_gets_one_line_and_no_traceback():
    """pygls puts a traceback in the data of an internal error; the server sends one line."""
    from pygls.exceptions import JsonRpcInternalError

    from server.app import HeatlineServer

    sent: list = []
    server = HeatlineServer()
    server.protocol._send_data = sent.append
    try:
        raise ProcessLookupError(3, "No such process")
    except ProcessLookupError:
        error = JsonRpcInternalError.of(sys.exc_info()).to_response_error()
    assert error.data  # what pygls would have sent
    server.protocol._send_response(7, error=error)
    (response,) = sent
    assert response.error.data is None
    assert response.error.message == "internal error: ProcessLookupError: [Errno 3] No such process"


@pytest.mark.parametrize("duration", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_duration_is_an_invalid_argument(duration):
    from server.arguments import AttachArgs, parse
    from server.errors import InvalidArguments

    with pytest.raises(InvalidArguments) as info:
        parse("heatline.attach", AttachArgs, [{"pid": 5, "duration": duration}])
    assert "'duration' must be a finite number" in info.value.message


# -- hostile profile files ----------------------------------------------------------------------


def test_open_refuses_hostile_files_and_keeps_answering(tmp_path):
    """A FIFO, a device copy, a header plus a gigabyte of sparse zeros and crafted pstats files:
    each a quick one-line error with no traceback in its data, and `heatline.status` answers
    between them and while one loads (tests/test_hostile_files.py checks the loaders' memory and
    each message)."""
    import marshal
    import stat

    from test_hostile_files import sparse_after_header

    fifo = tmp_path / "profile.fifo"
    os.mkfifo(fifo)
    cases = {str(fifo): "is a FIFO", str(tmp_path): "is a directory"}
    device = tmp_path / "zero.bin"
    try:
        os.mknod(device, stat.S_IFCHR | 0o600, os.stat("/dev/zero").st_rdev)
        cases[str(device)] = "is a character device"
    except PermissionError:
        pass
    sparse = tmp_path / "sparse.bin"
    sparse_after_header(sparse)
    cases[str(sparse)] = "Invalid frame index"
    callers = {("b.py", j, "g"): (1, 1, 0.001, 0.001) for j in range(3000)}
    shared = tmp_path / "shared.pstats"
    shared.write_bytes(marshal.dumps({("a.py", i, "f"): (1000, 1000, 1.0, 1.0, callers) for i in range(5000)}))
    cases[str(shared)] = "more callers than the file holds"
    for name, lineno in (("inf", float("inf")), ("nan", float("nan")), ("abc", "abc")):
        crafted = tmp_path / f"{name}.pstats"
        crafted.write_bytes(marshal.dumps({("a.py", lineno, "f"): (5, 5, 0.005, 0.005, {})}))
        cases[str(crafted)] = "line number"
    # After the browser test, Playwright's sync API holds an event loop on this thread: the
    # session runs on a thread of its own, as in the code lens test.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _open_hostile_files(cases, str(fifo), str(sparse))).result()


async def _open_hostile_files(cases: dict[str, str], fifo: str, sparse: str) -> None:
    failed = -32803
    client = make_client()
    await client.start_io(*SERVER)
    try:
        await client.initialize_session(init_params())
        for path, expected in cases.items():
            started = time.monotonic()
            opening = asyncio.ensure_future(execute(client, "heatline.open", {"path": path}))
            status = await execute(client, "heatline.status")  # answered while the file loads
            assert status["version"]
            with pytest.raises(JsonRpcException) as info:
                await opening
            assert time.monotonic() - started < 10, path
            assert info.value.code == failed, (path, info.value)
            message = info.value.message
            assert expected in message and "\n" not in message, message
            assert "Traceback" not in repr(info.value.data), info.value.data
            assert (await execute(client, "heatline.status"))["version"]
        # The same files as a diff's baseline and current profile.
        with pytest.raises(JsonRpcException) as info:
            await execute(client, "heatline.diff", {"baseline": fifo, "current": sparse})
        assert "Traceback" not in repr(info.value.data)
        assert (await execute(client, "heatline.status"))["version"]
        await client.shutdown_session()
    finally:
        await client.stop()
