-- The heatline language server client: its config, starting it, and running its commands.
local config = require('heatline.config')

local M = {}

M.name = 'heatline'

local has_011 = vim.fn.has('nvim-0.11') == 1
-- The server reports a failed command both as an LSP error and with window/showMessage:
-- whichever comes second within a few seconds is not shown again.
local recent = {} -- one-line message -> time shown

local function seen(message)
  local t = (vim.uv or vim.loop).now()
  local before = recent[message]
  recent[message] = t
  return before ~= nil and t - before < 3000
end

--- One readable line out of an error or message.
function M.one_line(message)
  message = tostring(message or 'unknown error')
  message = message:gsub('\r', ''):gsub('^%s+', ''):gsub('^heatline:%s*', '')
  return (message:match('^[^\n]*') or message)
end

function M.notify(message, level)
  message = M.one_line(message)
  if not message:match('^heatline') then
    message = 'heatline: ' .. message
  end
  vim.notify(message, level or vim.log.levels.INFO, { title = 'heatline' })
end

--- An error shown once even when two paths report it (a failed start, then the command it broke).
local function error_once(message)
  message = M.one_line(message)
  if not seen(message) then
    M.notify(message, vim.log.levels.ERROR)
  end
  return message
end

local function on_heat(err, result, ctx)
  if err or type(result) ~= 'table' then
    return
  end
  local ok, e = pcall(function()
    require('heatline').on_heat(result, ctx)
  end)
  if not ok then
    M.notify('could not draw heat: ' .. tostring(e), vim.log.levels.WARN)
  end
end

local function on_show_message(_, params, ctx)
  if type(params) ~= 'table' then
    return
  end
  local levels = { vim.log.levels.ERROR, vim.log.levels.WARN, vim.log.levels.INFO, vim.log.levels.DEBUG }
  local level = levels[params.type] or vim.log.levels.INFO
  if level == vim.log.levels.ERROR and seen(M.one_line(params.message)) then
    return
  end
  M.notify(params.message, level)
end

M.handlers = {
  ['heatline/heat'] = on_heat,
  ['window/showMessage'] = on_show_message,
}

function M.root_dir(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr or 0)
  local start = name ~= '' and vim.fs.dirname(name) or vim.fn.getcwd()
  local found = vim.fs.find(config.get().root_markers, { path = start, upward = true })[1]
  return found and vim.fs.dirname(found) or vim.fn.getcwd()
end

--- The table given to vim.lsp.start (also what lsp/heatline.lua returns).
function M.lsp_config(bufnr)
  return {
    name = M.name,
    cmd = config.cmd(),
    filetypes = { 'python' },
    root_dir = bufnr and M.root_dir(bufnr) or nil,
    root_markers = config.get().root_markers,
    settings = config.lsp_settings(),
    handlers = M.handlers,
    on_exit = function(code, signal)
      M.last_exit = { code = code, signal = signal }
    end,
    -- One server for the whole editor: it holds one profile, shown in every buffer.
    reuse_client = function(client, cfg)
      return client.name == cfg.name
    end,
  }
end

local function valid_buffer(bufnr)
  return bufnr and vim.api.nvim_buf_is_valid(bufnr) and vim.bo[bufnr].buftype == ''
end

--- Start (or reuse) the client for `bufnr`; returns the client id or nil.
function M.start(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local cfg = M.lsp_config(bufnr)
  cfg.root_markers = nil
  cfg.filetypes = nil
  local exe = type(cfg.cmd) == 'table' and cfg.cmd[1] or nil
  if type(exe) == 'string' and vim.fn.executable(exe) ~= 1 then
    -- vim.lsp.start would only log this: say it where the user looks
    return nil, error_once(string.format(
      'cannot start the language server: %s is not an executable (set cmd in setup(); see :checkhealth heatline)', exe))
  end
  local ok, id = pcall(vim.lsp.start, cfg, {
    bufnr = bufnr,
    attach = valid_buffer(bufnr),
    reuse_client = cfg.reuse_client,
  })
  if not ok then
    return nil, error_once('could not start the language server: ' .. tostring(id))
  end
  M.client_id = id or M.client_id
  return id
end

local function get_clients(filter)
  if vim.lsp.get_clients then
    return vim.lsp.get_clients(filter)
  end
  return vim.lsp.get_active_clients(filter)
end

--- The heatline client for `bufnr` (or any heatline client), started if needed.
function M.get(bufnr, start)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local clients = get_clients({ name = M.name, bufnr = bufnr, _uninitialized = true })
  if #clients == 0 then
    clients = get_clients({ name = M.name, _uninitialized = true })
  end
  if clients[1] then
    return clients[1]
  end
  local mine = M.client_id and vim.lsp.get_client_by_id(M.client_id)
  if mine then
    return mine
  end
  if start == false then
    return nil
  end
  local id, why = M.start(bufnr)
  return id and vim.lsp.get_client_by_id(id) or nil, why
end

local function request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

--- Run a heatline.* command with one object argument. `callback(result)` is called on success;
--- an error becomes a single-line vim.notify ERROR (and `on_error(message)` if given).
function M.exec(command, args, callback, on_error)
  local function fail(message)
    -- The server reports most failures with window/showMessage too: say it once.
    message = error_once(message)
    if on_error then
      pcall(on_error, message)
    end
  end
  local bufnr = vim.api.nvim_get_current_buf()
  local client, why = M.get(bufnr)
  if not client then
    return fail(why or 'the language server is not running (see :checkhealth heatline)')
  end
  if args == nil or (type(args) == 'table' and next(args) == nil) then
    args = vim.empty_dict() -- an empty Lua table would be sent as [] (the server wants an object)
  end
  local params = { command = command, arguments = { args } }
  local waited = 0
  local function send()
    if type(client.is_stopped) == 'function' then
      local got, stopped = pcall(client.is_stopped, client)
      if got and stopped then
        local e = M.last_exit
        local how = e and ((e.signal or 0) ~= 0 and (' (signal ' .. e.signal .. ')') or (' (exit code ' .. tostring(e.code) .. ')')) or ''
        return fail('the language server has stopped' .. how .. '; see :LspLog and :checkhealth heatline')
      end
    end
    if not client.initialized then
      if waited > 20000 then
        return fail('the language server did not start')
      end
      waited = waited + 50
      return vim.defer_fn(send, 50)
    end
    local ok, sent = pcall(request, client, 'workspace/executeCommand', params, function(err, result)
      if err then
        return fail(type(err) == 'table' and (err.message or vim.inspect(err)) or err)
      end
      if callback then
        local cb_ok, cb_err = pcall(callback, result)
        if not cb_ok then
          M.notify(cb_err, vim.log.levels.ERROR)
        end
      end
    end, valid_buffer(bufnr) and bufnr or nil)
    if not ok or sent == false then
      fail('could not send ' .. command .. (ok and '' or (': ' .. tostring(sent))))
    end
  end
  send()
end

return M
