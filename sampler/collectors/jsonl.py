"""JSON Lines (`--jsonl`): Tachyon's record stream for scripts and tools, byte for byte.

One JSON object per line, compact separators, ASCII with `\\uXXXX` escapes. Every record has
`type`, `v` (0) and `run_id` (a uuid4 hex naming the run, so concatenated files can be told
apart). Records, in this order:

1. `meta`: `sample_interval_usec`, and `mode` (wall, cpu, gil or exception).
2. `string_table`: chunks of up to 256 `{"str_id", "value"}`; function names, then file names,
   interned in the order they are first met (a frame's function name before its file name).
3. `frame_table`: chunks of up to 256 `{"frame_id", "path_str_id", "func_str_id", "line",
   "end_line", "col", "end_col"}`; `end_line` is left out when it is not positive, `col` and
   `end_col` when negative (unknown); synthetic frames such as `<GC>` have `"line": 0` only.
   Frame ids follow the order frames are first met, leaf first within a sample.
4. `agg`: chunks of up to 256 `{"frame_id", "self", "cumulative"}` with `"kind": "frame"`,
   `"scope": "final"` and the run's `samples_total`: self counts samples with the frame as leaf,
   cumulative samples with the frame anywhere on the stack (once per sample under recursion).
5. `end`: `samples_total`; its presence says the file is complete.

Consumers must ignore record types and fields they do not know.

As in Tachyon, in any mode but wall a thread sample is left out when the thread neither holds the
GIL nor is on a CPU (Tachyon's `skip_idle`). The collector is streaming so it sees each sample's
thread status; built from a Profile alone (no sample stream) it counts every stack.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, BinaryIO, Iterable, Iterator, Sequence

from ..model import HAS_GIL, ON_CPU, Frame, Profile, ThreadSample
from .base import Collector, StringTable

CHUNK_SIZE = 256
SCHEMA_VERSION = 0
_CACHE_LIMIT = 200_000


class JsonlCollector(Collector):
    format_name = "jsonl"
    default_extension = "jsonl"
    cli_flag = "--jsonl"
    cli_help = "JSON Lines records (strings, frames, self/cumulative counts) for scripts and tools"
    streaming = True
    # run_id: None draws a fresh uuid4 hex. mode: "auto" takes the profile's sampling mode,
    # None leaves the field out (as Tachyon's replay does), a string is written as given.
    option_defaults = {"run_id": None, "mode": "auto"}

    def __init__(self, profile: Profile, **options: Any) -> None:
        super().__init__(profile, **options)
        self.run_id: str = self.options["run_id"] or uuid.uuid4().hex
        self._table = StringTable()
        self._frames: list[dict[str, int]] = []
        self._frame_keys: dict[tuple, int] = {}
        self._frame_cache: dict[Frame, int] = {}
        self._self: list[int] = []
        self._cumulative: list[int] = []
        self._total = 0
        # frames (cut by the profile) -> (leaf frame id, distinct frame ids)
        self._stacks: dict[tuple[Frame, ...], tuple[int, tuple[int, ...]] | None] = {}
        self._streamed = False

    # -- collecting -------------------------------------------------------------------------

    def collect(self, timestamp_us: int, threads: Sequence[ThreadSample], weight: int = 1) -> None:
        self._streamed = True
        skip_idle = self.profile.stats.mode != "wall"
        for sample in threads:
            if skip_idle and not sample.status & (HAS_GIL | ON_CPU):
                continue
            self._count(sample.frames, weight)

    def _count(self, frames: tuple[Frame, ...], weight: int) -> None:
        if not frames or weight <= 0:
            return
        entry = self._stacks.get(frames)
        if entry is None:
            ids = [self._frame_id(f) for f in frames]  # leaf first: Tachyon's id order
            entry = (ids[0], tuple(dict.fromkeys(ids)))
            if len(self._stacks) < _CACHE_LIMIT:
                self._stacks[frames] = entry
        leaf, distinct = entry
        self._total += weight
        self._self[leaf] += weight
        cumulative = self._cumulative
        for fid in distinct:
            cumulative[fid] += weight

    def _frame_id(self, frame: Frame) -> int:
        fid = self._frame_cache.get(frame)
        if fid is not None:
            return fid
        location = location_fields(frame)
        func = self._table.intern(str(frame.funcname))
        path = self._table.intern(str(frame.filename))
        key = (path, func, location["line"], location.get("end_line"), location.get("col"),
               location.get("end_col"))
        fid = self._frame_keys.get(key)
        if fid is None:
            fid = self._frame_keys[key] = len(self._frames)
            self._frames.append({"frame_id": fid, "path_str_id": path, "func_str_id": func, **location})
            self._self.append(0)
            self._cumulative.append(0)
        self._frame_cache[frame] = fid
        return fid

    # -- writing ----------------------------------------------------------------------------

    def _ensure_counted(self) -> None:
        if not self._streamed and not self._total:
            for _tid, frames, weight in self.stacks():
                self._count(frames, weight)
            self._streamed = True

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, in file order."""
        self._ensure_counted()
        base = {"v": SCHEMA_VERSION, "run_id": self.run_id}
        meta: dict[str, Any] = {"type": "meta", **base, "sample_interval_usec": self.profile.stats.interval_usec}
        mode = self.options["mode"]
        if mode == "auto":
            mode = self.profile.stats.mode
        if mode is not None:
            meta["mode"] = mode
        yield meta
        strings = [{"str_id": i, "value": s} for i, s in enumerate(self._table.strings)]
        for chunk in _chunks(strings):
            yield {"type": "string_table", **base, "strings": chunk}
        for chunk in _chunks(self._frames):
            yield {"type": "frame_table", **base, "frames": chunk}
        entries = (
            {"frame_id": f["frame_id"], "self": self._self[f["frame_id"]], "cumulative": self._cumulative[f["frame_id"]]}
            for f in self._frames
        )
        for chunk in _chunks(entries):
            yield {"type": "agg", **base, "kind": "frame", "scope": "final", "samples_total": self._total,
                   "entries": chunk}
        yield {"type": "end", **base, "samples_total": self._total}

    def dump(self, fh: BinaryIO) -> None:
        for record in self.records():
            fh.write(json.dumps(record, separators=(",", ":")).encode("ascii") + b"\n")


def location_fields(frame: Frame) -> dict[str, int]:
    """`line`, plus `end_line`/`col`/`end_col` only where known (Tachyon's rules)."""
    fields = {"line": frame.lineno}
    if frame.end_lineno > 0:
        fields["end_line"] = frame.end_lineno
    if frame.col >= 0:
        fields["col"] = frame.col
    if frame.end_col >= 0:
        fields["end_col"] = frame.end_col
    return fields


def _chunks(items: Iterable[Any]) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == CHUNK_SIZE:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
