-- vim.ui.select pickers: processes to attach to, and the hottest lines/functions to jump to.
local client = require('heatline.client')

local M = {}

function M.process_label(proc)
  local label = string.format('%-8s %s', tostring(proc.pid), tostring(proc.command or ''))
  if proc.pythonVersion and proc.pythonVersion ~= vim.NIL then
    label = label .. '  [' .. tostring(proc.pythonVersion) .. ']'
  end
  if proc.needsPrivileges == true then
    local why = (proc.reason and proc.reason ~= vim.NIL) and (': ' .. tostring(proc.reason)) or ''
    label = label .. '  (needs privileges' .. why .. ')'
  end
  return label
end

--- Pick a Python process and call `on_pick(pid)`. `opts` (optional) lists others the same way:
--- `command` (a server command answering as heatline.listProcesses does), `prompt`, `empty`.
function M.processes(on_pick, opts)
  opts = opts or {}
  client.exec(opts.command or 'heatline.listProcesses', {}, function(result)
    if type(result) ~= 'table' or #result == 0 then
      return client.notify(opts.empty or 'no Python processes found', vim.log.levels.WARN)
    end
    vim.ui.select(result, { prompt = opts.prompt or 'Attach to', format_item = M.process_label }, function(choice)
      if choice then
        on_pick(choice.pid)
      end
    end)
  end)
end

function M.hot_label(item, kind)
  local where = vim.fn.fnamemodify(tostring(item.path or item.file or '?'), ':~:.')
  local line = (tonumber(item.line) or 0) + 1
  local fn = (item['function'] and item['function'] ~= vim.NIL) and tostring(item['function']) or ''
  local label = string.format('%6.1f%% %6.1f%%  %s:%d', tonumber(item.selfPct) or 0, tonumber(item.totalPct) or 0,
    where, line)
  if fn ~= '' then
    label = kind == 'functions' and string.format('%6.1f%% %6.1f%%  %s  %s:%d', tonumber(item.selfPct) or 0,
      tonumber(item.totalPct) or 0, fn, where, line) or (label .. '  ' .. fn)
  end
  if item.stale == true then
    label = label .. '  (stale)'
  end
  return label
end

--- Open the location of a hottest entry.
function M.jump(item)
  local path = item.path
  if (not path or path == vim.NIL) and item.uri and item.uri ~= vim.NIL then
    path = vim.uri_to_fname(item.uri)
  end
  if not path or path == vim.NIL or path == '' then
    return client.notify('no file for this entry', vim.log.levels.WARN)
  end
  local ok, err = pcall(vim.cmd.edit, vim.fn.fnameescape(path))
  if not ok then
    return client.notify(err, vim.log.levels.ERROR)
  end
  local row = math.max(1, math.min((tonumber(item.line) or 0) + 1, vim.api.nvim_buf_line_count(0)))
  pcall(vim.api.nvim_win_set_cursor, 0, { row, 0 })
end

--- A process of a --subprocesses run, as the picker lists it (nil: all of them).
function M.run_process_label(entry)
  if entry == nil or entry.all then
    return 'all processes'
  end
  local samples = tostring(entry.samples or 0) .. ' samples'
  local note = (entry.note and entry.note ~= vim.NIL) and (', ' .. tostring(entry.note)) or ''
  return string.format('%-8s %s%s  (%s%s)', tostring(entry.pid), entry.main == true and '[main] ' or '',
    tostring(entry.command or ''), samples, note)
end

--- Show the heat of one process of the shown run, or of all of them (heatline.showProcess).
function M.run_processes()
  client.exec('heatline.status', {}, function(result)
    local profile = type(result) == 'table' and result.profile or nil
    local entries = type(profile) == 'table' and profile.processes or nil
    if type(entries) ~= 'table' or entries == vim.NIL then
      return client.notify('the shown profile is not a run with subprocesses', vim.log.levels.WARN)
    end
    local choices = vim.list_extend({ { all = true } }, entries)
    vim.ui.select(choices, { prompt = 'Heat of', format_item = M.run_process_label }, function(choice)
      if choice then
        client.exec('heatline.showProcess', choice.all and {} or { pid = choice.pid })
      end
    end)
  end)
end

--- Pick among the hottest lines (or functions) and jump to the choice.
function M.hottest(opts)
  opts = opts or {}
  local kind = opts.kind or 'lines'
  local args = { count = opts.count or 30, kind = kind, by = opts.by or 'self' }
  client.exec('heatline.hottest', args, function(result)
    if type(result) ~= 'table' or #result == 0 then
      return client.notify('no profile samples to show', vim.log.levels.WARN)
    end
    vim.ui.select(result, {
      prompt = 'Hottest ' .. kind .. ' (self, total)',
      format_item = function(item)
        return M.hot_label(item, kind)
      end,
    }, function(choice)
      if choice then
        M.jump(choice)
      end
    end)
  end)
end

return M
