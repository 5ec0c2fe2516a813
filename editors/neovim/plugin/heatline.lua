-- :Heatline user command (the rest loads on first use).
if vim.g.loaded_heatline then
  return
end
vim.g.loaded_heatline = 1

vim.api.nvim_create_user_command('Heatline', function(opts)
  require('heatline.commands').run(opts)
end, {
  nargs = '*',
  desc = 'heatline profiler: run, attach, async, opcodes, native, stop, open, diff, flame, hottest, toggle, clear, status',
  complete = function(arglead, cmdline, pos)
    return require('heatline.commands').complete(arglead, cmdline, pos)
  end,
})
