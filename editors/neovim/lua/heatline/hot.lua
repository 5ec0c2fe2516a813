-- Heat found from afar: a sign in the sign column on each buffer's hottest lines (by self
-- time), and the profile's hottest lines as a quickfix list (:Heatline hottest).
local client = require('heatline.client')
local config = require('heatline.config')

local M = {}

M.ns = vim.api.nvim_create_namespace('heatline.hot')

--- The hottest line's sign, and the others': linked to theme groups (colour schemes and users
--- may set their own).
function M.define_highlights()
  pcall(vim.api.nvim_set_hl, 0, 'HeatlineHottestSign', { link = 'DiagnosticError', default = true })
  pcall(vim.api.nvim_set_hl, 0, 'HeatlineHotSign', { link = 'DiagnosticWarn', default = true })
end

--- How many of a buffer's lines get a sign (0: signs off).
function M.sign_count()
  local opts = config.get()
  if opts.hot_signs == false then
    return 0
  end
  return math.max(0, math.floor(tonumber(opts.hot_signs_count) or 0))
end

--- The 0-based rows of the `count` lines of `heat` with the most self time, hottest first (ties:
--- the upper line first); stale lines, and all of stale heat, are left out.
function M.hottest_rows(heat, count)
  if type(heat) ~= 'table' or heat.stale == true or count < 1 then
    return {}
  end
  local lines = {}
  for _, entry in ipairs(heat.lines or {}) do
    local row, self_pct = tonumber(entry.line), tonumber(entry.selfPct) or 0
    if row and row >= 0 and entry.stale ~= true and self_pct > 0 then
      table.insert(lines, { row = row, pct = self_pct })
    end
  end
  table.sort(lines, function(a, b)
    if a.pct ~= b.pct then
      return a.pct > b.pct
    end
    return a.row < b.row
  end)
  local rows = {}
  for i = 1, math.min(count, #lines) do
    rows[i] = lines[i].row
  end
  return rows
end

--- Signs on the hottest lines of `bufnr` for `heat`, replacing the ones before.
function M.draw(bufnr, heat)
  pcall(vim.api.nvim_buf_clear_namespace, bufnr, M.ns, 0, -1)
  local line_count = vim.api.nvim_buf_line_count(bufnr)
  local text = tostring(config.get().hot_sign_text or '▲')
  for rank, row in ipairs(M.hottest_rows(heat, M.sign_count())) do
    if row < line_count then
      pcall(vim.api.nvim_buf_set_extmark, bufnr, M.ns, row, 0, {
        sign_text = text,
        sign_hl_group = rank == 1 and 'HeatlineHottestSign' or 'HeatlineHotSign',
        priority = 15,
      })
    end
  end
end

function M.clear(bufnr)
  pcall(vim.api.nvim_buf_clear_namespace, bufnr, M.ns, 0, -1)
end

local function item_path(item)
  if type(item.path) == 'string' and item.path ~= '' then
    return item.path
  end
  if type(item.uri) == 'string' then
    local ok, path = pcall(vim.uri_to_fname, item.uri)
    if ok then
      return path
    end
  end
  return tostring(item.file or '?')
end

--- One heatline.hottest entry as a quickfix item.
function M.qf_item(item)
  local fn = (type(item['function']) == 'string') and (' ' .. item['function']) or ''
  return {
    filename = item_path(item),
    lnum = (tonumber(item.line) or 0) + 1,
    col = 1,
    text = string.format('self %.1f%% total %.1f%%%s%s', tonumber(item.selfPct) or 0, tonumber(item.totalPct) or 0, fn,
      item.stale == true and ' (stale)' or ''),
  }
end

--- Fill the quickfix list with the profile's hottest lines (or functions) and open it.
--- opts: count (default: setup's hottest_count), kind ('lines' or 'functions'), by ('self' or 'total').
function M.quickfix(opts)
  opts = opts or {}
  local kind = opts.kind or 'lines'
  local args = { count = opts.count or config.get().hottest_count or 20, kind = kind, by = opts.by or 'self' }
  client.exec('heatline.hottest', args, function(result)
    if type(result) ~= 'table' or #result == 0 then
      return client.notify('no profile samples to show', vim.log.levels.WARN)
    end
    vim.fn.setqflist({}, ' ', {
      title = string.format('heatline: hottest %s by %s', kind, args.by),
      items = vim.tbl_map(M.qf_item, result),
    })
    vim.cmd('botright copen')
  end)
end

return M
