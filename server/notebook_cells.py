"""Which notebook cell a profile's file is: ipykernel's cell file names, computed from cell text.

ipykernel compiles each cell under a made-up file name, `<tmp>/ipykernel_<kernel pid>/<N>.py`,
where N is the 32-bit MurmurHash2 (x86) of the cell's UTF-8 source with a fixed seed. The
same hash of an open cell's text therefore names the profile file that cell's samples went to;
no file is ever read (the kernel writes none unless its debugger is on). A kernel started with
IPYKERNEL_CELL_NAME set names every cell alike: its cells cannot be told apart, and get no heat.

A cell is often edited after it ran. `NotebookCells` keeps, per cell, the recent texts the
editor sent (a text that got samples is kept for good): when the current text names no profile
file but an earlier text of the cell does, the cell is matched to that earlier file and marked
stale, its heat placed on the lines whose code is unchanged (server/documents.py does that with
its line tracker) and the whole cell flagged "stale: cell changed since it ran".
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable

KERNEL_CELL_SEED = 0xC70F6907  # the seed ipykernel hashes cell sources with
STALE_CELL = "stale: cell changed since it ran"
_MASK = 0xFFFFFFFF
_M = 0x5BD1E995
_CELL_FILE = re.compile(r"(?:^|[\\/])ipykernel_\d+[\\/](\d+)\.py$")
_RECENT_TEXTS = 32  # per cell: texts that got no samples are dropped, oldest first, past this


def murmur2_32(data: bytes, seed: int) -> int:
    """MurmurHash2 (32-bit, little-endian word reads) of `data`."""
    h = (seed ^ len(data)) & _MASK
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = data[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def cell_hash(source: str) -> int:
    """The number ipykernel names a cell with this exact source by."""
    return murmur2_32(source.encode("utf-8", "surrogatepass"), KERNEL_CELL_SEED)


def cell_file_name(source: str, kernel_pid: int, tmp_dir: str) -> str:
    """The file name a kernel with this PID gives a cell with this source (its tmp dir given)."""
    return os.path.join(tmp_dir, f"ipykernel_{kernel_pid}", f"{cell_hash(source)}.py")


def kernel_cell_hash(filename: str) -> int | None:
    """The hash in an ipykernel cell file name, or None when `filename` is not one."""
    found = _CELL_FILE.search(filename)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class CellMatch:
    """The profile file a cell's heat comes from (None: no heat), the text that ran under it,
    and why its heat is stale (None: the cell's text is what ran)."""

    filename: str | None
    ran_text: str
    stale_reason: str | None = None


class NotebookCells:
    """Per open cell, the texts it had recently; cells matched to a profile's kernel files."""

    def __init__(self) -> None:
        self._texts: dict[str, OrderedDict[int, str]] = {}  # cell uri -> hash -> text, oldest first
        self._ran: dict[str, set[int]] = {}  # cell uri -> hashes that matched a profile file
        self._files: tuple[str, int, dict[int, str]] | None = None  # (view id, file count, hash -> file)
        self._matched: dict[str, str] = {}  # cell uri -> the profile file its heat came from last

    def is_cell(self, uri: str) -> bool:
        return uri in self._texts

    def seen(self, uri: str, text: str) -> None:
        """The cell has this text now (opened, or after an edit)."""
        texts = self._texts.setdefault(uri, OrderedDict())
        h = cell_hash(text)
        texts[h] = text
        texts.move_to_end(h)
        ran = self._ran.get(uri, set())
        loose = [old for old in texts if old not in ran]
        for old in loose[:max(0, len(loose) - _RECENT_TEXTS)]:
            del texts[old]

    def forget(self, uri: str) -> None:
        self._texts.pop(uri, None)
        self._ran.pop(uri, None)
        self._matched.pop(uri, None)

    def uri_for(self, filename: str) -> str | None:
        """The open cell whose heat comes from this profile file (as last matched), if any."""
        return next((uri for uri, name in self._matched.items() if name == filename), None)

    def _by_hash(self, view_id: str, filenames: list[str]) -> dict[int, str]:
        if self._files is None or self._files[0] != view_id or self._files[1] != len(filenames):
            by_hash: dict[int, str] = {}
            for name in filenames:
                h = kernel_cell_hash(name)
                if h is not None:
                    by_hash.setdefault(h, name)
            self._files = (view_id, len(filenames), by_hash)
        return self._files[2]

    def match(self, uri: str, text: str, view_id: str, filenames: Iterable[str]) -> CellMatch:
        """Where the cell's heat comes from in a profile with these files (a view's matcher's)."""
        files = self._by_hash(view_id, list(filenames))
        self.seen(uri, text)
        texts = self._texts[uri]
        for number, (h, old_text) in enumerate(reversed(texts.items())):
            filename = files.get(h)
            if filename is not None:
                self._ran.setdefault(uri, set()).add(h)
                self._matched[uri] = filename
                return CellMatch(filename, old_text, None if number == 0 else STALE_CELL)
        self._matched.pop(uri, None)
        return CellMatch(None, text)
