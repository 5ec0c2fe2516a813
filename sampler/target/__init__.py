"""Access to a target process: its memory maps, ELF images, memory and per-thread state."""
