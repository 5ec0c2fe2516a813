"""Drawing `--live`: the header, the table, the footer, the help, the source view, the prompt
and messages, from the app's state. Everything that came from the target goes through
`text.printable` before it reaches the terminal. The one state written here is where the source
view is scrolled to, once clamped to the screen's height."""

from __future__ import annotations

from typing import Any

from sampler.tui.keys import FOOTERS, FOOTERS_ASCII, help_lines
from sampler.tui.opcodes import PANEL_HEIGHT
from sampler.tui.terminal import MIN_HEIGHT, MIN_WIDTH, unicode_ok
from sampler.tui.text import cells, fit, pad, printable

Segment = tuple[str, int]  # text, curses attributes

# Columns of the table: (title, sort key it shows, width, narrowest terminal that has it, its index
# in a row's values and trends)
COLUMNS = (
    ("nsamples", "nsamples", 13, 0, 0),
    ("%", "sample_pct", 6, 80, 1),
    ("tottime", "tottime", 10, 100, 2),
    ("%", "cumul_pct", 6, 120, 3),
    ("cumtime", "cumtime", 10, 140, 4),
)
FUNC_MIN, FUNC_MAX = 10, 40
GAP = 2
# The header lines under the title, in screen order, and most wanted first: a short terminal
# drops them from the end of the second.
HEADER_ORDER = ("samples", "efficiency", "threads", "functions", "top")
HEADER_PRIORITY = ("samples", "threads", "top", "efficiency", "functions")
MIN_TABLE_ROWS = 3
# The status line when it has nothing to say: the first that fits.
LEGENDS = (
    "nsamples: direct/cumulative (direct: the line was executing; cumulative: on the stack); "
    "times: samples x interval",
    "nsamples: direct/cumulative samples; times: samples x interval",
)


class Palette:
    """Curses attributes by role; plain bold/dim/reverse on a terminal without colours."""

    def __init__(self) -> None:
        import curses

        self.bold = curses.A_BOLD
        self.dim = curses.A_DIM
        self.reverse = curses.A_REVERSE
        self.up = self.hot = curses.A_BOLD
        self.down = curses.A_DIM
        self.warn = curses.A_BOLD
        self.label = curses.A_BOLD
        self.banner = curses.A_REVERSE | curses.A_BOLD
        self.sorted = curses.A_REVERSE
        try:
            colours = curses.has_colors() and curses.COLORS >= 8
        except curses.error:
            colours = False
        if colours:
            pairs = {"red": curses.COLOR_RED, "green": curses.COLOR_GREEN, "yellow": curses.COLOR_YELLOW,
                     "cyan": curses.COLOR_CYAN}
            attr = {}
            for n, (name, fg) in enumerate(pairs.items(), start=1):
                curses.init_pair(n, fg, -1)
                attr[name] = curses.color_pair(n)
            curses.init_pair(len(pairs) + 1, curses.COLOR_BLACK, curses.COLOR_YELLOW)
            self.up = attr["red"]
            self.hot = attr["red"] | curses.A_BOLD
            self.down = attr["green"]
            self.warn = attr["yellow"] | curses.A_BOLD
            self.label = attr["cyan"] | curses.A_BOLD
            self.banner = curses.color_pair(len(pairs) + 1) | curses.A_BOLD
            self.sorted = attr["cyan"] | curses.A_BOLD | curses.A_UNDERLINE


class Symbols:
    def __init__(self, unicode: bool) -> None:
        self.unicode = unicode
        self.sep = " │ " if unicode else " | "
        self.sorted = "▼" if unicode else "v"
        self.rule = "─" if unicode else "-"
        self.footers = FOOTERS if unicode else FOOTERS_ASCII
        self.bar = "█" if unicode else "#"


_STYLE: tuple[Palette, Symbols] | None = None


def _style() -> tuple[Palette, Symbols]:
    global _STYLE
    if _STYLE is None:
        _STYLE = (Palette(), Symbols(unicode_ok()))
    return _STYLE


class Canvas:
    """A window with the screen's size, drawn line by line, never past its edges."""

    def __init__(self, window: Any, symbols: Symbols) -> None:
        self.window = window
        self.height, self.width = window.getmaxyx()
        self.ascii = not symbols.unicode

    def line(self, y: int, segments: list[Segment], *, fill: int = 0) -> None:
        """Segments left to right from column 0, cut at the right edge; `fill` paints the rest."""
        if not 0 <= y < self.height:
            return
        room = self.width - (1 if y == self.height - 1 else 0)  # the last cell cannot be written
        x = 0
        for text, attr in segments:
            if x >= room:
                break
            text = fit(text, room - x)
            self._put(y, x, text, attr)
            x += len(text) if text.isascii() else cells(text)
        if fill and x < room:
            self._put(y, x, " " * (room - x), fill)

    def _put(self, y: int, x: int, text: str, attr: int) -> None:
        import curses

        if self.ascii:
            text = text.encode("ascii", "replace").decode("ascii")
        try:
            self.window.addstr(y, x, text, attr)
        except curses.error:
            pass


def draw(window: Any, app: Any) -> None:
    """The whole screen for `app`'s state (a `LiveApp`)."""
    import curses

    palette, symbols = _style()
    window.erase()
    canvas = Canvas(window, symbols)
    if canvas.width < MIN_WIDTH or canvas.height < MIN_HEIGHT:
        _too_small(canvas)
    elif app.help:
        _help(canvas, app, palette, symbols)
    elif app.source_row is not None:
        _source(canvas, app, palette, symbols)
    else:
        _main(canvas, app, palette, symbols)
    window.noutrefresh()
    curses.doupdate()


def table_room(height: int, opcodes: bool = False) -> int:
    """Rows the table can show in a terminal `height` lines tall (most of the header kept);
    `opcodes`: the --opcodes panel takes its lines under the table."""
    fixed = 5 + opcode_room(height, opcodes)  # title, state line, column titles, footer, status line
    headers = max(0, min(len(HEADER_ORDER), height - fixed - MIN_TABLE_ROWS))
    return max(1, height - fixed - headers)


def opcode_room(height: int, opcodes: bool) -> int:
    """Lines of the --opcodes panel: Tachyon's 12, fewer on a short terminal (the table keeps
    its minimum)."""
    if not opcodes:
        return 0
    return max(0, min(PANEL_HEIGHT, height - 5 - MIN_TABLE_ROWS))


def _too_small(canvas: Canvas) -> None:
    text = f"terminal too small ({canvas.width}x{canvas.height}): --live needs {MIN_WIDTH}x{MIN_HEIGHT}"
    words, lines, current = text.split(" "), [], ""
    for word in words:  # wrapped, as the terminal may be too narrow for one line
        if current and cells(current) + 1 + cells(word) > canvas.width - 1:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    lines.append("q quits")
    for y, line in enumerate(lines[:canvas.height]):
        canvas.line(y, [(line, 0)])


# -- the main screen --------------------------------------------------------------------------------


def _main(canvas: Canvas, app: Any, palette: Palette, symbols: Symbols) -> None:
    figures = app.figures
    headers = _header_lines(figures, palette, symbols) if figures is not None else {}
    opcodes = opcode_room(canvas.height, app.opcodes)
    room = table_room(canvas.height, app.opcodes)
    keep = canvas.height - 5 - opcodes - room
    y = 0
    canvas.line(y, _title(app, figures, palette, symbols))
    y += 1
    kept = HEADER_PRIORITY[:keep]
    for name in HEADER_ORDER:
        if name in kept:
            canvas.line(y, headers.get(name, []))
            y += 1
    canvas.line(y, _state_line(app, palette, symbols))
    y += 1
    y = _table(canvas, y, app, palette, symbols, room)
    if opcodes:
        _opcode_panel(canvas, canvas.height - 2 - opcodes, opcodes, app, palette, symbols)
    footer = next((f for f in symbols.footers if cells(f) <= canvas.width), symbols.footers[-1])
    canvas.line(canvas.height - 2, [(footer, palette.dim)])
    _status(canvas, app, palette)


def _uptime(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s // 60 % 60:02d}m{s % 60:02d}s"
    return f"{s // 60}m{s % 60:02d}s"


def _title(app: Any, figures: Any, palette: Palette, symbols: Symbols) -> list[Segment]:
    sep = symbols.sep
    stats = app.stats
    thread = printable(figures.thread_label) if figures is not None else "ALL"
    uptime = _uptime(figures.uptime_s) if figures is not None else "0m00s"
    out: list[Segment] = [("heatline --live", palette.label)]
    if app.paused:
        out.append(("  PAUSED ", palette.banner))
    out.append((f"{sep}PID {stats.pid}{sep}Thread: {thread}{sep}Uptime {uptime}{sep}"
                f"Interval {stats.interval_usec} µs{sep}Refresh {app.refresh_hz} Hz", 0))
    return out


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _header_lines(f: Any, palette: Palette, symbols: Symbols) -> dict[str, list[Segment]]:
    sep = symbols.sep
    achieved = f.rate / f.asked_rate * 100 if f.asked_rate else 0.0
    failed_share = f.failed / f.samples if f.samples else 0.0
    top = sep.join(f"{printable(name)} {share:.1f}%" for name, share in f.top) or "-"
    return {
        "samples": [("Samples: ", palette.label),
                    (f"{f.samples:,} total{sep}{f.rate:,.0f}/s of {f.asked_rate:,.0f}/s asked ({achieved:.0f}%)", 0)],
        "efficiency": [("Efficiency: ", palette.label),
                       (f"{f.good:,} good ({_pct(1 - failed_share if f.samples else 0.0)}){sep}", 0),
                       (f"{f.failed:,} failed ({_pct(failed_share)})", palette.warn if f.failed else 0)],
        "threads": [("Threads: ", palette.label),
                    (f"GIL held {_pct(f.gil_held)}{sep}released {_pct(f.gil_released)}{sep}"
                     f"waiting {_pct(f.gil_waiting)}{sep}on CPU {_pct(f.on_cpu)}{sep}"
                     f"exception {_pct(f.exception)}{sep}GC {_pct(f.gc)}", 0)],
        "functions": [("Functions: ", palette.label),
                      (f"{f.functions:,} total{sep}{f.executing:,} executing{sep}"
                       f"{f.on_stack_only:,} on stack only{sep}{f.shown:,} shown", 0)],
        "top": [("Top 3: ", palette.label), (top, palette.hot if f.top else 0)],
    }


def _state_line(app: Any, palette: Palette, symbols: Symbols) -> list[Segment]:
    from sampler.tui.table import SORT_TITLES

    sep = symbols.sep
    out: list[Segment] = []
    if app.finished is not None:
        out.append((f" FINISHED: {app.finished}. The final table stays: press q to quit ", palette.banner))
        out.append((sep, 0))
    elif app.paused:
        out.append((" PAUSED: the display waits, sampling goes on (p resumes) ", palette.banner))
        out.append((sep, 0))
    out.append((f"Sort: {SORT_TITLES.get(app.table.sort_key, app.table.sort_key)}", 0))
    if app.table.filter_text:
        out.append((f"{sep}Filter: ", 0))
        out.append((printable(app.table.filter_text), palette.warn))
        out.append((" (c clears)", palette.dim))
    if not app.table.trends_enabled:
        out.append((f"{sep}trends off", palette.dim))
    return out


def _columns(width: int) -> list[tuple[str, str, int, int]]:
    return [(title, key, w, trend) for title, key, w, narrowest, trend in COLUMNS if width >= narrowest]


def _table(canvas: Canvas, y: int, app: Any, palette: Palette, symbols: Symbols, room: int) -> int:
    columns = _columns(canvas.width)
    numbers = sum(w + GAP for _, _, w, _ in columns)
    rest = canvas.width - numbers - 1
    func_w = max(FUNC_MIN, min(FUNC_MAX, rest // 2))
    loc_w = max(1, rest - func_w - GAP)
    sort_key = app.table.sort_key
    gap = " " * GAP
    titles: list[Segment] = []
    for title, key, w, _ in columns:
        marked = f"{symbols.sorted}{title}" if key == sort_key else title
        titles.append((pad(marked, w, right=True), palette.sorted if key == sort_key else palette.label))
        titles.append((gap, 0))
    titles.append((pad("function", func_w) + gap + "file:line", palette.label))
    canvas.line(y, titles)
    y += 1
    selected = app.selected_index()
    if selected is None and app.opcodes and app.rows:  # the row the --opcodes panel shows
        selected = 0
    trends = app.table.trends_enabled
    for i, row in enumerate(app.rows[:room]):
        values = (f"{row.direct}/{row.cumulative}", f"{row.direct_pct:.1f}", f"{row.self_s:.3f}",
                  f"{row.cumulative_pct:.1f}", f"{row.cumulative_s:.3f}")
        base = palette.reverse if i == selected else 0
        segments: list[Segment] = []
        for _, _, w, at in columns:  # each number with the gap after it, in its trend's colour
            move = row.trends[at] if trends else 0
            attr = base | (palette.up if move > 0 else palette.down if move < 0 else 0)
            segments.append((values[at].rjust(w) + gap, attr))
        segments.append((pad(printable(row.funcname), func_w) + gap, base | (palette.bold if row.direct else 0)))
        segments.append((pad(printable(row.location), loc_w, keep_end=True), base | palette.dim))
        canvas.line(y, segments, fill=base)
        y += 1
    if not app.rows:
        canvas.line(y, [("no samples yet" if app.table.filter_text is None else "no row matches the filter",
                         palette.dim)])
    return y


def _opcode_panel(canvas: Canvas, y: int, room: int, app: Any, palette: Palette, symbols: Symbols) -> None:
    """--opcodes: the selected row's instructions (the top row's when none is selected)."""
    if not app.rows:
        canvas.line(y, [("No function selected (use j/k to select)", palette.dim)])
        return
    index = app.selected_index()
    row = app.rows[index if index is not None else 0]
    attrs = {"title": palette.label, "specialized": palette.hot, "base": palette.warn, "note": 0}
    for i, line in enumerate(app.table.opcode_panel(row, unicode=symbols.unicode)[:room]):
        text = printable(line.text)
        if line.kind == "title":
            text += symbols.rule * max(0, canvas.width - cells(text) - 1)
        canvas.line(y + i, [(text, attrs[line.kind])])


def _status(canvas: Canvas, app: Any, palette: Palette) -> None:
    y = canvas.height - 1
    if app.prompt is not None:
        canvas.line(y, [(app.prompt.label, palette.label), (printable(app.prompt.text) + "_", 0)])
    elif app.message is not None:
        text, error = app.message
        canvas.line(y, [(printable(text), palette.warn if error else palette.bold)])
    else:
        legend = next((text for text in LEGENDS if cells(text) < canvas.width), LEGENDS[-1])
        canvas.line(y, [(legend, palette.dim)])


# -- help and source ----------------------------------------------------------------------------------


def _help(canvas: Canvas, app: Any, palette: Palette, symbols: Symbols) -> None:
    lines = help_lines(app.launched)
    for y, text in enumerate(lines[:canvas.height]):
        heading = y == 0 or (text and not text.startswith(" "))
        canvas.line(y, [(text, palette.label if heading else 0)])


def _source(canvas: Canvas, app: Any, palette: Palette, symbols: Symbols) -> None:
    row = app.source_row
    view = app.table.source_view(row)
    canvas.line(0, _title(app, app.figures, palette, symbols))
    if view is None:
        canvas.line(2, [(f"no source lines for {printable(row.funcname)} any more", palette.warn)])
        canvas.line(canvas.height - 2, [("Esc or q: back to the table", palette.dim)])
        return
    canvas.line(1, [("Source: ", palette.label), (printable(view.funcname), palette.bold),
                    (f"  {printable(view.filename)}:{view.first_line}", palette.dim)])
    y = 2
    if view.note:
        canvas.line(y, [(printable(view.note), palette.warn)])
        y += 1
    canvas.line(y, [(f"{'line':>6}  {'direct':>8}  {'cumul.':>8}  {'heat':<10}  code", palette.label)])
    y += 1
    room = max(1, canvas.height - 2 - y)
    lines = view.lines
    top = app.source_top
    if top is None:  # first look: the row's own line a third of the way down
        focus = next((i for i, line in enumerate(lines) if line[0] == view.focus), 0)
        top = focus - room // 3
    top = max(0, min(top, len(lines) - room))
    app.source_top = top
    most = max((line[3] for line in lines), default=0) or 1
    total = max(app.figures.good if app.figures is not None else 0, 1)
    for lineno, text, direct, cumulative in lines[top:top + room]:
        bar = symbols.bar * round(10 * cumulative / most) if cumulative else ""
        share = direct / total
        heat = palette.hot if share >= 0.05 else palette.up if direct else palette.dim
        mark = ">" if lineno == view.focus else " "
        canvas.line(y, [
            (f"{mark}{lineno:>5}  ", palette.bold if mark == ">" else palette.dim),
            (f"{direct:>8}  {cumulative:>8}  ", heat if direct or cumulative else palette.dim),
            (pad(bar, 10), heat),
            ("  " + printable(text.expandtabs(4)), palette.bold if direct else 0),
        ])
        y += 1
    canvas.line(canvas.height - 2, [("↑ ↓ j k PgUp PgDn: scroll    Esc or q: back to the table" if symbols.unicode
                                     else "j k PgUp PgDn: scroll    Esc or q: back to the table", palette.dim)])
    _status(canvas, app, palette)
