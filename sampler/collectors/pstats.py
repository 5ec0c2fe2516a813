"""pstats: a table on the terminal, or a marshal file that `pstats.Stats` and snakeviz load.

Rows are keyed `(filename, lineno, funcname)` where lineno is the line executing in the frame,
so a function can have one row per line. "direct" counts samples with the frame as the leaf;
"cumulative" counts samples with the key anywhere on the stack, once per sample however deep
the recursion.

The file is what cProfile writes, `{key: (cc, nc, tt, ct, callers)}` with cc = direct,
nc = cumulative, tt/ct in seconds, and callers values cProfile's 4-tuples
`(count, count, tt, ct)`. Tachyon writes plain-int caller counts and a `("__sampled__",)` key,
which snakeviz and other cProfile readers cannot load; heatline writes neither.
"""

from __future__ import annotations

import argparse

import marshal
from typing import Any, BinaryIO, Callable, Iterable, TextIO

from ..errors import UsageError
from ..lineindex import LineIndex
from ..model import Profile
from ..sourcefiles import display_names
from ..tui.text import printable
from .base import Collector

Key = tuple[str, int, str]  # (filename, lineno, funcname), as in the stdlib's pstats
FuncKey = tuple[str, str]  # (filename, funcname): a function whatever line it was on

SORT_CHOICES = ("nsamples", "tottime", "cumtime", "sample-pct", "cumul-pct", "nsamples-cumul", "name")

_BOLD_BLUE, _GREEN, _YELLOW, _CYAN, _RESET = "\033[1;34m", "\033[32m", "\033[33m", "\033[36m", "\033[0m"

LEGEND = """\
Legend:
  nsamples: direct/cumulative samples. direct: the line was executing (the frame was the
            leaf); cumulative: the line was on the stack, counted once per sample even in
            recursion.
  sample%: direct samples as a share of all samples.
  tottime: estimated time executing the line itself (direct samples x sampling interval).
  cumul%: cumulative samples as a share of all samples.
  cumtime: estimated time with the line on the stack, callees included (cumulative x interval).
  filename:lineno(function): lineno is the line executing when sampled, not the first line of
            the function, so a function can take several rows."""


class PstatsCollector(Collector):
    format_name = "pstats"
    default_extension = "pstats"
    option_defaults = {"sort": "nsamples", "limit": 15, "show_summary": True}
    cli_flag = "--pstats"
    cli_help = "table on stdout, or with -o a file pstats and snakeviz load (default)"
    cli_options = {"sort": "--sort", "limit": "--limit", "show_summary": "--no-summary"}
    writes_stdout = True
    binary_output = True  # the file form is marshal data

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--sort", choices=SORT_CHOICES, default=None, help="table sort order (default: nsamples)")
        group.add_argument("-l", "--limit", type=_positive_int, default=None, help="table rows (default: 15)")
        group.add_argument("--no-summary", dest="show_summary", action="store_const", const=False, default=None,
                           help="leave out the summary after the table")

    def __init__(self, profile: Profile, **options: Any) -> None:
        super().__init__(profile, **options)
        if self.options["sort"] not in SORT_CHOICES:
            raise UsageError(
                f"invalid sort key {self.options['sort']!r} (choose from {', '.join(SORT_CHOICES)})"
            )
        self._index: LineIndex | None = None

    def index(self) -> LineIndex:
        if self._index is None:
            self._index = LineIndex(self.stacks())
        return self._index

    def create_stats(self) -> dict[Key, tuple[int, int, float, float, dict[Key, tuple]]]:
        """The dict the file holds, in the shape cProfile's `Profile.create_stats` makes."""
        index = self.index()
        usec = self.profile.stats.interval_usec

        def seconds(n: int) -> float:
            return n * usec / 1_000_000  # not n * (usec / 1e6): 13 x 1 ms stays 0.013

        callers: dict[Key, dict[Key, tuple]] = {}
        for callee, caller, n, leaf_n in index.spot_pairs():
            callers.setdefault(callee, {})[caller] = (n, n, seconds(leaf_n), seconds(n))
        return {
            key: (direct, cumul, seconds(direct), seconds(cumul), callers.get(key, {}))
            for key, (direct, cumul) in index.spot_heat()
        }

    def dump(self, fh: BinaryIO) -> None:
        marshal.dump(self.create_stats(), fh)

    # -- the table --------------------------------------------------------------------------

    def write_stdout(self, stream: TextIO) -> None:
        index = self.index()
        if index.total == 0:
            stream.write("No samples were collected.\n")
            if self.profile.stats.mode == "cpu":
                stream.write("This can happen in CPU mode when all threads are idle.\n")
            return
        color = _isatty(stream)
        micro = "μs" if _can_encode(stream, "μ") else "us"
        interval = self.profile.stats.interval_usec / 1_000_000
        total = index.total
        rows = [(key, direct, cumul) for key, (direct, cumul) in index.spot_heat()]
        names = display_names(key[0] for key, _direct, _cumul in rows)
        # units from every row, not only those shown: the heaviest of each measure
        tt_unit, tt_scale = _time_unit(max(direct for _key, direct, _cumul in rows) * interval, micro)
        ct_unit, ct_scale = _time_unit(max(cumul for _key, _direct, cumul in rows) * interval, micro)
        rows.sort(key=self._sort_key(names))
        limit = self.options["limit"]
        if limit is not None and limit > 0:
            rows = rows[:limit]
        tt_head, ct_head = f"tottime ({tt_unit})", f"cumtime ({ct_unit})"
        tt_w, ct_w = max(12, len(tt_head)), max(12, len(ct_head))

        def head(text: str) -> str:
            return f"{_BOLD_BLUE}{text}{_RESET}" if color else text

        out = [head("Profile Stats:")]
        out.append(
            "  ".join(
                head(h)
                for h in (
                    f"{'nsamples':>15}",
                    f"{'sample%':>8}",
                    f"{tt_head:>{tt_w}}",
                    f"{'cumul%':>8}",
                    f"{ct_head:>{ct_w}}",
                    "filename:lineno(function)",
                )
            )
        )
        for key, direct, cumul in rows:
            out.append(
                "  ".join(
                    (
                        f"{f'{direct}/{cumul}':>15}",
                        f"{direct / total * 100:>8.1f}",
                        f"{direct * interval * tt_scale:>{tt_w}.3f}",
                        f"{cumul / total * 100:>8.1f}",
                        f"{cumul * interval * ct_scale:>{ct_w}.3f}",
                        _row_label(key, names, color),
                    )
                )
            )
        out.append("")
        out.append(LEGEND)
        if self.options["show_summary"]:
            out.append("")
            out.extend(self._summary(index, color))
        stream.write("\n".join(out) + "\n")

    def _sort_key(self, names: dict[str, str]) -> Callable[[tuple[Key, int, int]], tuple]:
        def by_name(key: Key) -> tuple:
            filename, lineno, funcname = key
            return (names[filename], lineno, funcname, filename)

        sort = self.options["sort"]
        if sort == "name":
            return lambda row: by_name(row[0])
        if sort in ("cumtime", "cumul-pct", "nsamples-cumul"):
            return lambda row: (-row[2], -row[1], by_name(row[0]))
        return lambda row: (-row[1], -row[2], by_name(row[0]))  # direct first

    def _summary(self, index: LineIndex, color: bool) -> list[str]:
        funcs = [(func, stats.self_samples, stats.total_samples) for func, stats in index.all_functions()]
        names = display_names(filename for (filename, _funcname), _direct, _cumul in funcs)
        total = index.total

        def label(func: FuncKey) -> str:
            filename, funcname = func[0], printable(func[1])
            if filename == "~":
                return f"{_CYAN}{funcname}{_RESET}" if color else funcname
            name = printable(names[filename])
            return f"{_GREEN}{name}{_RESET}:{_CYAN}{funcname}{_RESET}" if color else f"{name}:{funcname}"

        def top3(rows: list, sort_key: Callable, text: Callable) -> list[str]:
            rows = sorted(rows, key=lambda r: (sort_key(r), names.get(r[0][0], r[0][0]), r[0][1]))[:3]
            return [f"  {text(r)}  {label(r[0])}" for r in rows] or ["  (none)"]

        def title(text: str) -> str:
            return f"{_BOLD_BLUE}{text}{_RESET}" if color else text

        out = [title("Summary of Interesting Functions:"), ""]
        out.append(title("Functions with Highest Direct/Cumulative Ratio (Hot Spots):"))
        out += top3(
            [r for r in funcs if r[1] > 0],
            lambda r: (-r[1] / r[2], -r[1]),
            lambda r: f"{r[1] / r[2]:5.3f} direct/cumulative  {r[1] / total * 100:5.1f}% direct "
            f"({r[1]}/{r[2]} samples)",
        )
        out.append("")
        out.append(title("Functions with Highest Call Frequency (Indirect Calls):"))
        out += top3(
            [r for r in funcs if r[2] > r[1]],
            lambda r: (-(r[2] - r[1]),),
            lambda r: f"{r[2] - r[1]:>8} indirect samples  {(r[2] - r[1]) / total * 100:5.1f}% "
            "in callees",
        )
        out.append("")
        out.append(title("Functions with Highest Call Magnification (Cumulative/Direct):"))
        out += top3(
            [r for r in funcs if 0 < r[1] < r[2]],
            lambda r: (-r[2] / r[1], -r[2]),
            lambda r: f"{r[2] / r[1]:8.1f}x magnification  ({r[1]} direct, {r[2]} cumulative)",
        )
        return out


def _row_label(key: Key, names: dict[str, str], color: bool) -> str:
    # names from the target, which may hold escape sequences, shown as text, never acted on
    filename, lineno, funcname = key[0], key[1], printable(key[2])
    if filename == "~":  # synthetic frames (<GC>, <native>) have no place in a file
        return f"{_CYAN}{funcname}{_RESET}" if color else funcname
    name = printable(names[filename])
    if color:
        return f"{_GREEN}{name}{_RESET}:{_YELLOW}{lineno}{_RESET}({_CYAN}{funcname}{_RESET})"
    return f"{name}:{lineno}({funcname})"


def _time_unit(max_seconds: float, micro: str) -> tuple[str, float]:
    if max_seconds >= 1:
        return "s", 1.0
    if max_seconds >= 0.001:
        return "ms", 1e3
    return micro, 1e6


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _can_encode(stream: TextIO, text: str) -> bool:
    encoding = getattr(stream, "encoding", None)
    if not encoding:
        return True
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--limit must be a positive number of rows")
    return value
