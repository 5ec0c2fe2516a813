"""Output formats: each collector turns an aggregated `Profile` into one file or terminal format."""

from __future__ import annotations

from .base import Collector
from .collapsed import CollapsedCollector
from .pstats import PstatsCollector

COLLECTORS: dict[str, type[Collector]] = {
    PstatsCollector.format_name: PstatsCollector,
    CollapsedCollector.format_name: CollapsedCollector,
}

__all__ = ["COLLECTORS", "CollapsedCollector", "Collector", "PstatsCollector"]
