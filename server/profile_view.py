"""The profile the server shows: a sampler `Profile` plus what the editor needs around it.

Its `HeatIndex` and `PathMatcher` are built once and kept current: when the profile changes (a
live run's delta bumps `version`), the index applies what was added and the matcher learns the
new files; neither is rebuilt.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from sampler.cpython.opcodes import OpcodeTable, opcode_table
from sampler.model import Profile

from .heat import HeatIndex
from .paths import PathMatcher

_ids = itertools.count(1)


def new_profile_id() -> str:
    return f"p{next(_ids)}"


@dataclass(eq=False)
class ProfileView:
    profile: Profile
    source: str  # "run", "attach" or "file"
    label: str  # what the user profiled: a script, "PID 1234", a file name
    started_at: float  # epoch seconds: sources changed on disk after this may not match the samples
    live: bool = False
    # asyncio task stacks: a run knows its --async-mode; a file only shows it has task frames
    async_aware: bool = False
    async_mode: str | None = None
    id: str = field(default_factory=new_profile_id)
    exact_totals: bool = True
    line_totals: dict[tuple[str, int], int] = field(default_factory=dict)  # overrides (pstats files)
    baseline: ProfileView | None = None
    # --subprocesses: the run's processes (server/processes.py), and the one shown (None: all)
    processes: Any = None
    process: int | None = None
    version: int = 0  # bumped whenever the profile or its baseline changes
    _index: HeatIndex | None = None
    _index_version: int = 0  # the version the index has counted up to
    _matcher: tuple[tuple[str, ...], PathMatcher] | None = None  # (roots, matcher)
    _matched_files: int = 0  # how many of the index's source_files the matcher has
    _totals_by_file: dict[str, dict[int, int]] | None = None

    @property
    def cwd(self) -> str | None:
        """The target's working directory (for relative file names), as its RunStats say."""
        return self.profile.stats.cwd or None

    def changed(self) -> None:
        self.version += 1

    def index(self) -> HeatIndex:
        if self._index is None:
            self._index = HeatIndex(self.profile)
        elif self._index_version != self.version:
            self._index.update()
        self._index_version = self.version
        return self._index

    def matcher(self, roots: tuple[str, ...]) -> PathMatcher:
        files = self.index().source_files
        if self._matcher is None or self._matcher[0] != roots:
            self._matcher = (roots, PathMatcher(files, cwd=self.cwd, roots=roots))
        elif self._matched_files != len(files):
            self._matcher[1].add(files[self._matched_files:])
        self._matched_files = len(files)
        return self._matcher[1]

    def stated_totals(self, filename: str) -> dict[int, int]:
        """Line totals the profile file stated for `filename` (pstats), by line."""
        if self._totals_by_file is None:
            by_file: dict[str, dict[int, int]] = {}
            for (name, line), total in self.line_totals.items():
                by_file.setdefault(name, {})[line] = total
            self._totals_by_file = by_file
        return self._totals_by_file.get(filename, {})

    def opcode_table(self) -> OpcodeTable:
        """Instruction names for this profile's Python (the newest heatline knows when it is unknown)."""
        return opcode_table(self.profile.stats.python_version)

    def total_samples(self) -> int:
        return self.index().total_samples

    def describe(self) -> dict:
        """The profile's identity, as clients receive it with every heat notification."""
        s = self.profile.stats
        return {
            "id": self.id,
            "source": self.source,
            "label": self.label,
            "totalSamples": self.total_samples(),  # samples with a Python stack: the base of every %
            "capturedSamples": s.samples or self.total_samples(),  # as the CLI's "Captured N samples"
            "mode": s.mode,
            "asyncAware": self.async_aware,
            "asyncMode": self.async_mode,
            "live": self.live,
            "pid": s.pid or None,
            "pythonVersion": s.python_version or None,
            "durationS": round(s.duration_s, 3),
            "exactTotals": self.exact_totals,
            "opcodes": s.opcodes,  # frames carry their instruction: hovers name them, lines get column spans
            "native": s.native,  # <native> frames: hovers say a line's time in C
            "baseline": self.baseline.describe() if self.baseline is not None else None,
            **(self.processes.describe(self) if self.processes is not None else {}),
        }
