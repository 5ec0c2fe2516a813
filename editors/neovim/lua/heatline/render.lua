-- Heat drawn with extmarks in the "heatline" namespace: a background gradient per hot line,
-- end-of-line text (self · total, Δ against a baseline) and an optional sign; with --opcodes,
-- the pieces of hot lines where their time went, in "heatline.columns".
local config = require('heatline.config')

local M = {}

M.ns = vim.api.nvim_create_namespace('heatline')
-- Where within a line its time went (--opcodes): ranges of their own, so their marks' ids never
-- meet the line marks' (a line's mark id is its row + 1).
M.columns_ns = vim.api.nvim_create_namespace('heatline.columns')
M.COLUMN_STEPS = 4
M.heat = {} -- bufnr -> last heat notification params (kept while hidden, for :Heatline toggle)
M.ids = {} -- bufnr -> { [extmark id] = true } currently placed
M.encodings = {} -- bufnr -> the client's position encoding ('utf-16', ...): the unit of columns
M.visible = true

local defined = {} -- highlight group -> attributes we last set

local function hex_to_rgb(hex)
  hex = tostring(hex):gsub('#', '')
  return tonumber(hex:sub(1, 2), 16) or 0, tonumber(hex:sub(3, 4), 16) or 0, tonumber(hex:sub(5, 6), 16) or 0
end

local function mix(a, b, t)
  local ar, ag, ab = hex_to_rgb(a)
  local br, bg, bb = hex_to_rgb(b)
  local function ch(x, y)
    return math.floor(x + (y - x) * t + 0.5)
  end
  return string.format('#%02x%02x%02x', ch(ar, br), ch(ag, bg), ch(ab, bb))
end

local function set_hl(name, attrs)
  -- default=true lets users (and colour schemes) override our groups. When only 'background'
  -- changed, replace what we set ourselves, but never a user's definition.
  local ok, current = pcall(vim.api.nvim_get_hl, 0, { name = name })
  local ours = defined[name]
  local untouched = ok and (vim.tbl_isempty(current) or (ours and vim.deep_equal(current, ours.got)))
  local spec = vim.tbl_extend('force', attrs, { default = not untouched or nil })
  pcall(vim.api.nvim_set_hl, 0, name, spec)
  local _, got = pcall(vim.api.nvim_get_hl, 0, { name = name })
  defined[name] = { got = got }
end

function M.steps()
  local n = tonumber(config.get().steps) or 8
  return math.max(1, math.floor(n))
end

function M.define_highlights()
  local opts = config.get()
  local light = vim.o.background == 'light'
  local ends = (opts.colours or {})[light and 'light' or 'dark'] or config.defaults.colours.dark
  local n = M.steps()
  for i = 1, n do
    local t = n == 1 and 1 or (i - 1) / (n - 1)
    local colour = mix(ends[1], ends[2], t)
    set_hl('HeatlineHeat' .. i, { bg = colour })
    set_hl('HeatlineSign' .. i, { fg = mix(ends[1], ends[2], math.min(1, 0.35 + t)) })
  end
  local columns = (opts.colours or {}).columns or config.defaults.colours.columns
  local col_ends = columns[light and 'light' or 'dark'] or config.defaults.colours.columns.dark
  for i = 1, M.COLUMN_STEPS do
    local t = (i - 1) / (M.COLUMN_STEPS - 1)
    set_hl('HeatlineColumn' .. i, { bg = mix(col_ends[1], col_ends[2], t), bold = i == M.COLUMN_STEPS or nil })
  end
  local stale = (opts.colours or {}).stale or config.defaults.colours.stale
  set_hl('HeatlineStale', { bg = stale[light and 'light' or 'dark'] })
  set_hl('HeatlineStaleText', { link = 'Comment' })
  set_hl('HeatlineText', { link = 'Comment' })
  set_hl('HeatlineDeltaUp', { link = 'DiagnosticError' })
  set_hl('HeatlineDeltaDown', { link = 'DiagnosticOk' })
  require('heatline.hot').define_highlights()
end

--- Gradient step (1..N) of a line's self share relative to the hottest line; 0 = not hot.
function M.bucket(self_pct, max_pct)
  self_pct = tonumber(self_pct) or 0
  max_pct = tonumber(max_pct) or 0
  if self_pct <= 0 or max_pct <= 0 then
    return 0
  end
  local n = M.steps()
  return math.max(1, math.min(n, math.ceil(n * self_pct / max_pct - 1e-9)))
end

function M.format_pct(value)
  return string.format('%.1f%%', tonumber(value) or 0)
end

--- The end-of-line text of one heat line, as virt_text chunks.
function M.line_text(entry, stale)
  local text_hl = stale and 'HeatlineStaleText' or 'HeatlineText'
  local chunks = { { ' ' .. M.format_pct(entry.selfPct) .. ' · ' .. M.format_pct(entry.totalPct), text_hl } }
  local delta = entry.deltaSelfPct
  if type(entry.baselineSelfPct) == 'number' and type(delta) == 'number' then
    local hl = delta > 0 and 'HeatlineDeltaUp' or (delta < 0 and 'HeatlineDeltaDown' or text_hl)
    table.insert(chunks, { string.format(' Δ%+.1f', delta), hl })
  end
  if stale then
    table.insert(chunks, { ' (stale)', 'HeatlineStaleText' })
  end
  return chunks
end

local function mark_opts(entry, heat, line_count)
  local opts = config.get()
  local r = opts.renderers or {}
  local line = tonumber(entry.line)
  if not line or line < 0 or line >= line_count then
    return nil
  end
  local stale = entry.stale == true or heat.stale == true
  local bucket = M.bucket(entry.selfPct, heat.maxSelfPct)
  local threshold = tonumber(opts.threshold) or 0
  local mark = { id = line + 1, priority = 20, hl_mode = 'combine' }
  local shown = false
  if r.line_highlight ~= false and (bucket > 0 or stale) then
    mark.line_hl_group = stale and 'HeatlineStale' or ('HeatlineHeat' .. bucket)
    shown = true
  end
  local pct = math.max(tonumber(entry.selfPct) or 0, tonumber(entry.totalPct) or 0)
  if r.virtual_text ~= false and pct >= threshold and pct > 0 then
    mark.virt_text = M.line_text(entry, stale)
    mark.virt_text_pos = 'eol'
    shown = true
  end
  if r.sign and bucket > 0 then
    mark.sign_text = '▍'
    mark.sign_hl_group = stale and 'HeatlineStaleText' or ('HeatlineSign' .. bucket)
    shown = true
  end
  return shown and line or nil, mark
end

--- Step (1..COLUMN_STEPS) of a piece drawn with the server's `strength` (0-1).
function M.column_bucket(strength)
  strength = tonumber(strength) or 0
  if strength ~= strength then -- NaN
    strength = 0
  end
  return math.max(1, math.min(M.COLUMN_STEPS, math.ceil(M.COLUMN_STEPS * strength - 1e-9)))
end

--- The byte column of LSP character offset `units` in `text` (the server counts in the
--- client's position encoding; extmarks count bytes).
function M.byte_col(text, units, encoding)
  units = math.max(0, math.floor(tonumber(units) or 0))
  if encoding == 'utf-8' or not text:find('[\128-\255]') then
    return math.min(units, #text)
  end
  local ok, col = pcall(vim.str_byteindex, text, encoding or 'utf-16', units, false) -- 0.11+
  if not ok or type(col) ~= 'number' then
    ok, col = pcall(vim.str_byteindex, text, units, encoding ~= 'utf-32') -- 0.10
  end
  return (ok and type(col) == 'number') and math.min(col, #text) or math.min(units, #text)
end

--- Marks of the pieces of hot lines where their time went (the server's `columns`): fresh
--- lines only; all replaced on each draw.
local function draw_columns(bufnr, heat)
  pcall(vim.api.nvim_buf_clear_namespace, bufnr, M.columns_ns, 0, -1)
  if (config.get().renderers or {}).columns == false or heat.stale == true then
    return
  end
  local line_count = vim.api.nvim_buf_line_count(bufnr)
  local encoding = M.encodings[bufnr]
  for _, entry in ipairs(heat.lines or {}) do
    local line = tonumber(entry.line)
    if type(entry.columns) == 'table' and entry.stale ~= true and line and line >= 0 and line < line_count then
      local text = vim.api.nvim_buf_get_lines(bufnr, line, line + 1, false)[1] or ''
      for _, c in ipairs(entry.columns) do
        local first, last = M.byte_col(text, c.start, encoding), M.byte_col(text, c['end'], encoding)
        if last > first then
          pcall(vim.api.nvim_buf_set_extmark, bufnr, M.columns_ns, line, first, {
            end_col = last, hl_group = 'HeatlineColumn' .. M.column_bucket(c.strength), priority = 30,
          })
        end
      end
    end
  end
end

--- Draw `heat` in `bufnr`: new marks are placed (moving those with the same id) before the
--- ones no longer wanted are deleted, so live updates never blink.
function M.draw(bufnr, heat)
  if not vim.api.nvim_buf_is_loaded(bufnr) then
    return
  end
  local old = M.ids[bufnr] or {}
  local new = {}
  local line_count = vim.api.nvim_buf_line_count(bufnr)
  for _, entry in ipairs(heat.lines or {}) do
    local line, mark = mark_opts(entry, heat, line_count)
    if line then
      local ok, id = pcall(vim.api.nvim_buf_set_extmark, bufnr, M.ns, line, 0, mark)
      if ok then
        new[id] = true
      end
    end
  end
  for id in pairs(old) do
    if not new[id] then
      pcall(vim.api.nvim_buf_del_extmark, bufnr, M.ns, id)
    end
  end
  M.ids[bufnr] = new
  draw_columns(bufnr, heat)
  require('heatline.hot').draw(bufnr, heat)
end

function M.clear(bufnr)
  if vim.api.nvim_buf_is_valid(bufnr) then
    pcall(vim.api.nvim_buf_clear_namespace, bufnr, M.ns, 0, -1)
    pcall(vim.api.nvim_buf_clear_namespace, bufnr, M.columns_ns, 0, -1)
    require('heatline.hot').clear(bufnr)
  end
  M.ids[bufnr] = nil
end

--- Remember and (if visible) show a heat notification; a null profile clears. `encoding` is
--- the client's position encoding (the unit of the columns).
function M.update(bufnr, heat, encoding)
  M.encodings[bufnr] = encoding or M.encodings[bufnr]
  if heat.profile == nil or heat.profile == vim.NIL then
    M.heat[bufnr] = nil
    M.clear(bufnr)
    return
  end
  M.heat[bufnr] = heat
  if M.visible then
    M.draw(bufnr, heat)
  end
end

function M.forget(bufnr)
  M.heat[bufnr] = nil
  M.encodings[bufnr] = nil
  M.clear(bufnr)
end

function M.clear_all()
  for bufnr in pairs(vim.deepcopy(M.heat)) do
    M.forget(bufnr)
  end
  for bufnr in pairs(vim.deepcopy(M.ids)) do
    M.clear(bufnr)
  end
end

function M.set_visible(visible)
  M.visible = visible
  for bufnr, heat in pairs(M.heat) do
    if not vim.api.nvim_buf_is_valid(bufnr) then
      M.heat[bufnr] = nil
    elseif visible then
      M.draw(bufnr, heat)
    else
      M.clear(bufnr)
    end
  end
end

return M
