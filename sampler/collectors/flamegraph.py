"""Flame graph (`--flamegraph`): one self-contained HTML page drawing the profile on a <canvas>.

Two functions do the work, both importable on their own (the language server reuses them):

`flamegraph_data(profile)` turns a `Profile` into a JSON-ready dict:

    {"format": "heatline-flamegraph", "version": 1, "kind": "flamegraph",
     "title": str | None, "total": Σ stack weights,
     "frames": {"funcname": [...], "file": [...], "line": [...]},    # file -1: synthetic (<GC>),
                                                                     # -2: an asyncio task marker
     "files": [{"filename", "short", "module", "source": {"<line>": text}}, ...],
     "nodes": {"frame": [...], "parent": [...], "value": [...], "self": [...]},
     "thread_values": {tid: {"node": [...], "value": [...], "self": [...]}},   # >1 thread only
     "threads": [{"id", "name", "samples", "main"}, ...],
     "stats": {...}, "thread_stats": {...}, "per_thread_stats": {tid: {...}},
     "pruned": {"nodes", "samples", "threshold"},
     # --opcodes only:
     "opcodes": {"node": [...], "counts": [{"<opcode>": samples}, ...]},  # per node, sparse
     "opcode_mapping": {"names": {"<opcode>": name}, "deopt": {"<opcode>": base opcode},
                        "version": "3.12", "exact": bool}}

`nodes` is the call tree, root to leaf, as parallel columns in pre-order: node 0 is the root (all
samples, frame -1), every other node names its parent by index and appears after it, and
siblings come heaviest first. A node is one frame (function + file + executing line) under one
path; `value` counts samples with the node on the stack, `self` those where it was the leaf. All
threads' trees are merged, with each thread's share kept in `thread_values` (sparse columns per
thread id) so a viewer can filter by thread without a new export. With --opcodes, each node
counts the instructions its frame was executing (callers' frames too, as Tachyon counts them), per
thread as well (`thread_values[tid]["opcodes"]`), named by `opcode_mapping`, the table of the
target's Python version; `<native>` frames (--native) are drawn like `<GC>`: a name, no file. Columns instead of nested
objects keep deep recursion from nesting the JSON thousands of levels, and keep the file small.
A frame's name is Tachyon's `funcname (file:line)` (`frame_info(data, i)` gives it with the rest);
files are listed once, with a module name guessed from the path and the source lines around
every sampled line (read with `linecache` at export time). `tree(data)` rebuilds nested nodes
for Python callers. Nodes below `max(1, 0.1% of the total)` samples are pruned as in Tachyon,
with their number and samples noted in `pruned`.

`render_html(data, title)` inlines the viewer (`flamegraph_assets/`: plain JavaScript and CSS,
no build step, no network) and the data into one page. The data sits in
`<script type="application/json" id="heatline-data">` with `<`, `>` and `&` escaped, and the
page carries a Content-Security-Policy allowing only its own script and style (by hash).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import linecache
import re
from importlib import resources
from typing import Any, BinaryIO, Iterator

from .. import __version__
from ..model import (
    GIL_REQUESTED,
    HAS_EXCEPTION,
    HAS_GIL,
    MAIN_THREAD,
    ON_CPU,
    SYNTHETIC_FILENAME,
    TASK_FILENAME,
    Frame,
    Profile,
    task_frame,
)
from ..sourcefiles import module_name  # noqa: F401 - part of this module's API (files' "module")
from .base import TASK_KIND, Collector, task_label
from .opcode_view import add_count, has_opcodes, opcode_mapping, opcode_table, sparse_counts

DATA_FORMAT = "heatline-flamegraph"
DATA_VERSION = 1
MIN_SHARE = 0.001  # Tachyon's pruning: nodes under 0.1% of the samples (and at least 1) go
SOURCE_CONTEXT = 2  # lines shown above and below a frame's line in tooltips
_MAX_SOURCE_CHARS = 200
_ASSETS = "flamegraph_assets"
SYNTHETIC_FILE = -1  # FrameTable's file index of a frame with no file (<GC>)
TASK_FILE = -2  # ... and of an --async-aware task marker, which the viewer draws as a task


# -- names ------------------------------------------------------------------------------------


def short_path(filename: str, limit: int = 50) -> str:
    """`filename`, or `.../dir/file.py` when it is longer than `limit` characters."""
    if len(filename) <= limit:
        return filename
    parts = filename.replace("\\", "/").rstrip("/").split("/")
    return ".../" + "/".join(parts[-2:])


def frame_name(frame: Frame, *, with_line: bool = True) -> str:
    """Tachyon's node name, `funcname (file:line)`; synthetic frames (`<GC>`) are their name,
    task markers `<task> NAME` (Tachyon writes `NAME (<task>:0)`, like a function's)."""
    if frame.is_synthetic:
        return frame.funcname
    if frame.is_task:
        return task_label(frame)
    where = short_path(frame.filename)
    return f"{frame.funcname} ({where}:{frame.lineno})" if with_line else f"{frame.funcname} ({where})"


class _SourceReader:
    """Source lines per file, one read per file (linecache does not cache misses)."""

    def __init__(self) -> None:
        self._files: dict[str, list[str]] = {}

    def lines(self, filename: str) -> list[str]:
        lines = self._files.get(filename)
        if lines is None:
            try:
                lines = linecache.getlines(filename)
            except Exception:  # a path linecache chokes on: show no source, never fail the export
                lines = []
            self._files[filename] = lines
        return lines


def _clean_line(text: str) -> str:
    text = text.rstrip("\r\n").expandtabs(4)
    return text if len(text) <= _MAX_SOURCE_CHARS else text[: _MAX_SOURCE_CHARS - 1] + "…"


class FrameTable:
    """Frames as columns (`funcname`, `file`, `line`) with each file listed once.

    `files[i]` is `{"filename", "short", "module", "source": {"<line>": text}}`; `source` holds
    the lines within `source_context` of every sampled line of the file (read at export time).
    Synthetic frames (`<GC>`) have file -1, task markers -2: neither has a file or source.
    """

    def __init__(self, source_context: int = SOURCE_CONTEXT) -> None:
        self.context = source_context
        self.funcname: list[str] = []
        self.file: list[int] = []
        self.line: list[int] = []
        self.files: list[dict[str, Any]] = []
        self._file_index: dict[str, int] = {}
        self._wanted: dict[int, set[int]] = {}

    def add(self, frame: Frame) -> int:
        if frame.is_synthetic:
            file_index = SYNTHETIC_FILE
        elif frame.is_task:
            file_index = TASK_FILE
        else:
            file_index = self._file_index.get(frame.filename)
            if file_index is None:
                file_index = self._file_index[frame.filename] = len(self.files)
                self.files.append(
                    {
                        "filename": frame.filename,
                        "short": short_path(frame.filename),
                        "module": module_name(frame.filename),
                    }
                )
            if self.context >= 0 and frame.lineno > 0:
                self._wanted.setdefault(file_index, set()).update(
                    range(frame.lineno - self.context, frame.lineno + self.context + 1)
                )
        self.funcname.append(frame.funcname)
        self.file.append(file_index)
        self.line.append(frame.lineno)
        return len(self.funcname) - 1

    def export(self) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
        reader = _SourceReader()
        for index, info in enumerate(self.files):
            lines = reader.lines(info["filename"]) if index in self._wanted else []
            info["source"] = {
                str(n): _clean_line(lines[n - 1]) for n in sorted(self._wanted.get(index, ())) if 1 <= n <= len(lines)
            }
        return {"funcname": self.funcname, "file": self.file, "line": self.line}, self.files


def frame_info(data: dict[str, Any], index: int) -> dict[str, Any]:
    """Frame `index` of `data` as one dict: name, funcname, filename, short, module, line,
    synthetic (no file: `<GC>`, a task), task (an asyncio task's marker, `kind` saying so), and
    `source` as `[[lineno, text], ...]` around its line."""
    frames = data["frames"]
    funcname, file_index, line = frames["funcname"][index], frames["file"][index], frames["line"][index]
    if file_index == TASK_FILE:
        return {"name": task_label(task_frame(funcname)), "funcname": funcname, "filename": TASK_FILENAME,
                "short": "", "module": "", "line": line, "synthetic": True, "task": True, "kind": TASK_KIND,
                "source": []}
    if file_index < 0:
        return {"name": funcname, "funcname": funcname, "filename": SYNTHETIC_FILENAME, "short": "",
                "module": "", "line": line, "synthetic": True, "task": False, "source": []}
    info = data["files"][file_index]
    if data.get("kind") == "diff":
        name = f"{funcname} ({info['short']})"
    else:
        name = f"{funcname} ({info['short']}:{line})"
    source = sorted((int(n), text) for n, text in info.get("source", {}).items() if abs(int(n) - line) <= SOURCE_CONTEXT)
    return {"name": name, "funcname": funcname, "filename": info["filename"], "short": info["short"],
            "module": info["module"], "line": line, "synthetic": False, "task": False,
            "source": [list(x) for x in source]}


# -- statistics ---------------------------------------------------------------------------------


def _is_gc(frames: tuple[Frame, ...]) -> bool:
    return any(f.is_synthetic and f.funcname == "<GC>" for f in frames)


def _pct(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 3) if whole else 0.0


def _status_stats(counts: dict[int, int], gc_samples: int, samples: int) -> dict[str, Any]:
    """Shares of thread samples by status; `gc_pct` is GC samples over `samples` (stack weight)."""
    total = sum(counts.values())
    sums = {name: 0 for name in ("has_gil", "on_cpu", "gil_requested", "has_exception")}
    for status, n in counts.items():
        if status & HAS_GIL:
            sums["has_gil"] += n
        if status & ON_CPU:
            sums["on_cpu"] += n
        if status & GIL_REQUESTED:
            sums["gil_requested"] += n
        if status & HAS_EXCEPTION:
            sums["has_exception"] += n
    out: dict[str, Any] = {f"{name}_pct": _pct(n, total) for name, n in sums.items()}
    out.update(sums)
    out["status_samples"] = total
    out["gc_samples"] = gc_samples
    out["gc_pct"] = _pct(gc_samples, samples)
    out["samples"] = samples
    out["free_threaded"] = False
    return out


def run_stats(profile: Profile, total: int) -> dict[str, Any]:
    s = profile.stats
    return {
        # Tachyon's names first
        "sample_interval_usec": s.interval_usec,
        "duration_sec": round(s.duration_s, 6),
        "sample_rate": round(s.sample_rate, 3),
        "error_rate": round(s.error_rate, 3),
        "missed_samples": s.missed,
        "mode": s.mode,
        # heatline's
        "samples": s.samples,
        "attempts": s.attempts,
        "errors": s.errors,
        "expected_samples": s.expected_samples,
        "total_weight": total,
        "pid": s.pid,
        "python_version": s.python_version,
        "all_threads": s.all_threads,
        "start_time": s.start_time,
        "interrupted": s.interrupted,
        "target_exited": s.target_exited,
    }


# -- the tree -------------------------------------------------------------------------------------


class _Node:
    __slots__ = ("value", "self", "children", "threads", "opcodes", "thread_opcodes")

    def __init__(self) -> None:
        self.value = 0
        self.self = 0
        self.children: dict[Any, _Node] = {}
        self.threads: dict[int, list[int]] = {}
        self.opcodes: dict[int, int] = {}  # --opcodes: samples per instruction the frame executed
        self.thread_opcodes: dict[int, dict[int, int]] = {}


def _subtree_size(node: _Node) -> int:
    count, todo = 0, [node]
    while todo:
        n = todo.pop()
        count += 1
        todo.extend(n.children.values())
    return count


def flamegraph_data(
    profile: Profile,
    *,
    min_share: float = MIN_SHARE,
    source_context: int = SOURCE_CONTEXT,
    title: str | None = None,
) -> dict[str, Any]:
    """The flame graph of `profile` as a JSON-ready dict (see the module docstring).

    `min_share` sets the pruning threshold (`max(1, int(total * min_share))` samples; 0 keeps
    every node); `source_context` the source lines kept around each frame's line (-1: none).
    """
    root = _Node()
    frames_seen: dict[Frame, int] = {}
    frame_list: list[Frame] = []
    thread_weight: dict[int, int] = {}
    gc_by_thread: dict[int, int] = {}
    for tid, frames, weight in Collector(profile).stacks():
        thread_weight[tid] = thread_weight.get(tid, 0) + weight
        if _is_gc(frames):
            gc_by_thread[tid] = gc_by_thread.get(tid, 0) + weight
        node = root
        node.value += weight
        tv = node.threads.setdefault(tid, [0, 0])
        tv[0] += weight
        for frame in reversed(frames):
            fid = frames_seen.get(frame)
            if fid is None:
                # a node is function + file + line: columns (which instruction) are merged
                plain = Frame(frame.filename, frame.funcname, frame.lineno)
                fid = frames_seen.get(plain)
                if fid is None:
                    fid = frames_seen[plain] = len(frame_list)
                    frame_list.append(plain)
                frames_seen[frame] = fid
            child = node.children.get(fid)
            if child is None:
                child = node.children[fid] = _Node()
            child.value += weight
            tv = child.threads.get(tid)
            if tv is None:
                tv = child.threads[tid] = [0, 0]
            tv[0] += weight
            if frame.opcode >= 0:  # Tachyon counts every frame's instruction, callers' too
                add_count(child.opcodes, frame.opcode, weight)
                add_count(child.thread_opcodes.setdefault(tid, {}), frame.opcode, weight)
            node = child
        node.self += weight
        tv[1] += weight

    total = root.value
    threshold = max(1, int(total * min_share))
    table = FrameTable(source_context)
    multi_thread = len(thread_weight) > 1

    new_index: dict[int, int] = {}
    col_frame: list[int] = []
    col_parent: list[int] = []
    col_value: list[int] = []
    col_self: list[int] = []
    per_thread: dict[int, dict[str, list[int]]] = {tid: {"node": [], "value": [], "self": []} for tid in thread_weight}
    pruned_nodes = pruned_samples = 0
    node_opcodes: list[tuple[int, dict[int, int]]] = []
    thread_opcodes: dict[int, list[tuple[int, dict[int, int]]]] = {}

    todo: list[tuple[_Node, int, int]] = [(root, -1, -1)]
    while todo:
        node, fid, parent = todo.pop()
        index = len(col_frame)
        if fid >= 0:
            mapped = new_index.get(fid)
            if mapped is None:
                mapped = new_index[fid] = table.add(frame_list[fid])
            fid = mapped
        if node.opcodes:
            node_opcodes.append((index, node.opcodes))
            for tid, counts in node.thread_opcodes.items():
                thread_opcodes.setdefault(tid, []).append((index, counts))
        col_frame.append(fid)
        col_parent.append(parent)
        col_value.append(node.value)
        col_self.append(node.self)
        if multi_thread:
            for tid, (tv_value, tv_self) in node.threads.items():
                column = per_thread[tid]
                column["node"].append(index)
                column["value"].append(tv_value)
                column["self"].append(tv_self)
        kept = []
        for child_fid, child in node.children.items():
            if child.value >= threshold:
                kept.append((child_fid, child))
            else:
                pruned_nodes += _subtree_size(child)
                pruned_samples += child.value
        kept.sort(key=lambda item: (-item[1].value, frame_list[item[0]].funcname, frame_list[item[0]].lineno,
                                    frame_list[item[0]].filename))
        for child_fid, child in reversed(kept):
            todo.append((child, child_fid, index))

    main_threads = {
        tid for tid, counts in profile.status_counts.items() if any(status & MAIN_THREAD for status in counts)
    }
    threads = [
        {"id": tid, "name": profile.thread_names.get(tid), "samples": n, "main": tid in main_threads}
        for tid, n in thread_weight.items()
    ]
    threads.sort(key=lambda t: (not t["main"], -t["samples"], t["id"]))

    all_counts = profile.status_totals()

    if multi_thread:
        for tid, indexed in thread_opcodes.items():
            per_thread[tid]["opcodes"] = sparse_counts(indexed)  # type: ignore[assignment]

    frame_columns, files = table.export()
    data = {
        "format": DATA_FORMAT,
        "version": DATA_VERSION,
        "kind": "flamegraph",
        "title": title,
        "generator": f"heatline {__version__}",
        "total": total,
        "frames": frame_columns,
        "files": files,
        "nodes": {"frame": col_frame, "parent": col_parent, "value": col_value, "self": col_self},
        "thread_values": per_thread if multi_thread else {},
        "threads": threads,
        "stats": run_stats(profile, total),
        "thread_stats": _status_stats(all_counts, sum(gc_by_thread.values()), total),
        "per_thread_stats": {
            tid: _status_stats(profile.status_counts.get(tid, {}), gc_by_thread.get(tid, 0), n)
            for tid, n in thread_weight.items()
        },
        "pruned": {"nodes": pruned_nodes, "samples": pruned_samples, "threshold": threshold},
    }
    add_opcodes(data, profile, node_opcodes)
    return data


def add_opcodes(data: dict[str, Any], profile: Profile, node_opcodes: list[tuple[int, dict[int, int]]]) -> None:
    """With --opcodes: `opcodes` (samples per instruction, sparse by node index) and Tachyon's
    `opcode_mapping` (names for the target's Python version) for the viewer's tooltips."""
    if not (node_opcodes or has_opcodes(profile)):
        return
    data["opcodes"] = sparse_counts(node_opcodes)
    data["opcode_mapping"] = opcode_mapping(opcode_table(profile))


def tree(data: dict[str, Any]) -> dict[str, Any]:
    """The root of `data["nodes"]` as nested dicts: every column of a node under its own key,
    plus `index`, `children` (in order) and, for nodes with a frame, the frame's `name`."""
    columns = data["nodes"]
    keys = list(columns)
    names: dict[int, str] = {}
    nodes: list[dict[str, Any]] = []
    for i in range(len(columns["frame"])):
        node = {key: columns[key][i] for key in keys}
        node["index"] = i
        node["children"] = []
        fid = node["frame"]
        if fid >= 0 and fid not in names:
            names[fid] = frame_info(data, fid)["name"]
        node["name"] = names[fid] if fid >= 0 else "all"
        nodes.append(node)
        if node["parent"] >= 0:
            nodes[node["parent"]]["children"].append(node)
    return nodes[0]


def walk(node: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """`(path of names from the root's child down, node)` for every node under `node`."""
    todo: list[tuple[tuple[str, ...], dict[str, Any]]] = [((), node)]
    while todo:
        path, n = todo.pop()
        for child in reversed(n["children"]):
            child_path = path + (child["name"],)
            yield child_path, child
            todo.append((child_path, child))


# -- HTML -------------------------------------------------------------------------------------------


def _asset(name: str) -> str:
    return (resources.files(__package__) / _ASSETS / name).read_text(encoding="utf-8")


def json_for_html(data: Any) -> str:
    """JSON that is safe inside a <script> element: no `<`, `>` or `&` (\\u-escaped instead)."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


_PLACEHOLDER = re.compile(r"\{\{([A-Z]+)\}\}")


def render_html(data: dict[str, Any], title: str | None = None) -> str:
    """The standalone page: viewer script and style inlined, data embedded, strict CSP."""
    script = _asset("flamegraph.js")
    style = _asset("flamegraph.css")
    for name, text in (("flamegraph.js", script), ("flamegraph.css", style)):
        if re.search(r"</(script|style)", text, re.IGNORECASE):  # would end the element early
            raise ValueError(f"{name} must not contain a closing script/style tag")
    title = title or data.get("title") or "heatline flame graph"
    csp = (
        "default-src 'none'; "
        f"script-src '{_sha256(script)}'; "
        f"style-src '{_sha256(style)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    values = {
        "CSP": html.escape(csp, quote=False).replace('"', "&quot;"),
        "TITLE": html.escape(title, quote=True),
        "STYLE": style,
        "DATA": json_for_html(data),
        "SCRIPT": script,
    }
    # One pass over the template only: text substituted in is never searched for placeholders.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], _asset("template.html"))


def default_title(profile: Profile, what: str = "flame graph") -> str:
    s = profile.stats
    parts = [f"heatline {what}"]
    if s.pid:
        parts.append(f"PID {s.pid}")
    if s.python_version:
        parts.append(f"Python {s.python_version}")
    return " - ".join(parts)


class FlamegraphCollector(Collector):
    format_name = "flamegraph"
    default_extension = "html"
    cli_flag = "--flamegraph"
    cli_help = "interactive flame graph: one self-contained HTML page (search, zoom, threads, inverted view)"
    opens_in_browser = True

    def data(self) -> dict[str, Any]:
        return flamegraph_data(self.profile, title=default_title(self.profile))

    def html(self) -> str:
        data = self.data()
        return render_html(data, data["title"])

    def dump(self, fh: BinaryIO) -> None:
        fh.write(self.html().encode("utf-8"))
