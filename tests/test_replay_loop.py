"""The one replay loop (`sampler/replay.py`) and what `run`/`attach` record about the target.

Replaying into an aggregating output counts samples per (thread, status, stack) in the file's
frame ids and decodes REPEAT runs in blocks; the Profile it builds must be exactly the one that
feeding every decoded sample in file order builds (same frame ids, same stack and status order,
same weights), and a damaged file must fail with the message the sample stream gives.
"""

from __future__ import annotations

import os
import random
import sys

import pytest

from sampler.commands import attached_identity, launched_identity
from sampler.errors import ProfileFileError
from sampler.model import Frame, Profile, ThreadSample
from sampler.replay import open_binary_profile, replay
from test_binary_format import encode, mutate, rich_ticks, seed_files, stats  # noqa: F401 - seed_files: a fixture

F_A = Frame("/src/app.py", "a", 10, 10, 4, 9)
F_B = Frame("/src/app.py", "b", 20, 21, 0, 3)
F_C = Frame("/src/lib.py", "c", 5)


def fed_one_by_one(path) -> Profile:
    """The Profile every decoded sample makes, fed in file order with its timestamp."""
    reader = open_binary_profile(path)
    profile = Profile(reader.run_stats())
    done = 0
    for ts, threads, weight in reader.samples():
        profile.collect(ts, threads, weight)
        done += weight
    reader.check_complete(done)
    return profile


def replayed(path) -> Profile:
    reader = open_binary_profile(path)
    profile = Profile(reader.run_stats())
    assert replay(reader, profile) == reader.sample_count
    return profile


def state(profile: Profile) -> tuple:
    """Everything outputs read, with dict orders (frame ids, first-seen stacks and statuses)."""
    return (
        list(profile.frames),
        list(profile.stacks.items()),
        [(tid, list(counts.items())) for tid, counts in profile.status_counts.items()],
    )


def outcome(build, path) -> object:
    try:
        return state(build(path))
    except ProfileFileError as err:
        return str(err)


def odd_ticks(n: int = 3000, seed: int = 7) -> list:
    """Long repeats whose timestamp deltas take 1 to 10 bytes and whose statuses use all 8 bits
    (the blocks take neither), between stack changes; two threads."""
    rng = random.Random(seed)
    stacks = [(F_A, F_B), (F_C, F_A, F_B), (F_B,), ()]
    ts = 1_000_000
    ticks = []
    current = [stacks[0], stacks[1]]
    for i in range(n):
        kind = rng.random()
        if kind < 0.01:
            ts += rng.choice((2**40, 2**55, 2**57, 2**62))  # 7- to 9-byte deltas
        else:
            ts += rng.choice((1, 100, 127, 128, 500, 16_383, 16_384, 70_000))
        ts &= 2**64 - 1
        if rng.random() < 0.02:
            current[rng.randrange(2)] = rng.choice(stacks)
        status = rng.choice((0, 1, 3, 0x20, 0x7F)) if rng.random() < 0.97 else rng.choice((0x80, 0xC1, 0xFF))
        ticks.append((ts, [ThreadSample(11, status, current[0]), ThreadSample(12, 0x21, current[1], 1)]))
    return ticks


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_replay_builds_the_profile_every_sample_builds(tmp_path, compression):
    for name, ticks in (("rich", rich_ticks(400)), ("odd", odd_ticks())):
        path = tmp_path / f"{name}.bin"
        encode(path, ticks, compression=compression)
        assert state(replayed(path)) == state(fed_one_by_one(path)), name


def test_replay_of_real_runs_matches_the_sample_stream(tmp_path, seed_files):
    path = tmp_path / "seed.bin"
    for seed in seed_files:
        path.write_bytes(seed.data)
        assert outcome(replayed, path) == outcome(fed_one_by_one, path)


def test_damaged_files_fail_as_the_sample_stream_does(tmp_path, seed_files):
    rng = random.Random(20261205)
    path = tmp_path / "damaged.bin"
    failures = 0
    for i in range(600):
        path.write_bytes(mutate(seed_files[i % len(seed_files)], rng))
        try:
            open_binary_profile(path)
        except ProfileFileError:
            continue
        expected = outcome(fed_one_by_one, path)
        assert outcome(replayed, path) == expected, i
        failures += isinstance(expected, str)
    assert failures > 50  # the sample data really was damaged in many of them


def test_replay_reports_progress_up_to_the_total(tmp_path):
    path = tmp_path / "rich.bin"
    encode(path, rich_ticks(300))
    reader = open_binary_profile(path)
    seen: list[int] = []
    replay(reader, Profile(reader.run_stats()), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == reader.sample_count


def test_identity_of_a_launched_target(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text("pass\n")
    args = type("Args", (), {"module": False, "target": str(script), "args": ["x", "-y"], "python": sys.executable})
    cwd, argv = launched_identity(args)
    assert cwd == os.getcwd()
    assert argv[1:] == [str(script), "x", "-y"] and os.path.basename(argv[0]).startswith("python")
    args.module, args.target = True, "pkg.tool"
    assert launched_identity(args)[1][1:] == ["-m", "pkg.tool", "x", "-y"]


def test_identity_of_an_attached_process():
    cwd, argv = attached_identity(os.getpid())
    assert cwd == os.getcwd()
    assert argv and "pytest" in " ".join(argv)
    assert attached_identity(2**22 + 12345) == ("", [])  # no such process: empty, as on replay
