"""`--live`: the key loop, the refresh clock, the snapshots and the lifecycle of the view.

The sampling loop runs on a thread of its own (the native core releases the GIL while it samples)
and writes into the Profile under a lock; the view, on the main thread (where the signal handlers
run), takes `Profile.delta_since` under that lock at each refresh and feeds it to its `LiveTable`
outside it, so a redraw reads a snapshot and never holds sampling up for longer than a copy.
Keys are read with a timeout, so they are answered between refreshes.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, ContextManager

from sampler.tui import screen as draw
from sampler.tui.keys import ACTIONS, MOVE_KEYS, THREAD_KEYS, key_name
from sampler.tui.prompt import Prompt

REFRESH_STEPS_HZ = (1, 2, 5, 10, 20)
DEFAULT_REFRESH_HZ = 10
MESSAGE_S = 8.0
# How often the loop wakes when nothing is due (a finished or paused view): signals, messages.
IDLE_WAKE_S = 0.25
MAX_KEYS_PER_DRAW = 256


class LiveApp:
    """The state of one live view and what each key does to it."""

    def __init__(self, loop: Any, lock: ContextManager[object], *, launched: bool) -> None:
        from sampler.tui.table import LiveTable

        self.loop = loop
        self.lock = lock
        self.profile = loop.profile
        self.stats = self.profile.stats
        self.launched = launched
        self.table = LiveTable(self.stats.interval_usec)
        self._mark = None
        self.refresh_hz = DEFAULT_REFRESH_HZ
        self.paused = False
        self.quitting = False
        self.by_signal = False
        self.sampling_done = threading.Event()
        self.error: BaseException | None = None
        self.finished: str | None = None  # why sampling ended, once it has
        self._finished_at: float | None = None
        self.prompt: Prompt | None = None
        self.help = False
        self.source_row: Any = None  # the row whose source is shown
        self.source_top: int | None = None  # first source line shown (None: around the row's line)
        self.selected: tuple[str, int, str] | None = None  # (filename, lineno, funcname)
        self.message: tuple[str, bool] | None = None  # (text, is an error)
        self._message_until = 0.0
        self.table_rows = 1  # rows the table has room for, from the last draw
        # --opcodes: the "Opcodes for f()" panel under the table, and ↑/↓ select rows (as Tachyon)
        self.opcodes = bool(self.stats.opcodes)
        self.figures: Any = None
        self.rows: list[Any] = []
        self._view_time = time.monotonic()

    # -- the two threads ------------------------------------------------------------------------

    def sample(self) -> None:
        """The sampling thread's body."""
        try:
            self.loop.run()
        except BaseException as exc:  # handed to the main thread, raised there once the terminal is back
            self.error = exc
        finally:
            self.sampling_done.set()

    def stop(self) -> None:
        """What StopSignals calls on Ctrl-C, SIGTERM, SIGHUP: sampling and the view both end."""
        self.by_signal = True
        self.quitting = True
        self.loop.stop()

    def run(self, window: Any) -> None:
        """The key loop, until q, a signal, or an error on the sampling thread."""
        next_refresh = 0.0
        dirty = True
        while not self.quitting:
            now = time.monotonic()
            self.table_rows = draw.table_room(window.getmaxyx()[0], self.opcodes)
            if self.sampling_done.is_set() and self.finished is None:
                self._finish(now)
                if self.error is not None or self.stats.samples == 0:
                    return  # nothing to show: the command says why
                dirty = True
            if self.finished is None and not self.paused and now >= next_refresh:
                self._snapshot(now)
                next_refresh = now + 1.0 / self.refresh_hz
                dirty = True
            if self.message is not None and now >= self._message_until:
                self.message = None
                dirty = True
            if dirty:
                draw.draw(window, self)
                dirty = False
            due = next_refresh if self.finished is None and not self.paused else now + IDLE_WAKE_S
            if self.message is not None:
                due = min(due, self._message_until)
            window.timeout(max(1, int((due - time.monotonic()) * 1000)))
            key = read_key(window)
            # Keys already waiting (a paste, a held key) are all taken before the next draw.
            window.timeout(0)
            taken = 0
            while key is not None and not self.quitting:
                if key_name(key) == "resize":
                    self.table_rows = draw.table_room(window.getmaxyx()[0], self.opcodes)
                    if self.figures is not None:
                        self.recompute()
                self.on_key(key)
                dirty = True
                taken += 1
                key = read_key(window) if taken < MAX_KEYS_PER_DRAW else None

    # -- data -----------------------------------------------------------------------------------

    def _snapshot(self, now: float) -> None:
        """What the profile gained since the last refresh, into the table; the view recomputed."""
        with self.lock:
            delta = self.profile.delta_since(self._mark)
            self._mark = self.profile.mark()
        self.table.apply(delta)
        self._view_time = now
        self.recompute()

    def recompute(self) -> None:
        """Figures and rows of the table as it is (after a refresh, or a key that changes the view)."""
        self.figures = self.table.figures(self.stats, self._view_time)
        self.rows = self.table.rows(self.table_rows)

    def _finish(self, now: float) -> None:
        if self.error is not None:
            self.finished = "heatline stopped on an error"
            return
        self.finished = ("the target exited" if self.stats.target_exited
                         else "--duration reached" if not self.loop.stopped else "sampling stopped")
        self.paused = False
        self._snapshot(now)
        self._finished_at = now

    # -- keys -----------------------------------------------------------------------------------

    def on_key(self, key: int | str) -> None:
        name = key_name(key)
        if name == "resize":
            return  # the loop has recomputed the rows for the new size; the draw follows
        if self.prompt is not None:
            self._prompt_key(key)
        elif self.help:
            self.help = False
        elif self.source_row is not None:
            self._source_key(name)
        elif name in MOVE_KEYS and (name in ("j", "k", "pgup", "pgdn") or self.table.selected_thread is None
                                    or self.opcodes):
            self._move_selection(MOVE_KEYS[name])
        elif name in THREAD_KEYS or name in ("up", "down"):
            self._step_thread(1 if name in ("right", "down") else -1)
        else:
            action = ACTIONS.get(name)
            if action is not None:
                getattr(self, "do_" + action)()

    def _prompt_key(self, key: int | str) -> None:
        prompt = self.prompt
        assert prompt is not None
        outcome = prompt.feed(key)
        if outcome is None:
            return
        self.prompt = None
        if outcome == "cancel":
            return
        if prompt.purpose == "filter":
            self.table.set_filter(prompt.text.strip() or None)
            self.selected = None
            self.recompute()
        elif prompt.purpose == "write":
            self._write(prompt.text)

    def _source_key(self, name: str) -> None:
        if name in ("esc", "q", "enter", "backspace", "left"):
            self.source_row = None
            self.source_top = None
            return
        step = MOVE_KEYS.get(name)
        if step is not None:
            self.source_top = (self.source_top or 0) + step
        elif name == "home":
            self.source_top = 0
        elif name == "end":
            self.source_top = 1 << 30  # the screen clamps it

    def _move_selection(self, step: int) -> None:
        keys = [row_key(r) for r in self.rows]
        if not keys:
            return
        at = keys.index(self.selected) if self.selected in keys else None
        if at is None and self.opcodes:  # the panel already shows the top row: j goes past it
            at = 0
        index = 0 if at is None else max(0, min(len(keys) - 1, at + step))
        self.selected = keys[index]

    def _step_thread(self, step: int) -> None:
        self.table.step_thread(step)
        self.recompute()

    def selected_index(self) -> int | None:
        for i, row in enumerate(self.rows):
            if row_key(row) == self.selected:
                return i
        return None

    def do_sort_next(self) -> None:
        self.table.cycle_sort(1)
        self.recompute()

    def do_sort_previous(self) -> None:
        self.table.cycle_sort(-1)
        self.recompute()

    def do_toggle_threads(self) -> None:
        self.table.toggle_threads()
        self.recompute()

    def do_toggle_trends(self) -> None:
        self.table.toggle_trends()
        self.say("trend colours on: red went up, green went down" if self.table.trends_enabled
                 else "trend colours off")

    def do_faster(self) -> None:
        self.refresh_hz = next((hz for hz in REFRESH_STEPS_HZ if hz > self.refresh_hz), REFRESH_STEPS_HZ[-1])

    def do_slower(self) -> None:
        self.refresh_hz = next((hz for hz in reversed(REFRESH_STEPS_HZ) if hz < self.refresh_hz),
                               REFRESH_STEPS_HZ[0])

    def do_pause(self) -> None:
        if self.finished is not None:
            self.say("the run has finished: the table no longer changes")
            return
        self.paused = not self.paused

    def do_reset(self) -> None:
        if self.finished is not None:
            self.say("the run has finished: a reset would only empty the final table", error=True)
            return
        self.table.reset(self.stats, time.monotonic())
        self.selected = None
        self.recompute()
        self.say("counts reset")

    def do_filter(self) -> None:
        self.prompt = Prompt("filter", "Filter (Enter applies, Esc cancels): ", self.table.filter_text or "")

    def do_clear_filter(self) -> None:
        self.table.set_filter(None)
        self.recompute()

    def do_write(self) -> None:
        from sampler.tui.export import EXAMPLE

        self.prompt = Prompt("write", f"Write the profile shown (e.g. {EXAMPLE}): ")

    def do_source(self) -> None:
        index = self.selected_index()
        if not self.rows:
            return
        row = self.rows[index if index is not None else 0]
        if self.table.source_view(row) is None:
            self.say(f"no source lines for {row.funcname}", error=True)
            return
        self.source_row = row
        self.source_top = None

    def do_help(self) -> None:
        self.help = True

    def do_quit(self) -> None:
        self.quitting = True
        self.loop.stop()

    # -- writing --------------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        from sampler.tui.export import try_write

        written, message = try_write(self.table.profile(), text)
        self.say(message, error=not written)

    def say(self, text: str, *, error: bool = False) -> None:
        self.message = (text, error)
        self._message_until = time.monotonic() + MESSAGE_S


def row_key(row: Any) -> tuple[str, int, str]:
    return (row.filename, row.lineno, row.funcname)


def read_key(window: Any) -> int | str | None:
    """One key, or None when the timeout passed first (or a signal interrupted the wait)."""
    import curses

    try:
        return window.get_wch()
    except curses.error:
        return None


def run_live(loop: Any, lock: ContextManager[object], *, on_started: Callable[[Any], None],
             launched: bool) -> bool:
    """Show the live view while `loop` samples on another thread, until the user quits (or a
    signal, or an error). `on_started(app)` is called once the screen is up: `app.stop()` is
    what a stop signal must call. Returns whether a signal ended it."""
    from sampler.tui.capture import stderr_held
    from sampler.tui.terminal import curses_session

    app = LiveApp(loop, lock, launched=launched)
    worker = threading.Thread(target=app.sample, name="heatline-sampling", daemon=True)
    try:
        with stderr_held(), curses_session() as window:
            on_started(app)
            worker.start()
            app.run(window)
    finally:
        loop.stop()
        if worker.ident is not None:
            worker.join()
    if app.error is not None:
        raise app.error
    return app.by_signal
