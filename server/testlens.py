"""Where tests are in a document, and the "Profile" lenses above them.

Read from the document's text (what the editor holds, saved or not) with `ast`, by pytest's
default collection rules: in a file named `test_*.py` or `*_test.py`, module-level functions
whose name starts with `test` (async ones included) and classes whose name starts with `Test`
and that have no `__init__`, with their `test*` methods and nested `Test*` classes. A test's
node id is what follows `path::` on pytest's command line: `test_a`, `TestA::test_b`; a
parametrized test's id without parameters runs all of them. An `if __name__ == "__main__":`
block at module level, in any Python file, gets a lens that runs the file as a script.
A text that does not parse has no test lenses.
"""

from __future__ import annotations

import ast
import functools
import os
from dataclasses import dataclass

from lsprotocol import types

PROFILE_TEST_COMMAND = "heatline.profileTest"
RUN_COMMAND = "heatline.run"
LENS_TITLE = "Profile"
FUNCTION, CLASS = "function", "class"


@dataclass(frozen=True)
class FoundTest:
    node: str  # pytest's node id within the file: "test_a", "TestA::test_b"
    kind: str  # FUNCTION or CLASS
    line: int  # 0-based: the first decorator's line, else the def/class line
    end_line: int  # 0-based, inclusive


@dataclass(frozen=True)
class ScannedFile:
    tests: tuple[FoundTest, ...]  # in source order, a class before its methods
    main_lines: tuple[int, ...]  # 0-based lines of module-level `if __name__ == "__main__":`


def is_test_file(path: str) -> bool:
    """A file pytest collects by default."""
    name = os.path.basename(path)
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def _first_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(d.lineno for d in decorators)]) - 1  # type: ignore[attr-defined]


def _item(node: ast.AST, name: str, kind: str) -> FoundTest:
    return FoundTest(name, kind, _first_line(node), (node.end_lineno or node.lineno) - 1)  # type: ignore[attr-defined]


def _is_test_class(node: ast.ClassDef) -> bool:
    # pytest skips (with a warning) a Test class with its own __init__
    return node.name.startswith("Test") and not any(
        isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and child.name == "__init__" for child in node.body
    )


def _tests_in(body: list[ast.stmt], prefix: str, out: list[FoundTest]) -> None:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            out.append(_item(node, prefix + node.name, FUNCTION))
        elif isinstance(node, ast.ClassDef) and _is_test_class(node):
            out.append(_item(node, prefix + node.name, CLASS))
            _tests_in(node.body, f"{prefix}{node.name}::", out)


def _is_main_check(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":`, either way round."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = (test.left, test.comparators[0])
    return any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and any(
        isinstance(s, ast.Constant) and s.value == "__main__" for s in sides
    )


@functools.lru_cache(maxsize=32)
def scan(source: str, test_file: bool) -> ScannedFile:
    """The tests (in a test file) and `__main__` blocks of a source text; none if it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ScannedFile((), ())
    tests: list[FoundTest] = []
    if test_file:
        _tests_in(tree.body, "", tests)
    mains = tuple(node.lineno - 1 for node in tree.body if _is_main_check(node))
    return ScannedFile(tuple(tests), mains)


def tests_of(path: str, source: str) -> ScannedFile:
    return scan(source, is_test_file(path))


def test_at(path: str, source: str, line: int) -> FoundTest | None:
    """The innermost test containing 0-based `line`: a function, else a class."""
    found = None
    for item in tests_of(path, source).tests:
        if item.line <= line <= item.end_line:
            # source order puts a class before what it holds: a later match is inside
            found = item
    return found


def test_lenses(path: str, source: str) -> list[types.CodeLens]:
    """A "Profile" lens above each test and each `__main__` block."""
    scanned = tests_of(path, source)
    lenses = []
    for item in scanned.tests:
        lenses.append(_lens(item.line, PROFILE_TEST_COMMAND, {"path": path, "node": item.node}))
    for line in scanned.main_lines:
        lenses.append(_lens(line, RUN_COMMAND, {"script": path}))
    return lenses


def _lens(line: int, command: str, argument: dict[str, str]) -> types.CodeLens:
    pos = types.Position(line=line, character=0)
    return types.CodeLens(range=types.Range(start=pos, end=pos),
                          command=types.Command(title=LENS_TITLE, command=command, arguments=[argument]))
