"""Two profiles compared for a regression gate: which functions and lines took a larger share.

Pure functions over two `LineIndex`es (any loader's `Profile` gives one), no printing: the
formatters are in `sampler.compare_report`, the command in `sampler.commands`.

Shares are normalised to each run's own total samples, so runs of different lengths or rates
compare. Each function's self and total share is tested with a two-proportion z-test (the
samples of a run are draws of "was this function on the stack": a binomial count), and the
p-values of every function compared are corrected together with Holm's step-down method, so
a run of many functions does not fail by chance on one of them. Given a run's time blocks
(`--binary` files keep samples in order: sampler.timeblocks), a function's variance is raised
to what its share wandered between them (batch means): a scheduler freeze of the target puts
every sample it spans on one line, so wall-clock samples cluster more than independent draws. A gate fails only on a
function whose share grew by more than the threshold *and* significantly: sampling noise
alone stays under the first for large runs and under the second for small ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Iterable

from .lineindex import LineIndex

ALPHA = 0.05  # family-wise error rate over the functions (and separately the lines) compared
METRICS = ("self", "total")
SELF_AND_TOTAL = "self=total"  # the metric of an item whose self and total are equal in both runs


@dataclass(frozen=True)
class Change:
    """One function's or line's self or total share in both runs."""

    kind: str  # "function" or "line"
    filename: str
    name: str  # the function's name; for a line, the function(s) it is in
    lineno: int  # the line to point at: for a function, its line whose share grew most (0: none)
    metric: str  # "self", "total" or SELF_AND_TOTAL
    base_samples: int
    current_samples: int
    base_share: float  # 0..1 of the baseline's samples
    current_share: float
    p_value: float  # Holm-adjusted, two-sided
    significant: bool

    @property
    def points(self) -> float:
        """The change in percentage points (+: a larger share now)."""
        return (self.current_share - self.base_share) * 100.0


@dataclass
class Comparison:
    base_total: int
    current_total: int
    min_samples: int
    threshold: float | None  # percentage points; None: report only, never fail
    functions: list[Change] = field(default_factory=list)  # every compared (function, metric)
    lines: list[Change] = field(default_factory=list)  # every compared (line, metric)

    def regressions(self, kind: str = "function", top: int | None = None) -> list[Change]:
        """Significant growths, largest first."""
        found = [c for c in self._of(kind) if c.significant and c.points > 0]
        found.sort(key=lambda c: (-c.points, c.filename, c.lineno, c.name, c.metric))
        return found[:top]

    def improvements(self, kind: str = "function", top: int | None = None) -> list[Change]:
        """Significant shrinkages, largest first."""
        found = [c for c in self._of(kind) if c.significant and c.points < 0]
        found.sort(key=lambda c: (c.points, c.filename, c.lineno, c.name, c.metric))
        return found[:top]

    def failures(self) -> list[Change]:
        """The functions that fail the gate: grown significantly by more than the threshold."""
        if self.threshold is None:
            return []
        return [c for c in self.regressions("function") if c.points > self.threshold]

    @property
    def passed(self) -> bool:
        return not self.failures()

    def _of(self, kind: str) -> list[Change]:
        return self.functions if kind == "function" else self.lines


def two_proportion_p(x1: int, n1: int, x2: int, n2: int, within: float = 0.0) -> float:
    """Two-sided p-value that x1/n1 and x2/n2 are one proportion: the pooled z-test, its
    variance raised to `within` (the two runs' own variances measured from their time blocks,
    summed) when samples were found to cluster more than independent draws would."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    variance = max(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2), within)
    if variance <= 0.0:  # both 0% or both 100%: no difference to test
        return 1.0
    z = abs(x1 / n1 - x2 / n2) / math.sqrt(variance)
    return math.erfc(z / math.sqrt(2.0))


def block_variance(share: float, blocks: list[tuple[int, int]]) -> float:
    """The variance of a run's share estimated from its time blocks' `(samples, block total)`:
    batch means for a ratio, so a freeze that piles samples into one block widens it."""
    k = len(blocks)
    total = sum(n for _, n in blocks)
    if k < 2 or total <= 0:
        return 0.0
    return k / (k - 1) * sum((n / total) ** 2 * (x / n - share) ** 2 for x, n in blocks if n)


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given: compare each with the family's alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))  # adjusted values never decrease
        adjusted[i] = running
    return adjusted


# Raw per-item counts: key -> (name, lineno, {metric: samples}).
_Counts = dict[tuple[str, str], tuple[str, int, dict[str, int]]]


def _path_parts(path: str) -> list[str]:
    return path.replace("\\", "/").split("/")


def _common_tail(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def match_files(base_files: Iterable[str], current_files: Iterable[str]) -> dict[str, str]:
    """Baseline file -> the current run's name for it, for the files named differently in the
    two runs: the checkouts were in different directories (CI builds main beside the PR), or a
    format shortens paths (collapsed stacks keep the last component). A file is matched to the
    one name sharing the most trailing components with it, the base name at least; a tie
    matches nothing rather than the wrong file."""
    current = set(current_files)
    base = [f for f in base_files if f not in current]
    by_name: dict[str, list[str]] = {}
    for filename in current.difference(base_files):
        by_name.setdefault(_path_parts(filename)[-1], []).append(filename)
    found: dict[str, str] = {}
    for filename in base:
        parts = _path_parts(filename)
        scored = sorted(((_common_tail(parts, _path_parts(c)), c) for c in by_name.get(parts[-1], ())), reverse=True)
        if scored and (len(scored) == 1 or scored[0][0] > scored[1][0]):
            found[filename] = scored[0][1]
    taken: dict[str, int] = {}
    for target in found.values():
        taken[target] = taken.get(target, 0) + 1
    return {b: c for b, c in found.items() if taken[c] == 1}  # two files onto one: neither


def _function_counts(index: LineIndex, rename: dict[str, str]) -> _Counts:
    counts: _Counts = {}
    for (filename, funcname), stats in index.all_functions():
        filename = rename.get(filename, filename)
        counts[(filename, funcname)] = (funcname, stats.first_line,
                                        {"self": stats.self_samples, "total": stats.total_samples})
    return counts


def _line_counts(index: LineIndex, rename: dict[str, str]) -> _Counts:
    counts: _Counts = {}
    for filename in index.filenames():
        for lineno, heat in index.lines(filename).items():
            names = sorted({spot[2] for spot, _ in index.line_spots(filename, lineno)})
            counts[(rename.get(filename, filename), str(lineno))] = (", ".join(names), lineno,
                                               {"self": heat.self_samples, "total": heat.total_samples})
    return counts


# A run's time blocks: per block, its counts and its total samples.
_Blocks = list[tuple[_Counts, int]]


def _within(key: tuple[str, str], metric: str, blocks: _Blocks | None) -> float:
    if not blocks:
        return 0.0
    counts = [((c[key][2].get(metric, 0) if key in c else 0), n) for c, n in blocks]
    total = sum(n for _, n in counts)
    return block_variance(sum(x for x, _ in counts) / total, counts) if total else 0.0


def _changes(kind: str, base: _Counts, current: _Counts, base_total: int, current_total: int,
             min_samples: int, base_blocks: _Blocks | None = None,
             current_blocks: _Blocks | None = None) -> list[Change]:
    """Every item with at least `min_samples` samples on the stack in either run, both metrics,
    tested together as one Holm family."""
    rows = []
    for key in sorted(base.keys() | current.keys()):
        name, lineno, b = base.get(key) or (None, 0, {})
        cname, clineno, c = current.get(key) or (None, 0, {})
        if max(b.get("total", 0), c.get("total", 0)) < min_samples:
            continue
        for metric in METRICS:
            x1, x2 = b.get(metric, 0), c.get(metric, 0)
            if (x1, x2) in ((0, 0), (base_total, current_total)):
                continue  # 0% or 100% in both runs: nothing can differ, so no place in the family
            if metric == "total" and (x1, x2) == (b.get("self", 0), c.get("self", 0)):
                # Always the leaf in both runs: one test, not the same one twice.
                rows[-1] = (*rows[-1][:3], SELF_AND_TOTAL, *rows[-1][4:])
                continue
            within = _within(key, metric, base_blocks) + _within(key, metric, current_blocks)
            rows.append((key, cname or name or "", clineno or lineno, metric, x1, x2,
                         two_proportion_p(x1, base_total, x2, current_total, within)))
    adjusted = holm([row[-1] for row in rows])
    return [
        Change(kind, key[0], name, lineno, metric, x1, x2, x1 / base_total, x2 / current_total, p, p < ALPHA)
        for (key, name, lineno, metric, x1, x2, _), p in zip(rows, adjusted)
    ]


def _point_at_grown_lines(functions: list[Change], lines: list[Change]) -> list[Change]:
    """Each function pointed at its line whose share grew most (self first, then total), so an
    annotation lands on the line that got slower rather than on the function's first line."""
    best: dict[tuple[str, str], tuple[tuple[int, float], int]] = {}
    for line in lines:
        for funcname in line.name.split(", "):
            rank = (0 if line.metric == "total" else 1, line.points)
            key = (line.filename, funcname)
            if key not in best or rank > best[key][0]:
                best[key] = (rank, line.lineno)
    out = []
    for change in functions:
        found = best.get((change.filename, change.name))
        out.append(change if found is None else replace(change, lineno=found[1]))
    return out


def compare_indexes(base: LineIndex, current: LineIndex, *, min_samples: int = 20,
                    threshold: float | None = None, base_blocks: list[LineIndex] | None = None,
                    current_blocks: list[LineIndex] | None = None) -> Comparison:
    """The comparison of two runs' indexes, the baseline's files matched to the current run's
    names (`match_files`): reports name the current run's files. Items (functions, lines) seen on fewer than
    `min_samples` stacks in both runs are not compared; runs with fewer than `min_samples`
    samples in all compare nothing. `base_blocks` and `current_blocks`, the runs split into
    consecutive stretches of time (sampler.timeblocks), widen each function's variance to what
    it was seen to wander within its run when that is more than sampling alone explains."""
    result = Comparison(base.total, current.total, min_samples, threshold)
    if too_few_samples(result):
        return result
    rename = match_files(base.filenames(), current.filenames())
    lines = _changes("line", _line_counts(base, rename), _line_counts(current, {}), base.total, current.total,
                     min_samples)
    functions = _changes("function", _function_counts(base, rename), _function_counts(current, {}),
                         base.total, current.total, min_samples,
                         [(_function_counts(b, rename), b.total) for b in base_blocks or ()],
                         [(_function_counts(b, {}), b.total) for b in current_blocks or ()])
    result.lines = lines
    result.functions = _point_at_grown_lines(functions, lines)
    return result


def too_few_samples(comparison: Comparison) -> bool:
    """Whether a run had fewer samples than `min_samples`: nothing was compared."""
    return min(comparison.base_total, comparison.current_total) < max(1, comparison.min_samples)

