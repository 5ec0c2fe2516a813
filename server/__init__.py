"""heatline language server (pygls). Adapts profiles to LSP; owns no profiling logic."""
