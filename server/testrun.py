"""`heatline.profileTest`: profile one pytest test as a run; `heatline.testAt`: the test at a line.

A test runs as `heatline run -m pytest PATH::NODE -q` (the same run as `heatline.run`, live heat
included) under the project's interpreter, from the project's root: where pytest would put its
rootdir (the nearest folder up from the test holding a project or pytest configuration file),
else the workspace folder holding the test. pytest belongs to the project, not to heatline: the
interpreter is asked whether it can import pytest before anything starts.
"""

from __future__ import annotations

import asyncio
import os
import tokenize
from typing import TYPE_CHECKING, Any

from pygls.uris import from_fs_path

from sampler.launcher import resolve_python
from sampler.sourcefiles import is_under

from .arguments import ProfileTestArgs, WhichTestArgs, parse
from .commands import _sampling_choices, command, launch
from .errors import CommandFailed, one_line
from .testlens import test_at as find_test

if TYPE_CHECKING:
    from .app import HeatlineServer

# Files that mark a project's root for pytest (its ini files) or for packaging tools.
ROOT_MARKERS = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg", "setup.py")
PYTEST_CHECK_TIMEOUT_S = 60.0
_NO_PYTEST = 3  # the check's exit status when pytest cannot be found
_CHECK = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('pytest') else {_NO_PYTEST})"


def project_root(path: str, workspace_roots: tuple[str, ...]) -> str:
    """The folder a test at `path` runs from: the nearest ancestor holding a root marker, not
    above the workspace folder holding the test; else that folder; else the test's folder."""
    folder = os.path.dirname(path)
    bounds = [root for root in workspace_roots if is_under(path, root)]
    bound = max(bounds, key=len) if bounds else None
    current = folder
    while True:
        if any(os.path.isfile(os.path.join(current, marker)) for marker in ROOT_MARKERS):
            return current
        if bound is not None and os.path.normpath(current) == os.path.normpath(bound):
            return bound
        parent = os.path.dirname(current)
        if parent == current:
            return bound or folder
        current = parent


async def check_pytest(python: str, cwd: str) -> None:
    """Refuse, in one line, an interpreter that cannot import pytest."""
    try:
        proc = await asyncio.create_subprocess_exec(
            python, "-c", _CHECK, cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(proc.communicate(), PYTEST_CHECK_TIMEOUT_S)
    except OSError as exc:
        raise CommandFailed(f"could not start {python}: {exc.strerror or exc}") from None
    except asyncio.TimeoutError:
        proc.kill()
        raise CommandFailed(f"{python} did not say within {PYTEST_CHECK_TIMEOUT_S:.0f} s whether it has pytest") from None
    if proc.returncode == _NO_PYTEST:
        raise CommandFailed(f"pytest is not installed for {python}: install it with `{python} -m pip install pytest`")
    if proc.returncode != 0:
        said = err.decode(errors="replace").strip()
        detail = one_line(said.splitlines()[-1]) if said else f"exit status {proc.returncode}"
        raise CommandFailed(f"{python} failed to start: {detail}")


def _source(ls: HeatlineServer, path: str) -> str:
    """The text of `path`: as the editor holds it when open, else from disk."""
    doc = ls.workspace.text_documents.get(from_fs_path(path) or "")
    if doc is not None:
        return doc.source
    try:
        with tokenize.open(path) as fh:
            return fh.read()
    except (OSError, SyntaxError, UnicodeDecodeError) as err:
        raise CommandFailed(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None


@command("heatline.profileTest")
async def profile_test(ls: HeatlineServer, name: str, args: list) -> dict[str, Any]:
    a = parse(name, ProfileTestArgs, args)
    path = ls.user_path(a.path)
    if not os.path.isfile(path):
        raise CommandFailed(f"no such test file: {path}")
    node = a.node.strip()
    if not node or node.startswith("-") or "\n" in node:
        raise CommandFailed(f"{name}: 'node' must be a test's id in the file, such as test_a or TestA::test_b, not {a.node!r}")
    cwd = ls.user_path(a.cwd) if a.cwd else project_root(path, ls.roots)
    if not os.path.isdir(cwd):
        raise CommandFailed(f"the working directory {cwd} does not exist")
    chosen = _sampling_choices(ls, name, a)
    python = resolve_python(a.python or ls.settings.python_path)
    await check_pytest(python, cwd)
    shown = os.path.relpath(path, cwd) if is_under(path, cwd) else path
    test_id = f"{shown}::{node}"
    return await launch(ls, a, chosen, ["-m", "pytest", test_id, "-q"], test_id, cwd, python)


@command("heatline.testAt")
async def test_at(ls: HeatlineServer, name: str, args: list) -> dict[str, Any] | None:
    a = parse(name, WhichTestArgs, args)
    path = ls.user_path(a.path)
    item = find_test(path, _source(ls, path), a.line)
    return None if item is None else {"path": path, "node": item.node, "kind": item.kind}
