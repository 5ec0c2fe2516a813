"""The Neovim plugin with `--opcodes` and `--native`: a real headless Neovim, the real server, a
real target (tests/targets/add_and_compress.py). `:Heatline opcodes on` / `:Heatline native on`
make the next run record instructions and time in C; the hover (`K`) then names the add line's
instructions and the compress line's time in C, and the part of the add line where its time
went is highlighted with extmarks on exactly those columns (test_neovim.py's harness)."""

from __future__ import annotations

import math

from conftest import target
from test_neovim import errors, run_nvim  # noqa: F401 (its skip mark applies through pytestmark)
from test_neovim import pytestmark  # noqa: F401
from test_server_opcodes import ADD_ROW, COMPRESS_ROW, hover_instructions, in_c, on_the_additions

WIDE = "s = 'é😀' + x"  # é: 2 bytes, 1 UTF-16 unit; 😀: 4 bytes, 2 units

SCENARIO = """
    local buf = open_target('add_and_compress.py')
    local add_row, compress_row = tonumber(vim.env.ADD_ROW), tonumber(vim.env.COMPRESS_ROW)
    vim.cmd('Heatline opcodes on')
    vim.cmd('Heatline native on')
    R.completion = vim.fn.getcompletion('Heatline opcodes ', 'cmdline')
    vim.cmd('Heatline run 1.5')
    R.final = final_heat(buf)
    R.columns = vim.api.nvim_buf_get_extmarks(buf, require('heatline.render').columns_ns, 0, -1, { details = true })
    R.marks = marks(buf)
    R.column_hl = vim.api.nvim_get_hl(0, { name = 'HeatlineColumn4' })
    -- the server counts columns in the client's position encoding, extmarks in bytes
    local render = require('heatline.render')
    R.encoding = vim.lsp.get_clients({ bufnr = buf, name = 'heatline' })[1].offset_encoding
    R.byte_cols = {}
    for _, enc in ipairs({ 'utf-8', 'utf-16', 'utf-32' }) do
      R.byte_cols[enc] = render.byte_col(vim.env.WIDE_TEXT, tonumber(vim.env['WIDE_' .. enc:gsub('-', '_')]), enc)
    end
    -- K on each line: the hover as the user reads it, in its floating window
    local function hover_lines(row)
      vim.api.nvim_win_set_cursor(0, { row + 1, 4 })
      vim.lsp.buf.hover()
      local float
      wait_for('the hover window', function()
        for _, w in ipairs(vim.api.nvim_list_wins()) do
          if vim.api.nvim_win_get_config(w).relative ~= '' then float = w; return true end
        end
      end, 20000)
      local lines = vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(float), 0, -1, false)
      vim.api.nvim_win_close(float, true)
      return table.concat(lines, '\\n')
    end
    R.add_hover = hover_lines(add_row)
    R.compress_hover = hover_lines(compress_row)
    vim.cmd('Heatline status')
    wait_for('status', function()
      for _, n in ipairs(R.notifies) do if n.msg:match('profile add_and_compress') then return true end end
    end, 20000)
"""


def test_opcodes_run_shows_instructions_in_the_hover_and_the_hot_columns(tmp_path):
    plus = WIDE.index("+")
    units = {"utf-8": len(WIDE[:plus].encode("utf-8")), "utf-16": len(WIDE[:plus].encode("utf-16-le")) // 2,
             "utf-32": plus}
    result = run_nvim(tmp_path, SCENARIO, {
        "ADD_ROW": str(ADD_ROW), "COMPRESS_ROW": str(COMPRESS_ROW), "WIDE_TEXT": WIDE,
        **{f"WIDE_{enc.replace('-', '_')}": str(n) for enc, n in units.items()},
    })
    assert result["byte_cols"] == {enc: units["utf-8"] for enc in units}, (result["byte_cols"], units)
    assert result["encoding"] in units
    assert result["completion"] == ["on", "off"]
    profile = result["final"]["profile"]
    assert profile["opcodes"] is True and profile["native"] is True, profile

    # The hover names the add line's instructions, the specialized add first (the server's
    # Python is 3.11+), and the compress line's time in C.
    rows = hover_instructions(result["add_hover"])
    assert rows[0][0] == "BINARY_OP_ADD_INT", rows
    share = in_c(result["compress_hover"])
    assert share is not None and share >= 60, result["compress_hover"]

    # Column extmarks on the add line only where the server said, the hottest on its additions.
    with open(target("add_and_compress.py"), encoding="utf-8") as fh:
        add_text = fh.read().splitlines()[ADD_ROW]
    on_add = [(m[2], m[3]["end_col"], m[3]["hl_group"]) for m in result["columns"] if m[1] == ADD_ROW]
    assert on_add, result["columns"]
    line = next(entry for entry in result["final"]["lines"] if entry["line"] == ADD_ROW)
    sent = sorted((c["start"], c["end"]) for c in line["columns"])
    assert sorted((start, end) for start, end, _ in on_add) == sent  # ASCII: characters are bytes
    # each in the step of the strength the server gave it, the hottest line's heaviest piece full
    steps = {(start, end): int(group.removeprefix("HeatlineColumn")) for start, end, group in on_add}
    assert steps == {(c["start"], c["end"]): max(1, math.ceil(4 * c["strength"] - 1e-9)) for c in line["columns"]}
    if line["selfPct"] == max(entry["selfPct"] for entry in result["final"]["lines"]):
        assert max(c["strength"] for c in line["columns"]) == 1 and max(steps.values()) == 4, line
    assert on_the_additions(line["columns"]) > 50, line["columns"]
    assert all(add_text[start:end].strip() for start, end, _ in on_add), on_add
    rows_with_columns = {m[1] for m in result["columns"]}
    hot_rows = {entry["line"] for entry in result["final"]["lines"] if entry["self"] > 0}
    assert rows_with_columns <= hot_rows, (rows_with_columns, hot_rows)
    assert "bg" in result["column_hl"], result["column_hl"]  # from the theme's gradient

    notes = [n["msg"] for n in result["notifies"]]
    assert any("--opcodes for the next run or attach: on" in n for n in notes), notes
    assert any("profiling add_and_compress.py" in n and "opcodes, native" in n for n in notes), notes
    assert any("profile add_and_compress.py" in n and "opcodes, native" in n for n in notes), notes
    assert not errors(result), errors(result)
