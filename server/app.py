"""The heatline language server: its state and how heat reaches the client.

State is one `ProfileView` on show (from a run, an attach or a file), at most one active run,
and per-document tracking. Every change of the view ends in `publish()`: a `heatline/heat`
notification for each open document, then code-lens and inlay-hint refresh requests for
clients that support them. Everything here runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from sampler import __version__

from .documents import DocumentHeat, DocumentTracker
from .errors import CommandFailed, InternalError, InvalidArguments, one_line
from .notebook_cells import NotebookCells
from .presentation import HEAT_NOTIFICATION, heat_payload
from .profile_view import ProfileView
from .settings import Settings, settings_from

log = logging.getLogger(__name__)


class _QuietUserErrors(logging.Filter):
    """pygls logs every failed request with a traceback; a user's mistake is not a server fault
    (the client gets the error and a message), so keep those out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, (CommandFailed, InvalidArguments, InternalError))


logging.getLogger("pygls.protocol.json_rpc").addFilter(_QuietUserErrors())


class _OneLineErrorsProtocol(LanguageServerProtocol):
    """No error response carries a traceback. pygls answers an unexpected exception in any
    handler (hover, code lens, a command) with the traceback in the error's `data`, which
    clients show to users: that goes to the server's log, the client gets one line."""

    def _send_response(self, msg_id: Any, result: Any = None, error: types.ResponseError | None = None) -> None:
        if error is not None and error.data is not None:
            log.error("request %s failed: %s\n%s", msg_id, error.message, _format_data(error.data))
            text = one_line(error.message or "")
            if error.code == InternalError.CODE and not text.startswith("internal error"):
                text = f"internal error: {text}"
            error = types.ResponseError(code=error.code, message=text)
        super()._send_response(msg_id, result, error)


def _format_data(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("traceback"), list):
        return "".join(map(str, data["traceback"]))
    return repr(data)


# Notebook cells sync as text documents of their own (vscode-notebook-cell: URIs), Python ones only.
NOTEBOOK_SYNC = types.NotebookDocumentSyncOptions(notebook_selector=[
    types.NotebookDocumentFilterWithNotebook(
        notebook="jupyter-notebook", cells=[types.NotebookCellLanguage(language="python")]),
])


class HeatlineServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("heatline-lsp", __version__, protocol_cls=_OneLineErrorsProtocol,
                         notebook_document_sync=NOTEBOOK_SYNC)
        self.settings = Settings()
        self.init_settings: Any = None
        self.view: ProfileView | None = None
        self.docs = DocumentTracker()
        self.cells = NotebookCells()  # open notebook cells' texts, to find their kernel files
        self.active_run = None  # server.runs.ActiveRun while a run is going
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- capabilities -------------------------------------------------------------------------

    def _capability(self, *path: str) -> Any:
        node: Any = self.client_capabilities
        for name in path:
            node = getattr(node, name, None) if node is not None else None
        return node

    @property
    def supports_progress(self) -> bool:
        return bool(self._capability("window", "work_done_progress"))

    @property
    def wants_run_progress(self) -> bool:
        """A client that draws its own run indicator (VS Code's status-bar item, which also stops
        the run) sends `{"runProgress": false}` in initializationOptions to avoid a second one."""
        opts = self.init_settings if isinstance(self.init_settings, dict) else {}
        return self.supports_progress and opts.get("runProgress", True) is not False

    @property
    def supports_configuration(self) -> bool:
        return bool(self._capability("workspace", "configuration"))

    # -- messages -------------------------------------------------------------------------------

    def show_error(self, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=f"heatline: {message}"))

    def show_info(self, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=f"heatline: {message}"))

    def log(self, message: str, kind: types.MessageType = types.MessageType.Log) -> None:
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    # -- settings -------------------------------------------------------------------------------

    def apply_settings(self, section: Any) -> None:
        settings, problems = settings_from(section, Settings())
        self.settings = settings
        for problem in problems:
            self.show_error(problem)

    async def refresh_settings(self, pushed: Any = None) -> None:
        """Settings from workspace/configuration, else what the client pushed or sent at start."""
        section = None
        if self.supports_configuration:
            try:
                result = await self.workspace_configuration_async(
                    types.ConfigurationParams(items=[types.ConfigurationItem(section="heatline")])
                )
                section = result[0] if result else None
            except Exception as err:  # a client bug must not stop the server
                self.log(f"heatline: could not read settings: {err}", types.MessageType.Warning)
        if section is None and isinstance(pushed, dict):
            section = pushed.get("heatline", pushed)
        if section is None and isinstance(self.init_settings, dict):
            section = self.init_settings.get("settings", self.init_settings)
            if isinstance(section, dict) and "heatline" in section:
                section = section["heatline"]
        before = self.settings
        self.apply_settings(section)
        if self.settings != before:
            self.request_refresh()

    # -- documents -------------------------------------------------------------------------------

    @property
    def roots(self) -> tuple[str, ...]:
        try:
            ws = self.workspace
        except RuntimeError:
            return ()
        roots = []
        for folder in ws.folders.values():
            from pygls.uris import to_fs_path

            path = to_fs_path(folder.uri)
            if path:
                roots.append(path)
        if ws.root_path and ws.root_path not in roots:
            roots.append(ws.root_path)
        return tuple(roots)

    @property
    def encoding(self) -> str:
        enc = self.workspace.position_encoding
        return str(getattr(enc, "value", enc) or "utf-16")

    def document_heat(self, uri: str) -> DocumentHeat:
        # pygls keys documents by an unquoted URI: the one the client sent is the document's own.
        doc = self.workspace.get_text_document(uri)
        uri = doc.uri
        if self.cells.is_cell(uri):
            cell = None
            if self.view is not None:
                cell = self.cells.match(uri, doc.source, self.view.id, self.view.matcher(self.roots).filenames)
            return self.docs.heat(uri, None, doc.source, self.encoding, self.view, self.roots, cell)
        return self.docs.heat(uri, doc.path, doc.source, self.encoding, self.view, self.roots)

    def publish_document(self, uri: str) -> None:
        doc = self.workspace.get_text_document(uri)
        heat = self.document_heat(uri)
        self.protocol.notify(HEAT_NOTIFICATION, heat_payload(doc.uri, doc.version, heat))

    def publish(self) -> None:
        """Heat for every open document, then ask clients to refetch lenses and hints. With no
        document open, one notification without a document (`uri` null) still carries the
        profile's description, so a client follows a run (live, samples, end) from heat alone."""
        uris = list(self.workspace.text_documents)
        for uri in uris:
            try:
                self.publish_document(uri)
            except Exception:  # one odd document must not stop the others' heat
                log.exception("heat for %s", uri)
        if not uris:
            self.protocol.notify(HEAT_NOTIFICATION, heat_payload(None, None, DocumentHeat(self.view, None)))
        self.request_refresh()

    def request_refresh(self) -> None:
        if self._capability("workspace", "code_lens", "refresh_support"):
            self.workspace_code_lens_refresh(None)
        if self._capability("workspace", "inlay_hint", "refresh_support"):
            self.workspace_inlay_hint_refresh(None)

    def set_view(self, view: ProfileView | None) -> None:
        self.view = view
        self.docs.reset()
        self.publish()

    # -- paths given by the user ------------------------------------------------------------------

    def user_path(self, path: str) -> str:
        """A path from a command: `~` expanded, relative ones against the first workspace root."""
        path = os.path.expanduser(path)
        if not os.path.isabs(path):
            base = self.roots[0] if self.roots else os.getcwd()
            path = os.path.join(base, path)
        return os.path.normpath(path)
