"""The terminal `--live` draws on: whether there is a usable one, and a curses session that
always gives it back as it was (on quit, on an exception, on SIGTERM)."""

from __future__ import annotations

import locale
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from sampler.errors import UsageError

MIN_WIDTH = 60
MIN_HEIGHT = 12


def terminal_problem() -> str | None:
    """Why `--live` cannot draw here (None: it can). Checked before anything is launched or
    attached: curses would otherwise fail late, or print a traceback, or (initscr) exit."""
    if not sys.stdout.isatty():
        return "stdout is not a terminal"
    if not sys.stdin.isatty():
        return "stdin is not a terminal (the keys are read from it)"
    try:
        import curses
    except ImportError:
        return "the curses module is not available in this Python"
    term = os.environ.get("TERM", "")
    if not term:
        return "TERM is not set"
    try:
        curses.setupterm(term, sys.stdout.fileno())
    except curses.error:
        return f"TERM={term} is not a terminal type terminfo knows"
    if not curses.tigetstr("cup"):
        return f"TERM={term} cannot move the cursor"
    return None


def require_terminal() -> None:
    problem = terminal_problem()
    if problem is not None:
        raise UsageError(f"heatline: --live needs a terminal: {problem}")


@contextmanager
def curses_session() -> Iterator[Any]:
    """The whole screen as a curses window: keys unbuffered and unechoed (Ctrl-C stays a
    signal), arrows decoded, cursor hidden, colours if any. The terminal is restored however
    the block ends."""
    import curses

    # ncursesw draws non-ASCII text (▼, file names) only under a UTF-8 LC_CTYPE.
    saved_ctype = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "")
    screen = None
    try:
        screen = curses.initscr()
        curses.noecho()
        curses.cbreak()
        screen.keypad(True)
        try:
            curses.set_escdelay(25)  # Esc answers at once instead of after a second
        except AttributeError:
            pass
        try:
            curses.curs_set(0)
        except curses.error:
            pass
        if curses.has_colors():
            curses.start_color()
            try:
                curses.use_default_colors()
            except curses.error:
                pass
        yield screen
    finally:
        if screen is not None:
            try:
                screen.keypad(False)
                curses.nocbreak()
                curses.echo()
                curses.endwin()
            except curses.error:
                pass  # the terminal is gone (SIGHUP): there is nothing left to restore
        locale.setlocale(locale.LC_CTYPE, saved_ctype)


def unicode_ok() -> bool:
    """Whether the terminal's encoding shows ▼ and arrows (else ASCII stand-ins are drawn)."""
    return "utf" in (locale.getpreferredencoding(False) or "").lower().replace("-", "")
