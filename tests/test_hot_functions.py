"""`heatline.hotFunctions` in the real server on a real profile of tests/targets/two_paths.py with
70% of its work in slow_path and 30% in fast_path: the functions by self share, each on its
`def` line, then the ones only on the stack; bad arguments get one-line errors."""

from __future__ import annotations

import pytest
from pytest_lsp import LanguageClient

from conftest import favoured, heatline, target
from test_lsp_server import client, execute, expect_error  # noqa: F401 - `client` is the fixture

SLOW_DEF, FAST_DEF = 13, 6  # two_paths.py's `def slow_path` and `def fast_path`, 0-based


@pytest.fixture(scope="module")
def split_profile(tmp_path_factory) -> str:
    """two_paths.py for 1.5 s with 70% of each round's work in slow_path (counted, not timed),
    given the CPU ahead of other work: a target frozen on a loaded machine piles samples on
    whatever line it stopped at."""
    path = str(tmp_path_factory.mktemp("hot-functions") / "split.bin")
    result = heatline("run", "--binary", "-o", path, target("two_paths.py"), "0.7", "1.5", prefix=favoured())
    assert result.returncode == 0, result.stderr
    return path


async def test_hot_functions_by_self_share_on_their_def_lines(client: LanguageClient, split_profile):  # noqa: F811
    await expect_error(client, -32803, "heatline.hotFunctions")  # nothing loaded yet: said so
    await execute(client, "heatline.open", {"path": split_profile})
    funcs = await execute(client, "heatline.hotFunctions", {"count": 10})
    names = [f["function"] for f in funcs]
    assert names[:2] == ["slow_path", "fast_path"], funcs
    assert set(names[2:]) == {"main", "<module>"}, funcs  # on every stack, (nearly) no self time
    slow, fast = funcs[0], funcs[1]
    assert abs(slow["selfShare"] - 0.7) < 0.1 and abs(fast["selfShare"] - 0.3) < 0.1, funcs
    assert abs(slow["selfShare"] + fast["selfShare"] - 1) < 0.02, funcs
    assert slow["selfShare"] == slow["totalShare"] and slow["self"] == slow["total"]  # leaves: self is all
    assert (slow["line"], fast["line"]) == (SLOW_DEF, FAST_DEF)  # the def, not the first sampled line
    assert slow["path"] == target("two_paths.py") and slow["uri"].endswith("/two_paths.py")
    shares = [f["selfShare"] for f in funcs]
    assert shares == sorted(shares, reverse=True), funcs
    assert all(f["totalShare"] > 0.95 for f in funcs[2:]), funcs
    assert abs(slow["selfPct"] - 100 * slow["selfShare"]) < 0.01  # the same figures as heatline.hottest

    assert [f["function"] for f in await execute(client, "heatline.hotFunctions", 1)] == ["slow_path"]
    message = await expect_error(client, -32602, "heatline.hotFunctions", {"count": 0})
    assert message == "heatline.hotFunctions: argument 'count' must be at least 1, not 0"
    await expect_error(client, -32602, "heatline.hotFunctions", {"by": "total"})

    await execute(client, "heatline.clear")
    await expect_error(client, -32803, "heatline.hotFunctions")
