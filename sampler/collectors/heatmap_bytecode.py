"""The heatmap's instruction view (--opcodes) and C-code share (--native) of one source line.

Per sampled line (from the line index, which counts every frame at the line as Tachyon's heatmap
does): a panel listing its instructions (name, base instruction when specialized, samples,
share, column spans), the share of samples in specialized instructions, and, with `<native>`
frames, how much of the line's time the thread spent in C code the line called. The source text
itself is cut into the column spans the instructions came from, each underlined by its share of
the line's instruction samples, so the hot expression of a line stands out.

Everything here is HTML text with every name escaped; the page script only toggles visibility.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..lineindex import LineIndex, SpanHeat
from .opcode_view import char_columns, instruction, specialized_share

if TYPE_CHECKING:
    from ..cpython.opcodes import OpcodeTable

SPAN_LEVELS = 5  # underline strengths of a column span
SPEC_LEVELS = 5  # colours of a line by its specialized share (0..4)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0.0%"


@dataclass
class LineBytecode:
    """One line's instructions and C share, ready to render."""

    lineno: int
    rows: list[dict[str, Any]]  # `opcode_view.instruction` rows plus "spans"
    spans: list[SpanHeat]
    native: int  # samples with a <native> leaf right inside the line's frame
    total: int  # the line's total samples

    @property
    def spec(self) -> tuple[int, int, int]:
        return specialized_share(self.rows)

    @property
    def spec_level(self) -> int:
        return min(SPEC_LEVELS - 1, self.spec[0] * SPEC_LEVELS // 100)

    @property
    def empty(self) -> bool:
        return not self.rows and not self.native


def line_bytecode(index: LineIndex, table: "OpcodeTable | None", filename: str, lineno: int,
                  total: int) -> LineBytecode:
    rows = []
    if table is not None:
        for heat in index.line_opcodes(filename, lineno):
            row = instruction(table, heat.opcode, heat.samples)
            row["spans"] = heat.spans
            rows.append(row)
    spans = index.line_spans(filename, lineno) if rows else []
    return LineBytecode(lineno, rows, spans, index.line_native(filename, lineno), total)


def _span_text(span: tuple[int, int, int], lineno: int) -> str:
    end_line, col, end_col = span
    if col < 0:
        return "?"
    if end_line > lineno:
        return f"{col}-{end_line}:{end_col}"
    return f"{col}-{end_col}"


def toggle(line: LineBytecode) -> str:
    """The button before the line number that opens the line's panel."""
    label = f"{line.spec[0]}% specialized" if line.rows else "C code"
    return (f"<button type=\"button\" class=\"bc-toggle\" aria-expanded=\"false\" "
            f"aria-controls=\"bytecode-{line.lineno}\" title=\"Show bytecode ({_e(label)})\">&#9656;</button>")


def native_badge(line: LineBytecode) -> str:
    """The line's share of its time in C code it called, beside the call menus."""
    if not line.native:
        return ""
    share = _pct(line.native, line.total)
    return (f"<span class=\"native-share\" data-native=\"{line.native}\" title=\"{_e(line.native)} of the "
            f"line's {_e(line.total)} samples were in C code it called (&lt;native&gt;)\">C {share}</span>")


def panel_row(line: LineBytecode) -> str:
    """A hidden table row under the line: its instructions and C share."""
    out = [f"<tr class=\"bc-row\" id=\"bytecode-{line.lineno}\" hidden><td></td><td colspan=\"4\">"
           "<div class=\"bc-panel\">"]
    if line.rows:
        pct, special, samples = line.spec
        n_special = sum(1 for row in line.rows if row["is_specialized"])
        out.append(
            f"<div class=\"bc-summary sp{line.spec_level}\"><strong class=\"bc-spec\">{pct}%</strong> specialized "
            f"<span class=\"muted\">({n_special}/{len(line.rows)} instruction{'s' if len(line.rows) != 1 else ''}, "
            f"{special:,}/{samples:,} samples)</span></div>"
        )
    if line.native:
        out.append(f"<div class=\"bc-native\">In C code it called (&lt;native&gt;): <strong>{line.native:,}"
                   f"</strong> of the line's {line.total:,} samples ({_pct(line.native, line.total)})</div>")
    if line.rows:
        top = max(row["samples"] for row in line.rows)
        out.append("<table class=\"bc\"><thead><tr><th>Instruction</th><th class=\"n\">Samples</th>"
                   "<th class=\"n\">Share</th><th>Columns</th><th></th></tr></thead><tbody>")
        samples = line.spec[2]
        for row in line.rows:
            spans = ", ".join(_span_text(span, line.lineno) for span in row["spans"])
            badge = "<span class=\"bc-badge\">SPECIALIZED</span>" if row["is_specialized"] else ""
            width = max(1, round(10 * row["samples"] / top)) if top else 0
            out.append(
                f"<tr class=\"bc-instr{' specialized' if row['is_specialized'] else ''}\" "
                f"data-opcode=\"{row['opcode']}\" data-samples=\"{row['samples']}\">"
                f"<td class=\"mono\">{_e(row['opname'])}{badge}</td><td class=\"n\">{row['samples']:,}</td>"
                f"<td class=\"n\">{_pct(row['samples'], samples)}</td><td class=\"mono\">{_e(spans)}</td>"
                f"<td><span class=\"bc-bar w{width}\"></span></td></tr>"
            )
        out.append("</tbody></table>")
    out.append("</div></td></tr>")
    return "".join(out)


def source_html(text: str, line: LineBytecode) -> str:
    """The line's text, cut into the column spans its instructions came from (each character
    goes to the narrowest span covering it), each underlined by its share of the samples."""
    if not line.spans or not text:
        return _e(text)
    # The span of each character: narrowest first, so wider spans only fill what is left.
    owner: list[int | None] = [None] * len(text)
    spans = []
    for heat in line.spans:
        end_line, col, end_col = heat.span
        if col < 0 or end_line < line.lineno and end_line >= 0:
            continue
        start_b, end_b = col, (end_col if end_line in (line.lineno, -1) and end_col >= 0 else 1 << 30)
        start, end = char_columns(text, start_b, end_b)
        if end > start:
            spans.append((end - start, start, end, heat))
    if not spans:
        return _e(text)
    spans.sort(key=lambda s: (s[0], s[1]))
    for k, (_width, start, end, _heat) in enumerate(spans):
        for i in range(start, end):
            if owner[i] is None:
                owner[i] = k
    names: dict[tuple[int, int, int], list[str]] = {}
    for row in line.rows:
        for span in row["spans"]:
            names.setdefault(span, []).append(row["opname"])
    total = sum(heat.samples for heat in line.spans)
    top = max(heat.samples for heat in line.spans)
    out = []
    i = 0
    while i < len(text):
        k = owner[i]
        j = i
        while j < len(text) and owner[j] == k:
            j += 1
        piece = _e(text[i:j])
        if k is None:
            out.append(piece)
        else:
            heat = spans[k][3]
            level = max(1, min(SPAN_LEVELS, round(SPAN_LEVELS * heat.samples / top)))
            ops = names.get(heat.span, [])
            listed = ", ".join(ops[:3]) + (f" +{len(ops) - 3} more" if len(ops) > 3 else "")
            title = f"{heat.samples:,} samples, {_pct(heat.samples, total)} of the line's instructions"
            if listed:
                title += f": {listed}"
            out.append(f"<span class=\"instr c{level}\" data-samples=\"{heat.samples}\" "
                       f"title=\"{_e(title)}\">{piece}</span>")
        i = j
    return "".join(out)
