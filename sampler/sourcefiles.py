"""What a profile's filenames are, and what their source says: the one place for both.

Classification is by path shape only, because the target may have run another Python than
heatline's (its `sys.path` is unknown): `<string>`, `<frozen os>`, `~` (heatline's `<GC>`) and ''
name no file; `.../lib/python3.11/os.py`, `.../lib64/...`, `.../lib/pypy3.10/...`, Windows
`...\\Lib\\os.py` and a zipped `python311.zip/...` are the standard library (as is a `<frozen x>`
module); `site-packages/` and `dist-packages/` are installed packages; the rest is the user's.

Definitions: one parse of a source gives every def, class, lambda and comprehension with its
qualified name and lines; `Definitions.innermost` and `def_line` map a sampled (function, line)
to its definition. Parses are cached by text, files by path, mtime and size, so a document or
file that has not changed is never parsed twice.
"""

from __future__ import annotations

import ast
import functools
import io
import os
import re
import stat
import sysconfig
import tokenize
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable

from .model import SYNTHETIC_FILENAME

PROJECT, STDLIB, SITE, OTHER = "project", "stdlib", "site", "other"

MAX_SOURCE_BYTES = 32 * 1024 * 1024  # a bigger "source file" is not one

_SITE_RE = re.compile(r"(?:^|/)(?:site|dist)-packages/")
_STDLIB_RE = re.compile(
    r"(?:^|/)(?:lib|lib64)/(?:python|pypy)\d+(?:\.\d+)?[a-z]*/|(?:^|/)Lib/|/python\d+\.zip/"
)
_MODULE_SUFFIXES = (".py", ".pyw", ".pyi")


# -- classification -------------------------------------------------------------------------------


def is_source_file(filename: str) -> bool:
    """Whether `filename` can name a file on disk: not '', `~` (<GC>) or `<string>`-like."""
    return not (
        not filename or filename == SYNTHETIC_FILENAME or (filename.startswith("<") and filename.endswith(">"))
    )


@functools.lru_cache(maxsize=None)
def _profiler_stdlib_dirs() -> tuple[str, ...]:
    """The profiler's own stdlib directories: only a hint, the target may be another Python."""
    dirs = []
    for key in ("stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.append(os.path.join(os.path.realpath(path), ""))
    return tuple(dict.fromkeys(dirs))


def _last_match(pattern: re.Pattern[str], path: str) -> re.Match[str] | None:
    match = None
    for match in pattern.finditer(path):
        pass
    return match


def library_kind(filename: str) -> str | None:
    """SITE or STDLIB for a library file (a `<frozen x>` module is the stdlib's), else None."""
    if filename.startswith("<frozen "):
        return STDLIB
    if not is_source_file(filename):
        return None
    path = filename.replace("\\", "/")
    if _SITE_RE.search(path):
        return SITE
    if _STDLIB_RE.search(path) or filename.startswith(_profiler_stdlib_dirs()):
        return STDLIB
    return None


def library_path(filename: str) -> str | None:
    """The part of a library file's path below its site-packages or stdlib directory."""
    path = filename.replace("\\", "/")
    match = _last_match(_SITE_RE, path) or _last_match(_STDLIB_RE, path)
    return path[match.end():] if match is not None else None


def is_under(path: str, root: str) -> bool:
    if not os.path.isabs(path):
        return False
    root = root.rstrip("/") + "/"
    return root == "/" or path.startswith(root)


def classify(filename: str, project_roots: tuple[str, ...]) -> str:
    """PROJECT, STDLIB, SITE or OTHER (a pseudo file, or a file outside every project root)."""
    kind = library_kind(filename)
    if kind is not None:
        return kind
    if is_source_file(filename) and any(is_under(filename, root) for root in project_roots):
        return PROJECT
    return OTHER


def display_path(filename: str, group: str, project_roots: tuple[str, ...]) -> str:
    """A file's name for lists: relative to its project root or library directory."""
    if group == PROJECT:
        for root in sorted(project_roots, key=len, reverse=True):
            if is_under(filename, root):
                return os.path.relpath(filename, root) if root != "/" else filename
    if group in (SITE, STDLIB) and is_source_file(filename):
        rel = library_path(filename)
        if rel is not None:
            return rel
    return filename


def short_filename(filename: str) -> str:
    """A file's basename (a name with no directory stays itself)."""
    return os.path.basename(filename) or filename


def display_names(filenames: Iterable[str]) -> dict[str, str]:
    """Each file's name in a table of files: its basename, lengthened by parent directories only where two files share one."""
    groups: dict[str, list[str]] = {}
    for filename in dict.fromkeys(filenames):
        groups.setdefault(short_filename(filename), []).append(filename)
    names = {}
    for base, group in groups.items():
        if len(group) == 1:
            names[group[0]] = base
            continue
        split = [f.replace("\\", "/").split("/") for f in group]
        depth = 2
        while True:
            suffixes = ["/".join(parts[-depth:]) for parts in split]
            if len(set(suffixes)) == len(group) or depth >= max(map(len, split)):
                break
            depth += 1
        names.update(zip(group, suffixes))
    return names


def module_name(filename: str) -> str:
    """A dotted module name guessed from a path (site-packages, the stdlib, else the file stem).

    Only the path is known (the target's `sys.path` is not), so a project's own files show as
    their file stem.
    """
    if not is_source_file(filename):
        return filename
    rel = library_path(filename) if library_kind(filename) else None
    if rel is None:
        rel = os.path.basename(filename.replace("\\", "/"))
    for ext in _MODULE_SUFFIXES:
        if rel.endswith(ext):
            rel = rel[: -len(ext)]
            break
    parts = [p for p in rel.split("/") if p]
    if len(parts) > 1 and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or filename


def project_roots(
    cwd: str | None, script_files: Iterable[str], filenames: Iterable[str]
) -> tuple[tuple[str, ...], str]:
    """The directories whose files count as Project, and a sentence saying how they were chosen.

    The target's working directory when it is known and the directories of the scripts at the
    bottom of its stacks (its `sys.path[0]`); a replayed profile without either falls back to the
    common directory of its files outside the libraries.
    """
    scripts = sorted({
        os.path.dirname(f) for f in script_files
        if is_source_file(f) and os.path.isabs(f) and library_kind(f) is None
    })
    roots: list[str] = []
    reasons = []
    if cwd:
        roots.append(cwd)
        reasons.append("the target's working directory")
    extra = [d for d in scripts if not any(is_under(os.path.join(d, "x"), r) for r in roots)]
    if extra:
        roots.extend(extra)
        reasons.append("the directory of the script it ran" if len(scripts) == 1 else "the directories of the scripts it ran")
    if roots:
        return tuple(roots), "files under " + " and ".join(reasons)
    own = [f for f in filenames if is_source_file(f) and os.path.isabs(f) and library_kind(f) is None]
    if not own:
        return (), "no file lies outside the standard library and site-packages"
    root = os.path.commonpath([os.path.dirname(f) for f in own])
    return (root,), (
        "the target's working directory is unknown (a replayed profile), so: files under the "
        "common directory of the profile's files outside the standard library and site-packages"
    )


# -- definitions -----------------------------------------------------------------------------------

FUNCTION, CLASS, ANONYMOUS = "function", "class", "anonymous"

_ANONYMOUS_NODES = {
    ast.Lambda: "<lambda>",
    ast.GeneratorExp: "<genexpr>",
    ast.ListComp: "<listcomp>",
    ast.SetComp: "<setcomp>",
    ast.DictComp: "<dictcomp>",
}


@dataclass(frozen=True)
class Definition:
    name: str  # as a frame's funcname ends: "run", "<lambda>"
    qualname: str  # Python's: "Worker.run", "outer.<locals>.inner"
    kind: str  # FUNCTION (def, async def), CLASS or ANONYMOUS (lambda, comprehension)
    def_line: int  # 1-based line of the `def`/`class` keyword (decorators are above it)
    end_line: int
    first_line: int  # first decorator line: a call's first instruction can report it


class Definitions:
    """Every definition of one source, and the rules mapping a frame to one of them."""

    def __init__(self, source: str) -> None:
        self._lines: list[str] | None = None
        self._source = source
        self.parsed = True
        try:
            with warnings.catch_warnings():  # invalid escapes and the like: not ours to report
                warnings.simplefilter("ignore")
                tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: null bytes
            self.parsed = False  # newer syntax than the profiler's Python, say
            self.all: list[Definition] = []
        else:
            self.all = _definitions(tree)
        self._by_name: dict[str, list[Definition]] = {}
        for d in self.all:
            self._by_name.setdefault(d.name, []).append(d)

    @functools.cached_property
    def functions(self) -> list[Definition]:
        """Every def/async def, by def line then qualified name."""
        return sorted((d for d in self.all if d.kind == FUNCTION), key=lambda d: (d.def_line, d.qualname))

    def innermost(self, funcname: str, lineno: int, kinds: tuple[str, ...] = (FUNCTION, CLASS, ANONYMOUS)) -> Definition | None:
        """The innermost definition named like the frame's function (the last part of a
        qualname) whose lines, decorators included, hold the frame's line."""
        best = None
        for d in self._by_name.get(funcname.rsplit(".", 1)[-1], ()):
            if d.kind in kinds and d.first_line <= lineno <= d.end_line and (best is None or d.first_line > best.first_line):
                best = d
        return best

    def def_line(self, funcname: str, lineno: int) -> int | None:
        """The line of the definition of a frame's function: 1 for a module body; a text
        search back from the line when the source does not parse."""
        name = funcname.rsplit(".", 1)[-1]
        if name == "<module>":
            return 1 if self._source else None
        if self.parsed:
            found = self.innermost(name, lineno)
            return found.def_line if found is not None else None
        if not name.isidentifier():
            return None
        lines = self._source.split("\n")
        pattern = re.compile(r"\s*(?:async\s+)?(?:def|class)\s+" + re.escape(name) + r"\b")
        for index in range(min(lineno, len(lines)) - 1, -1, -1):
            if pattern.match(lines[index]):
                return index + 1
        return None


def _definitions(tree: ast.AST) -> list[Definition]:
    out: list[Definition] = []
    todo: list[tuple[ast.AST, str]] = [(tree, "")]  # (node, qualname prefix of its children)
    while todo:
        node, prefix = todo.pop()
        for child in ast.iter_child_nodes(node):
            child_prefix = prefix
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qualname = prefix + child.name
                first = min([child.lineno] + [dec.lineno for dec in child.decorator_list])
                kind = CLASS if isinstance(child, ast.ClassDef) else FUNCTION
                out.append(Definition(child.name, qualname, kind, child.lineno, child.end_lineno or child.lineno, first))
                child_prefix = qualname + ("." if kind == CLASS else ".<locals>.")
            else:
                name = _ANONYMOUS_NODES.get(type(child))
                if name is not None:
                    end = child.end_lineno or child.lineno
                    out.append(Definition(name, prefix + name, ANONYMOUS, child.lineno, end, child.lineno))
            todo.append((child, child_prefix))
    return out


_PARSE_CACHE_SIZE = 64  # one entry per text: every edit of a document makes a new one
_parsed: OrderedDict[str, Definitions] = OrderedDict()


def definitions(source: str) -> Definitions:
    """The definitions of `source`, parsed once per distinct text (a small LRU cache)."""
    # Keyed on the text itself: str caches its hash, and two texts never share an entry.
    found = _parsed.get(source)
    if found is not None:
        _parsed.move_to_end(source)
        return found
    found = _parsed[source] = Definitions(source)
    if len(_parsed) > _PARSE_CACHE_SIZE:
        _parsed.popitem(last=False)
    return found


# -- reading files ---------------------------------------------------------------------------------


class SourceUnreadable(Exception):
    """A source file that cannot be shown: `reason` says why ("it is not a regular file"), or
    `os_error` is the error reading it gave."""

    def __init__(self, reason: str = "", os_error: str = "") -> None:
        super().__init__(reason or os_error)
        self.reason = reason
        self.os_error = os_error


@dataclass
class SourceText:
    lines: list[str]  # as Python numbers them: split at \n, \r\n and \r only
    mtime: float

    @functools.cached_property
    def definitions(self) -> Definitions:
        return definitions("\n".join(self.lines) + "\n" if self.lines else "")


_READ_CACHE_SIZE = 64
_read: OrderedDict[tuple[str, int, int, int, int], SourceText] = OrderedDict()


def read_source(path: str) -> SourceText:
    """The text of a source file, decoded as Python would; cached by path, mtime and size.

    Never blocks on a FIFO or device; raises `SourceUnreadable`.
    """
    try:
        st = os.stat(path)
    except OSError as err:
        raise SourceUnreadable(os_error=str(err.strerror or err)) from None
    if not stat.S_ISREG(st.st_mode):
        raise SourceUnreadable("it is not a regular file")
    if st.st_size > MAX_SOURCE_BYTES:
        raise SourceUnreadable(f"it is larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MiB")
    key = (path, st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
    found = _read.get(key)
    if found is not None:
        _read.move_to_end(key)
        return found
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SOURCE_BYTES + 1)
    except OSError as err:
        raise SourceUnreadable(os_error=str(err.strerror or err)) from None
    found = _read[key] = SourceText(_decode(data), st.st_mtime)
    if len(_read) > _READ_CACHE_SIZE:
        _read.popitem(last=False)
    return found


def def_line_in(path: str, funcname: str, lineno: int) -> int | None:
    """The `def` line of the function that ran `lineno` of the file at `path`; None when the file
    cannot be read or holds no such definition."""
    try:
        return read_source(path).definitions.def_line(funcname, lineno)
    except SourceUnreadable:
        return None


def _decode(data: bytes) -> list[str]:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except (SyntaxError, LookupError):
        encoding = "utf-8"
    try:
        text = data.decode(encoding, "replace")
    except LookupError:
        text = data.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    # Python numbers lines at \n, \r\n and \r only (not at form feeds or U+2028).
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines
