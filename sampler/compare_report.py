"""A `Comparison` (sampler.compare) as text, markdown or GitHub workflow annotations.

One function per format, each returning the whole report; `REPORTS` maps `--format` to them.
Names and paths come from the target: the text report prints them through `printable` (no
escape sequence reaches the terminal), markdown escapes what would break a table cell, and
GitHub annotations percent-encode per the workflow-command rules.
"""

from __future__ import annotations

import os
from typing import Callable

from .compare import Change, Comparison, too_few_samples
from .tui.text import printable


def _where(change: Change, root: str | None = None) -> str:
    path = _relative(change.filename, root)
    return f"{path}:{change.lineno}" if change.lineno > 0 else path


def _relative(path: str, root: str | None) -> str:
    """`path` relative to `root` when inside it: CI annotations and reviewers want repo paths."""
    if root and os.path.isabs(path):
        rel = os.path.relpath(path, root)
        if not rel.startswith(os.pardir):
            return rel
    return path


def _shares(change: Change) -> str:
    return f"{change.base_share * 100:.1f}% -> {change.current_share * 100:.1f}% ({change.points:+.1f} pts)"


def _verdict(comparison: Comparison) -> str:
    if too_few_samples(comparison):
        return (f"nothing compared: a run has fewer than {comparison.min_samples} samples "
                f"(baseline {comparison.base_total:,}, current {comparison.current_total:,})")
    if comparison.threshold is None:
        return "no --threshold given: report only"
    failures = comparison.failures()
    if not failures:
        return f"PASS: no function's share grew significantly by more than {comparison.threshold:g} points"
    names = ", ".join(f"{c.name} ({c.metric})" for c in failures)
    return f"FAIL: {len(failures)} function share(s) grew by more than {comparison.threshold:g} points: {names}"


def _sections(comparison: Comparison, top: int) -> list[tuple[str, list[Change]]]:
    return [
        ("Regressions by function", comparison.regressions("function", top)),
        ("Regressions by line", comparison.regressions("line", top)),
        ("Improvements by function", comparison.improvements("function", top)),
        ("Improvements by line", comparison.improvements("line", top)),
    ]


def _header(comparison: Comparison) -> str:
    return (f"baseline {comparison.base_total:,} samples, current {comparison.current_total:,} samples; "
            f"significant at p < 0.05 after Holm's correction")


def format_text(comparison: Comparison, top: int = 10, root: str | None = None) -> str:
    out = [_header(comparison)]
    for title, changes in _sections(comparison, top):
        out.append("")
        out.append(f"{title}:")
        if not changes:
            out.append("  (none significant)")
        for c in changes:
            out.append(f"  {c.points:+6.1f} pts  {c.metric:<10}  {printable(c.name)}  "
                       f"{printable(_where(c, root))}  {_shares(c)}  p={c.p_value:.2g}")
    out.append("")
    out.append(_verdict(comparison))
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    """A table cell: pipes, backslashes, markup and line breaks from names kept as text."""
    text = printable(text)
    for ch in "\\|`*_[]<>":
        text = text.replace(ch, "\\" + ch)
    return text


def format_markdown(comparison: Comparison, top: int = 10, root: str | None = None) -> str:
    out = ["## heatline compare", "", _header(comparison) + "."]
    for title, changes in _sections(comparison, top):
        out += ["", f"### {title}", ""]
        if not changes:
            out.append("None significant.")
            continue
        out.append("| Change | Metric | Function | Location | Baseline | Current | p |")
        out.append("|---:|---|---|---|---:|---:|---:|")
        for c in changes:
            out.append(f"| {c.points:+.1f} pts | {c.metric} | {_md_cell(c.name)} | {_md_cell(_where(c, root))} | "
                       f"{c.base_share * 100:.1f}% | {c.current_share * 100:.1f}% | {c.p_value:.2g} |")
    out += ["", f"**{_md_cell(_verdict(comparison))}**"]
    return "\n".join(out) + "\n"


def escape_data(text: str) -> str:
    """A workflow command's message: `%`, CR and LF percent-encoded (GitHub's rules)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: the message's escapes plus `:` and `,`."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(comparison: Comparison, top: int = 10, root: str | None = None) -> str:
    """`::warning file=F,line=L::...` per significant function regression (the failures, then
    the rest of the top ones), placed on the function's most-grown line, then the verdict."""
    failures = comparison.failures()
    rest = [c for c in comparison.regressions("function", top) if c not in failures]
    out = []
    for c in failures + rest:
        props = [f"file={escape_property(_relative(c.filename, root))}"]
        if c.lineno > 0:
            props.append(f"line={c.lineno}")
        props.append(f"title={escape_property('heatline: ' + c.name + ' grew')}")
        gate = " (over the threshold)" if c in failures else ""
        message = f"{c.metric} share of {c.name} grew {_shares(c)}{gate}, p={c.p_value:.2g}"
        out.append(f"::warning {','.join(props)}::{escape_data(message)}")
    verdict = _verdict(comparison)
    out.append(f"::{'error' if failures else 'notice'}::{escape_data('heatline compare: ' + verdict)}")
    return "\n".join(out) + "\n"


REPORTS: dict[str, Callable[..., str]] = {
    "text": format_text, "markdown": format_markdown, "github": format_github,
}
