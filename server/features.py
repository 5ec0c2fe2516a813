"""The server's LSP features, registered on a `HeatlineServer`: settings, document sync (heat
follows edits), code lenses, inlay hints and hovers, and the commands of server/commands.py."""

from __future__ import annotations

import asyncio
import os

from lsprotocol import types
from pygls.workspace import TextDocument

from .app import HeatlineServer
from .commands import COMMANDS
from .documents import DocumentHeat
from .instructions import instructions
from .presentation import code_lenses, hover_markdown, inlay_hints, instruction_markdown
from .testlens import test_lenses


def _change_tuple(change) -> tuple[tuple[int, int, int, int] | None, str]:
    r = getattr(change, "range", None)
    if r is None:
        return None, change.text
    return (r.start.line, r.start.character, r.end.line, r.end.character), change.text


def _short(path: str) -> str:
    return os.path.basename(path) or path


def _shown(ls: HeatlineServer, uri: str, enabled: bool) -> tuple[DocumentHeat, TextDocument] | None:
    """The document's heat when a feature is on and a profile is shown."""
    if not enabled or ls.view is None:
        return None
    return ls.document_heat(uri), ls.workspace.get_text_document(uri)


def _test_lenses(ls: HeatlineServer, uri: str) -> list[types.CodeLens]:
    """"Profile" above tests and __main__ blocks: shown with or without a profile (codeLens off
    turns every lens off)."""
    if not (ls.settings.test_lenses and ls.settings.code_lens):
        return []
    doc = ls.workspace.get_text_document(uri)
    # a notebook cell is no file pytest or `python FILE` could run
    return test_lenses(doc.path, doc.source) if doc.path and uri.startswith("file:") else []


def _cells_opened(ls: HeatlineServer, cells) -> None:
    for cell in cells:
        ls.docs.forget(cell.uri)
        ls.cells.seen(cell.uri, cell.text)
        if ls.view is not None:
            ls.publish_document(cell.uri)


def _cells_closed(ls: HeatlineServer, cells) -> None:
    for cell in cells:
        ls.docs.forget(cell.uri)
        ls.cells.forget(cell.uri)


def build_server() -> HeatlineServer:
    server = HeatlineServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: HeatlineServer, params: types.InitializeParams) -> None:
        ls.init_settings = params.initialization_options

    @server.feature(types.INITIALIZED)
    async def initialized(ls: HeatlineServer, params: types.InitializedParams) -> None:
        ls.loop = asyncio.get_running_loop()
        await ls.refresh_settings()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def configuration_changed(ls: HeatlineServer, params: types.DidChangeConfigurationParams) -> None:
        await ls.refresh_settings(params.settings)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: HeatlineServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.docs.forget(params.text_document.uri)
        if ls.view is not None:
            ls.publish_document(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: HeatlineServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        if ls.docs.edited(uri, [_change_tuple(c) for c in params.content_changes]):
            ls.publish_document(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: HeatlineServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.docs.forget(params.text_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    def notebook_opened(ls: HeatlineServer, params: types.DidOpenNotebookDocumentParams) -> None:
        _cells_opened(ls, params.cell_text_documents)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def notebook_changed(ls: HeatlineServer, params: types.DidChangeNotebookDocumentParams) -> None:
        cells = params.change.cells
        if cells is None:
            return
        structure = cells.structure
        if structure is not None:
            _cells_closed(ls, structure.did_close or [])
            _cells_opened(ls, structure.did_open or [])
        for edit in cells.text_content or []:
            uri = ls.workspace.get_text_document(edit.document.uri).uri
            ls.cells.seen(uri, ls.workspace.get_text_document(uri).source)
            ls.docs.edited(uri, [_change_tuple(c) for c in edit.changes])
            if ls.view is not None:
                ls.publish_document(uri)  # also when it had no heat: its new text may have run

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def notebook_closed(ls: HeatlineServer, params: types.DidCloseNotebookDocumentParams) -> None:
        _cells_closed(ls, params.cell_text_documents)

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    def code_lens(ls: HeatlineServer, params: types.CodeLensParams) -> list[types.CodeLens] | None:
        tests = _test_lenses(ls, params.text_document.uri)
        shown = _shown(ls, params.text_document.uri, ls.settings.code_lens)
        if shown is None:
            return tests or None
        heat, doc = shown
        return code_lenses(doc.path, ls.docs.functions(doc.uri, heat)) + tests

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))
    def inlay_hint(ls: HeatlineServer, params: types.InlayHintParams) -> list[types.InlayHint] | None:
        shown = _shown(ls, params.text_document.uri, ls.settings.inlay_hints)
        if shown is None:
            return None
        heat, doc = shown
        lines = doc.lines
        first, last = params.range.start.line, params.range.end.line
        ends = {
            n: doc.position_codec.client_num_units(lines[n].rstrip("\r\n"))
            for n in heat.lines if first <= n <= last and n < len(lines)
        }
        return inlay_hints(heat, ends, first, last, ls.settings)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: HeatlineServer, params: types.HoverParams) -> types.Hover | None:
        if ls.view is None:
            return None
        uri = params.text_document.uri
        heat = ls.document_heat(uri)
        entry = heat.lines.get(params.position.line)
        if entry is None or heat.filename is None or heat.view is None:
            return None
        index = heat.view.index()
        callers = index.callers(heat.filename, entry.profiled_line)
        callees = index.callees(heat.filename, entry.profiled_line)
        sampled = index.lines(heat.filename).get(entry.profiled_line)
        line_total = sampled.total_samples if sampled is not None else 0
        table = heat.view.opcode_table()
        details = instruction_markdown(
            instructions(index.line_opcodes(heat.filename, entry.profiled_line), table, line_total), table,
            index.line_native(heat.filename, entry.profiled_line), line_total,
        )
        text = hover_markdown(entry, heat, callers, callees, _short, details)
        line = params.position.line
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
            range=types.Range(start=types.Position(line=line, character=0), end=types.Position(line=line + 1, character=0)),
        )

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: HeatlineServer, params: None) -> None:
        if ls.active_run is not None:
            ls.active_run.stop()

    for name, handler in COMMANDS.items():
        server.command(name)(handler)
    return server
