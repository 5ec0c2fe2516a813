"""Notebook cells: heat from a real ipykernel (started by jupyter_client) on the cell that ran,
through a real heatline language server driven by pytest-lsp with LSP notebook document sync;
and the cell file names heatline computes, held to ipykernel's own function."""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from conftest import heatline, host_minors, python_with_tools
from sampler.loaders import load_profile
from server.kernels import connection_file, is_kernel_argv
from server.notebook_cells import STALE_CELL, NotebookCells, cell_file_name, cell_hash, kernel_cell_hash
from test_lsp_server import SERVER, WAIT_S, execute, heat_for, hottest, init_params, make_client, wait_until

compiler = pytest.importorskip("ipykernel.compiler")
manager = pytest.importorskip("jupyter_client.manager")

# The cell the kernel runs: its time goes to line 5 (0-based 4), until the test creates `flag`.
CELL = """import os
def spin(flag):
    total = 0
    while True:
        total += sum(range(400))
        if total % 8192 == 0 and os.path.exists(flag):
            return total
print("ready", flush=True)
spin({flag!r})
"""
HOT_LINE = 4
# As VS Code names a cell: its fragment percent-quoted, which pygls unquotes for its own keys.
NOTEBOOK_URI = "file:///tmp/heatline%20nb/analysis.ipynb"
CELL_URI = "vscode-notebook-cell:/tmp/heatline%20nb/analysis.ipynb#W0sZmlsZQ%3D%3D"


# -- the hash ------------------------------------------------------------------------------------


def test_cell_hash_matches_ipykernel():
    rng = random.Random(18)
    texts = ["", "a", "ab", "abc", "abcd", "abcde", "é", "日本語のセル", "emoji 😀\n", "x" * 100_000,
             "print(1)\n", "print(1)", "for i in range(3):\n\tpass\r\n", CELL]
    for _ in range(500):
        texts.append("".join(chr(rng.choice((rng.randint(32, 126), rng.randint(0xA0, 0xD7FF),
                                             rng.randint(0x10000, 0x10FFFF))))
                             for _ in range(rng.randint(0, 64))))
    seed = compiler.get_tmp_hash_seed()
    assert [cell_hash(t) for t in texts] == [compiler.murmur2_x86(t, seed) for t in texts]
    name = compiler.get_file_name("print(1)\n") if "IPYKERNEL_CELL_NAME" not in os.environ else None
    if name is not None:
        assert kernel_cell_hash(name) == cell_hash("print(1)\n")
    assert kernel_cell_hash("/tmp/ipykernel_12/34.py") == 34
    assert kernel_cell_hash("/tmp/ipykernel_12/x34.py") is None
    assert kernel_cell_hash("/home/me/34.py") is None


def test_cells_match_current_then_earlier_text():
    cells = NotebookCells()
    ran = "x = 1\ny = 2\n"
    files = [f"/tmp/ipykernel_7/{cell_hash(ran)}.py", "/home/me/other.py"]
    cells.seen("cell", ran)
    match = cells.match("cell", ran, "p1", files)
    assert match.filename == files[0] and match.stale_reason is None
    for n in range(100):  # many edits since: the text that got samples is kept
        cells.seen("cell", ran + "#" * n)
    match = cells.match("cell", "x = 1\ny = 3\n", "p1", files)
    assert (match.filename, match.ran_text, match.stale_reason) == (files[0], ran, STALE_CELL)
    assert cells.match("other", "z = 1\n", "p1", files).filename is None


def test_kernel_argv():
    assert is_kernel_argv(["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "/r/kernel-1.json"])
    assert is_kernel_argv(["python", "-Xfrozen_modules=off", "-m", "ipykernel", "--f=/r/k.json"])
    assert is_kernel_argv(["python", "/site-packages/ipykernel_launcher.py", "-f", "k.json"])
    assert not is_kernel_argv(["python", "script.py", "-m", "ipykernel_launcher"])
    assert not is_kernel_argv(["python", "-m", "http.server"])
    assert not is_kernel_argv(None)
    assert connection_file(["python", "-m", "ipykernel_launcher", "-f", "/r/kernel-1.json"]) == "/r/kernel-1.json"
    assert connection_file(["python", "-m", "ipykernel", "--f=/r/k.json"]) == "/r/k.json"


# -- a real kernel, a real server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel():
    """An ipykernel of the Python running the tests (the only one here with ipykernel)."""
    km, kc = manager.start_new_kernel(kernel_name="python3", startup_timeout=WAIT_S)
    yield km, kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def run_cell_until_ready(kc, source: str) -> str:
    """Send `source` to the kernel and return once the cell prints "ready" (it is in its loop)."""
    msg_id = kc.execute(source)
    while True:
        msg = kc.get_iopub_msg(timeout=WAIT_S)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))
        if msg["msg_type"] == "stream" and "ready" in msg["content"]["text"]:
            return msg_id


def wait_reply(kc, msg_id: str) -> dict[str, Any]:
    while True:
        reply = kc.get_shell_msg(timeout=WAIT_S)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, client_factory=make_client))
async def client(lsp_client: LanguageClient):
    params = init_params()
    params.capabilities.notebook_document = types.NotebookDocumentClientCapabilities(
        synchronization=types.NotebookDocumentSyncClientCapabilities())
    result = await lsp_client.initialize_session(params)
    lsp_client.server_sync = result.capabilities.notebook_document_sync
    yield
    await lsp_client.shutdown_session()


def open_notebook(client: LanguageClient, text: str) -> None:
    client.notebook_document_did_open(types.DidOpenNotebookDocumentParams(
        notebook_document=types.NotebookDocument(
            uri=NOTEBOOK_URI, notebook_type="jupyter-notebook", version=1,
            cells=[types.NotebookCell(kind=types.NotebookCellKind.Code, document=CELL_URI)]),
        cell_text_documents=[types.TextDocumentItem(uri=CELL_URI, language_id="python", version=1, text=text)],
    ))


def edit_cell(client: LanguageClient, version: int, line: int, new_line: str) -> None:
    client.notebook_document_did_change(types.DidChangeNotebookDocumentParams(
        notebook_document=types.VersionedNotebookDocumentIdentifier(uri=NOTEBOOK_URI, version=version),
        change=types.NotebookDocumentChangeEvent(cells=types.NotebookDocumentCellChanges(text_content=[
            types.NotebookDocumentCellContentChanges(
                document=types.VersionedTextDocumentIdentifier(uri=CELL_URI, version=version),
                changes=[types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(line=line, character=0),
                                      end=types.Position(line=line + 1, character=0)),
                    text=new_line)]),
        ])),
    ))


async def test_attach_to_kernel_heats_the_cell_then_marks_it_stale(client: LanguageClient, kernel, tmp_path):
    km, kc = kernel
    assert client.server_sync is not None, "the server did not offer notebook document sync"
    selector = client.server_sync.notebook_selector[0]
    assert selector.notebook == "jupyter-notebook" and selector.cells[0].language == "python"
    source = CELL.format(flag=str(tmp_path / "stop"))
    open_notebook(client, source)

    kernels = await execute(client, "heatline.listKernels")
    pid = km.provisioner.process.pid
    mine = [k for k in kernels if k["pid"] == pid]
    assert mine and mine[0]["connectionFile"] == km.connection_file, kernels
    assert all(k["pid"] != os.getpid() for k in kernels)
    with pytest.raises(JsonRpcException) as refused:
        await execute(client, "heatline.attachKernel", {"pid": os.getpid()})
    assert "not a running Jupyter kernel" in refused.value.message

    msg_id = await asyncio.to_thread(run_cell_until_ready, kc, source)
    try:
        started = await execute(client, "heatline.attachKernel", {"pid": pid, "duration": 1.0})
        assert started["pid"] == pid
        final = await wait_until(lambda: heat_for(client, CELL_URI, live=False), "the cell's final heat")
    finally:
        (tmp_path / "stop").touch()
    reply = await asyncio.to_thread(wait_reply, kc, msg_id)
    assert reply["content"]["status"] == "ok"

    top = hottest(final)
    assert top["line"] == HOT_LINE and top["selfPct"] > 50, final["lines"]
    assert not final["stale"] and not top["stale"]
    spots = await execute(client, "heatline.hottest", {"count": 1})
    assert (spots[0]["uri"], spots[0]["line"]) == (CELL_URI, HOT_LINE), spots
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=CELL_URI), position=types.Position(line=HOT_LINE, character=8)))
    assert hover is not None and "%" in hover.contents.value

    # The cell edited after it ran (a line changed, one added above the hot line): its heat
    # follows the unchanged code, all of it stale.
    seen = len(client.heat)
    edit_cell(client, 2, 2, "    total = 1\n    # tuned\n")
    stale = await wait_until(lambda: heat_for(client, CELL_URI, after=seen), "the edited cell's heat")
    assert stale["stale"] and stale["staleReason"] == STALE_CELL
    top = hottest(stale)
    assert top["line"] == HOT_LINE + 1 and top["stale"], stale["lines"]
    spots = await execute(client, "heatline.hottest", {"count": 1})
    assert (spots[0]["uri"], spots[0]["line"], spots[0]["stale"]) == (CELL_URI, HOT_LINE + 1, True), spots


@pytest.mark.parametrize("interpreter", host_minors()[1:])  # the running one: the test above
def test_a_kernel_of_each_python_names_its_cells_as_heatline_does(interpreter, tmp_path, monkeypatch):
    """A kernel under each other CPython (ipykernel 6 on 3.9, 7 on 3.10+, from PyPI): the cell's
    samples are in the very file heatline names from the cell's text, at the cell's hot line."""
    python = python_with_tools(interpreter)
    spec = tmp_path / "kernels" / "heatline-target"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": interpreter.label, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    source = CELL.format(flag=str(tmp_path / "stop"))
    out = tmp_path / "cell.bin"
    km, kc = manager.start_new_kernel(kernel_name="heatline-target", startup_timeout=WAIT_S)
    try:
        msg_id = run_cell_until_ready(kc, source)
        pid = km.provisioner.process.pid
        try:
            result = heatline("attach", str(pid), "-d", "1", "--binary", "-o", str(out))
            assert result.returncode == 0, result.stderr
        finally:
            (tmp_path / "stop").touch()
        assert wait_reply(kc, msg_id)["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    cell_file = cell_file_name(source, pid, tempfile.gettempdir())
    stacks = list(load_profile(str(out)).profile.iter_stacks())
    total = sum(weight for _tid, _frames, weight in stacks)
    in_cell = sum(w for _tid, frames, w in stacks if (frames[0].filename, frames[0].lineno) == (cell_file, HOT_LINE + 1))
    assert total > 0 and in_cell > 0.5 * total, {f[0] for _t, f, _w in stacks}


# -- Neovim: :Heatline kernel ---------------------------------------------------------------------


def test_neovim_kernel_picker_attaches_and_refuses_a_non_kernel(tmp_path, kernel):
    from test_neovim import VERSION, errors, run_nvim

    if VERSION is None or VERSION < (0, 10):
        pytest.skip("needs Neovim >= 0.10")
    km, _ = kernel
    pid = km.provisioner.process.pid
    result = run_nvim(tmp_path, """
        local buf = open_target('known_lines.py')
        local want = tonumber(vim.env.KERNEL_PID)
        vim.ui.select = function(items, opts, on_choice)
          R.prompt, R.labels = opts.prompt, vim.tbl_map(opts.format_item, items)
          on_choice(vim.tbl_filter(function(item) return item.pid == want end, items)[1])
        end
        vim.cmd('Heatline kernel')
        wait_for('the attach', function()
          for _, n in ipairs(R.notifies) do
            if n.msg:find('attached to pid ' .. want, 1, true) then return true end
          end
        end)
        vim.cmd('Heatline stop')
        wait_for('the stop', function()
          for _, n in ipairs(R.notifies) do
            if n.msg:find('stopped', 1, true) then return true end
          end
        end)
        vim.cmd('Heatline kernel ' .. vim.fn.getpid())
        wait_for('the refusal', function()
          for _, n in ipairs(R.notifies) do
            if n.level == vim.log.levels.ERROR then return true end
          end
        end)
    """, {"KERNEL_PID": str(pid)})
    assert result["prompt"] == "Attach to kernel"
    mine = [label for label in result["labels"] if label.split()[0] == str(pid)]
    assert len(mine) == 1 and "ipykernel_launcher" in mine[0], result["labels"]
    assert all("ipykernel" in label for label in result["labels"]), result["labels"]
    errs = errors(result)
    assert len(errs) == 1 and "not a running Jupyter kernel" in errs[0], errs
