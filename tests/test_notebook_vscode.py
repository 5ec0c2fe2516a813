"""Notebook cells in real VS Code (code-server + Chromium): a .ipynb open in code-server's own
notebook editor, a real ipykernel (jupyter_client) running the same cell, "Heatline: Attach to
Kernel…" from the palette, and the heat drawn on the cell editor's hot line.

code-server's marketplace (Open VSX) is not reachable offline, so VS Code's Jupyter extension
is not installed: the notebook is shown by the built-in ipynb editor and the kernel is started by
the test, as the Jupyter extension would start it. A module of its own: the browser (Playwright's
sync API) and the asyncio language-server tests cannot share one."""

from __future__ import annotations

import json
import time

import pytest

from test_notebook_kernel import CELL, kernel, run_cell_until_ready, wait_reply  # noqa: F401 - kernel: a fixture
from test_vscode_e2e import (  # noqa: F401 - code_server: a fixture
    RUN_HIDDEN, RUN_SHOWN, _fail_artifacts, _load_workbench, _palette, _palette_pick, _pick_pid, _screenshot, _self_pct,
    code_server,
)

# Every view line of the notebook's cell editors: its text and its decorations' ::after content.
CELL_LINES_JS = r"""() => [...document.querySelectorAll('.notebookOverlay .cell-editor-container .view-line')]
  .map(line => ({
    text: line.textContent.replace(/\u00a0/g, ' '),
    after: [...line.querySelectorAll('span')].map(s => getComputedStyle(s, '::after').content)
      .filter(c => c && c !== 'none' && c !== 'normal'),
  }))"""
HOT_TEXT = "total += sum(range(400))"


def _notebook(source: str) -> dict:
    lines = source.splitlines(keepends=True)
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "hot", "metadata": {}, "outputs": [],
                   "source": lines}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def test_attach_to_kernel_heats_the_notebook_cell(code_server, kernel, page, tmp_path):
    url, user, workspace = code_server
    km, kc = kernel
    flag = tmp_path / "stop"
    # A notebook cell's text has no final newline; the kernel runs exactly the cell's text.
    source = CELL.format(flag=str(flag)).rstrip("\n")
    with open(f"{workspace}/analysis.ipynb", "w", encoding="utf-8") as fh:
        json.dump(_notebook(source), fh, indent=1)
    msg_id = None
    try:
        _load_workbench(page, url)
        # Once the extensions are scanned (heatline's commands are in the palette), .ipynb files
        # open in the notebook editor; before, a click may open the file as JSON text.
        deadline = time.time() + 60
        while not _palette_pick(page, "Heatline: Attach to Kernel\u2026"):
            assert time.time() < deadline, "heatline's commands never reached the palette"
            page.keyboard.press("Escape")
            time.sleep(1)
        page.keyboard.press("Escape")
        page.locator(".explorer-folders-view .monaco-list-row", has_text="analysis.ipynb").click()
        page.locator(".notebookOverlay .cell-editor-container .view-line", has_text=HOT_TEXT).wait_for(timeout=60_000)

        msg_id = run_cell_until_ready(kc, source)
        _palette(page, "Heatline: Attach to Kernel\u2026", wait_hidden=False)
        _pick_pid(page, "attach to a Jupyter kernel", km.provisioner.process.pid, "ipykernel")
        page.wait_for_function(RUN_SHOWN, timeout=30_000)

        deadline = time.time() + 60
        while True:
            lines = page.evaluate(CELL_LINES_JS)
            hot = next((line for line in lines if HOT_TEXT in line["text"]), None)
            pct = _self_pct(hot["after"]) if hot else None
            if pct is not None and pct > 50:
                break
            assert time.time() < deadline, lines
            time.sleep(0.5)
        others = [_self_pct(line["after"]) for line in lines if line is not hot]
        assert all(p is None or p < pct for p in others), lines
        _screenshot(page, tmp_path, "notebook-cell-heat.png")

        _palette(page, "Heatline: Stop Profiling")
        page.wait_for_function(RUN_HIDDEN, timeout=20_000)
    except BaseException:
        _fail_artifacts(page, tmp_path, user, "notebook")
        raise
    finally:
        flag.touch()
        if msg_id is not None:
            assert wait_reply(kc, msg_id)["content"]["status"] == "ok"
