"""Output formats: each collector turns an aggregated `Profile` into one file or terminal format."""

from __future__ import annotations

from .base import Collector
from .binary import BinaryCollector
from .collapsed import CollapsedCollector
from .diff_flamegraph import DiffFlamegraphCollector
from .flamegraph import FlamegraphCollector
from .gecko import GeckoCollector
from .heatmap import HeatmapCollector
from .jsonl import JsonlCollector
from .pprof import PprofCollector
from .pstats import PstatsCollector
from .speedscope import SpeedscopeCollector

COLLECTORS: dict[str, type[Collector]] = {
    PstatsCollector.format_name: PstatsCollector,
    CollapsedCollector.format_name: CollapsedCollector,
    FlamegraphCollector.format_name: FlamegraphCollector,
    DiffFlamegraphCollector.format_name: DiffFlamegraphCollector,
    GeckoCollector.format_name: GeckoCollector,
    HeatmapCollector.format_name: HeatmapCollector,
    JsonlCollector.format_name: JsonlCollector,
    SpeedscopeCollector.format_name: SpeedscopeCollector,
    PprofCollector.format_name: PprofCollector,
    BinaryCollector.format_name: BinaryCollector,
}

__all__ = ["COLLECTORS", "CollapsedCollector", "Collector", "PstatsCollector"]
