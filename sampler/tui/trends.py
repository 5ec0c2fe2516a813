"""Which way each cell of the live table moved since the previous refresh (the `x` colours).

A view keeps its spot heat as of the last two index generations it was looked at (`HeatHistory`),
so drawing the same data twice (a key press, a resize) shows the same trends, and a row's trend
is the move between the two: counts and times by their sign, shares beyond a small threshold.
"""

from __future__ import annotations

from ..lineindex import Heat, LineIndex, Spot

# Percentage points: a share moving less than this is "same" (a share of a growing total
# wobbles in its last digits).
SHARE_THRESHOLD = 0.001

UP, SAME, DOWN = 1, 0, -1

Trends = tuple[int, int, int, int, int]  # nsamples, sample %, tottime, cumul %, cumtime
NO_TRENDS: Trends = (SAME, SAME, SAME, SAME, SAME)


def _sign(change: float, threshold: float = 0.0) -> int:
    return UP if change > threshold else DOWN if change < -threshold else SAME


class HeatHistory:
    """A view's heat per spot now and at the previous generation read, for trends."""

    __slots__ = ("generation", "heat", "total", "executing", "_before", "_total_before")

    def __init__(self) -> None:
        self.generation = -1  # of the index, when `heat` was read
        self.heat: dict[Spot, Heat] = {}
        self.total = 0
        self.executing = 0  # spots with direct samples
        self._before: dict[Spot, Heat] | None = None  # None: nothing to compare with yet
        self._total_before = 0

    def read(self, index: LineIndex) -> None:
        """Bring `heat` up to `index`; the heat it replaces becomes the one trends compare with."""
        if index.generation == self.generation:
            return
        if self.generation >= 0:
            self._before, self._total_before = self.heat, self.total
        self.heat = dict(index.spot_heat())
        self.total = index.total
        self.executing = sum(1 for h in self.heat.values() if h.self_samples)
        self.generation = index.generation

    def trends(self, spot: Spot, now: Heat) -> Trends:
        """The moves of the row `spot` (whose heat is `now`) since the previous generation read;
        a row new since then moved up from nothing, and the first read has no trends."""
        if self._before is None:
            return NO_TRENDS
        before = self._before.get(spot, Heat(0, 0))
        direct = _sign(now.self_samples - before.self_samples)
        cumulative = _sign(now.total_samples - before.total_samples)
        return (direct, _sign(percent(now.self_samples, self.total) - percent(before.self_samples, self._total_before),
                              SHARE_THRESHOLD),
                direct, _sign(percent(now.total_samples, self.total) - percent(before.total_samples, self._total_before),
                              SHARE_THRESHOLD),
                cumulative)


def percent(part: int, whole: int) -> float:
    """`part` as a percentage of `whole` (0 for an empty whole)."""
    return part * 100.0 / whole if whole else 0.0
