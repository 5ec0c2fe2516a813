"""Neovim: the hottest lines found from afar, on a real profile of tests/targets/two_paths.py with
70% of its work in slow_path and 30% in fast_path: signs on each buffer's N hottest lines (read
back from the extmarks: rows, text, highlight groups linked to the theme's) and `:Heatline
hottest N` as a quickfix list (read back: order, lines, text)."""

from __future__ import annotations

import re

from conftest import target
from test_hot_functions import split_profile  # noqa: F401 - the fixture: two_paths.py, 70/30
from test_neovim import errors, pytestmark, run_nvim  # noqa: F401 - pytestmark: skipped without Neovim

# two_paths.py, 0-based: slow_path's loop body and `for`, fast_path's loop body and `for`
SLOW_BODY, SLOW_FOR, FAST_BODY, FAST_FOR = 16, 15, 9, 8


def test_signs_on_the_hottest_lines_and_hottest_as_quickfix(tmp_path, split_profile):  # noqa: F811
    result = run_nvim(tmp_path, """
        require('heatline.config').options.hot_signs_count = 3
        local hot = require('heatline.hot')
        local function signs(buf)
          return vim.tbl_map(function(m) return { row = m[2], text = m[4].sign_text, hl = m[4].sign_hl_group } end,
            vim.api.nvim_buf_get_extmarks(buf, hot.ns, 0, -1, { details = true }))
        end
        local buf = open_target('two_paths.py')
        vim.cmd('Heatline open ' .. vim.fn.fnameescape(vim.env.PROFILE))
        wait_for('heat', function() return last_heat(buf, has_profile) end)
        wait_for('signs', function() return #signs(buf) > 0 end, 20000)
        R.final = last_heat(buf)
        R.signs = signs(buf)
        R.links = { hot = vim.api.nvim_get_hl(0, { name = 'HeatlineHotSign' }).link,
                    hottest = vim.api.nvim_get_hl(0, { name = 'HeatlineHottestSign' }).link }

        vim.cmd('Heatline hottest 4')
        wait_for('the quickfix list', function() return #vim.fn.getqflist() > 0 end, 20000)
        local qf = vim.fn.getqflist({ items = 1, title = 1, winid = 1 })
        R.qf_title = qf.title
        R.qf_open = qf.winid ~= 0
        R.qf = vim.tbl_map(function(e)
          return { file = vim.api.nvim_buf_get_name(e.bufnr), lnum = e.lnum, text = e.text }
        end, qf.items)
        R.completion = vim.fn.getcompletion('Heatline hottest p', 'cmdline')

        vim.cmd('Heatline toggle')
        R.hidden = signs(buf)
        vim.cmd('Heatline toggle')
        R.shown = signs(buf)
        vim.cmd('Heatline clear')
        wait_cleared(buf)
        R.cleared = signs(buf)
    """, {"PROFILE": split_profile})
    lines = result["final"]["lines"]
    by_self = sorted((entry for entry in lines if entry["selfPct"] > 0), key=lambda e: (-e["selfPct"], e["line"]))
    # Signs: the 3 hottest lines, the hottest with its own group; slow_path's body is the hottest
    # (70% of the work), fast_path's `for` (about 9%) the fourth, and main's lines hold no self time.
    rows = sorted(s["row"] for s in result["signs"])
    assert rows == sorted(e["line"] for e in by_self[:3]), (result["signs"], by_self)
    assert set(rows) == {SLOW_BODY, SLOW_FOR, FAST_BODY}, (result["signs"], by_self)
    assert all(s["text"].strip() == "▲" for s in result["signs"]), result["signs"]
    groups = {s["row"]: s["hl"] for s in result["signs"]}
    assert groups.pop(SLOW_BODY) == "HeatlineHottestSign" and set(groups.values()) == {"HeatlineHotSign"}, result["signs"]
    assert result["links"] == {"hot": "DiagnosticWarn", "hottest": "DiagnosticError"}

    # The quickfix list: the 4 hottest lines in order, each with its shares and function.
    qf = result["qf"]
    assert result["qf_open"] and "hottest lines" in result["qf_title"], result
    assert [e["lnum"] - 1 for e in qf] == [e["line"] for e in by_self[:4]], (qf, by_self)
    assert qf[0]["lnum"] - 1 == SLOW_BODY and qf[3]["lnum"] - 1 == FAST_FOR, qf
    assert all(e["file"] == target("two_paths.py") for e in qf), qf
    shares = {e["line"]: e for e in lines}
    for entry in qf:
        m = re.fullmatch(r"self ([\d.]+)% total ([\d.]+)% (\w+)", entry["text"])
        assert m, entry
        heat = shares[entry["lnum"] - 1]
        assert abs(float(m[1]) - heat["selfPct"]) <= 0.05 + 1e-9 and abs(float(m[2]) - heat["totalPct"]) <= 0.05 + 1e-9
        assert m[3] == ("slow_path" if entry["lnum"] - 1 in (SLOW_BODY, SLOW_FOR) else "fast_path"), entry
    assert result["completion"] == ["pick"]

    assert result["hidden"] == [] and len(result["shown"]) == 3  # :Heatline toggle hides them with the heat
    assert result["cleared"] == []
    assert not errors(result), errors(result)
