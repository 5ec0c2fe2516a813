"""CPython version-specific knowledge: struct layouts of the interpreters the sampler reads."""
