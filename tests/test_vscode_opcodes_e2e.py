"""`--opcodes` and `--native` in a real VS Code (code-server in Debian's Chromium, as
test_vscode_e2e.py drives it): with heatline.opcodes and heatline.native on, "Profile Current
File" on tests/targets/add_and_compress.py draws the add line's hot columns as decorations on its
additions, and the hovers name the add instruction and the compress line's time in C."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time

from conftest import TARGETS
from test_server_opcodes import ADD_EXPR, ADD_TEXT, marked
from test_vscode_e2e import (  # noqa: F401 (code_server: a fixture)
    RUN_HIDDEN, RUN_SHOWN, _fail_artifacts, _load_workbench, _palette, _screenshot, code_server,
)

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


def test_opcodes_settings_draw_hot_columns_and_hovers_name_the_instructions(code_server, page, tmp_path):
    url, user, workspace = code_server
    settings = {"heatline.opcodes": True, "heatline.native": True}
    with user_settings_and_file(user, workspace, settings, "add_and_compress.py"):
        try:
            _load_workbench(page, url)
            page.locator(".explorer-folders-view .monaco-list-row", has_text="add_and_compress.py").click()
            page.locator(".editor-instance .view-line", has_text="def add_loop").wait_for(timeout=30_000)
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
