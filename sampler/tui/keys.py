"""The keys of `--live`: Tachyon's where it has one (muscle memory carries over), and the help
screen, made from the same table the key loop dispatches from."""

from __future__ import annotations

from typing import NamedTuple


def key_name(key: int | str) -> str:
    """A key from `get_wch` as one name: the character itself, or "up", "enter", "esc", ..."""
    if isinstance(key, str):
        return _CHAR_NAMES.get(key, key)
    import curses

    return _code_names(curses).get(key, f"key{key}")


_CHAR_NAMES = {"\n": "enter", "\r": "enter", "\x1b": "esc", "\x7f": "backspace", "\x08": "backspace",
               "\t": "tab", "\x15": "ctrl-u"}
_CODES: dict[int, str] = {}


def _code_names(curses) -> dict[int, str]:
    if not _CODES:
        for attr, name in (("KEY_UP", "up"), ("KEY_DOWN", "down"), ("KEY_LEFT", "left"), ("KEY_RIGHT", "right"),
                           ("KEY_ENTER", "enter"), ("KEY_BACKSPACE", "backspace"), ("KEY_DC", "delete"),
                           ("KEY_NPAGE", "pgdn"), ("KEY_PPAGE", "pgup"), ("KEY_HOME", "home"),
                           ("KEY_END", "end"), ("KEY_RESIZE", "resize")):
            _CODES[getattr(curses, attr)] = name
    return _CODES


class Binding(NamedTuple):
    keys: tuple[str, ...]  # key names (see `key_name`)
    label: str  # how the help shows them
    action: str  # the `LiveApp` method name, without "do_"
    help: str


# The table view. Sections in the order the help shows them.
TABLE_KEYS: dict[str, tuple[Binding, ...]] = {
    "View": (
        Binding(("s",), "s / S", "sort_next", "sort by the next column (S: the previous one)"),
        Binding(("S",), "", "sort_previous", ""),
        Binding(("t",), "t", "toggle_threads", "all threads / one thread at a time"),
        Binding(("left", "right"), "← / →", "", "previous / next thread (one thread at a time)"),
        Binding(("x",), "x", "toggle_trends", "trend colours: red went up, green went down"),
        Binding(("+", "="), "+ / -", "faster", "refresh faster / slower (1 to 20 Hz)"),
        Binding(("-", "_"), "", "slower", ""),
    ),
    "Rows": (
        Binding(("j", "k"), "j / k", "", "select the next / previous row; ↑ / ↓ do the same in the all-threads view "
                                          "(in one thread's view they move between threads, as ← / →, "
                                          "except with --opcodes); with --opcodes the panel under the "
                                          "table shows the selected row's instructions"),
        Binding(("enter",), "Enter", "source", "the selected row's function, line by line with its heat "
                                               "(the top row when none is selected)"),
        Binding(("/",), "/", "filter", "filter by file, function or file:function (Enter applies, Esc cancels)"),
        Binding(("c",), "c", "clear_filter", "clear the filter"),
    ),
    "Run": (
        Binding(("p",), "p", "pause", "pause the display (sampling goes on); p again resumes"),
        Binding(("r",), "r", "reset", "reset the counts (not once the run has finished)"),
        Binding(("o",), "o", "write", "write the profile shown: type output flags, e.g. --flamegraph -o prof.html"),
        Binding(("h", "?"), "h / ?", "help", "this help"),
        Binding(("q",), "q", "quit", "quit (run: ends the target; attach: leaves it running)"),
    ),
}

# Keys whose meaning depends on the view: handled by the app itself.
MOVE_KEYS = {"j": 1, "k": -1, "down": 1, "up": -1, "pgdn": 10, "pgup": -10}
THREAD_KEYS = {"right": 1, "left": -1}

ACTIONS: dict[str, str] = {
    key: b.action for section in TABLE_KEYS.values() for b in section if b.action for key in b.keys
}

# The footer's key summary, the first that fits the width (the narrowest terminal is 60 wide).
FOOTERS = (
    "s:sort  t:threads  ←→:thread  /:filter  p:pause  Enter:source  o:write  h:help  q:quit",
    "s:sort t:thread /:filter p:pause Enter:source h:help q:quit",
)
FOOTERS_ASCII = tuple(f.replace("←→", "<>") for f in FOOTERS)


def help_lines(launched: bool) -> list[str]:
    """The help screen's text."""
    lines = ["heatline --live: keys", ""]
    for section, bindings in TABLE_KEYS.items():
        lines.append(section)
        for b in bindings:
            if not b.label:
                continue
            text = b.help
            if b.action == "quit":
                text = "quit (ends the target heatline started)" if launched else "quit (the target keeps running)"
            lines.append(f"  {b.label:<8} {text}")
        lines.append("")
    lines.append("Source view: ↑ ↓ j k PgUp PgDn scroll, Esc or q goes back.")
    lines.append("Ctrl-C quits as q does. Press any key to close this help.")
    return lines
