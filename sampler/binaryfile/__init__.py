"""The `--binary` file format: `layout.py` (the layout and the constants both sides share),
`reader.py` (`open_binary_profile`, streaming and checked) and `writer.py` (`BinaryWriter`).
`sampler/replay.py` replays a file into a Profile; `collectors/binary.py` is the `--binary` output."""
