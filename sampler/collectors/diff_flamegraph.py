"""Differential flame graph (`--diff-flamegraph BASELINE`): this run against a `--binary` baseline.

`diff_flamegraph_data(current, baseline)` returns the same dict shape as `flamegraph_data` with
`"kind": "diff"`, a `diff` summary and more node columns:

    nodes: frame, parent, value, self         this run's samples (total, self)
           baseline, baseline_total           the baseline's self and total, scaled to this run
           diff, diff_pct                     self - baseline, and as % of the baseline
           total_diff, total_diff_pct         the same for totals
           status                             0 in both, 1 new (path absent from the baseline),
                                              2 gone (path only in the baseline)

Nodes are matched by their path of (filename, funcname) from the root, ignoring line numbers
(so an edit that moves code still matches), and each node stands for a function under a path:
its frame's `line` is the line with most samples, and its name is `funcname (file)`.
The baseline is scaled by `(current samples x interval) / (baseline samples x interval)`, so a
run that lasted twice as long is not all red. `diff_pct` is 100 for a node with time now and
none in the baseline, -100 for a gone one. Paths only in the baseline are kept as `status` 2
nodes (with `value` 0) under the deepest node both runs share; the viewer shows them with its
"disappeared" toggle. With --opcodes, `opcodes` and `opcode_mapping` are as in `flamegraph_data`,
counting this run's instructions per function node. A node is kept when it reaches `max(1, 0.1%)` of the samples in either
run (Tachyon's pruning, applied to each run), so a function that shrank to almost nothing still
shows.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from ..errors import ProfileFileError, UsageError
from ..loaders import replay_binary
from ..model import Frame, Profile
from ..replay import BinaryProfile, open_binary_profile
from .base import Collector
from .opcode_view import add_count
from .flamegraph import (
    DATA_FORMAT,
    DATA_VERSION,
    MIN_SHARE,
    SOURCE_CONTEXT,
    FrameTable,
    _is_gc,
    _status_stats,
    add_opcodes,
    default_title,
    render_html,
    run_stats,
)

SAME, NEW, GONE = 0, 1, 2

FuncKey = tuple[str, str]  # (filename, funcname)


class _FNode:
    __slots__ = ("value", "self", "children", "opcodes")

    def __init__(self) -> None:
        self.value = 0
        self.self = 0
        self.children: dict[FuncKey, _FNode] = {}
        self.opcodes: dict[int, int] = {}


def _function_tree(profile: Profile, lines: dict[FuncKey, dict[int, int]]) -> tuple[_FNode, int]:
    """The call tree keyed by (filename, funcname); `lines` gathers each function's line weights."""
    root = _FNode()
    gc = 0
    for _tid, frames, weight in Collector(profile).stacks():
        node = root
        node.value += weight
        for frame in reversed(frames):
            key = (frame.filename, frame.funcname)
            child = node.children.get(key)
            if child is None:
                child = node.children[key] = _FNode()
            child.value += weight
            per_line = lines.setdefault(key, {})
            per_line[frame.lineno] = per_line.get(frame.lineno, 0) + weight
            if frame.opcode >= 0:
                add_count(child.opcodes, frame.opcode, weight)
            node = child
        node.self += weight
        if _is_gc(frames):
            gc += weight
    return root, gc


def baseline_scale(current: Profile, baseline: Profile, current_total: int, baseline_total: int) -> float:
    """Tachyon's scale: the baseline's samples x interval brought to the current run's."""
    cur_interval = current.stats.interval_usec or 1
    base_interval = baseline.stats.interval_usec or 1
    if baseline_total == 0:
        return 1.0
    if current_total == 0:
        return cur_interval / base_interval
    return (current_total * cur_interval) / (baseline_total * base_interval)


def _pct(diff: float, base: float, now: float) -> float:
    if base > 0:
        return round(100.0 * diff / base, 3)
    return 100.0 if now > 0 else 0.0


def diff_flamegraph_data(
    current: Profile,
    baseline: Profile,
    *,
    min_share: float = MIN_SHARE,
    source_context: int = SOURCE_CONTEXT,
    title: str | None = None,
) -> dict[str, Any]:
    """The differential flame graph of `current` against `baseline` (see the module docstring)."""
    cur_lines: dict[FuncKey, dict[int, int]] = {}
    base_lines: dict[FuncKey, dict[int, int]] = {}
    cur_root, cur_gc = _function_tree(current, cur_lines)
    base_root, _ = _function_tree(baseline, base_lines)
    cur_total, base_total = cur_root.value, base_root.value
    scale = baseline_scale(current, baseline, cur_total, base_total)
    threshold = max(1, int(cur_total * min_share))
    base_threshold = max(1, int(base_total * min_share))  # the baseline pruned as its own graph would be
    table = FrameTable(source_context)
    frame_index: dict[FuncKey, int] = {}

    def frame_of(key: FuncKey) -> int:
        index = frame_index.get(key)
        if index is None:
            per_line = cur_lines.get(key) or base_lines.get(key) or {0: 1}
            line = max(per_line.items(), key=lambda item: (item[1], -item[0]))[0]
            index = frame_index[key] = table.add(Frame(key[0], key[1], line))
        return index

    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "frame", "parent", "value", "self", "baseline", "baseline_total",
            "diff", "diff_pct", "total_diff", "total_diff_pct", "status",
        )
    }
    counts = {NEW: 0, GONE: 0}
    pruned_nodes = 0
    node_opcodes: list[tuple[int, dict[int, int]]] = []  # this run's instructions per node

    # (current node or None, baseline node or None, key, parent index, status)
    todo: list[tuple[_FNode | None, _FNode | None, FuncKey | None, int, int]] = [(cur_root, base_root, None, -1, SAME)]
    while todo:
        cur, base, key, parent, status = todo.pop()
        index = len(columns["frame"])
        value = cur.value if cur else 0
        self_ = cur.self if cur else 0
        b_self = base.self * scale if base else 0.0
        b_total = base.value * scale if base else 0.0
        columns["frame"].append(frame_of(key) if key is not None else -1)
        columns["parent"].append(parent)
        columns["value"].append(value)
        columns["self"].append(self_)
        columns["baseline"].append(round(b_self, 3))
        columns["baseline_total"].append(round(b_total, 3))
        columns["diff"].append(round(self_ - b_self, 3))
        columns["diff_pct"].append(-100.0 if status == GONE and b_self > 0 else _pct(self_ - b_self, b_self, self_))
        columns["total_diff"].append(round(value - b_total, 3))
        columns["total_diff_pct"].append(-100.0 if status == GONE else _pct(value - b_total, b_total, value))
        columns["status"].append(status)
        if cur is not None and cur.opcodes:
            node_opcodes.append((index, cur.opcodes))
        if status in counts and parent >= 0:
            counts[status] += 1

        children: list[tuple[float, int, FuncKey, _FNode | None, _FNode | None, int]] = []
        cur_children = cur.children if cur else {}
        base_children = base.children if base else {}
        for child_key, child in cur_children.items():
            base_child = base_children.get(child_key)
            if child.value >= threshold or (base_child is not None and base_child.value >= base_threshold):
                children.append((-child.value, 0, child_key, child, base_child, SAME if base_child else NEW))
            else:
                pruned_nodes += 1
        for child_key, base_child in base_children.items():
            if child_key in cur_children:
                continue
            if base_child.value >= base_threshold:
                children.append((-base_child.value * scale, 1, child_key, None, base_child, GONE))
            else:
                pruned_nodes += 1
        # this run's children heaviest first, then the gone ones heaviest first
        children.sort(key=lambda c: (c[1], c[0], c[2][1], c[2][0]))
        for _w, _g, child_key, child, base_child, child_status in reversed(children):
            todo.append((child, base_child, child_key, index, child_status))

    threads = [
        {"id": tid, "name": current.thread_names.get(tid), "samples": 0, "main": False}
        for tid in current.thread_ids
    ]
    all_counts = current.status_totals()
    frame_columns, files = table.export()
    data = {
        "format": DATA_FORMAT,
        "version": DATA_VERSION,
        "kind": "diff",
        "title": title,
        "total": cur_total,
        "frames": frame_columns,
        "files": files,
        "nodes": columns,
        "thread_values": {},  # thread ids differ between runs: no per-thread view in a diff
        "threads": threads,
        "stats": run_stats(current, cur_total),
        "baseline_stats": run_stats(baseline, base_total),
        "thread_stats": _status_stats(all_counts, cur_gc, cur_total),
        "per_thread_stats": {},
        "diff": {
            "is_differential": True,
            "baseline_samples": base_total,
            "current_samples": cur_total,
            "baseline_scale": scale,
            "new_count": counts[NEW],
            "elided_count": counts[GONE],
        },
        "pruned": {"nodes": pruned_nodes, "samples": 0, "threshold": threshold},
    }
    add_opcodes(data, current, node_opcodes)
    return data


def load_baseline(path: str) -> Profile:
    """Replay a `--binary` file into a Profile; every failure is one `HeatlineError` line."""
    return replay_binary(open_baseline(path))


def open_baseline(path: str) -> BinaryProfile:
    if not os.path.exists(path):
        raise ProfileFileError(f"cannot read the baseline profile {path}: no such file")
    if os.path.isdir(path):
        raise ProfileFileError(f"cannot read the baseline profile {path}: it is a directory")
    return open_binary_profile(path)


class DiffFlamegraphCollector(Collector):
    format_name = "diff_flamegraph"
    default_extension = "html"
    option_defaults = {"baseline": None}
    cli_flag = "--diff-flamegraph"
    cli_metavar = "BASELINE"
    cli_value_option = "baseline"
    cli_help = "flame graph of the change from BASELINE, a profile written with --binary"
    opens_in_browser = True

    def __init__(self, profile: Profile, **options: Any) -> None:
        """`baseline` is a path to a `--binary` file (checked now, before any sampling) or a
        `Profile` (in-process callers)."""
        super().__init__(profile, **options)
        baseline = self.options["baseline"]
        if baseline is None:
            raise UsageError("--diff-flamegraph needs a BASELINE profile written with --binary")
        self._baseline: Profile | None = baseline if isinstance(baseline, Profile) else None
        if self._baseline is None:
            reader = open_baseline(os.fspath(baseline))  # fail before a long run, not after it
            close = getattr(reader, "close", None)
            if close is not None:
                close()

    def baseline_profile(self) -> Profile:
        if self._baseline is None:
            self._baseline = load_baseline(os.fspath(self.options["baseline"]))
        return self._baseline

    def data(self) -> dict[str, Any]:
        return diff_flamegraph_data(
            self.profile, self.baseline_profile(), title=default_title(self.profile, "differential flame graph")
        )

    def html(self) -> str:
        data = self.data()
        return render_html(data, data["title"])

    def dump(self, fh: BinaryIO) -> None:
        fh.write(self.html().encode("utf-8"))
