"""Which profile filename an editor document shows, and which local file a profile filename is.

A profile names files as the target saw them: absolute or relative to its working directory,
through symlinks, or under another root entirely (taken in a container at /app, opened at
/home/me/proj). `PathMatcher` tries, in order: the same string; the same real path; a relative
name resolved against the target's cwd, then each workspace root; and last the one profile
filename sharing the longest path suffix (directory and file name at least) with the document.
A tie is no match: heat on the wrong file is worse than none. A live run's new files are
`add`ed to the matcher as they appear, so it is never rebuilt during a run.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

from sampler.sourcefiles import is_source_file

_MIN_SUFFIX = 2  # path components a suffix match needs: a file name alone is too common


def _parts(path: str) -> list[str]:
    return [p for p in os.path.normpath(path).split(os.sep) if p and p != "."]


def _realpath_rank(name: str) -> tuple[bool, str]:
    """Of two names of one real file, the lower ranked is shown: absolute first, then sorted."""
    return (not os.path.isabs(name), name)


def _common_suffix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(reversed(a), reversed(b)):
        if x != y:
            break
        n += 1
    return n


class PathMatcher:
    """Profile filenames <-> local documents for one profile; file system answers are cached
    for the matcher's life (one profile load, or one live run)."""

    def __init__(self, profile_filenames: Iterable[str], *, cwd: str | None = None, roots: Sequence[str] = ()) -> None:
        self.filenames: list[str] = []
        self._names: set[str] = set()
        self.cwd = cwd
        self.roots = list(roots)
        self._realpaths: dict[str, str] = {}
        self._isfile: dict[str, bool] = {}
        self._by_realpath: dict[str, str] | None = None
        self._by_basename: dict[str, list[tuple[str, list[str]]]] = {}
        self.add(profile_filenames)

    def add(self, profile_filenames: Iterable[str]) -> None:
        """Match these filenames too (a live run's new files): costs what is added."""
        new = sorted({name for name in profile_filenames if is_source_file(name)} - self._names)
        if not new:
            return
        self.filenames = sorted(self.filenames + new)
        self._names.update(new)
        for name in new:
            parts = _parts(name)
            if parts:
                candidates = self._by_basename.setdefault(parts[-1], [])
                candidates.append((name, parts))
                candidates.sort()  # as a build from all names at once orders them
        if self._by_realpath is not None:
            self._index_realpaths(self._by_realpath, new)

    # -- cached file system calls ----------------------------------------------------------

    def _realpath(self, path: str) -> str:
        real = self._realpaths.get(path)
        if real is None:
            real = self._realpaths[path] = os.path.realpath(path)
        return real

    def _is_file(self, path: str) -> bool:
        found = self._isfile.get(path)
        if found is None:
            found = self._isfile[path] = os.path.isfile(path)
        return found

    def _local(self, name: str) -> str | None:
        """The local path a profile filename stands for by rules 1-3: an absolute name itself;
        a relative one under the target's cwd, else under the first root that has it."""
        if os.path.isabs(name):
            return name
        bases = ([self.cwd] if self.cwd else []) + self.roots
        for base in bases:
            path = os.path.join(base, name)
            if self._is_file(path):
                return path
        return None

    def _realpath_index(self) -> dict[str, str]:
        """Real path -> profile filename; absolute names first, then the first in sorted order."""
        if self._by_realpath is None:
            self._by_realpath = {}
            self._index_realpaths(self._by_realpath, self.filenames)
        return self._by_realpath

    def _index_realpaths(self, index: dict[str, str], names: Iterable[str]) -> None:
        for name in names:
            local = self._local(name)
            if local is None:
                continue
            real = self._realpath(local)
            known = index.get(real)
            if known is None or _realpath_rank(name) < _realpath_rank(known):
                index[real] = name

    # -- the two directions ------------------------------------------------------------------

    def filename_for(self, doc_path: str) -> str | None:
        """The profile filename whose heat the document at `doc_path` (absolute) shows."""
        if not is_source_file(doc_path):
            return None
        if doc_path in self._names:
            return doc_path
        name = self._realpath_index().get(self._realpath(doc_path))
        if name is not None:
            return name
        return self._suffix_match(doc_path)

    def _suffix_match(self, doc_path: str) -> str | None:
        doc_parts = _parts(doc_path)
        if not doc_parts:
            return None
        doc_real = self._realpath(doc_path)
        best, best_len, tie = None, 0, False
        candidates = self._by_basename.get(doc_parts[-1], ())
        for name, parts in candidates:
            n = _common_suffix(doc_parts, parts)
            # A profile that kept only file names (collapsed stacks) cannot say more: a bare
            # name matches on its own, but only when no other profile file has that name.
            need = 1 if len(parts) == 1 and len(candidates) == 1 else _MIN_SUFFIX
            if n < need or n < best_len:
                continue
            # A name that is a real local file is that file and no other (rules 1-3 decide).
            local = self._local(name)
            if local is not None and self._is_file(local) and self._realpath(local) != doc_real:
                continue
            if n > best_len:
                best, best_len, tie = name, n, False
            else:
                tie = True
        return None if tie else best

    def doc_path_for(self, filename: str) -> str | None:
        """An existing local file for a profile filename (to open it), or None."""
        if not is_source_file(filename):
            return None
        local = self._local(filename)
        if local is not None and self._is_file(local):
            return local
        return self._local_by_suffix(filename)

    def _local_by_suffix(self, filename: str) -> str | None:
        """The file of another root: the longest suffix of `filename` (2 components at least)
        that exists under exactly one root, and that maps back to `filename` (so a jump lands
        on a document showing this file's heat)."""
        parts = _parts(filename)
        for n in range(len(parts), _MIN_SUFFIX - 1, -1):
            found = {
                self._realpath(path): path
                for root in self.roots
                for path in [os.path.join(root, *parts[-n:])]
                if self._is_file(path)
            }
            if len(found) > 1:
                return None
            if found:
                path = next(iter(found.values()))
                return path if self.filename_for(path) == filename else None
        return None
