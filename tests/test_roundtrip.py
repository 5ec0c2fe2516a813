"""Every format from a binary file equals the same format made directly from the same samples.

The samples are real: a live target under the current interpreter, recorded once, then fed both
straight into each format and through `--binary` + replay.
"""

from __future__ import annotations

import gzip
import json
import marshal
import os
import re

import pytest

from conftest import target, wait_ready
from sampler.collectors import COLLECTORS
from sampler.cpython.unwinder import Unwinder
from sampler.model import Profile, RunStats
from sampler.replay import open_binary_profile
from sampler.sampling import SamplingLoop


class Recorder:
    def __init__(self) -> None:
        self.samples = []

    def collect(self, timestamp_us, threads, weight=1):
        self.samples.append((timestamp_us, list(threads), weight))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """~1.5 s of a 2-thread target (busy + blocked) with all threads: states differ per thread."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, target("io_vs_cpu.py")], stdout=subprocess.PIPE, text=True)
    try:
        wait_ready(p)
        unwinder = Unwinder(p.pid, all_threads=True)
        stats = RunStats(pid=p.pid, python_version=unwinder.runtime.version_string, all_threads=True)
        rec = Recorder()
        SamplingLoop(unwinder, Profile(stats), interval_usec=1000, duration_s=1.5, sinks=[rec]).run()
        unwinder.close()
    finally:
        p.kill()
        p.wait()
    assert len(rec.samples) > 200  # 1,500 on an idle machine
    return stats, rec.samples


def _produce(fmt, stats, stream, out_dir, name):
    profile = Profile(RunStats(**{**stats.__dict__}))
    collector = COLLECTORS[fmt](profile)
    for ts, threads, weight in stream:
        profile.collect(ts, threads, weight)
        if collector.streaming:
            collector.collect(ts, threads, weight)
    return collector.write(os.path.join(out_dir, name))


def _via_binary(stats, samples, out_dir):
    path = _produce("binary", stats, samples, out_dir, "profile.bin")
    reader = open_binary_profile(path)
    replay_stats = reader.run_stats()
    stream = list(reader.samples())
    reader.check_complete(sum(w for *_x, w in stream))
    return replay_stats, stream


def _normalise(fmt: str, path: str):
    """What must match: the counts and stacks, not run ids or the time the file was made."""
    if fmt == "pstats":
        with open(path, "rb") as fh:
            return {k: v[:2] for k, v in marshal.load(fh).items()}
    if fmt == "collapsed":
        return open(path, encoding="utf-8").read()
    if fmt == "jsonl":
        records = [json.loads(line) for line in open(path, encoding="utf-8")]
        for r in records:
            r.pop("run_id", None)
        return [r for r in records if r["type"] != "meta"]
    if fmt == "speedscope":
        doc = json.load(open(path, encoding="utf-8"))
        return doc["shared"], [(p["samples"], len(p["weights"])) for p in doc["profiles"]]
    if fmt == "gecko":
        doc = json.load(open(path, encoding="utf-8"))
        return doc["shared"]["stringArray"], [
            (t["samples"]["stack"], t["stackTable"], t["frameTable"]["func"], t["funcTable"]["name"],
             [n for n in t["markers"]["name"]])
            for t in doc["threads"]
        ]
    if fmt in ("flamegraph",):
        html = open(path, encoding="utf-8").read()
        m = re.search(r'<script type="application/json" id="heatline-data">(.*?)</script>', html, re.S)
        data = json.loads(m.group(1))
        data.pop("stats", None)
        data.pop("title", None)  # names the PID, which a binary file does not record
        return data
    if fmt == "pprof":
        from sampler.pprof import decode

        with open(path, "rb") as fh:
            p = decode(gzip.decompress(fh.read()))
        text = p.string  # by text, not string ids: the comments (pid, command) come first
        funcs = {f.id: (text(f.name), text(f.filename), f.start_line) for f in p.functions}
        locs = {loc.id: tuple((funcs[line.function_id], line.line) for line in loc.lines) for loc in p.locations}
        samples = sorted(
            (tuple(locs[i] for i in s.location_ids), tuple(s.values),
             tuple(sorted((text(label.key), text(label.str), label.num) for label in s.labels
                          if text(label.key) != "pid")))  # a binary file does not record the pid
            for s in p.samples
        )
        return samples, [(text(v.type), text(v.unit)) for v in p.sample_types], p.period
    if fmt == "heatmap":
        pages = {}
        for name in sorted(os.listdir(path)):
            if name.endswith(".html") and name != "index.html":
                text = open(os.path.join(path, name), encoding="utf-8").read()
                pages[name] = re.findall(r'data-self="(\d+)" data-total="(\d+)"', text) or text.count("line-")
        return pages
    raise AssertionError(f"no comparison defined for {fmt}")


FORMATS = [f for f, c in COLLECTORS.items() if c.replayable and f != "diff_flamegraph"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_binary_replay_matches_direct(fmt, recorded, tmp_path):
    stats, samples = recorded
    replay_stats, stream = _via_binary(stats, samples, str(tmp_path))
    assert sum(w for *_x, w in stream) == sum(len(threads) for _ts, threads, _w in samples)
    direct = _produce(fmt, stats, samples, str(tmp_path), f"direct.{fmt}")
    replayed = _produce(fmt, replay_stats, stream, str(tmp_path), f"replayed.{fmt}")
    assert _normalise(fmt, direct) == _normalise(fmt, replayed)


def test_replay_keeps_timestamps_and_states(recorded, tmp_path):
    stats, samples = recorded
    _stats, stream = _via_binary(stats, samples, str(tmp_path))
    expanded = []
    for ts, threads, weight in stream:
        expanded.extend([(ts, threads)] * weight)
    per_thread_in = {}
    for ts, threads, _w in samples:
        for t in threads:
            per_thread_in.setdefault(t.thread_id, []).append((ts, t.status, t.frames))
    per_thread_out = {}
    for ts, threads in expanded:
        for t in threads:
            per_thread_out.setdefault(t.thread_id, []).append((ts, t.status, t.frames))
    assert per_thread_in.keys() == per_thread_out.keys() and len(per_thread_in) == 2
    for tid in per_thread_in:
        assert [s[1:] for s in per_thread_in[tid]] == [s[1:] for s in per_thread_out[tid]]
        assert [s[0] for s in per_thread_in[tid]] == [s[0] for s in per_thread_out[tid]]
