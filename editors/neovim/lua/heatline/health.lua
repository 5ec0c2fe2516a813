-- :checkhealth heatline
local M = {}

local health = vim.health or require('health')
local ok_ = health.ok or health.report_ok
local warn_ = health.warn or health.report_warn
local error_ = health.error or health.report_error
local info_ = health.info or health.report_info
local start_ = health.start or health.report_start

local function run(cmd)
  local ok, result = pcall(function()
    if vim.system then
      local r = vim.system(cmd, { text = true }):wait(10000)
      return { code = r.code, out = (r.stdout or '') .. (r.stderr or '') }
    end
    local out = vim.fn.system(cmd)
    return { code = vim.v.shell_error, out = out }
  end)
  if not ok then
    return { code = -1, out = tostring(result) }
  end
  return result
end

local function first_line(s)
  return (tostring(s or ''):gsub('^%s+', ''):match('^[^\n]*')) or ''
end

function M.check()
  start_('heatline: Neovim')
  local v = vim.version()
  local version = string.format('%d.%d.%d', v.major, v.minor, v.patch)
  if vim.fn.has('nvim-0.10') == 1 then
    ok_('Neovim ' .. version)
  else
    error_('Neovim ' .. version .. ' is too old: heatline needs 0.10 or newer')
  end

  start_('heatline: language server')
  local cmd = require('heatline.config').cmd()
  local exe = cmd[1]
  if vim.fn.executable(exe) ~= 1 then
    error_('server command not found: ' .. table.concat(cmd, ' '),
      { 'pip install heatline (provides heatline-lsp)', 'or set setup{ cmd = { "/path/to/python", "-m", "server" } }' })
  else
    local r = run(vim.list_extend(vim.deepcopy(cmd), { '--version' }))
    if r.code == 0 and first_line(r.out):find('pure-Python sampler', 1, true) then
      warn_(table.concat(cmd, ' ') .. ': ' .. first_line(r.out), {
        'profiles are taken by the slower pure-Python walker',
        'reinstall with a C compiler and the Python headers present: pip install -e . (or pip install heatline)',
      })
    elseif r.code == 0 then
      ok_(table.concat(cmd, ' ') .. ': ' .. first_line(r.out))
    else
      error_(table.concat(cmd, ' ') .. ' --version failed: ' .. first_line(r.out))
    end
  end
  local clients = (vim.lsp.get_clients or vim.lsp.get_active_clients)({ name = 'heatline' })
  if #clients > 0 then
    ok_('client running (id ' .. clients[1].id .. ')')
  else
    info_('no heatline client running yet (it starts with a Python buffer or a :Heatline command)')
  end

  start_('heatline: Python')
  local found = false
  if vim.fn.executable('pyenv') == 1 then
    local r = run({ 'pyenv', 'versions', '--bare' })
    if r.code == 0 and vim.trim(r.out) ~= '' then
      found = true
      ok_('pyenv versions: ' .. table.concat(vim.split(vim.trim(r.out), '%s+'), ', '))
    end
  end
  for _, py in ipairs({ 'python3', 'python' }) do
    if vim.fn.executable(py) == 1 then
      local r = run({ py, '--version' })
      if r.code == 0 then
        found = true
        ok_(py .. ': ' .. first_line(r.out) .. ' (' .. vim.fn.exepath(py) .. ')')
        break
      end
    end
  end
  if not found then
    warn_('no Python found on PATH (heatline.run uses the server\'s interpreter or setup{ python = ... })')
  end

  start_('heatline: permissions to attach')
  local uid = (vim.uv or vim.loop).getuid and (vim.uv or vim.loop).getuid() or -1
  local f = io.open('/proc/sys/kernel/yama/ptrace_scope', 'r')
  if uid == 0 then
    ok_('running as root: attaching to any process is allowed')
  elseif not f then
    ok_('no Yama ptrace_scope on this system: attaching to your own processes is allowed')
  else
    local scope = tonumber((f:read('*l') or ''):match('%d+'))
    if scope == 0 then
      ok_('ptrace_scope is 0: attaching to your own processes is allowed')
    elseif scope == 1 then
      warn_('ptrace_scope is 1: only processes started by heatline can be profiled without privileges', {
        'use :Heatline run, or sudo sysctl kernel.yama.ptrace_scope=0, or grant CAP_SYS_PTRACE',
      })
    else
      warn_('ptrace_scope is ' .. tostring(scope) .. ': attaching needs root')
    end
  end
  if f then
    f:close()
  end

  start_('heatline: hot-line signs')
  local opts = require('heatline.config').get()
  if opts.hot_signs == false then
    info_('off (setup{ hot_signs = false })')
  else
    local text = tostring(opts.hot_sign_text or '')
    local width = vim.fn.strdisplaywidth(text)
    if width < 1 or width > 2 then
      warn_(string.format('hot_sign_text %q is %d cells wide: a sign shows one or two', text, width))
    else
      ok_(string.format('%q on the %s hottest lines of each buffer', text, tostring(opts.hot_signs_count)))
    end
  end
end

return M
