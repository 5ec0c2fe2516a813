"""A pytest test file for `heatline.profileTest` and the test lenses (tests/test_testlens.py).

`test_split` gives 70% of its loop turns to `heavy()` and 30% to `light()`, counted, not timed
(a spin until a deadline lets preemption decide the split on a loaded machine): the call lines
in the test carry 70% and 30% of the test's time. The rest of the file is there for the lenses:
a parametrized test, a class of tests, an async test and a `__main__` block.
"""
import asyncio
import os

import pytest

ROUNDS = int(os.environ.get("SPLIT_ROUNDS", "36"))  # fewer where only the shape matters
TURNS = 10_000  # loop turns per share point: ~1.5 s in all on a 2-core CI machine


def heavy(n):
    total = 0
    for i in range(n):
        total += i % 7  # heavy line
    return total


def light(n):
    total = 0
    for i in range(n):
        total += i % 5  # light line
    return total


def test_split():
    for _ in range(ROUNDS):
        heavy(70 * TURNS)  # 70% of the test
        light(30 * TURNS)  # 30% of the test


@pytest.mark.parametrize("n", [1, 2])
def test_params(n):
    assert light(n) >= 0


class TestGroup:
    def test_inside(self):
        assert heavy(3) == 3

    def helper(self):
        return 1

    async def test_async_inside(self):
        await asyncio.sleep(0)


async def test_async():
    await asyncio.sleep(0)


def not_a_test():
    return 0


if __name__ == "__main__":
    test_split()
