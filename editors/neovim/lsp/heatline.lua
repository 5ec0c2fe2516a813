-- Config for vim.lsp.enable('heatline') (Neovim 0.11+); built from require('heatline').setup{} options.
local cfg = require('heatline.client').lsp_config()
cfg.root_dir = nil
return cfg
