"""`--live --opcodes`: the "Opcodes for f()" panel under the table (as Tachyon's), as plain text.

The panel shows the selected row's line (the top row when none is selected): the instructions
its frames were executing in the view's samples, heaviest first, with a bar, share and count,
specialized ones marked; then the line's specialized share and, with `<native>` frames, its
share in C code. Counts come from the view's line index (every frame at the line, as the heatmap
counts; Tachyon's panel counts the leaf frame only, so a calling line shows its CALL here).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..collectors.opcode_view import specialized_share

PANEL_HEIGHT = 12  # Tachyon's OPCODE_PANEL_HEIGHT: lines the panel takes under the table
MAX_INSTRUCTIONS = 8
BAR_WIDTH = 20


class PanelLine(NamedTuple):
    text: str
    kind: str  # "title", "specialized", "base", "note"


def panel_lines(funcname: str, location: str, rows: list[dict[str, Any]], native: int, total: int,
                *, unicode: bool = True) -> list[PanelLine]:
    """The panel's lines for one table row: `rows` are `opcode_view.instruction` rows (most
    samples first), `native` the line's samples in C code, `total` its samples."""
    rule = "─" if unicode else "-"
    full, empty = ("█", "░") if unicode else ("#", ".")
    out = [PanelLine(f"{rule * 3} Opcodes for {funcname}() at {location} ", "title")]
    if not rows:
        out.append(PanelLine(f"No opcode data for {funcname}() (requires --opcodes)", "note"))
    else:
        samples = sum(row["samples"] for row in rows)
        top = rows[0]["samples"] or 1
        for row in rows[:MAX_INSTRUCTIONS]:
            fill = row["samples"] * BAR_WIDTH // top
            share = 100.0 * row["samples"] / samples if samples else 0.0
            text = f"  [{full * fill}{empty * (BAR_WIDTH - fill)}] {row['opname']:<35} {share:5.1f}% ({row['samples']:>6})"
            out.append(PanelLine(text, "specialized" if row["is_specialized"] else "base"))
        if len(rows) > MAX_INSTRUCTIONS:
            out.append(PanelLine(f"  ... and {len(rows) - MAX_INSTRUCTIONS} more opcodes", "note"))
        pct, special, samples = specialized_share(rows)
        out.append(PanelLine(f"  {pct}% specialized ({special}/{samples} samples)", "note"))
    if native:
        share = 100.0 * native / total if total else 0.0
        out.append(PanelLine(f"  in C code it called (<native>): {native} of {total} samples ({share:.1f}%)", "note"))
    return out[:PANEL_HEIGHT]
