"""`heatline run --live` / `attach --live`: a top-style view of the profile in the terminal.

`app.py` runs it (sampling on a thread of its own, keys and refreshes on the main thread),
`table.py` turns the profile's deltas into rows and header figures (no curses), `screen.py`
draws them; `keys.py`, `prompt.py`, `export.py` (`o`), `text.py` (target text made safe),
`terminal.py` (the curses session) and `capture.py` (output held while the screen is ours)
each do one part. curses is imported only when a terminal is checked or a view shown.
"""
