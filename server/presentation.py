"""What the client receives: the `heatline/heat` payload, code lenses, inlay hints, hovers."""

from __future__ import annotations

import re
from typing import Any, Sequence

from lsprotocol import types

from sampler.cpython.opcodes import OpcodeTable
from sampler.model import TASK_FILENAME

from .documents import DocumentHeat, FunctionEntry, LineEntry
from .heat import Neighbor
from .instructions import Instruction, native_pct, share_text, summary
from .settings import Settings

HEAT_NOTIFICATION = "heatline/heat"
FLAMEGRAPH_COMMAND = "heatline.flamegraph"
_PLAIN = re.compile(r"[A-Za-z0-9_ %<·()]*")  # an instruction summary needing no Markdown escape


def heat_payload(uri: str | None, version: int | None, heat: DocumentHeat) -> dict[str, Any]:
    """`heatline/heat` params for one document (or for none: `uri` None, no lines). Lines are
    0-based, as everywhere in LSP."""
    lines = []
    max_self = max_total = 0.0
    hottest_self = max((entry.self_pct for entry in heat.lines.values()), default=0.0)
    for entry in sorted(heat.lines.values(), key=lambda e: e.line):
        item: dict[str, Any] = {
            "line": entry.line,
            "self": entry.self_samples,
            "total": entry.total_samples,
            "selfPct": entry.self_pct,
            "totalPct": entry.total_pct,
            "stale": entry.stale,
        }
        if entry.columns:
            item["columns"] = column_items(entry, hottest_self)
        if entry.baseline_self_pct is not None:
            item["baselineSelfPct"] = entry.baseline_self_pct
            item["baselineTotalPct"] = entry.baseline_total_pct
            item["deltaSelfPct"] = round(entry.self_pct - entry.baseline_self_pct, 2)
            item["deltaTotalPct"] = round(entry.total_pct - (entry.baseline_total_pct or 0.0), 2)
        lines.append(item)
        max_self = max(max_self, entry.self_pct)
        max_total = max(max_total, entry.total_pct)
    return {
        "uri": uri,
        "version": version,
        "profile": heat.view.describe() if heat.view is not None else None,
        "stale": heat.stale,
        "staleReason": heat.stale_reason,
        "lines": lines,
        "maxSelfPct": max_self,
        "maxTotalPct": max_total,
    }


def column_items(entry: LineEntry, hottest_self: float) -> list[dict[str, Any]]:
    """Where in the line its time went (--opcodes), as editors draw it: character ranges in
    order along the line, none overlapping, each with its share of the line's samples (`pct`) and
    how strongly to draw it (`strength`, 0-1): against the line's heaviest piece (Tachyon's
    heatmap intensity), scaled by the line's self share against the document's hottest line, so
    a piece is never drawn hotter than its line is."""
    top = max(c.pct for c in entry.columns)
    line = entry.self_pct / hottest_self if hottest_self > 0 else 0.0
    return [{"start": c.start, "end": c.end, "samples": c.samples, "pct": round(c.pct, 2),
             "strength": round(c.pct / top * line, 3) if top > 0 else 0.0}
            for c in entry.columns]


def _samples(n: int) -> str:
    return f"{n:,} sample{'s' if n != 1 else ''}"


def lens_title(fn: FunctionEntry) -> str:
    title = f"self {fn.self_pct:.1f}% · total {fn.total_pct:.1f}% · {_samples(fn.heat.total_samples)}"
    return f"{title} (stale)" if fn.stale else title


def code_lenses(uri_path: str | None, functions: list[FunctionEntry]) -> list[types.CodeLens]:
    lenses = []
    for fn in functions:
        pos = types.Position(line=fn.line, character=0)
        focus = {"file": uri_path, "function": fn.heat.qualname, "line": fn.line, "show": True}
        lenses.append(types.CodeLens(
            range=types.Range(start=pos, end=pos),
            command=types.Command(title=lens_title(fn), command=FLAMEGRAPH_COMMAND, arguments=[focus]),
        ))
    return lenses


def hint_label(entry: LineEntry) -> str:
    label = f"{entry.self_pct:.1f}% self · {entry.total_pct:.1f}% total"
    if entry.baseline_self_pct is not None:
        label += f" · Δ {entry.self_pct - entry.baseline_self_pct:+.1f}%"
    return f"{label} (stale)" if entry.stale else label


def inlay_hints(heat: DocumentHeat, line_ends: dict[int, int], first: int, last: int,
                settings: Settings) -> list[types.InlayHint]:
    """Hints at the end of lines whose self share reaches the threshold, within [first, last].
    `line_ends` gives each line's length in the client's position units."""
    hints = []
    for line in sorted(heat.lines):
        entry = heat.lines[line]
        if not first <= line <= last or entry.self_pct < settings.inlay_hint_threshold or entry.self_samples == 0:
            continue
        if line not in line_ends:
            continue
        hints.append(types.InlayHint(
            position=types.Position(line=line, character=line_ends[line]),
            label=hint_label(entry),
            padding_left=True,
            tooltip=f"heatline: {_samples(entry.self_samples)} on this line, "
                    f"{_samples(entry.total_samples)} with it on the stack",
        ))
    return hints


def _md_escape(text: str) -> str:
    """Text from the target (function names can be anything) shown literally in Markdown."""
    out = []
    for ch in text:
        if ch in "\\`*_{}[]()#+-.!|<>&~":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _neighbor_rows(title: str, rows: list[Neighbor], total: int, short) -> list[str]:
    if not rows:
        return []
    out = [f"**{title}**", "", "| samples | share | function | location |", "|---:|---:|---|---|"]
    for n in rows:
        share = 100.0 * n.samples / total if total else 0.0
        if n.filename == TASK_FILENAME:  # an --async-aware task marker: the task, not a place in code
            what, where = f"task *{_md_escape(n.funcname)}*", "asyncio task"
        else:
            what, where = _md_escape(n.funcname), f"{_md_escape(short(n.filename))}:{n.line}"
        out.append(f"| {n.samples:,} | {share:.1f}% | {what} | {where} |")
    out.append("")
    return out


def instruction_markdown(rows: list[Instruction], table: OpcodeTable, native_samples: int,
                         line_total: int) -> list[str]:
    """The hover's lines about a line's instructions (--opcodes) and its time in C (--native)."""
    out = []
    if rows:
        text = summary(rows)
        # opcode names are identifiers (unknown ones read "<N>"): escape only what is not
        out.append(f"instructions: {text if _PLAIN.fullmatch(text) else _md_escape(text)}")
        if not table.exact:
            version = ".".join(map(str, table.version))
            out.append(f"*(names as in Python {version}: the profile does not say which Python ran)*")
        out.append("")
    if native_samples > 0:
        out += [f"in C: {share_text(native_pct(native_samples, line_total))} ({_samples(native_samples)})", ""]
    return out


def hover_markdown(entry: LineEntry, heat: DocumentHeat, callers: list[Neighbor], callees: list[Neighbor],
                   short, details: Sequence[str] = ()) -> str:
    total = heat.view.total_samples() if heat.view is not None else 0
    parts = [
        f"**heatline** · self **{entry.self_pct:.1f}%** ({_samples(entry.self_samples)}) · "
        f"total **{entry.total_pct:.1f}%** ({_samples(entry.total_samples)})",
        "",
    ]
    if entry.baseline_self_pct is not None:
        parts += [
            f"vs baseline: self {entry.baseline_self_pct:.1f}% → {entry.self_pct:.1f}% "
            f"({entry.self_pct - entry.baseline_self_pct:+.1f}), total {entry.baseline_total_pct:.1f}% → "
            f"{entry.total_pct:.1f}%",
            "",
        ]
    if entry.stale:
        reason = heat.stale_reason or "this line was edited after profiling"
        parts += [f"*Stale: {_md_escape(reason)}.*", ""]
    parts += details
    parts += _neighbor_rows("Called from", callers, total, short)
    parts += _neighbor_rows("Calls into", callees, total, short)
    return "\n".join(parts).rstrip() + "\n"
