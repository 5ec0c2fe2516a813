"""Heat as it applies to one open document: matched to a profile file, kept on the right lines.

When a profile is first shown on a document, the document's text is compared with the file the
target ran: if they differ (unsaved edits, or the file changed on disk after profiling) nothing
can be placed with certainty and the whole document's heat is stale. From then on every edit is
fed to a `LineTracker`, so heat moves with the code it belongs to, or is marked stale where the
code under it changed. Heat is never shown on a line it was not measured on without saying so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .heat import FunctionHeat, HeatIndex
from .instructions import ColumnSpan
from .line_tracking import LineTracker, units_at_byte
from .notebook_cells import CellMatch
from .profile_view import ProfileView


@dataclass(frozen=True)
class LineEntry:
    line: int  # 0-based line in the document now
    profiled_line: int  # 1-based line in the profile
    self_samples: int
    total_samples: int
    self_pct: float
    total_pct: float
    stale: bool
    baseline_self_pct: float | None = None
    baseline_total_pct: float | None = None
    # where in the line its time went (--opcodes), in the client's position units; fresh lines only
    columns: tuple[ColumnSpan, ...] = ()


@dataclass(frozen=True)
class FunctionEntry:
    heat: FunctionHeat
    line: int  # 0-based line of its `def` in the document now
    stale: bool
    self_pct: float
    total_pct: float


@dataclass
class DocumentHeat:
    view: ProfileView | None
    filename: str | None  # the profile's name for this document's file
    stale_reason: str | None = None
    lines: dict[int, LineEntry] = field(default_factory=dict)  # by current 0-based line

    @property
    def stale(self) -> bool:
        return self.stale_reason is not None


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def read_disk_text(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None


def staleness(path: str, text: str, view: ProfileView) -> str | None:
    """Why this document's text may not be what was profiled, or None when it is."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        mtime = None
    if mtime is not None and mtime > view.started_at:
        return "the file changed on disk after it was profiled"
    disk = read_disk_text(path)
    if disk is not None and disk.replace("\r\n", "\n") != text.replace("\r\n", "\n"):
        return "the document has unsaved changes the profiled program did not run"
    return None


def _in_client_units(spans: list[ColumnSpan], content: str, encoding: str) -> tuple[ColumnSpan, ...]:
    """Spans in CPython's byte columns as LSP character offsets on the line as it reads now (the
    profiled text: only fresh lines get spans); a span running past the line ends with it."""
    out = []
    for span in spans:
        start = units_at_byte(content, span.start, encoding)
        end = units_at_byte(content, len(content.encode("utf-8", "surrogatepass")) if span.end is None else span.end, encoding)
        if end > start:
            out.append(ColumnSpan(start, end, span.samples, span.pct))
    return tuple(out)


@dataclass
class _Tracked:
    view_id: str
    filename: str | None
    matched_files: int  # how many profile files the matcher knew when `filename` was looked for
    original_text: str
    tracker: LineTracker
    stale_reason: str | None


class DocumentTracker:
    """Per-document matching and line tracking for the profile on show."""

    def __init__(self) -> None:
        self._docs: dict[str, _Tracked] = {}

    def forget(self, uri: str) -> None:
        self._docs.pop(uri, None)

    def reset(self) -> None:
        self._docs.clear()

    def edited(self, uri: str, changes: list[tuple[tuple[int, int, int, int] | None, str]]) -> bool:
        """Feed a didChange; True when this document had heat to move."""
        tracked = self._docs.get(uri)
        if tracked is None:
            return False
        for change_range, text in changes:
            tracked.tracker.apply(change_range, text)
        return tracked.filename is not None

    def _tracked_cell(self, uri: str, text: str, encoding: str, view: ProfileView, cell: CellMatch) -> _Tracked:
        """A notebook cell's tracking: its file comes from its text (server/notebook_cells.py),
        and changes when the cell runs again with new text during a live profile."""
        tracked = self._docs.get(uri)
        if (tracked is None or tracked.view_id != view.id or tracked.filename != cell.filename
                or tracked.original_text != cell.ran_text):
            tracker = LineTracker(cell.ran_text, encoding=encoding)
            if text != cell.ran_text:  # edited since it ran: unchanged lines keep their heat (stale)
                tracker.apply((0, 0, len(cell.ran_text), len(cell.ran_text)), text)
            tracked = _Tracked(view_id=view.id, filename=cell.filename, matched_files=-1,
                               original_text=cell.ran_text, tracker=tracker, stale_reason=None)
            self._docs[uri] = tracked
        tracked.stale_reason = cell.stale_reason
        return tracked

    def _tracked(self, uri: str, path: str | None, text: str, encoding: str, view: ProfileView,
                 roots: tuple[str, ...], cell: CellMatch | None = None) -> _Tracked:
        if cell is not None:
            return self._tracked_cell(uri, text, encoding, view, cell)
        tracked = self._docs.get(uri)
        matcher = view.matcher(roots)
        if tracked is not None and tracked.view_id == view.id:
            # A live run may reach this file only later: look again when the profile has new files.
            if tracked.filename is None and tracked.matched_files != len(matcher.filenames) and path:
                tracked.filename = matcher.filename_for(path)
                tracked.matched_files = len(matcher.filenames)
            return tracked
        filename = matcher.filename_for(path) if path else None
        tracked = _Tracked(
            view_id=view.id, filename=filename, matched_files=len(matcher.filenames), original_text=text,
            tracker=LineTracker(text, encoding=encoding),
            stale_reason=staleness(path, text, view) if path else None,
        )
        self._docs[uri] = tracked
        return tracked

    def heat(self, uri: str, path: str | None, text: str, encoding: str, view: ProfileView | None,
             roots: tuple[str, ...], cell: CellMatch | None = None) -> DocumentHeat:
        """`cell`: the document is a notebook cell, matched to its profile file by its text."""
        if view is None:
            return DocumentHeat(None, None)
        tracked = self._tracked(uri, path, text, encoding, view, roots, cell)
        reason = tracked.stale_reason
        if reason is None and tracked.tracker.all_stale:
            reason = "the document was replaced after profiling"
        result = DocumentHeat(view, tracked.filename, reason)
        if tracked.filename is None:
            return result
        index = view.index()
        total = index.total_samples
        baseline_lines: dict[int, tuple[float, float]] = {}
        if view.baseline is not None and path:
            base = view.baseline
            base_file = base.matcher(roots).filename_for(path)
            if base_file is not None:
                base_index = base.index()
                base_lines = base_index.lines(base_file)
                base_totals = base.stated_totals(base_file)
                for n in set(base_lines) | set(base_totals):
                    h = base_lines.get(n)
                    base_total = base_totals.get(n, h.total_samples if h else 0)
                    baseline_lines[n] = (_pct(h.self_samples if h else 0, base_index.total_samples),
                                         _pct(base_total, base_index.total_samples))
        current = index.lines(tracked.filename)
        columns = index.columns(tracked.filename)
        stated = view.stated_totals(tracked.filename)
        for n in sorted(set(current) | set(stated) | set(baseline_lines)):
            now_line, stale = tracked.tracker.map(n - 1)
            if now_line is None:
                continue  # the code it was measured on is gone
            h = current.get(n)
            self_n = h.self_samples if h else 0
            total_n = stated.get(n, h.total_samples if h else 0)
            base = baseline_lines.get(n, (0.0, 0.0)) if view.baseline is not None else (None, None)
            stale = stale or reason is not None
            spans = () if stale or n not in columns else _in_client_units(columns[n], tracked.tracker.content(now_line), encoding)
            result.lines[now_line] = LineEntry(
                line=now_line, profiled_line=n, self_samples=self_n, total_samples=total_n,
                self_pct=_pct(self_n, total), total_pct=_pct(total_n, total),
                stale=stale, baseline_self_pct=base[0], baseline_total_pct=base[1], columns=spans,
            )
        return result

    def functions(self, uri: str, doc_heat: DocumentHeat) -> list[FunctionEntry]:
        """Functions of the profiled text with samples, placed where their `def` is now."""
        tracked = self._docs.get(uri)
        view = doc_heat.view
        if tracked is None or view is None or doc_heat.filename is None:
            return []
        index: HeatIndex = view.index()
        out = []
        for fn in index.functions(doc_heat.filename, tracked.original_text):
            now_line, stale = tracked.tracker.map(fn.def_line - 1)
            if now_line is None:
                continue
            out.append(FunctionEntry(
                heat=fn, line=now_line, stale=stale or doc_heat.stale,
                self_pct=_pct(fn.self_samples, index.total_samples),
                total_pct=_pct(fn.total_samples, index.total_samples),
            ))
        return out
