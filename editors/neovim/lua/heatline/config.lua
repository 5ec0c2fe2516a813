-- Options for heatline.nvim: defaults, merging, and the LSP settings derived from them.
local M = {}

local function default_cmd()
  if vim.fn.executable('heatline-lsp') == 1 then
    return { 'heatline-lsp' }
  end
  local python = vim.fn.exepath('python3')
  if python == '' then
    python = 'python'
  end
  return { python, '-m', 'server' }
end

M.defaults = {
  -- Server command; nil means "heatline-lsp" if executable, else {python3, "-m", "server"}.
  cmd = nil,
  -- Sampling rate (Hz), what a sample counts ('wall', 'cpu', 'gil' or 'exception': see
  -- :help heatline-modes), and whether to sample every thread.
  sampling_rate = 1000,
  mode = 'wall',
  all_threads = false,
  -- asyncio code as tasks (see :help heatline-async): off, or one of M.async_modes.
  async_aware = false,
  async_mode = 'running',
  -- Record each frame's instruction (--opcodes: hovers name a line's instructions, hot lines
  -- show where in them the time went) and time in C code as <native> (--native).
  opcodes = false,
  native = false,
  -- Also profile the Python processes a run starts (`heatline run --subprocesses`); their heat is
  -- merged with the main process's, and :Heatline process shows one of them alone.
  subprocesses = false,
  -- Interpreter heatline.run uses (nil: the server's own).
  python = nil,
  -- Lines whose self or total share (percent) reaches this get end-of-line text / inlay hints.
  threshold = 1.0,
  -- Gradient endpoints {coolest, hottest} for 'background' dark and light.
  colours = {
    dark = { '#2b2222', '#8c2a1c' },
    light = { '#fbf0ec', '#f0907a' },
    stale = { dark = '#33333d', light = '#e4e4ec' },
    -- {coolest, hottest} of the pieces of a line where its time went (--opcodes)
    columns = { dark = { '#6b2c22', '#d2492c' }, light = { '#f6c2b2', '#e0603f' } },
  },
  -- Number of gradient steps (highlight groups HeatlineHeat1..N).
  steps = 8,
  renderers = {
    line_highlight = true,
    virtual_text = true,
    sign = false,
    columns = true, -- with --opcodes: where in a hot line its time went
    code_lens = true,
    test_lenses = true, -- "Profile" lenses above tests and __main__ blocks (:Heatline test)
    inlay_hints = false, -- the end-of-line text already shows the same numbers
  },
  -- A sign on each buffer's hottest lines (by self time): how many, and its text (one or two
  -- cells); highlight groups HeatlineHottestSign and HeatlineHotSign.
  hot_signs = true,
  hot_signs_count = 5,
  hot_sign_text = '▲',
  -- How many entries :Heatline hottest puts in the quickfix list.
  hottest_count = 20,
  -- Start/attach the client to python buffers automatically.
  auto_start = true,
  -- Files whose presence marks the project root.
  root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', '.git' },
}

-- `heatline run --async-mode`'s values, in the sampler's order.
M.async_modes = { 'running', 'all' }

M.options = vim.deepcopy(M.defaults)

function M.setup(opts)
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  return M.options
end

function M.get()
  return M.options
end

function M.cmd()
  local cmd = M.options.cmd
  if type(cmd) == 'string' then
    return { cmd }
  end
  if type(cmd) == 'table' and #cmd > 0 then
    return cmd
  end
  return default_cmd()
end

--- The async arguments :Heatline run and attach send, from the options as they are now
--- (:Heatline async changes them without restarting the server). The mode goes only with
--- async_aware: the server refuses it alone, as `heatline run` does.
function M.async_args()
  local o = M.options
  if o.async_aware then
    return { asyncAware = true, asyncMode = o.async_mode }
  end
  return { asyncAware = false }
end

--- The capture flags :Heatline run and attach send, as the options are now (:Heatline opcodes
--- and :Heatline native change them without restarting the server).
function M.capture_args()
  return { opcodes = M.options.opcodes == true, native = M.options.native == true }
end

--- The `heatline` section served to workspace/configuration.
function M.lsp_settings()
  local o = M.options
  local section = {
    samplingRate = o.sampling_rate,
    mode = o.mode,
    allThreads = o.all_threads,
    asyncAware = o.async_aware,
    asyncMode = o.async_mode,
    opcodes = o.opcodes,
    native = o.native,
    subprocesses = o.subprocesses,
    inlayHintThreshold = o.threshold,
    codeLens = o.renderers.code_lens,
    testLenses = o.renderers.test_lenses,
    inlayHints = o.renderers.inlay_hints,
  }
  if o.python then
    section.pythonPath = o.python
  end
  return { heatline = section }
end

return M
