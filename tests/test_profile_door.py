"""`Profile` as the one door samples enter by: the launcher cut made once there, sinks fed the
cut samples, deltas since a mark, merging and building from parts, the identity-count path."""

from __future__ import annotations

import dataclasses
import gc
import json
import random
from types import SimpleNamespace

import pytest

import sampler.model as model
from sampler.live import LiveProfileReader, start_message
from sampler.model import GC_FRAME, HAS_GIL, MAIN_THREAD, ON_CPU, Frame, Profile, RunStats, ThreadSample
from sampler.sampling import SamplingLoop

LAUNCHER = Frame("/site/sampler/_coordinator.py", "main", 60)
RUNPY = Frame("<frozen runpy>", "_run_code", 88)
MAIN = Frame("/app/main.py", "<module>", 3)
WORK = Frame("/app/main.py", "work", 10)
LEAF = Frame("/app/lib.py", "leaf", 7)


def sample(tid: int, *frames: Frame, status: int = HAS_GIL) -> ThreadSample:
    return ThreadSample(tid, status, tuple(frames))


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[tuple[int, list[ThreadSample], int]] = []

    def collect(self, timestamp_us, threads, weight=1):
        self.ticks.append((timestamp_us, list(threads), weight))


def snapshot(profile: Profile) -> dict:
    """Everything a profile holds, by frame content (ids differ between profiles)."""
    frames = profile.frames
    return {
        "stacks": {(tid, tuple(frames[i] for i in ids)): w for (tid, ids), w in profile.stacks.items()},
        "status": {tid: dict(c) for tid, c in profile.status_counts.items()},
        "names": dict(profile.thread_names),
    }


@pytest.fixture
def strip_calls(monkeypatch):
    """How often the launcher cut runs."""
    calls = []
    real = model.strip_internal_frames

    def counting(frames):
        calls.append(frames)
        return real(frames)

    monkeypatch.setattr(model, "strip_internal_frames", counting)
    return calls


# -- the launcher cut ---------------------------------------------------------------------------


def test_launcher_frames_are_cut_where_samples_enter(strip_calls):
    profile = Profile()
    profile.add(sample(1, WORK, MAIN, RUNPY, LAUNCHER))
    profile.collect(0, [sample(1, LAUNCHER)])  # all plumbing: counted, with no frames
    profile.add(sample(2, LEAF, WORK))
    assert LAUNCHER not in profile.frames and RUNPY not in profile.frames
    assert sorted(profile.iter_stacks()) == [(1, (), 1), (1, (WORK, MAIN), 1), (2, (LEAF, WORK), 1)]
    # totals and status counts still count the plumbing-only sample, as they always did
    assert profile.total_weight == 3 and profile.status_counts == {1: {HAS_GIL: 2}, 2: {HAS_GIL: 1}}
    assert len(strip_calls) == 3


def test_cut_once_per_distinct_stack_whatever_the_door(strip_calls):
    profile = Profile()
    sink = Recorder()
    profile.add_sink(sink)
    for i in range(300):
        # fresh objects with equal frames (as the pure walker makes them) and one reused object
        profile.collect(i, [sample(1, WORK, MAIN, LAUNCHER), sample(2, LEAF, GC_FRAME)])
        profile.add(sample(1, WORK, MAIN, LAUNCHER))
    assert profile.stacks  # folded
    assert len(strip_calls) == 2  # one per distinct stack, for the sinks and the tables together
    assert profile.stacks[(1, (profile.frame_id(WORK), profile.frame_id(MAIN)))] == 600


def test_sinks_get_cut_samples_after_the_profile_counted_them():
    profile = Profile()
    seen_total = []

    class Sink(Recorder):
        def collect(self, timestamp_us, threads, weight=1):
            seen_total.append(profile.total_weight)
            super().collect(timestamp_us, threads, weight)

    sink = Sink()
    profile.add_sink(sink)
    plain = sample(2, LEAF, WORK, status=ON_CPU)
    profile.collect(10, [sample(1, WORK, MAIN, RUNPY, LAUNCHER, status=MAIN_THREAD), plain], 3)
    profile.collect(20, [sample(1, GC_FRAME, LAUNCHER)])
    (t1, first, w1), (t2, second, w2) = sink.ticks
    assert (t1, w1, t2, w2) == (10, 3, 20, 1)
    assert first == [sample(1, WORK, MAIN, status=MAIN_THREAD), plain]
    assert first[1] is plain  # nothing to cut: the very object, for identity-keyed caches
    assert second == [sample(1)]  # a <GC> on launcher code alone is the launcher's
    assert seen_total == [6, 7]
    profile.remove_sink(sink)
    profile.collect(30, [plain])
    assert len(sink.ticks) == 2


def test_sampling_loop_hands_samples_only_to_the_profile():
    ticks = [(1000 + i, [sample(1, WORK, MAIN, LAUNCHER), sample(2, LEAF)]) for i in range(50)]

    class Source:
        done = False

        def run(self, next_tick, interval, stop, max_ticks):
            batch, self.done = ([] if self.done else ticks), True
            return SimpleNamespace(ticks=batch, attempts=len(batch), errors=0, gone=True, next_tick_ns=next_tick,
                                   cost_total_ns=0, cost_min_ns=0, cost_max_ns=0)

        def alive(self):
            return False

        def thread_names(self):
            return {1: "MainThread"}

    profile = Profile()
    sink = Recorder()
    stats = SamplingLoop(Source(), profile, interval_usec=1000, sinks=[sink]).run()
    assert stats.samples == 50 and profile.total_weight == 100
    assert profile.thread_names == {1: "MainThread", 2: ""}
    assert [t for t, _threads, _w in sink.ticks] == [t for t, _ in ticks]
    assert all(threads[0].frames == (WORK, MAIN) for _t, threads, _w in sink.ticks)


# -- the identity-count path --------------------------------------------------------------------


class HashCountingFrame(Frame):
    hashes = 0

    def __hash__(self):
        HashCountingFrame.hashes += 1
        return super().__hash__()


@pytest.mark.parametrize("with_sink", [False, True])
def test_a_repeated_sample_object_is_counted_without_hashing_its_frames(with_sink):
    deep = tuple(HashCountingFrame("/app/x.py", f"f{i}", i) for i in range(20))
    repeated = ThreadSample(1, HAS_GIL, deep + (LAUNCHER,))
    profile = Profile()
    if with_sink:
        profile.add_sink(Recorder())
    profile.collect(0, [repeated])
    assert profile.stacks  # the first one folded in: its frames hashed while interning
    HashCountingFrame.hashes = 0
    for i in range(5000):
        profile.collect(i, [repeated])
    assert HashCountingFrame.hashes == 0
    assert len(profile._pending) == 1  # one entry, counted up by identity
    assert profile.stacks[(1, tuple(range(20)))] == 5001
    assert HashCountingFrame.hashes <= 2 * len(deep)  # the fold looks the stack up once


# -- deltas since a mark ------------------------------------------------------------------------


def difference(after: dict, before: dict) -> dict:
    stacks = {k: w - before["stacks"].get(k, 0) for k, w in after["stacks"].items()}
    status = {}
    for tid, counts in after["status"].items():
        for flags, n in counts.items():
            gained = n - before["status"].get(tid, {}).get(flags, 0)
            if gained:
                status.setdefault(tid, {})[flags] = gained
    names = {tid: n for tid, n in after["names"].items() if before["names"].get(tid) != n}
    return {"stacks": {k: w for k, w in stacks.items() if w}, "status": status, "names": names}


def as_content(profile: Profile, delta: model.ProfileDelta) -> dict:
    frames = profile.frames
    return {
        "stacks": {(tid, tuple(frames[i] for i in ids)): w for (tid, ids), w in delta.stacks.items() if w},
        "status": {tid: {f: n for f, n in c.items() if n} for tid, c in delta.status_counts.items()},
        "names": dict(delta.thread_names),
    }


def test_delta_since_is_exact_under_interleaved_adds():
    rng = random.Random(13)
    pool = [Frame("/app/m.py", f"f{i}", i) for i in range(12)] + [LAUNCHER, RUNPY]
    reused = [sample(rng.randrange(3), *rng.sample(pool, rng.randint(1, 5))) for _ in range(20)]
    source = Profile()
    source.add_sink(Recorder())
    other = Profile()
    marks: list[tuple[model.Mark, dict, int]] = []
    for step in range(3000):
        r = rng.random()
        if r < 0.45:
            source.add(rng.choice(reused), rng.randint(1, 3))
        elif r < 0.8:
            fresh = sample(rng.randrange(3), *rng.sample(pool, rng.randint(0, 5)), status=rng.choice([0, HAS_GIL]))
            source.collect(step, [fresh, rng.choice(reused)])
        elif r < 0.85:
            other.add(sample(7, *rng.sample(pool, 3)))
            source.merge(other)
        elif r < 0.9:
            source.thread_names[rng.randrange(4)] = rng.choice(["a", "b", ""])
        elif r < 0.95 and len(marks) < 6:
            marks.append((source.mark(), snapshot(source), len(source.frames)))
        elif marks:
            mark, before, frames_before = marks.pop(rng.randrange(len(marks)))
            delta = source.delta_since(mark)
            assert as_content(source, delta) == difference(snapshot(source), before)
            assert delta.first_frame_id == frames_before
            assert delta.frames == source.frames[frames_before:]
    mark = None  # the last mark popped above
    gc.collect()
    assert len(source._watchers) == len(marks)  # dropped marks cost nothing any more
    everything = source.delta_since(None)
    assert as_content(source, everything) == difference(snapshot(source), {"stacks": {}, "status": {}, "names": {}})


def test_a_mark_of_another_profile_is_refused():
    with pytest.raises(ValueError):
        Profile().delta_since(Profile().mark())


# -- merge and building from parts --------------------------------------------------------------


def test_merge_equals_adding_both():
    first = [sample(1, WORK, MAIN, LAUNCHER), sample(2, LEAF), sample(1, WORK, MAIN, LAUNCHER, status=0)]
    second = [sample(2, LEAF), sample(3, GC_FRAME, WORK), sample(1, LAUNCHER), sample(3, MAIN, RUNPY, LAUNCHER)]
    a, b, both = Profile(RunStats(pid=1)), Profile(RunStats(pid=2)), Profile()
    for s in first:
        a.add(s, 2)
        both.add(s, 2)
    for s in second:
        b.add(s)
        both.add(s)
    a.thread_names.update({1: "MainThread"})
    b.thread_names.update({3: "worker"})
    both.thread_names.update({1: "MainThread", 3: "worker"})
    a.merge(b)
    assert a.frames == both.frames
    assert list(a.stacks.items()) == list(both.stacks.items())  # same ids, same order
    assert a.status_counts == both.status_counts and a.thread_names == both.thread_names
    assert a.stats.pid == 1  # stats are the caller's to combine
    a.merge(a)  # merging a profile into itself doubles it
    assert a.stacks == {key: 2 * w for key, w in both.stacks.items()}


def test_deltas_applied_in_order_rebuild_the_profile():
    source, copy, ids = Profile(), Profile(), []
    copy.add(sample(9, LEAF))  # the copy's own frame ids differ from the source's
    mark = None
    for batch in ([sample(1, WORK, MAIN)], [sample(2, LEAF, WORK), sample(1, WORK, MAIN)], [], [sample(3, MAIN)]):
        for s in batch:
            source.add(s)
        copy.apply(source.delta_since(mark), ids)
        mark = source.mark()
    expected = snapshot(source)
    expected["stacks"][(9, (LEAF,))] = 1
    expected["status"][9] = {HAS_GIL: 1}
    assert snapshot(copy) == expected
    with pytest.raises(ValueError, match="frame"):
        copy.apply(source.delta_since(None), ids)  # not the next delta of this source


# -- cwd and argv through RunStats --------------------------------------------------------------


def test_live_start_and_end_carry_cwd_and_argv_in_run_stats():
    stats = RunStats(pid=5, python_version="3.12.1", cwd="/work/app", argv=["python", "app.py", "-v"])
    start = start_message(stats, 1.5)
    assert start["cwd"] == "/work/app" and start["argv"] == ["python", "app.py", "-v"]
    assert start_message(RunStats(), 1.0)["cwd"] is None and start_message(RunStats(), 1.0)["argv"] is None
    reader = LiveProfileReader()
    reader.feed(json.dumps(start))
    assert reader.profile.stats.cwd == "/work/app" and reader.profile.stats.argv == ["python", "app.py", "-v"]
    assert reader.cwd == "/work/app" and reader.argv == ["python", "app.py", "-v"]
    end = {"type": "end", "stats": dataclasses.asdict(stats), "output": None, "target_exit_status": 0}
    reader.feed(json.dumps(end))  # argv, a list, is a valid RunStats field in the end message
    assert reader.finished and reader.profile.stats.argv == ["python", "app.py", "-v"]
