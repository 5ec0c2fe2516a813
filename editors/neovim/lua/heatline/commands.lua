-- :Heatline {subcommand} and its completion.
local client = require('heatline.client')
local config = require('heatline.config')

local M = {}

local function notify(msg, level)
  client.notify(msg, level)
end

local function full_path(path)
  return vim.fn.fnamemodify(vim.fn.expand(path), ':p')
end

local function fmt_seconds(value)
  return string.format('%.1f s', tonumber(value) or 0)
end

--- ", async (running)" for an async-aware profile description, '' otherwise.
local function async_note(profile)
  if type(profile) ~= 'table' or profile.asyncAware ~= true then
    return ''
  end
  local mode = profile.asyncMode
  return (type(mode) == 'string') and (', async (' .. mode .. ')') or ', async'
end

local function with_options(params)
  return vim.tbl_extend('force', params, config.async_args(), config.capture_args(),
    { subprocesses = config.options.subprocesses == true })
end

--- ", opcodes, native" for what a profile description says it captured, '' otherwise.
local function capture_note(profile)
  if type(profile) ~= 'table' then
    return ''
  end
  local out = ''
  for _, name in ipairs({ 'opcodes', 'native' }) do
    if profile[name] == true then
      out = out .. ', ' .. name
    end
  end
  return out
end

M.subcommands = {}

--- The current buffer's file for `what` (nil, said, when there is none); a warning when it has
--- unsaved changes, which `reader` (who reads the file) does not see.
local function buffer_file(what, reader)
  local bufnr = vim.api.nvim_get_current_buf()
  local file = vim.api.nvim_buf_get_name(bufnr)
  if file == '' or vim.bo[bufnr].buftype ~= '' then
    notify(what .. ' needs a Python file in the current buffer', vim.log.levels.ERROR)
    return nil
  end
  if vim.bo[bufnr].modified then
    notify('the buffer has unsaved changes: ' .. reader .. ' the file as saved (heat will be stale)',
      vim.log.levels.WARN)
  end
  return file
end

--- "profiling NAME (pid, Python version, async, captures)" once a run has started.
local function started(name, result)
  result = type(result) == 'table' and result or {}
  notify(string.format('profiling %s (pid %s, Python %s%s%s)', name, tostring(result.pid or '?'),
    tostring(result.pythonVersion or '?'), async_note(result), capture_note(result)))
end

M.subcommands.run = function(args)
  local file = buffer_file('run', 'profiling')
  if not file then
    return
  end
  local params = with_options({ script = file, args = args, cwd = vim.fn.getcwd() })
  client.exec('heatline.run', params, function(result)
    started(vim.fn.fnamemodify(file, ':t'), result)
  end)
end

--- :Heatline test: profile the test under the cursor (the server finds it, pytest runs it).
M.subcommands.test = function()
  local file = buffer_file('test', 'pytest runs')
  if not file then
    return
  end
  local line = vim.api.nvim_win_get_cursor(0)[1] - 1
  client.exec('heatline.testAt', { path = file, line = line }, function(found)
    if type(found) ~= 'table' or type(found.node) ~= 'string' then
      return notify('no test under the cursor: put it in a test_* function or Test* class of a test_*.py file',
        vim.log.levels.WARN)
    end
    local params = with_options({ path = file, node = found.node })
    if config.options.python then
      params.python = config.options.python
    end
    client.exec('heatline.profileTest', params, function(result)
      started('test ' .. found.node, result)
    end)
  end)
end

local function attach(pid, command)
  client.exec(command, with_options({ pid = pid }), function(result)
    result = type(result) == 'table' and result or {}
    notify(string.format('attached to pid %s (Python %s%s%s)', tostring(result.pid or pid),
      tostring(result.pythonVersion or '?'), async_note(result), capture_note(result)))
  end)
end

--- 'off' or one of config.async_modes: how the next run or attach reads asyncio code.
local function set_async(choice)
  if choice == 'off' then
    config.options.async_aware = false
  elseif vim.tbl_contains(config.async_modes, choice) then
    config.options.async_aware = true
    config.options.async_mode = choice
  else
    return notify('async: not off or one of ' .. table.concat(config.async_modes, ', ') .. ': ' .. tostring(choice),
      vim.log.levels.ERROR)
  end
  notify('async-aware profiling: ' .. (config.options.async_aware and config.options.async_mode or 'off'))
end

M.async_choices = function()
  return vim.list_extend({ 'off' }, vim.deepcopy(config.async_modes))
end

M.subcommands.async = function(args)
  if args[1] then
    return set_async(args[1])
  end
  vim.ui.select(M.async_choices(), { prompt = 'Async-aware profiling (next run or attach)' }, function(choice)
    if choice then
      set_async(choice)
    end
  end)
end

--- :Heatline opcodes|native [on|off]: switch a capture flag for the next run or attach
--- (without an argument: flip it).
local function capture_switch(name, flag)
  return function(args)
    local choice = args[1]
    local on
    if choice == nil then
      on = not config.options[name]
    elseif choice == 'on' or choice == 'off' then
      on = choice == 'on'
    else
      return notify(name .. ': not on or off: ' .. tostring(choice), vim.log.levels.ERROR)
    end
    config.options[name] = on
    notify(flag .. ' for the next run or attach: ' .. (on and 'on' or 'off'))
  end
end

M.subcommands.opcodes = capture_switch('opcodes', '--opcodes')
M.subcommands.native = capture_switch('native', '--native')

--- :Heatline attach|kernel [PID]: attach with `command` to PID, or to one picked from `list`.
local function attach_command(name, command, pick_opts)
  return function(args)
    local function to(pid)
      attach(pid, command)
    end
    if args[1] then
      local pid = tonumber(args[1])
      if not pid then
        return notify(name .. ': not a process id: ' .. args[1], vim.log.levels.ERROR)
      end
      return to(pid)
    end
    require('heatline.picker').processes(to, pick_opts)
  end
end

M.subcommands.attach = attach_command('attach', 'heatline.attach')
-- a running Jupyter kernel, picked from heatline.listKernels
M.subcommands.kernel = attach_command('kernel', 'heatline.attachKernel', {
  command = 'heatline.listKernels', prompt = 'Attach to kernel', empty = 'no running Jupyter kernel (ipykernel) found',
})

M.subcommands.stop = function()
  client.exec('heatline.stop', {}, function(result)
    result = type(result) == 'table' and result or {}
    notify(string.format('stopped: %s samples in %s%s', tostring(result.samples or 0), fmt_seconds(result.durationS),
      async_note(result)))
  end)
end

M.subcommands.open = function(args)
  if not args[1] then
    return notify('open needs a profile file', vim.log.levels.ERROR)
  end
  client.exec('heatline.open', { path = full_path(args[1]) })
end

M.subcommands.diff = function(args)
  if not args[1] then
    return notify('diff needs a baseline profile file', vim.log.levels.ERROR)
  end
  client.exec('heatline.diff', { baseline = full_path(args[1]) })
end

M.subcommands.flame = function(args)
  local params = {}
  if args[1] then
    params.output = full_path(args[1])
  end
  client.exec('heatline.flamegraph', params, function(result)
    local path = type(result) == 'table' and result.path
    if not path or path == vim.NIL then
      return notify('no flame graph was written', vim.log.levels.WARN)
    end
    if vim.ui.open then
      local ok, obj, err = pcall(vim.ui.open, path)
      if not ok or (obj == nil and err) then
        return notify('flame graph: ' .. path .. ' (could not open: ' .. tostring(ok and err or obj) .. ')',
          vim.log.levels.WARN)
      end
    end
    notify('flame graph: ' .. path)
  end)
end

--- :Heatline hottest [N] [lines|functions] [self|total]: the quickfix list; with `pick`, a picker.
M.subcommands.hottest = function(args)
  local opts, pick = {}, false
  for _, a in ipairs(args) do
    if tonumber(a) then
      opts.count = tonumber(a)
    elseif a == 'functions' or a == 'lines' then
      opts.kind = a
    elseif a == 'self' or a == 'total' then
      opts.by = a
    elseif a == 'pick' then
      pick = true
    else
      return notify('hottest: not a count, lines, functions, self, total or pick: ' .. a, vim.log.levels.ERROR)
    end
  end
  if pick then
    return require('heatline.picker').hottest(opts)
  end
  require('heatline.hot').quickfix(opts)
end

M.subcommands.process = function()
  require('heatline.picker').run_processes()
end

M.subcommands.toggle = function()
  local visible = require('heatline').toggle()
  notify(visible and 'heat shown' or 'heat hidden')
end

M.subcommands.clear = function()
  require('heatline.render').clear_all()
  client.exec('heatline.clear', {})
end

M.subcommands.status = function()
  client.exec('heatline.status', {}, function(result)
    result = type(result) == 'table' and result or {}
    local parts = {}
    local profile = result.profile
    if type(profile) == 'table' then
      table.insert(parts, string.format('profile %s (%s, %s samples, %s%s%s)', tostring(profile.label or profile.id or '?'),
        tostring(profile.source or '?'), tostring(profile.capturedSamples or profile.totalSamples or '?'), tostring(profile.mode or '?'),
        async_note(profile), capture_note(profile)))
    else
      table.insert(parts, 'no profile')
    end
    table.insert(parts, result.running == true and 'running' or 'idle')
    if not require('heatline.render').visible then
      table.insert(parts, 'hidden')
    end
    local ok, progress = pcall(vim.lsp.status)
    if ok and type(progress) == 'string' and progress ~= '' then
      table.insert(parts, progress)
    end
    notify(table.concat(parts, '; '))
  end)
end

function M.names()
  local names = vim.tbl_keys(M.subcommands)
  table.sort(names)
  return names
end

--- Entry point of :Heatline.
function M.run(opts)
  local fargs = opts.fargs or {}
  local name = fargs[1]
  if not name then
    return notify('usage: :Heatline {' .. table.concat(M.names(), '|') .. '}', vim.log.levels.ERROR)
  end
  local sub = M.subcommands[name]
  if not sub then
    return notify('unknown subcommand: ' .. name, vim.log.levels.ERROR)
  end
  local ok, err = pcall(sub, vim.list_slice(fargs, 2))
  if not ok then
    notify(err, vim.log.levels.ERROR)
  end
end

local file_args = { run = true, open = true, diff = true, flame = true }

function M.complete(arglead, cmdline, _)
  local words = vim.split(cmdline, '%s+', { trimempty = true })
  -- The word being completed is not yet a complete word when the line ends without a space.
  local index = #words + ((cmdline:match('%s$') and 1) or 0)
  if index <= 2 then
    return vim.tbl_filter(function(n)
      return vim.startswith(n, arglead)
    end, M.names())
  end
  local sub = words[2]
  if file_args[sub] then
    return vim.fn.getcompletion(arglead, 'file')
  end
  if sub == 'opcodes' or sub == 'native' then
    return vim.tbl_filter(function(n)
      return vim.startswith(n, arglead)
    end, { 'on', 'off' })
  end
  if sub == 'async' then
    return vim.tbl_filter(function(n)
      return vim.startswith(n, arglead)
    end, M.async_choices())
  end
  if sub == 'hottest' then
    return vim.tbl_filter(function(n)
      return vim.startswith(n, arglead)
    end, { 'lines', 'functions', 'self', 'total', 'pick' })
  end
  return {}
end

return M
