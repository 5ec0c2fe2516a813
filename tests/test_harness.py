"""pytest's own frames folded into one `<pytest>` frame (sampler/harness.py): the path rule on
the layouts pytest is installed in, the fold on stacks, and a real `heatline run -m pytest`."""

from __future__ import annotations

import os

import pytest
from conftest import TARGETS, has_func, heatline, host_minors, parse_collapsed, python_with_tools

from sampler.harness import HARNESS_FRAME, fold_harness, is_harness_file, runs_pytest
from sampler.lineindex import LineIndex
from sampler.model import GC_FRAME, Frame, Profile, RunStats, ThreadSample

PROJECT = os.path.join(TARGETS, "pytest_project")


@pytest.mark.parametrize("path", [
    "/home/u/proj/.venv/lib/python3.12/site-packages/_pytest/python.py",
    "/home/u/.pyenv/versions/3.10.13/lib/python3.10/site-packages/pluggy/_callers.py",
    "/usr/lib/python3/dist-packages/pytest/__main__.py",
    "C:\\Users\\u\\venv\\Lib\\site-packages\\_pytest\\runner.py",
    "/opt/conda/lib/python3.11/site-packages/pytest_asyncio/plugin.py",
    "/home/u/src/pytest/src/_pytest/main.py",  # a checkout of pytest itself
    "/venv/lib/python3.9/site-packages/py.py",
])
def test_harness_paths(path):
    assert is_harness_file(path)


@pytest.mark.parametrize("path", [
    "/home/u/proj/tests/test_app.py",
    "/home/u/proj/pytest/helpers.py",  # a project folder that happens to be named pytest
    "/home/u/proj/src/pluggy_like/core.py",
    "/venv/lib/python3.12/site-packages/numpy/core/numeric.py",
    "/usr/lib/python3.12/unittest/case.py",
])
def test_not_harness_paths(path):
    assert not is_harness_file(path)


@pytest.mark.parametrize("argv, expected", [
    (["/usr/bin/python3", "-m", "pytest", "tests", "-q"], True),
    (["python", "-X", "dev", "-m", "pytest"], True),
    (["python", "-mpytest"], True),
    (["/venv/bin/python", "/venv/bin/pytest", "-x"], True),
    (["/venv/bin/py.test"], True),
    (["python", "-m", "http.server"], False),
    (["python", "app.py", "-m", "pytest"], False),
    (["python", "-c", "import pytest"], False),
    ([], False),
])
def test_runs_pytest(argv, expected):
    assert runs_pytest(argv) is expected


SITE = "/v/lib/python3.12/site-packages"
USER = "/p/tests/test_x.py"


def f(filename: str, func: str, line: int = 1) -> Frame:
    return Frame(filename, func, line)


def test_fold_runs_and_passes_through_libraries():
    leaf_first = (
        f("/p/app.py", "work"), f(f"{SITE}/numpy/x.py", "np"), f(USER, "test_a"),
        f(f"{SITE}/_pytest/python.py", "pytest_pyfunc_call"), f(f"{SITE}/pluggy/_callers.py", "_multicall"),
        f("<frozen importlib._bootstrap>", "_load"), f(f"{SITE}/_pytest/main.py", "main"),
        f("/usr/lib/python3.12/runpy.py", "_run_module_as_main"),
    )
    folded = fold_harness(leaf_first)
    # the user's code and what it calls (an installed library too) keep their frames
    assert folded == leaf_first[:3] + (HARNESS_FRAME,)
    assert fold_harness(folded) is folded  # a folded stack stays as it is
    # pytest's own work is <pytest> alone; a <GC> on top stays a <GC>
    assert fold_harness((f("/usr/lib/python3.12/inspect.py", "sig"), f(f"{SITE}/_pytest/x.py", "c"))) == (HARNESS_FRAME,)
    assert fold_harness((GC_FRAME, f(f"{SITE}/_pytest/x.py", "c"))) == (GC_FRAME, HARNESS_FRAME)
    # the user's code calling into pytest (pytest.raises) shows a second group above it
    assert fold_harness((f(f"{SITE}/_pytest/python_api.py", "raises"), f(USER, "test_b"), f(f"{SITE}/_pytest/python.py", "call"))) \
        == (HARNESS_FRAME, f(USER, "test_b"), HARNESS_FRAME)
    # no harness: the stack itself
    plain = (f("/p/app.py", "work"), f("/usr/lib/python3.12/json/__init__.py", "loads"), f("/p/app.py", "<module>"))
    assert fold_harness(plain) is plain


def test_profile_folds_only_pytest_targets():
    stack = (f(USER, "test_a", 5), f(f"{SITE}/_pytest/python.py", "call"), f(f"{SITE}/pluggy/_hooks.py", "hook"))
    for argv, expected in ((["python", "-m", "pytest"], (f(USER, "test_a", 5), HARNESS_FRAME)), (["python", "app.py"], stack)):
        profile = Profile(RunStats(argv=argv))
        profile.collect(0, [ThreadSample(1, 0, stack)])
        assert [frames for _tid, frames, _w in profile.iter_stacks()] == [expected]
    # <pytest> is no line: the test's line keeps the heat, nothing else gets line heat
    index = LineIndex(Profile(RunStats(argv=["python", "-m", "pytest"])).iter_stacks())
    index.update([(1, (f(USER, "test_a", 5), HARNESS_FRAME), 3)])
    assert set(index.lines(USER)) == {5}


@pytest.mark.parametrize("interpreter", host_minors())
def test_real_pytest_run_shows_a_pytest_group(interpreter, tmp_path, monkeypatch):
    """Under each CPython (pytest 8 on 3.9, 9 on 3.10+; their launcher and entry frames differ)."""
    python = python_with_tools(interpreter)
    monkeypatch.setenv("SPLIT_ROUNDS", "4")  # the shape is checked here, not the shares
    out = str(tmp_path / "run.collapsed")
    result = heatline("run", "--python", python, "--collapsed", "-o", out, "-m", "pytest", "test_split.py::test_split",
                      "-q", "-p", "no:cacheprovider", cwd=PROJECT)
    assert result.returncode == 0, result.stderr
    rows = parse_collapsed(out)
    frames = [frame for _tid, stack, _c in rows for frame in stack]
    assert "<pytest>" in frames
    assert not [fr for fr in frames if any(part in fr for part in ("_pytest", "pluggy", "runpy"))]
    # the test's stacks sit right above one <pytest> frame, heavy() above the test
    test_rows = [stack for _tid, stack, _c in rows if has_func(stack, "test_split")]
    assert test_rows and all(stack[0] == "<pytest>" and stack[1].startswith("test_split.py:test_split:") for stack in test_rows)
    assert any(has_func(stack, "heavy") for stack in test_rows)
