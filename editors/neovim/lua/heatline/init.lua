-- heatline.nvim: line-level heat from the heatline profiler's language server.
local config = require('heatline.config')

local M = {}

local group = vim.api.nvim_create_augroup('heatline', { clear = true })
local lens_enabled = {} -- bufnr -> true once code lenses / inlay hints were switched on
M.last = nil -- the latest heat notification (any buffer), for :Heatline status and tests

local function setup_highlights()
  require('heatline.render').define_highlights()
end

--- setup{...}: see :help heatline-setup.
function M.setup(opts)
  config.setup(opts)
  setup_highlights()
  vim.api.nvim_clear_autocmds({ group = group })
  vim.api.nvim_create_autocmd({ 'ColorScheme', 'OptionSet' }, {
    group = group,
    pattern = { '*' },
    callback = function(ev)
      if ev.event == 'ColorScheme' or ev.match == 'background' then
        setup_highlights()
      end
    end,
  })
  vim.api.nvim_create_autocmd('BufWipeout', {
    group = group,
    callback = function(ev)
      require('heatline.render').forget(ev.buf)
      lens_enabled[ev.buf] = nil
    end,
  })
  if config.get().auto_start then
    vim.api.nvim_create_autocmd('FileType', {
      group = group,
      pattern = 'python',
      callback = function(ev)
        M.attach(ev.buf)
      end,
    })
    for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(bufnr) and vim.bo[bufnr].filetype == 'python' then
        M.attach(bufnr)
      end
    end
  end
  return M
end

--- Start the client (if needed) and attach it to `bufnr`.
function M.attach(bufnr)
  if vim.bo[bufnr].buftype ~= '' then
    return
  end
  return require('heatline.client').start(bufnr)
end

local function buffer_for_uri(uri)
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.uri_from_bufnr(bufnr) == uri then
      return bufnr
    end
  end
  local ok, fname = pcall(vim.uri_to_fname, uri)
  if ok then
    local bufnr = vim.fn.bufnr(fname)
    if bufnr > 0 and vim.api.nvim_buf_is_loaded(bufnr) then
      return bufnr
    end
  end
  return nil
end

local function refresh_lenses(bufnr, client_id)
  local r = config.get().renderers
  local render = require('heatline.render')
  local client = client_id and vim.lsp.get_client_by_id(client_id)
  if not client or not render.visible then
    return
  end
  local caps = client.server_capabilities or {}
  if r.inlay_hints and caps.inlayHintProvider and vim.lsp.inlay_hint and not lens_enabled[bufnr] then
    pcall(vim.lsp.inlay_hint.enable, true, { bufnr = bufnr })
  end
  if r.code_lens and caps.codeLensProvider then
    if vim.fn.has('nvim-0.12') == 1 and type(vim.lsp.codelens.enable) == 'function' then
      if not lens_enabled[bufnr] then
        pcall(vim.lsp.codelens.enable, true, { bufnr = bufnr })
      end
    else
      pcall(vim.lsp.codelens.refresh, { bufnr = bufnr })
    end
  end
  lens_enabled[bufnr] = true
end

--- Handler of the server's `heatline/heat` notification.
function M.on_heat(params, ctx)
  local render = require('heatline.render')
  if not render.defined then
    render.defined = true
    setup_highlights()
  end
  local bufnr = buffer_for_uri(params.uri)
  if not bufnr then
    return
  end
  -- Heat measured against an older text than the buffer's is dropped: the server re-sends it
  -- moved (or marked stale) once it has seen the edit; meanwhile the marks move with the text.
  local version = params.version
  local current = vim.lsp.util.buf_versions[bufnr]
  if type(version) == 'number' and type(current) == 'number' and version < current then
    return
  end
  M.last = params
  local client = ctx and ctx.client_id and vim.lsp.get_client_by_id(ctx.client_id)
  render.update(bufnr, params, client and client.offset_encoding or nil)
  if params.profile ~= nil and params.profile ~= vim.NIL then
    refresh_lenses(bufnr, ctx and ctx.client_id)
  end
  pcall(vim.api.nvim_exec_autocmds, 'User', { pattern = 'HeatlineHeat', modeline = false, data = { buf = bufnr } })
end

--- Hide or show everything heatline draws.
function M.toggle()
  local render = require('heatline.render')
  local visible = not render.visible
  render.set_visible(visible)
  for bufnr in pairs(render.heat) do
    if vim.lsp.inlay_hint and config.get().renderers.inlay_hints then
      pcall(vim.lsp.inlay_hint.enable, visible, { bufnr = bufnr })
    end
    if not visible then
      local client = require('heatline.client').get(bufnr, false)
      if client and vim.lsp.codelens.clear then
        pcall(vim.lsp.codelens.clear, client.id, bufnr)
      end
      lens_enabled[bufnr] = nil
    end
  end
  return visible
end

return M
