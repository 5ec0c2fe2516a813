"""Heatmap: a directory of HTML pages showing every line of every sampled source file, coloured.

Layout (as Tachyon's `--heatmap`): `index.html` lists the files grouped as Project, Standard
library, Site-packages and Other, heaviest first, with the run's statistics; `file_0000.html`,
`file_0001.html`, ... (ordered by total samples, descending) show each file's full source with
per-line self samples (the line was executing: the leaf frame) and total samples (the line was
anywhere on the stack, counted once per sample even in recursion). Pages can switch Self/Total,
Show all/Hot only, link every line as `#line-N`, and offer caller/callee menus on call lines and
function definition lines.

--async-aware profiles: task markers have no file or line, so they get no page; `index.html`
lists the asyncio tasks instead (Total: samples with the task on the stack, running or awaiting
the task that ran; Self: samples where it ran none of its own code, between steps), and the
caller/callee menus name the task a coroutine ran in and the tasks an `await` line led to.
(Tachyon leaves task markers out of its heatmap.)

--opcodes / --native (`heatmap_bytecode`): a line with instructions gets a toggle opening its
bytecode panel (instructions, specialized share, column spans) and its source underlined by
column span; "Specialization" colours lines by their specialized share instead of heat; a line
that called C code shows its `<native>` share. (Tachyon renders the same panels from JSON in
data attributes; heatline renders them as HTML, so no page data passes through a script.)

Security: every name and path comes from the target (a function can be called `<script>`), so all
text goes through `html.escape`; no data is put into scripts. Each page carries a strict
Content-Security-Policy: `default-src 'none'` plus the sha256 hashes of the one inline stylesheet
and the one inline script (from `heatmap_assets/`, hashed at export). Hashes rather than shared
files under `'self'`: file: URLs have opaque origins, and whether `'self'` admits a sibling file
on a file:// page differs between browsers, while a hash works in all of them; each page then
needs nothing but itself.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import hashlib
import html
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, BinaryIO, Iterable, Iterator

from .. import __version__, sourcefiles
from ..errors import HeatlineError, OutputSavedElsewhereError
from ..lineindex import LineIndex, StackItem
from ..model import NATIVE_FRAME, SYNTHETIC_FILENAME, TASK_FILENAME, Profile, task_frame
from ..output_path import check_output, file_mode_for
from ..sourcefiles import (
    OTHER,
    PROJECT,
    SITE,
    STDLIB,
    Definitions,
    SourceUnreadable,
    classify,
    display_path,
    is_source_file,
    project_roots,
)
from ..target.files import TargetFiles
from .base import TASK_KIND, Collector, live_target_files, task_label
from .heatmap_bytecode import SPEC_LEVELS, line_bytecode, native_badge, panel_row, source_html, toggle
from .opcode_view import opcode_table

GROUP_TITLES = {
    PROJECT: "Project",
    STDLIB: "Standard library",
    SITE: "Site-packages",
    OTHER: "Other",
}
HEAT_LEVELS = 10
MENU_ENTRIES = 20  # callers / callees listed per menu, heaviest first
# What a heatmap directory may hold: only such a directory (or an empty one) is replaced.
_OUR_FILES = re.compile(r"(index\.html|file_\d{4,}\.html|heatmap\.(css|js))\Z")

def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _n(value: int) -> str:
    return f"{value:,}"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0.0%"


# -- aggregation ----------------------------------------------------------------------------------


@dataclass
class FuncStats:
    name: str
    self: int = 0
    total: int = 0
    first_line: int = 0  # the smallest line sampled in it: where its menu goes without a def line


@dataclass
class FileStats:
    """One file's page: its weights from the line index, and where it goes."""

    filename: str
    self: int = 0  # samples whose leaf frame is in the file
    total: int = 0  # samples with the file anywhere on the stack, once per sample
    line_self: dict[int, int] = field(default_factory=dict)
    line_total: dict[int, int] = field(default_factory=dict)
    funcs: dict[str, FuncStats] = field(default_factory=dict)
    group: str = OTHER
    display: str = ""
    page: str | None = None  # file_NNNN.html, or None for `<string>`-like pseudo files


def has_page(filename: str) -> bool:
    """Real source files get a page; `<frozen os>`, `<string>` and '' do not."""
    return is_source_file(filename)


@dataclass
class Aggregate:
    index: LineIndex
    files: dict[str, FileStats] = field(default_factory=dict)
    tasks: dict[str, FuncStats] = field(default_factory=dict)  # --async-aware task markers, by name

    @property
    def total(self) -> int:  # Σ weight of every (non-empty) stack
        return self.index.total

    @property
    def synthetic(self) -> dict[str, int]:  # <GC> and co, as leaves
        return self.index.synthetic_leaves

    @property
    def scripts(self) -> dict[str, None]:  # files whose module body is a stack's root
        return self.index.script_files

    @property
    def max_self(self) -> int:
        return self.index.max_line_heat().self_samples

    @property
    def max_total(self) -> int:
        return self.index.max_line_heat().total_samples


def aggregate(stacks: Iterable[StackItem]) -> Aggregate:
    """The pages' figures: every file of the stacks with its lines and functions."""
    agg = Aggregate(LineIndex(stacks))
    index = agg.index
    for filename in index.filenames():
        if filename == TASK_FILENAME:  # task markers, one "function" per task: listed, no page
            agg.tasks = {name: FuncStats(name, f.self_samples, f.total_samples)
                         for name, f in index.functions(filename).items()}
            continue
        file_heat = index.file_heat(filename)
        lines = index.lines(filename)
        agg.files[filename] = FileStats(
            filename,
            file_heat.self_samples,
            file_heat.total_samples,
            {n: h.self_samples for n, h in lines.items() if h.self_samples},
            {n: h.total_samples for n, h in lines.items()},
            {
                name: FuncStats(name, f.self_samples, f.total_samples, f.first_line)
                for name, f in index.functions(filename).items()
            },
        )
    return agg


def heat_level(count: int, maximum: int) -> int:
    """0 for no samples, else 1..HEAT_LEVELS on a log scale: log(n+1) / log(max+1).

    One sample is level 1 or 2 and only lines near the maximum get the top level."""
    if count <= 0 or maximum <= 0:
        return 0
    share = math.log(count + 1) / math.log(maximum + 1)
    return max(1, min(HEAT_LEVELS, 1 + round(share * (HEAT_LEVELS - 1))))


# -- where a file belongs ------------------------------------------------------------------------


def _display_name(fs: FileStats, project_roots: tuple[str, ...]) -> str:
    return display_path(fs.filename, fs.group, project_roots)


# -- source text ----------------------------------------------------------------------------------


@dataclass
class Source:
    lines: list[str] | None  # None: not available
    note: str = ""  # why not, or why the lines may not match
    definitions: Definitions | None = None  # None: no source to find them in


def read_source(filename: str, files: TargetFiles, profile_start: float) -> Source:
    """The file as the target saw it, read now; never blocks on a FIFO or device."""
    try:
        text = sourcefiles.read_source(files.path(filename))
    except SourceUnreadable as err:
        if err.os_error:
            return Source(None, f"it could not be read when the heatmap was written ({err.os_error})")
        return Source(None, err.reason)
    note = ""
    if text.mtime > profile_start + 1:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(text.mtime))
        note = f"This file was modified ({when}) after the profile started: lines may not match."
    return Source(text.lines, note, text.definitions)


def _def_line(source: Source, funcname: str, lineno: int) -> int | None:
    """The definition line of a sampled function, when its source is available."""
    return source.definitions.def_line(funcname, lineno) if source.definitions is not None else None


# -- the collector --------------------------------------------------------------------------------

CallerKey = tuple[str, int, str]  # (file, line, function) of the calling line
CalleeKey = tuple[str, str, int]  # (file, function, line its menu sits on)


@dataclass
class CallGraph:
    """Call edges, indexed by the file whose page shows them."""

    calls: dict[str, dict[int, dict[CalleeKey, int]]] = field(default_factory=dict)  # caller file, line
    callers: dict[str, dict[int, dict[CallerKey, int]]] = field(default_factory=dict)  # callee file, anchor
    anchors: dict[str, dict[str, int]] = field(default_factory=dict)  # file -> function -> anchor line

    def add(self, caller: CallerKey, callee: CalleeKey, weight: int) -> None:
        at_line = self.calls.setdefault(caller[0], {}).setdefault(caller[1], {})
        at_line[callee] = at_line.get(callee, 0) + weight
        at_def = self.callers.setdefault(callee[0], {}).setdefault(callee[2], {})
        at_def[caller] = at_def.get(caller, 0) + weight
        self.anchors.setdefault(callee[0], {}).setdefault(callee[1], callee[2])


class HeatmapCollector(Collector):
    format_name = "heatmap"
    default_extension = ""
    cli_flag = "--heatmap"
    cli_help = "a directory of HTML pages: every line of every sampled file, coloured by samples"
    opens_in_browser = True

    def __init__(self, profile: Profile, **options: Any) -> None:
        super().__init__(profile, **options)
        # Taken now, while the target runs: its root and working directory held open let its
        # sources be read after it exits, and a target in a container names files inside its root.
        self.target_files = live_target_files(profile)
        # The directory as the target names it, through the handles held open on it; the
        # profile's own record of it when those could not be taken.
        self.target_cwd = self.target_files.cwd or self.profile.stats.cwd or None

    def default_output(self, pid: int) -> str:
        return f"heatmap_{pid}"

    def browser_target(self, written: str) -> str:
        return os.path.join(written, "index.html")

    def dump(self, fh: BinaryIO) -> None:
        raise NotImplementedError("the heatmap is a directory of pages: use write(path)")

    # -- building the pages -----------------------------------------------------------------------

    def pages(self) -> dict[str, str]:
        """File name inside the output directory -> its HTML."""
        return dict(self.iter_pages())

    def iter_pages(self) -> Iterator[tuple[str, str]]:
        """(file name inside the output directory, its HTML), one page at a time."""
        agg = aggregate(self.stacks())
        roots, roots_note = project_roots(self.target_cwd, agg.scripts, agg.files)
        for fs in agg.files.values():
            fs.group = classify(fs.filename, roots)
            fs.display = _display_name(fs, roots)
        ordered = sorted(agg.files.values(), key=lambda f: (-f.total, -f.self, f.filename))
        number = 0
        for fs in ordered:
            if has_page(fs.filename):
                fs.page = f"file_{number:04d}.html"
                number += 1
        sources = {
            fs.filename: read_source(fs.filename, self.target_files, self.profile.stats.start_time)
            for fs in ordered if fs.page
        }
        graph = self._call_graph(agg, sources)

        assets = _Assets.load()
        yield "index.html", self._index(agg, ordered, roots, roots_note, assets)
        for fs in ordered:
            if fs.page:
                yield fs.page, self._file_page(fs, agg, sources[fs.filename], graph, assets)

    def _call_graph(self, agg: Aggregate, sources: dict[str, Source]) -> "CallGraph":
        """Who calls whom, in samples with that call on the stack, counted once per sample.

        A call goes to the callee's definition line (its anchor), else its first sampled line."""
        spots = agg.index.spots

        def caller(spot: int) -> CallerKey | None:
            filename, lineno, funcname = spots[spot]
            return None if filename == SYNTHETIC_FILENAME else (filename, lineno, funcname)

        def callee(spot: int) -> CalleeKey | None:
            filename, lineno, funcname = spots[spot]
            if filename == SYNTHETIC_FILENAME:
                return None
            if filename == TASK_FILENAME:  # an await line's menu names the task it led to
                return (filename, funcname, 0)
            source = sources.get(filename)
            line = _def_line(source, funcname, lineno) if source else None
            if line is None:
                fs = agg.files.get(filename)
                func = fs.funcs.get(funcname) if fs else None
                line = func.first_line if func else 0
            return (filename, funcname, line)

        graph = CallGraph()
        for (caller_key, callee_key), weight in agg.index.pairs(caller, callee).items():
            graph.add(caller_key, callee_key, weight)
        return graph

    def _head(self, title: str, assets: "_Assets", script: bool) -> str:
        script_src = f"'{assets.js_hash}'" if script else "'none'"
        csp = (
            f"default-src 'none'; style-src '{assets.css_hash}'; script-src {script_src}; "
            "img-src 'none'; base-uri 'none'; form-action 'none'"
        )
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_e(csp)}\">\n"
            "<meta name=\"referrer\" content=\"no-referrer\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta name=\"generator\" content=\"heatline {_e(__version__)} heatmap\">\n"
            f"<title>{_e(title)}</title>\n<style>{assets.css}</style>\n</head>\n"
        )

    def _stats_block(self, agg: Aggregate) -> str:
        stats = self.profile.stats
        items = [
            ("Process", f"PID {stats.pid}" + (f", Python {stats.python_version}" if stats.python_version else "")),
            ("Started", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stats.start_time))),
            ("Mode", f"{stats.mode}, {'all threads' if stats.all_threads else 'main thread'}"),
            ("Samples", f"{_n(stats.samples)} in {stats.duration_s:,.2f} s"),
            ("Sample rate", f"{stats.sample_rate:,.1f} samples/s (interval {_n(stats.interval_usec)} µs)"),
        ]
        out = [f"<dl class=\"stats\" id=\"run-stats\" data-samples=\"{stats.samples}\" "
               f"data-errors=\"{stats.errors}\" data-missed=\"{stats.missed}\">"]
        for label, value in items:
            out.append(f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>")
        out.append(
            f"<dt>Error rate</dt><dd><meter min=\"0\" max=\"100\" low=\"5\" high=\"15\" optimum=\"0\" "
            f"value=\"{stats.error_rate:.2f}\"></meter> {stats.error_rate:.2f}% "
            f"<span class=\"muted\">({_n(stats.errors)} of {_n(stats.attempts)} attempts failed)</span></dd>"
        )
        expected = stats.expected_samples
        missed_pct = 100.0 * stats.missed / expected if expected else 0.0
        out.append(
            f"<dt>Missed</dt><dd><meter min=\"0\" max=\"100\" low=\"5\" high=\"15\" optimum=\"0\" "
            f"value=\"{missed_pct:.2f}\"></meter> {_n(stats.missed)} samples "
            f"<span class=\"muted\">({missed_pct:.2f}% of {_n(expected)} expected)</span></dd>"
        )
        stack_note = "thread samples (each sampled thread's stack counts once)" if stats.all_threads else "stacks"
        out.append(f"<dt>In this heatmap</dt><dd id=\"profile-total\" data-total=\"{agg.total}\">"
                   f"{_n(agg.total)} {_e(stack_note)}; percentages are of this number</dd>")
        if agg.synthetic:
            parts = ", ".join(f"{_e(name)} {_n(n)}" for name, n in sorted(agg.synthetic.items(), key=lambda i: -i[1]))
            out.append(f"<dt>Outside source files</dt><dd>{parts}</dd>")
        out.append("</dl>")
        return "\n".join(out)

    def _index(
        self,
        agg: Aggregate,
        ordered: list[FileStats],
        roots: tuple[str, ...],
        roots_note: str,
        assets: "_Assets",
    ) -> str:
        stats = self.profile.stats
        out = [self._head(f"heatline heatmap: PID {stats.pid}", assets, script=False)]
        out.append("<body class=\"index\">\n<header class=\"topbar\">")
        out.append(f"<h1>heatline heatmap <span class=\"muted\">PID {_e(stats.pid)}</span></h1>")
        out.append(self._stats_block(agg))
        out.append("</header>\n<main>")
        if agg.tasks:
            out.append(self._tasks_section(agg))
        if not ordered:
            out.append("<p class=\"note\">No samples were collected in any source file.</p>")
        for group in (PROJECT, STDLIB, SITE, OTHER):
            files = [fs for fs in ordered if fs.group == group]
            if not files:
                continue
            group_total = sum(fs.self for fs in files)
            out.append(f"<section class=\"group\" id=\"group-{group}\">")
            out.append(
                f"<h2>{_e(GROUP_TITLES[group])} <span class=\"muted\">{len(files)} "
                f"file{'s' if len(files) != 1 else ''}, {_n(group_total)} self samples "
                f"({_pct(group_total, agg.total)})</span></h2>"
            )
            if group == PROJECT:
                where = ", ".join(roots)
                out.append(f"<p class=\"group-note\">Project: {_e(roots_note)}: <span class=\"path\">{_e(where)}</span></p>")
            out.append(
                "<table class=\"files\"><thead><tr><th>File</th><th class=\"n\">Total</th>"
                "<th class=\"n\">Total %</th><th></th><th class=\"n\">Self</th><th class=\"n\">Self %</th>"
                "</tr></thead><tbody>"
            )
            for fs in files:
                if fs.page:
                    name = (f"<a class=\"path\" href=\"{fs.page}\" title=\"{_e(fs.filename)}\">"
                            f"{_e(fs.display)}</a>")
                else:
                    name = (f"<span class=\"path\" title=\"{_e(fs.filename)}\">{_e(fs.display)}</span> "
                            "<span class=\"muted\">(no source file)</span>")
                share = fs.total / agg.total if agg.total else 0.0
                out.append(
                    f"<tr class=\"file\" data-total=\"{fs.total}\" data-self=\"{fs.self}\">"
                    f"<td class=\"name\">{name}</td><td class=\"n total\">{_n(fs.total)}</td>"
                    f"<td class=\"n\">{_pct(fs.total, agg.total)}</td>"
                    f"<td><meter min=\"0\" max=\"1\" value=\"{share:.4f}\"></meter></td>"
                    f"<td class=\"n self\">{_n(fs.self)}</td><td class=\"n\">{_pct(fs.self, agg.total)}</td></tr>"
                )
            out.append("</tbody></table></section>")
        out.append(
            "<p class=\"muted\">Total: samples with the file anywhere on the stack (once per sample). "
            "Self: samples executing in the file. Standard library and site-packages are told by their "
            "paths (<span class=\"path\">lib/python3.X/</span>, <span class=\"path\">site-packages</span>, "
            "<span class=\"path\">dist-packages</span>), so a target on another Python is sorted right.</p>"
        )
        out.append("</main>\n</body>\n</html>\n")
        return "\n".join(out)

    def _tasks_section(self, agg: Aggregate) -> str:
        tasks = sorted(agg.tasks.values(), key=lambda t: (-t.total, -t.self, t.name))
        out = [
            "<section class=\"group\" id=\"group-tasks\">",
            f"<h2>Asyncio tasks <span class=\"muted\">{len(tasks)} task{'s' if len(tasks) != 1 else ''}</span></h2>",
            "<table class=\"files tasks\"><thead><tr><th>Task</th><th class=\"n\">Total</th>"
            "<th class=\"n\">Total %</th><th></th><th class=\"n\">Self</th><th class=\"n\">Self %</th>"
            "</tr></thead><tbody>",
        ]
        for task in tasks:
            share = task.total / agg.total if agg.total else 0.0
            out.append(
                f"<tr class=\"task\" data-task=\"{_e(task.name)}\" data-total=\"{task.total}\" "
                f"data-self=\"{task.self}\"><td class=\"name mono\">{_e(task.name)}</td>"
                f"<td class=\"n total\">{_n(task.total)}</td><td class=\"n\">{_pct(task.total, agg.total)}</td>"
                f"<td><meter min=\"0\" max=\"1\" value=\"{share:.4f}\"></meter></td>"
                f"<td class=\"n self\">{_n(task.self)}</td><td class=\"n\">{_pct(task.self, agg.total)}</td></tr>"
            )
        out.append("</tbody></table>")
        out.append(
            "<p class=\"muted\">Total: samples with the task on the stack, running its own coroutines or "
            "awaiting the task that ran. Self: samples with none of its code running (between two steps). "
            "Tasks have no source lines; a coroutine's callers menu names the task it ran in, and an "
            "<code>await</code> line's callees menu the tasks it led to.</p></section>"
        )
        return "\n".join(out)

    def _file_page(
        self,
        fs: FileStats,
        agg: Aggregate,
        source: Source,
        graph: "CallGraph",
        assets: "_Assets",
    ) -> str:
        total = agg.total
        files = agg.files
        out = [self._head(f"{os.path.basename(fs.filename) or fs.filename}: heatline heatmap", assets, script=True)]
        out.append("<body class=\"file metric-self\">\n<header class=\"topbar\">")
        out.append("<nav><a href=\"index.html\">&larr; All files</a></nav>")
        out.append(f"<h1><span class=\"path\">{_e(fs.filename)}</span></h1>")
        out.append(
            f"<p class=\"totals\">{_e(GROUP_TITLES[fs.group])} &middot; Total <strong id=\"file-total\">"
            f"{_n(fs.total)}</strong> samples ({_pct(fs.total, total)}) &middot; Self "
            f"<strong id=\"file-self\">{_n(fs.self)}</strong> ({_pct(fs.self, total)})</p>"
        )
        table = opcode_table(self.profile) if agg.index.has_opcodes or self.profile.stats.opcodes else None
        native = NATIVE_FRAME.funcname in agg.synthetic
        bytecode_controls = ""
        if table is not None:
            bytecode_controls = (
                "<span class=\"seg\" title=\"key: b / p\">"
                "<button type=\"button\" id=\"toggle-all-bytecode\" aria-pressed=\"false\">Bytecode</button>"
                "<button type=\"button\" id=\"show-spec\" aria-pressed=\"false\">Specialization</button></span>"
                "<span class=\"legend spec-legend\">not specialized "
                + "".join(f"<span class=\"sw sp{i}\"></span>" for i in range(SPEC_LEVELS))
                + " specialized</span>"
            )
        out.append(
            "<div class=\"controls\" role=\"toolbar\">"
            "<span class=\"seg\" title=\"key: s / t\">"
            "<button type=\"button\" id=\"show-self\" aria-pressed=\"true\">Self</button>"
            "<button type=\"button\" id=\"show-total\" aria-pressed=\"false\">Total</button></span>"
            "<span class=\"seg\" title=\"key: h\">"
            "<button type=\"button\" id=\"show-all\" aria-pressed=\"true\">Show all</button>"
            "<button type=\"button\" id=\"show-hot\" aria-pressed=\"false\">Hot only</button></span>"
            "<span class=\"legend\">cold "
            + "".join(f"<span class=\"sw h{i}\"></span>" for i in range(1, HEAT_LEVELS + 1))
            + " hot (log scale)</span>" + bytecode_controls + "</div>"
        )
        out.append("</header>\n<main>")

        lines = source.lines
        sampled = sorted(set(fs.line_total) | set(fs.line_self))
        if lines is None:
            out.append(
                f"<p class=\"note\" id=\"source-missing\">Source not available: {_e(source.note)}. "
                f"Only the {len(sampled)} line{'s' if len(sampled) != 1 else ''} with samples are shown.</p>"
            )
        elif source.note:
            out.append(f"<p class=\"note\">{_e(source.note)}</p>")
        beyond = [n for n in sampled if lines is not None and n > len(lines)]
        if beyond:
            out.append(
                f"<p class=\"note\">Samples fall on line{'s' if len(beyond) != 1 else ''} "
                f"{_e(', '.join(map(str, beyond[:10])))} but the file has {len(lines or ())} lines: "
                "it has changed since it was profiled.</p>"
            )

        # A function's callers menu sits on its def line (else its first sampled line); a line's
        # callees menu on the line itself.
        menus_callers = graph.callers.get(fs.filename, {})
        menus_calls = graph.calls.get(fs.filename, {})
        out.append(self._functions_table(fs, source, graph.anchors.get(fs.filename, {})))

        out.append(
            "<table class=\"src\"><thead><tr><th class=\"n\">Line</th><th class=\"n\">Samples</th>"
            "<th class=\"n\">%</th><th>Source</th><th>Calls</th></tr></thead><tbody>"
        )
        if lines is not None:
            numbers: Iterable[int] = range(1, max(len(lines), sampled[-1] if sampled else 0) + 1)
        else:
            numbers = sampled
        previous = 0
        for number in numbers:
            if lines is None and number != previous + 1:
                out.append("<tr class=\"gap zs zt\"><td></td><td></td><td></td><td>&#8942;</td><td></td></tr>")
            previous = number
            if lines is not None and number <= len(lines):
                text = lines[number - 1]
            elif lines is None:
                text = ""
            else:
                text = "(past the end of the file)"
            s = fs.line_self.get(number, 0)
            t = fs.line_total.get(number, 0)
            nav = ""
            if number in menus_callers:
                nav += self._menu("caller", menus_callers[number], files, total)
            if number in menus_calls:
                nav += self._menu("callee", menus_calls[number], files, total)
            if not t and not nav:  # most lines: kept small, a stdlib page has thousands
                out.append(
                    f"<tr id=\"line-{number}\" class=\"zs zt\"><td><a href=\"#line-{number}\">{number}</a>"
                    f"</td><td></td><td></td><td>{_e(text)}</td><td></td></tr>"
                )
                continue
            classes = []
            level_s, level_t = heat_level(s, agg.max_self), heat_level(t, agg.max_total)
            classes += [f"hs{level_s}"] if level_s else ["zs"]
            classes += [f"ht{level_t}"] if level_t else ["zt"]
            bytecode = line_bytecode(agg.index, table, fs.filename, number, t) if t and (table or native) else None
            button = code = panel = ""
            if bytecode is not None and not bytecode.empty:
                button, panel = toggle(bytecode), panel_row(bytecode)
                nav = native_badge(bytecode) + nav
                if bytecode.rows:
                    classes.append(f"sp{bytecode.spec_level}")
            code = source_html(text, bytecode) if bytecode is not None else _e(text)
            out.append(
                f"<tr id=\"line-{number}\" class=\"{' '.join(classes)}\" data-self=\"{s}\" data-total=\"{t}\">"
                f"<td>{button}<a href=\"#line-{number}\">{number}</a></td>"
                f"<td><span class=\"vs\">{_n(s) if s else ''}</span>"
                f"<span class=\"vt\">{_n(t) if t else ''}</span></td>"
                f"<td><span class=\"vs\">{_pct(s, total) if s else ''}</span>"
                f"<span class=\"vt\">{_pct(t, total) if t else ''}</span></td>"
                f"<td>{code}</td><td>{nav}</td></tr>{panel}"
            )
        out.append("</tbody></table>")
        out.append(
            "<p class=\"muted\">Self: samples executing the line. Total: samples with the line anywhere "
            "on the stack, counted once per sample even in recursion. Percentages are of all "
            f"{_n(total)} samples. Colours: log(n+1) / log(max+1) of the profile's hottest line.</p>"
        )
        if table is not None or native:
            out.append(
                "<p class=\"muted\">"
                + ("&#9656; opens a line's bytecode: the instructions its frames were executing "
                   f"(named for Python {_e('%d.%d' % table.version)}"
                   + ("" if table.exact else ", the nearest table heatline has") + "), "
                   "specialized ones with their base instruction; the source is underlined where "
                   "the instructions' columns were, darker for more samples. " if table is not None else "")
                + ("C n%: the share of the line's samples spent in C code it called (&lt;native&gt;)."
                   if native else "")
                + "</p>"
            )
        out.append("</main>\n")
        out.append(f"<script>{assets.js}</script>\n</body>\n</html>\n")
        return "".join(part if part.endswith("\n") else part + "\n" for part in out)

    def _functions_table(self, fs: FileStats, source: Source, def_lines: dict[str, int]) -> str:
        funcs = sorted(fs.funcs.values(), key=lambda f: (-f.total, -f.self, f.name))
        out = [
            "<details class=\"functions\" open><summary>Functions in this file</summary>"
            "<table class=\"funcs\"><thead><tr><th>Function</th><th class=\"n\">Line</th>"
            "<th class=\"n\">Total</th><th class=\"n\">Self</th></tr></thead><tbody>"
        ]
        for func in funcs:
            line = def_lines.get(func.name) or _def_line(source, func.name, func.first_line) or func.first_line
            where = f"<a href=\"#line-{line}\">{line}</a>" if line > 0 else ""
            out.append(
                f"<tr><td class=\"fname mono\">{_e(func.name)}</td><td class=\"n\">{where}</td>"
                f"<td class=\"n\">{_n(func.total)}</td><td class=\"n\">{_n(func.self)}</td></tr>"
            )
        out.append("</tbody></table></details>")
        return "\n".join(out)

    def _menu(self, kind: str, entries: dict, files: dict[str, FileStats], total: int) -> str:
        """A <details> menu: kind 'caller' lists calling lines, 'callee' lists called functions."""
        rows = sorted(entries.items(), key=lambda item: (-item[1], item[0]))
        arrow, noun = ("&larr;", "caller") if kind == "caller" else ("&rarr;", "callee")
        plural = "" if len(rows) == 1 else "s"
        out = [f"<details class=\"calls {kind}s\"><summary>{arrow} {len(rows)} {noun}{plural}</summary><ul>"]
        for key, n in rows[:MENU_ENTRIES]:
            if kind == "caller":
                filename, line, func = key
            else:
                filename, func, line = key
            target = files.get(filename)
            short = (os.path.basename(filename) or filename) if has_page(filename) else filename
            label = f"{_e(func)} <span class=\"where\">{_e(short)}:{line}</span>"
            if filename == TASK_FILENAME:
                label = f"{_e(task_label(task_frame(func)))} <span class=\"where\">{_e(TASK_KIND)}</span>"
            elif target is not None and target.page and line > 0:
                label = f"<a href=\"{target.page}#line-{line}\">{label}</a>"
            out.append(f"<li>{label} <span class=\"n\">{_n(n)} ({_pct(n, total)})</span></li>")
        if len(rows) > MENU_ENTRIES:
            rest = sum(n for _key, n in rows[MENU_ENTRIES:])
            out.append(f"<li class=\"muted\">{len(rows) - MENU_ENTRIES} more ({_n(rest)} samples)</li>")
        out.append("</ul></details>")
        return "".join(out)

    # -- writing the directory --------------------------------------------------------------------

    @staticmethod
    def _directory_for(path: str | os.PathLike[str]) -> str:
        """`-o X.html` names the directory `X` (as Tachyon)."""
        path = os.fspath(path)
        if path.lower().endswith(".html") and len(path) > len(".html"):
            path = path[: -len(".html")]
        return path.rstrip("/") or "/"

    @classmethod
    def check_output(cls, path: str | None) -> None:
        check_output(None if path is None else cls._directory_for(path), directory=True)

    def write(self, path: str | os.PathLike[str]) -> str:
        """Build the directory beside `path` and swap it in; return the directory written.

        `-o X.html` writes `X/` (as Tachyon). An existing directory is replaced only if it is a
        heatmap (its files are all index.html / file_NNNN.html) or empty; any other directory
        gets the heatmap inside it as `heatmap_<pid>/`, so no file of the user's is deleted.
        If writing fails (disk full, the directory removed meanwhile) the pages are saved in a
        new directory in the temp directory and the error raised says where.
        """
        path = self._directory_for(path)
        if os.path.islink(path) and os.path.isdir(path):
            path = os.path.realpath(path)
        if os.path.isdir(path) and not _is_replaceable(path):
            path = os.path.join(path, self.default_output(self.profile.stats.pid))
            if os.path.isdir(path) and not _is_replaceable(path):
                raise HeatlineError(
                    f"will not replace {path}: it holds files that are not part of a heatmap."
                )
        if os.path.lexists(path) and not os.path.isdir(path):
            raise HeatlineError(f"cannot write the heatmap to {path}: it exists and is not a directory.")
        try:
            self._write_directory(path)
        except OSError as err:
            reason = err.strerror or str(err)
        else:
            return path
        try:
            saved = tempfile.mkdtemp(prefix=f"heatline-{os.path.basename(path) or 'heatmap'}-")
            self._write_pages(saved)
        except OSError as err:
            raise HeatlineError(
                f"cannot write {path}, nor save the heatmap in {tempfile.gettempdir()}: {err.strerror or err}"
            ) from None
        raise OutputSavedElsewhereError(f"cannot write {path}: {reason}; the heatmap was saved to {saved} instead")

    def _write_pages(self, directory: str) -> None:
        for name, text in self.iter_pages():  # files get 0666 minus the umask, as usual
            with open(os.path.join(directory, name), "wb") as fh:
                fh.write(text.encode("utf-8", "backslashreplace"))
                fh.flush()
                os.fsync(fh.fileno())

    def _write_directory(self, path: str) -> None:
        parent = os.path.dirname(os.path.abspath(path))
        tmp = None
        try:
            tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
            self._write_pages(tmp)
            if os.path.isdir(path):
                os.chmod(tmp, os.stat(path).st_mode & 0o7777)
                tmp = _swap_directories(tmp, path)  # the old heatmap, deleted below
            else:
                file_mode = file_mode_for(os.path.join(tmp, "absent"))  # 0666 minus the umask
                os.chmod(tmp, file_mode | ((file_mode & 0o444) >> 2))  # mkdtemp's 0700 -> as mkdir
                os.rename(tmp, path)
                tmp = None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


def _is_replaceable(directory: str) -> bool:
    try:
        with os.scandir(directory) as entries:
            return all(e.is_file(follow_symlinks=False) and _OUR_FILES.match(e.name) for e in entries)
    except OSError:
        return False


def _swap_directories(new: str, old: str) -> str:
    """Move directory `new` to `old`'s name; return where `old`'s content went, for deletion.

    Atomically with renameat2(RENAME_EXCHANGE) where the kernel and filesystem allow it; else
    in two renames, undoing the first if the second fails (a reader may then briefly see no
    directory, never a half-written one).
    """
    if _exchange(new, old):
        return new
    parked = tempfile.mkdtemp(prefix=f".{os.path.basename(old)}.", suffix=".old", dir=os.path.dirname(old) or ".")
    os.rename(old, parked)  # over the empty directory mkdtemp made
    try:
        os.rename(new, old)
    except OSError:
        os.rename(parked, old)
        raise
    return parked


def _exchange(a: str, b: str) -> bool:
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), b)


@dataclass(frozen=True)
class _Assets:
    css: str
    js: str
    css_hash: str
    js_hash: str

    @classmethod
    def load(cls) -> "_Assets":
        folder = resources.files(__package__).joinpath("heatmap_assets")
        css = folder.joinpath("heatmap.css").read_text(encoding="utf-8")
        js = folder.joinpath("heatmap.js").read_text(encoding="utf-8")
        for name, text in (("heatmap.css", css), ("heatmap.js", js)):
            if "</" in text:  # would end the inline element early
                raise HeatlineError(f"heatline's {name} must not contain '</'")
        return cls(css, js, _csp_hash(css), _csp_hash(js))


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")
