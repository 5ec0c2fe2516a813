"""--gecko (Firefox Profiler), --jsonl and --speedscope: exact unit expectations on sample streams
built in-process, structure checks against each format's own rules, and real profiled runs.

The processed-profile rules checked by `check_processed_profile` come from the Firefox Profiler's
type definitions (`src/types/profile.ts`) and the upgraders of `processed-profile-versioning.ts`
for version 57; the speedscope files are validated against speedscope's own JSON schema (copied
from its npm package into tests/data) and imported by speedscope itself in Chromium.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import tracemalloc
from array import array

import pytest

from conftest import ROOT, heatline, target
from sampler.collectors import COLLECTORS
from sampler.collectors.gecko import CATEGORIES, MARKERS, GeckoCollector, marker_type
from sampler.collectors.jsonl import JsonlCollector
from sampler.collectors.speedscope import SCHEMA_URL, SpeedscopeCollector
from sampler.model import (
    GC_FRAME,
    GIL_REQUESTED,
    HAS_EXCEPTION,
    HAS_GIL,
    MAIN_THREAD,
    ON_CPU,
    UNKNOWN,
    Frame,
    Profile,
    RunStats,
    ThreadSample,
)

FUNC1 = Frame("file.py", "func1", 10, 10)
FUNC2 = Frame("file.py", "func2", 20, 20)
OTHER = Frame("other.py", "other_func", 5, 5)
LAUNCHER = Frame("/x/sampler/_coordinator.py", "main", 40)
RUNPY = Frame("/usr/lib/python3.11/runpy.py", "_run_code", 86)

SPEEDSCOPE_SCHEMA = os.path.join(ROOT, "tests", "data", "speedscope-file-format-schema.json")
SPEEDSCOPE_VERSION = "1.25.0"


def new_profile(mode="wall", interval_usec=1000, names=None):
    profile = Profile(RunStats(pid=4242, mode=mode, interval_usec=interval_usec, python_version="3.11.7"))
    profile.thread_names.update(names or {})
    return profile


def feed(collector, ticks):
    """`ticks`: (timestamp_us, [ThreadSample...]) or (timestamp_us, [...], weight), through the
    collector's profile, which hands them on as in the sampling loop."""
    profile = collector.profile
    profile.add_sink(collector)
    for tick in ticks:
        ts, threads, weight = tick if len(tick) == 3 else (*tick, 1)
        profile.collect(ts, threads, weight)
    profile.remove_sink(collector)
    return collector


def sample(tid, status, *frames):
    return ThreadSample(tid, status, tuple(frames))


def dump_bytes(collector) -> bytes:
    out = io.BytesIO()
    collector.dump(out)
    return out.getvalue()


# ==== JSONL ==========================================================================================

TACHYON_JSONL = (
    '{"type":"meta","v":0,"run_id":"run-123","sample_interval_usec":1000}\n'
    '{"type":"string_table","v":0,"run_id":"run-123","strings":[{"str_id":0,"value":"func1"},'
    '{"str_id":1,"value":"file.py"},{"str_id":2,"value":"func2"},{"str_id":3,"value":"other_func"},'
    '{"str_id":4,"value":"other.py"}]}\n'
    '{"type":"frame_table","v":0,"run_id":"run-123","frames":[{"frame_id":0,"path_str_id":1,'
    '"func_str_id":0,"line":10,"end_line":10},{"frame_id":1,"path_str_id":1,"func_str_id":2,"line":20,'
    '"end_line":20},{"frame_id":2,"path_str_id":4,"func_str_id":3,"line":5,"end_line":5}]}\n'
    '{"type":"agg","v":0,"run_id":"run-123","kind":"frame","scope":"final","samples_total":3,'
    '"entries":[{"frame_id":0,"self":2,"cumulative":2},{"frame_id":1,"self":0,"cumulative":2},'
    '{"frame_id":2,"self":1,"cumulative":1}]}\n'
    '{"type":"end","v":0,"run_id":"run-123","samples_total":3}\n'
)


def tachyon_jsonl_ticks():
    busy = HAS_GIL | ON_CPU
    return [
        (1000, [sample(1, busy, FUNC1, FUNC2)]),
        (2000, [sample(1, busy, FUNC1, FUNC2)]),
        (3000, [sample(1, busy, OTHER)]),
    ]


def parse_jsonl(data: bytes):
    text = data.decode("ascii")  # the file is pure ASCII: other characters are \u-escaped
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def jsonl_tables(records):
    strings, frames, agg = {}, {}, {}
    for r in records:
        if r["type"] == "string_table":
            strings.update((s["str_id"], s["value"]) for s in r["strings"])
        elif r["type"] == "frame_table":
            frames.update((f["frame_id"], f) for f in r["frames"])
        elif r["type"] == "agg":
            agg.update((e["frame_id"], (e["self"], e["cumulative"])) for e in r["entries"])
    return strings, frames, agg


def test_jsonl_tachyon_exact_bytes():
    collector = feed(JsonlCollector(new_profile(), run_id="run-123", mode=None), tachyon_jsonl_ticks())
    assert dump_bytes(collector).decode() == TACHYON_JSONL


def test_jsonl_from_profile_alone_matches_the_stream():
    streamed = feed(JsonlCollector(new_profile(), run_id="run-123", mode=None), tachyon_jsonl_ticks())
    profile = new_profile()
    for ts, threads in tachyon_jsonl_ticks():
        profile.collect(ts, threads)
    assert dump_bytes(JsonlCollector(profile, run_id="run-123", mode=None)) == dump_bytes(streamed)


def test_jsonl_mode_and_run_id():
    collector = feed(JsonlCollector(new_profile(mode="gil")), tachyon_jsonl_ticks())
    records = parse_jsonl(dump_bytes(collector))
    assert records[0] == {"type": "meta", "v": 0, "run_id": collector.run_id, "sample_interval_usec": 1000,
                          "mode": "gil"}
    assert re.fullmatch(r"[0-9a-f]{32}", collector.run_id)
    assert {r["run_id"] for r in records} == {collector.run_id}
    assert [r["type"] for r in records] == ["meta", "string_table", "frame_table", "agg", "end"]
    assert JsonlCollector(new_profile()).run_id != collector.run_id


def test_jsonl_chunking_257_frames():
    frames = [Frame(f"f{i}.py", f"fn{i}", i + 1, i + 1) for i in range(257)]
    collector = feed(JsonlCollector(new_profile()), [(i, [sample(1, HAS_GIL, f)]) for i, f in enumerate(frames)])
    records = parse_jsonl(dump_bytes(collector))
    sizes = {kind: [len(r[key]) for r in records if r["type"] == kind]
             for kind, key in (("string_table", "strings"), ("frame_table", "frames"), ("agg", "entries"))}
    assert sizes == {"string_table": [256, 256, 2], "frame_table": [256, 1], "agg": [256, 1]}
    assert all(r["samples_total"] == 257 for r in records if r["type"] in ("agg", "end"))
    strings, table, agg = jsonl_tables(records)
    assert sorted(strings) == list(range(514)) and sorted(table) == list(range(257))
    assert strings[table[256]["func_str_id"]] == "fn256" and agg[256] == (1, 1)


@pytest.mark.parametrize("mode", ["cpu", "gil", "exception"])
def test_jsonl_skips_idle_threads_outside_wall_mode(mode):
    ticks = [(0, [sample(1, HAS_GIL, FUNC1), sample(2, 0, FUNC2), sample(3, ON_CPU, OTHER),
                  sample(4, HAS_EXCEPTION, OTHER), sample(5, UNKNOWN, FUNC2)])]
    records = parse_jsonl(dump_bytes(feed(JsonlCollector(new_profile(mode=mode)), ticks)))
    strings, frames, agg = jsonl_tables(records)
    counted = {strings[frames[fid]["func_str_id"]]: counts for fid, counts in agg.items()}
    assert counted == {"func1": (1, 1), "other_func": (1, 1)}  # status 0, exception-only, unknown: out
    assert records[-1]["samples_total"] == 2


def test_jsonl_wall_mode_keeps_idle_threads():
    ticks = [(0, [sample(1, HAS_GIL, FUNC1), sample(2, 0, FUNC2)])]
    records = parse_jsonl(dump_bytes(feed(JsonlCollector(new_profile(mode="wall")), ticks)))
    assert records[-1]["samples_total"] == 2


def test_jsonl_weight_and_recursion():
    ticks = [
        (0, [sample(1, HAS_GIL, FUNC1, FUNC2)], 5),
        (1, [sample(1, HAS_GIL, *([FUNC1] * 5))]),  # the same frame five times: counted once
        (2, [sample(1, HAS_GIL, FUNC1, FUNC1, FUNC1)]),
        (3, [sample(1, HAS_GIL, FUNC2, FUNC1)]),
    ]
    records = parse_jsonl(dump_bytes(feed(JsonlCollector(new_profile()), ticks)))
    strings, frames, agg = jsonl_tables(records)
    by_name = {strings[frames[fid]["func_str_id"]]: counts for fid, counts in agg.items()}
    assert by_name == {"func1": (7, 8), "func2": (1, 6)}
    assert records[-1]["samples_total"] == 8


def test_jsonl_optional_location_fields():
    ticks = [(0, [sample(1, HAS_GIL, Frame("a.py", "f", 42, 45, -1, 12))]),
             (1, [sample(1, HAS_GIL, Frame("a.py", "g", 42, 0, 4, 8))]),
             (2, [sample(1, HAS_GIL, GC_FRAME)]),
             (3, [sample(1, HAS_GIL, Frame("a.py", "h", 7, 7, 0, 3))])]
    records = parse_jsonl(dump_bytes(feed(JsonlCollector(new_profile()), ticks)))
    _strings, frames, _agg = jsonl_tables(records)
    locations = [{k: v for k, v in f.items() if k not in ("frame_id", "path_str_id", "func_str_id")}
                 for _, f in sorted(frames.items())]
    assert locations == [{"line": 42, "end_line": 45, "end_col": 12}, {"line": 42, "col": 4, "end_col": 8},
                         {"line": 0}, {"line": 7, "end_line": 7, "col": 0, "end_col": 3}]


def test_jsonl_strips_launcher_frames_and_escapes_text():
    odd = Frame("/tmp/unicode_💩.py", "fn_\"quoted\"\n", 3, 3)
    ticks = [(0, [sample(1, HAS_GIL, odd, RUNPY, LAUNCHER)]), (1, [sample(1, HAS_GIL, RUNPY, LAUNCHER)])]
    data = dump_bytes(feed(JsonlCollector(new_profile()), ticks))
    records = parse_jsonl(data)
    strings, frames, agg = jsonl_tables(records)
    assert set(strings.values()) == {"/tmp/unicode_💩.py", "fn_\"quoted\"\n"}
    assert b"\\ud83d\\udca9" in data and len(frames) == 1 and agg[0] == (1, 1)
    assert records[-1]["samples_total"] == 1  # the all-launcher stack is not a sample


# ==== Gecko (Firefox Profiler processed format, version 57) =========================================

# Columns per table at processed version 57 (profile.ts; v53 dropped stackTable's categories,
# v54 frameTable.implementation, v45 frameTable.optimizations; fileName became source in v58).
GECKO_COLUMNS = {
    "stackTable": {"frame", "prefix"},
    "frameTable": {"address", "inlineDepth", "category", "subcategory", "func", "nativeSymbol",
                   "innerWindowID", "line", "column"},
    "funcTable": {"name", "isJS", "relevantForJS", "resource", "fileName", "lineNumber", "columnNumber"},
    "resourceTable": {"lib", "name", "host", "type"},
    "nativeSymbols": {"libIndex", "address", "name", "functionSize"},
    "markers": {"data", "name", "startTime", "endTime", "phase", "category"},
    "samples": {"stack", "time", "weight", "weightType", "threadCPUDelta"},
}
THREAD_KEYS = {"name", "isMainThread", "processType", "processName", "processStartupTime",
               "processShutdownTime", "registerTime", "unregisterTime", "pausedRanges", "pid", "tid",
               *GECKO_COLUMNS}
META_KEYS = {"interval", "startTime", "processType", "categories", "product", "stackwalk", "version",
             "preprocessedProfileVersion", "markerSchema", "symbolicated", "sampleUnits", "extensions"}


def check_processed_profile(profile: dict) -> None:
    """Every rule of the processed format that a reader relies on; fails with the broken rule."""
    assert {"meta", "libs", "threads", "shared"} <= set(profile), set(profile)
    meta, strings = profile["meta"], profile["shared"]["stringArray"]
    assert META_KEYS <= set(meta), META_KEYS - set(meta)
    assert meta["preprocessedProfileVersion"] == 57 and isinstance(meta["version"], int)
    assert meta["interval"] > 0 and isinstance(meta["startTime"], (int, float))
    categories = meta["categories"]
    assert categories[0]["color"] == "grey"  # the default category: the first grey one
    assert all(c["subcategories"] and c["subcategories"][0] == "Other" for c in categories)
    schema_names = {s["name"] for s in meta["markerSchema"]}
    for s in meta["markerSchema"]:
        assert set(s) >= {"name", "display", "fields"}
        assert all({"key", "format"} <= set(f) for f in s["fields"])
    assert strings[0] == "(root)" and all(isinstance(s, str) for s in strings)
    n_strings = len(strings)
    assert profile["threads"], "no threads"
    for thread in profile["threads"]:
        assert set(thread) == THREAD_KEYS, set(thread) ^ THREAD_KEYS
        assert isinstance(thread["pid"], str) and isinstance(thread["isMainThread"], bool)
        for table, columns in GECKO_COLUMNS.items():
            t = thread[table]
            assert set(t) == columns | {"length"}, (table, set(t) ^ (columns | {"length"}))
            for column in columns:
                value = t[column]
                if table == "samples" and column == "weight" and value is None:
                    continue
                if table == "samples" and column == "weightType":
                    assert value == "samples"
                    continue
                assert len(value) == t["length"], (table, column, len(value), t["length"])
        stacks, frames, funcs = thread["stackTable"], thread["frameTable"], thread["funcTable"]
        resources, samples, markers = thread["resourceTable"], thread["samples"], thread["markers"]
        for i in range(stacks["length"]):
            assert 0 <= stacks["frame"][i] < frames["length"]
            prefix = stacks["prefix"][i]
            assert prefix is None or 0 <= prefix < i, (i, prefix)
        for i in range(frames["length"]):
            assert 0 <= frames["func"][i] < funcs["length"]
            category = frames["category"][i]
            assert 0 <= category < len(categories)
            assert 0 <= frames["subcategory"][i] < len(categories[category]["subcategories"])
            assert frames["address"][i] == -1 and frames["inlineDepth"][i] == 0
            assert frames["line"][i] is None or frames["line"][i] > 0
            assert frames["column"][i] is None or frames["column"][i] > 0
        for i in range(funcs["length"]):
            assert 0 <= funcs["name"][i] < n_strings
            assert funcs["fileName"][i] is None or 0 <= funcs["fileName"][i] < n_strings
            assert funcs["resource"][i] == -1 or 0 <= funcs["resource"][i] < resources["length"]
        for i in range(resources["length"]):
            assert 0 <= resources["name"][i] < n_strings
        times = samples["time"]
        assert all(a <= b for a, b in zip(times, times[1:])), "sample times go back"
        for s in samples["stack"]:
            assert s is None or 0 <= s < stacks["length"]
        if samples["weight"] is not None:
            assert all(isinstance(w, int) and w > 0 for w in samples["weight"])
        for i in range(markers["length"]):
            assert markers["phase"][i] == 1
            assert markers["startTime"][i] <= markers["endTime"][i]
            assert 0 <= markers["name"][i] < n_strings
            assert 0 <= markers["category"][i] < len(categories)
            assert markers["data"][i]["type"] in schema_names
            assert markers["data"][i]["tid"] == thread["tid"]


def stack_names(thread, strings, stack):
    """Function names root -> leaf of a sample's stack."""
    names = []
    while stack is not None:
        func = thread["frameTable"]["func"][thread["stackTable"]["frame"][stack]]
        names.append(strings[thread["funcTable"]["name"][func]])
        stack = thread["stackTable"]["prefix"][stack]
    return names[::-1]


def markers_of(thread, strings):
    """{marker name: [(start ms, end ms), ...]} in time order."""
    m = thread["markers"]
    out: dict[str, list] = {}
    for i in range(m["length"]):
        out.setdefault(strings[m["name"][i]], []).append((m["startTime"][i], m["endTime"][i]))
    return out


def gecko_of(ticks, mode="wall", names=None):
    collector = feed(GeckoCollector(new_profile(mode=mode, names=names)), ticks)
    profile = collector.build()
    check_processed_profile(profile)
    return profile


def test_gecko_tachyon_transition_markers():
    ticks = [(10_000 + 1000 * i, [sample(1, status | MAIN_THREAD, FUNC1, FUNC2)])
             for i, status in enumerate([HAS_GIL | ON_CPU, GIL_REQUESTED, HAS_GIL | ON_CPU, ON_CPU])]
    profile = gecko_of(ticks)
    strings = profile["shared"]["stringArray"]
    (thread,) = profile["threads"]
    assert markers_of(thread, strings) == {
        "Has GIL": [(0.0, 1.0), (2.0, 3.0)],
        "No GIL": [(1.0, 2.0), (3.0, 4.0)],
        "On CPU": [(0.0, 1.0), (2.0, 4.0)],
        "Off CPU": [(1.0, 2.0)],
        "Python Code": [(0.0, 1.0), (2.0, 3.0)],
        "Native Code": [(3.0, 4.0)],
        "Waiting for GIL": [(1.0, 2.0)],
        "No Exception": [(0.0, 4.0)],
    }
    data = thread["markers"]["data"]
    assert {d["type"] for d in data} == {"HasGIL", "NoGIL", "OnCPU", "OffCPU", "PythonCode", "NativeCode",
                                         "WaitingforGIL", "NoException"}
    assert all(d["duration"] == e - s for d, s, e in zip(data, thread["markers"]["startTime"],
                                                          thread["markers"]["endTime"]))
    assert thread["samples"]["time"] == [0.0, 1.0, 2.0, 3.0]
    assert thread["samples"]["threadCPUDelta"] == [0, 0, 1000, 1000]
    assert [stack_names(thread, strings, s) for s in thread["samples"]["stack"]] == [["func2", "func1"]] * 4


def test_gecko_tables_and_meta():
    frames = (Frame("/src/app.py", "Worker.run", 12, 12, 4, 9), Frame("/src/app.py", "main", 30, 30, 0, 8))
    ticks = [(5_000_000, [sample(7, HAS_GIL | ON_CPU | MAIN_THREAD, *frames), sample(9, 0, GC_FRAME, FUNC1)]),
             (5_001_000, [sample(7, HAS_GIL | ON_CPU | MAIN_THREAD, *frames)], 3)]
    collector = feed(GeckoCollector(new_profile(names={9: "worker-1", 7: ""})), ticks)
    collector.profile.stats.start_time = 1_700_000_000.0
    collector.profile.stats.start_monotonic_us = 4_000_000
    profile = collector.build()
    check_processed_profile(profile)
    meta, strings = profile["meta"], profile["shared"]["stringArray"]
    assert meta["startTime"] == 1_700_000_000_000.0 + 1000.0  # the first sample, 1 s after start
    assert meta["interval"] == 1.0  # ms between sampling ticks
    assert [c["name"] for c in meta["categories"]] == [name for name, _ in CATEGORIES]
    assert {s["name"] for s in meta["markerSchema"]} == {marker_type(n) for n, _c, _d in MARKERS}
    assert meta["heatline"]["mode"] == "wall" and meta["heatline"]["pid"] == 4242
    main, worker = profile["threads"]
    assert (main["name"], main["tid"], main["isMainThread"], main["pid"]) == ("Thread-7", 7, True, "4242")
    assert (worker["name"], worker["isMainThread"]) == ("worker-1", False)
    assert main["samples"]["weight"] == [1, 3] and worker["samples"]["weight"] is None
    funcs, ft = main["funcTable"], main["frameTable"]
    assert [strings[n] for n in funcs["name"]] == ["main", "Worker.run"]
    assert [strings[n] for n in funcs["fileName"]] == ["/src/app.py"] * 2
    assert funcs["isJS"] == [True, True] and ft["line"] == [30, 12] and ft["column"] == [1, 5]
    assert [strings[n] for n in main["resourceTable"]["name"]] == ["app.py"]
    # the GC thread: <GC> is a synthetic, non-Python frame in the GC category, and a marker
    gc_func = [strings[n] for n in worker["funcTable"]["name"]].index("<GC>")
    assert worker["funcTable"]["isJS"][gc_func] is False and worker["funcTable"]["fileName"][gc_func] is None
    assert worker["frameTable"]["category"][worker["frameTable"]["func"].index(gc_func)] == 3
    assert stack_names(worker, strings, worker["samples"]["stack"][0]) == ["func1", "<GC>"]
    worker_markers = markers_of(worker, strings)
    assert worker_markers["GC Collecting"] == [(0.0, 1.0)]  # ends where the thread went missing
    assert worker_markers["Off CPU"] == [(0.0, 1.0)] and worker_markers["No GIL"] == [(0.0, 1.0)]
    # the main thread's states last past its last sample: 3 samples (weight 3) of 1 ms
    assert markers_of(main, strings)["Has GIL"] == [(0.0, 4.0)]


def test_gecko_absent_thread_ends_its_states_and_cpu_mode_has_no_exception_markers():
    busy = HAS_GIL | ON_CPU
    ticks = [(0, [sample(1, busy, FUNC1), sample(2, ON_CPU, FUNC2)]),
             (1000, [sample(1, busy, FUNC1)]),
             (2000, [sample(1, busy, FUNC1), sample(2, ON_CPU, FUNC2)])]
    profile = gecko_of(ticks, mode="cpu")
    strings = profile["shared"]["stringArray"]
    one, two = profile["threads"]
    assert markers_of(two, strings) == {"On CPU": [(0.0, 1.0), (2.0, 3.0)], "No GIL": [(0.0, 1.0), (2.0, 3.0)],
                                        "Native Code": [(0.0, 1.0), (2.0, 3.0)]}
    assert markers_of(one, strings)["On CPU"] == [(0.0, 3.0)]
    assert not any("Exception" in name for name in markers_of(one, strings))
    assert profile["meta"]["heatline"]["mode"] == "cpu"
    assert {"label": "Sampling mode", "format": "string", "value": "cpu"} in profile["meta"]["extra"][0]["entries"]


def thread_view(profile):
    """Per thread name: (sample times, stacks as names, markers), independent of string order."""
    strings = profile["shared"]["stringArray"]
    return {t["name"]: (t["samples"]["time"], [stack_names(t, strings, s) for s in t["samples"]["stack"]],
                        markers_of(t, strings), t["samples"]["threadCPUDelta"])
            for t in profile["threads"]}


def test_gecko_replay_order_gives_the_same_timeline():
    """`replay` brings samples in time order per thread only, a block of one thread at a time."""
    busy, idle = HAS_GIL | ON_CPU | MAIN_THREAD, 0
    per_tick = [
        (100_000, [sample(1, busy, FUNC1), sample(2, idle, OTHER)]),
        (101_000, [sample(1, busy, FUNC1)]),  # thread 2 filtered out at this tick
        (102_000, [sample(1, GIL_REQUESTED | MAIN_THREAD, FUNC2), sample(2, ON_CPU, OTHER)]),
        (103_000, [sample(1, busy, FUNC2), sample(2, ON_CPU, GC_FRAME, OTHER)]),
    ]
    by_thread = [(ts, [t]) for tid in (2, 1) for ts, threads in per_tick for t in threads if t.thread_id == tid]
    live, replayed = gecko_of(per_tick), gecko_of(by_thread)
    assert thread_view(replayed) == thread_view(live)
    assert replayed["meta"]["interval"] == live["meta"]["interval"] == 1.0
    view = thread_view(live)["Thread-2"]
    assert view[0] == [0.0, 2.0, 3.0] and view[3] == [0, 1000, 1000]  # CPU time since the last tick
    assert view[2]["Off CPU"] == [(0.0, 1.0)] and view[2]["On CPU"] == [(2.0, 4.0)]
    assert view[2]["GC Collecting"] == [(3.0, 4.0)]


def test_gecko_exception_and_unknown_cpu():
    ticks = [(0, [sample(1, HAS_EXCEPTION | UNKNOWN, FUNC1)]), (1000, [sample(1, HAS_GIL | ON_CPU, FUNC1)])]
    profile = gecko_of(ticks)
    thread = profile["threads"][0]
    marks = markers_of(thread, profile["shared"]["stringArray"])
    assert marks["Has Exception"] == [(0.0, 1.0)] and marks["No Exception"] == [(1.0, 2.0)]
    assert marks["On CPU"] == [(1.0, 2.0)] and "Off CPU" not in marks  # unknown: no CPU state
    assert thread["samples"]["threadCPUDelta"] == [None, 1000]


def test_gecko_internal_frames_and_empty_stacks():
    ticks = [(0, [sample(1, HAS_GIL, FUNC1, RUNPY, LAUNCHER), sample(2, 0)]),
             (1000, [sample(1, HAS_GIL, RUNPY, LAUNCHER)])]
    profile = gecko_of(ticks)
    strings = profile["shared"]["stringArray"]
    one, two = profile["threads"]
    assert one["samples"]["stack"][1] is None and two["samples"]["stack"] == [None]
    assert stack_names(one, strings, one["samples"]["stack"][0]) == ["func1"]
    assert "_run_code" not in strings and "main" not in strings


def test_gecko_from_profile_without_stream_and_repeatable_dump():
    profile = new_profile()
    for ts, threads in tachyon_jsonl_ticks():
        profile.collect(ts, threads)
    collector = GeckoCollector(profile)
    first = dump_bytes(collector)
    assert dump_bytes(collector) == first
    data = json.loads(first)
    check_processed_profile(data)
    (thread,) = data["threads"]
    assert thread["samples"]["weight"] == [2, 1] and thread["markers"]["length"] == 0
    streamed = feed(GeckoCollector(new_profile()), tachyon_jsonl_ticks())
    assert dump_bytes(streamed) == dump_bytes(streamed)


def test_gecko_timeline_memory_is_arrays_not_objects():
    """Many samples of one stack cost bytes each (array slots), not Python objects."""
    collector = GeckoCollector(new_profile())
    stack = (FUNC1, FUNC2, OTHER)
    threads = [sample(1, HAS_GIL | ON_CPU | MAIN_THREAD, *stack), sample(2, 0, *stack)]
    for i in range(1000):  # warm up: tables, caches and the arrays' first allocations
        collector.collect(i * 1000, threads)
    n = 50_000
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(1000, 1000 + n):
        collector.collect(i * 1000, threads)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # per tick: 2 x (4 stack + 8 time + 1 status) + 8 for the tick time = 34 bytes; arrays
    # over-allocate by up to 1/8. A Python int or float per sample would be 28+ bytes more.
    assert grown / n < 50, grown / n
    th = collector._threads[1]
    assert all(isinstance(col, array) for col in (th.sample_stack, th.sample_time, th.sample_status))
    end = (1000 + n) * 1000  # the last sample plus one interval
    assert collector.marker_intervals(th, collector._sorted_ticks(), 1000.0) == [
        (0, end, i) for i in sorted(MARKERS.index(m) for m in MARKERS if m[0] in
                                    ("Has GIL", "On CPU", "Python Code", "No Exception"))]


# ==== speedscope =====================================================================================


def load_speedscope_schema():
    with open(SPEEDSCOPE_SCHEMA, encoding="utf-8") as fh:
        return json.load(fh)


SUPPORTED_KEYWORDS = {"$schema", "$ref", "definitions", "title", "type", "properties", "required", "items",
                      "anyOf", "enum", "const"}
JSON_TYPES = {"object": dict, "array": list, "string": str, "number": (int, float), "boolean": bool}


def schema_errors(instance, schema, root, path="$"):
    """The draft-07 keywords speedscope's schema uses, checked by hand (no jsonschema needed)."""
    unknown = set(schema) - SUPPORTED_KEYWORDS
    assert not unknown, f"schema uses keywords this checker does not know: {unknown}"
    if "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        return schema_errors(instance, node, root, path)
    errors = []
    if "anyOf" in schema:
        if all(schema_errors(instance, option, root, path) for option in schema["anyOf"]):
            errors.append(f"{path}: matches none of anyOf")
    if "type" in schema:
        expected = JSON_TYPES[schema["type"]]
        if not isinstance(instance, expected) or isinstance(instance, bool) and schema["type"] == "number":
            return [f"{path}: not a {schema['type']}"]
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{path}: {instance!r} != {schema['const']!r}")
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} not in {schema['enum']}")
    if isinstance(instance, dict):
        errors += [f"{path}: missing {key}" for key in schema.get("required", ()) if key not in instance]
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                errors += schema_errors(instance[key], sub, root, f"{path}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            errors += schema_errors(item, schema["items"], root, f"{path}[{i}]")
    return errors


def check_speedscope(data: dict) -> None:
    schema = load_speedscope_schema()
    assert schema_errors(data, schema, schema) == []
    try:
        import jsonschema
    except ImportError:
        pass
    else:
        jsonschema.validate(data, schema)
    # rules beyond the schema that speedscope's importer relies on
    n_frames = len(data["shared"]["frames"])
    for p in data["profiles"]:
        assert p["type"] == "sampled" and len(p["samples"]) == len(p["weights"])
        assert all(0 <= f < n_frames for stack in p["samples"] for f in stack)
        assert all(isinstance(w, int) and w > 0 for w in p["weights"])
        assert p["endValue"] - p["startValue"] == sum(p["weights"])
    assert 0 <= data["activeProfileIndex"] < len(data["profiles"])


def test_speedscope_schema_checker_can_fail():
    schema = load_speedscope_schema()
    good = {"$schema": SCHEMA_URL, "shared": {"frames": [{"name": "f"}]},
            "profiles": [{"type": "sampled", "name": "t", "unit": "microseconds", "startValue": 0,
                          "endValue": 1, "samples": [[0]], "weights": [1]}]}
    assert schema_errors(good, schema, schema) == []
    bad = json.loads(json.dumps(good))
    bad["profiles"][0]["unit"] = "ticks"
    del bad["profiles"][0]["weights"]
    bad["shared"]["frames"][0]["line"] = "12"
    assert len(schema_errors(bad, schema, schema)) == 2  # the profile matches neither kind; frame line
    assert schema_errors({**good, "$schema": "x"}, schema, schema)


def test_speedscope_time_order_idle_gaps_and_weights():
    a = (FUNC1, FUNC2)
    ticks = [(100_000, [sample(1, HAS_GIL | MAIN_THREAD, *a), sample(2, HAS_GIL, OTHER)]),
             (101_000, [sample(1, HAS_GIL | MAIN_THREAD, *a)]),
             (102_500, [sample(1, HAS_GIL | MAIN_THREAD, OTHER), sample(2, HAS_GIL, OTHER)]),
             (103_500, [sample(2, HAS_GIL, GC_FRAME, OTHER)], 2)]
    collector = feed(SpeedscopeCollector(new_profile(names={1: "MainThread"})), ticks)
    data = collector.build()
    check_speedscope(data)
    assert data["$schema"] == SCHEMA_URL and data["exporter"].startswith("heatline ")
    assert data["name"] == "Python 3.11.7 (PID 4242, wall mode)"
    assert data["shared"]["frames"] == [
        {"name": "func2 (file.py:20)", "file": "file.py", "line": 20},
        {"name": "func1 (file.py:10)", "file": "file.py", "line": 10},
        {"name": "other_func (other.py:5)", "file": "other.py", "line": 5},
        {"name": "<GC>"},
    ]
    main, worker = data["profiles"]
    assert data["activeProfileIndex"] == 0
    assert main == {"type": "sampled", "name": "MainThread (tid 1)", "unit": "microseconds", "startValue": 0,
                    "endValue": 3500, "samples": [[0, 1], [2]], "weights": [2500, 1000]}
    # thread 2 missed the tick at 101 ms: an empty stack for it; its last sample weighs 2
    assert worker == {"type": "sampled", "name": "Thread-2", "unit": "microseconds", "startValue": 0,
                      "endValue": 5500, "samples": [[2], [], [2], [2, 3]], "weights": [1000, 1500, 1000, 2000]}


def test_speedscope_replay_order_gives_the_same_timeline():
    a = (FUNC1, FUNC2)
    per_tick = [(0, [sample(1, HAS_GIL | MAIN_THREAD, *a), sample(2, 0, OTHER)]),
                (1000, [sample(1, HAS_GIL | MAIN_THREAD, *a)]),
                (2000, [sample(1, 0 | MAIN_THREAD, OTHER), sample(2, 0, OTHER)])]
    by_thread = [(ts, [t]) for tid in (2, 1) for ts, threads in per_tick for t in threads if t.thread_id == tid]

    def view(data):
        frames = data["shared"]["frames"]
        return [(p["name"], p["startValue"], p["endValue"], p["weights"],
                 [[frames[f]["name"] for f in stack] for stack in p["samples"]]) for p in data["profiles"]]

    live = feed(SpeedscopeCollector(new_profile()), per_tick).build()
    replayed = feed(SpeedscopeCollector(new_profile()), by_thread).build()
    check_speedscope(replayed)
    assert view(replayed) == view(live) == [
        ("Thread-1", 0, 3000, [2000, 1000], [["func2 (file.py:20)", "func1 (file.py:10)"], ["other_func (other.py:5)"]]),
        ("Thread-2", 0, 3000, [1000, 1000, 1000], [["other_func (other.py:5)"], [], ["other_func (other.py:5)"]]),
    ]


def test_speedscope_from_profile_without_stream():
    profile = new_profile(interval_usec=250)
    for ts, threads in tachyon_jsonl_ticks():
        profile.collect(ts, threads)
    profile.collect(0, [sample(3, 0, FUNC1, RUNPY, LAUNCHER)])
    data = SpeedscopeCollector(profile).build()
    check_speedscope(data)
    one, three = data["profiles"]
    assert one["samples"] == [[0, 1], [2]] and one["weights"] == [500, 250]
    assert three["samples"] == [[1]] and three["name"] == "Thread-3"
    assert not any("main" in f["name"] or "_run_code" in f["name"] for f in data["shared"]["frames"])


def test_registry_and_default_names():
    assert [n for n in COLLECTORS if n in ("gecko", "jsonl", "speedscope")] == ["gecko", "jsonl", "speedscope"]
    profile = new_profile()
    assert GeckoCollector(profile).default_output(12) == "gecko_12.json"
    assert JsonlCollector(profile).default_output(12) == "jsonl_12.jsonl"
    assert SpeedscopeCollector(profile).default_output(12) == "speedscope_12.speedscope.json"
    assert all(COLLECTORS[n].streaming for n in ("gecko", "jsonl", "speedscope"))


# ==== real profiled runs =============================================================================


def profile_path(tmp_path_factory, fmt, script, *extra, duration="1.5"):
    """Profile `script` with all threads through the real CLI; the output file's path."""
    out = str(tmp_path_factory.mktemp(fmt) / f"out.{fmt}")
    result = heatline("run", "-a", "-d", duration, f"--{fmt}", "-o", out, *extra, target(script), timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{fmt} profile written to {out}" in result.stderr
    # a run that took far fewer samples than asked for is a sampling problem, not a format one
    captured = re.search(r"Captured ([\d,]+) samples", result.stdout)
    assert captured and int(captured.group(1).replace(",", "")) > 500 * float(duration), (
        result.stdout + result.stderr)
    return out


def run_cli(tmp_path_factory, fmt, script, *extra, duration="1.5") -> bytes:
    with open(profile_path(tmp_path_factory, fmt, script, *extra, duration=duration), "rb") as fh:
        return fh.read()


@pytest.fixture(scope="module")
def io_gecko(tmp_path_factory):
    return json.loads(run_cli(tmp_path_factory, "gecko", "io_vs_cpu.py"))


@pytest.fixture(scope="module")
def io_speedscope(tmp_path_factory):
    return json.loads(run_cli(tmp_path_factory, "speedscope", "io_vs_cpu.py"))


def leaf_share(thread, strings, func):
    """Share of a gecko thread's samples whose leaf function is `func`."""
    stacks = thread["samples"]["stack"]
    hits = sum(1 for s in stacks if s is not None and stack_names(thread, strings, s)[-1] == func)
    return hits / len(stacks)


def marker_time(thread, strings, name):
    return sum(end - start for start, end in markers_of(thread, strings).get(name, []))


def test_gecko_real_run_blocked_thread_is_off_cpu_without_gil(io_gecko):
    check_processed_profile(io_gecko)
    strings = io_gecko["shared"]["stringArray"]
    assert len(io_gecko["threads"]) == 2
    main, blocked = io_gecko["threads"]
    assert main["isMainThread"] and main["name"] == "MainThread" and not blocked["isMainThread"]
    assert "blocked_in_io" in blocked["name"]  # threading's name: "Thread-1 (blocked_in_io)"
    assert leaf_share(main, strings, "busy") > 0.9 and leaf_share(blocked, strings, "blocked_in_io") > 0.9
    # the lines: busy's loop (line 12) and the blocking read (line 6)
    for thread, func, line in ((main, "busy", 12), (blocked, "blocked_in_io", 6)):
        ft, names = thread["frameTable"], [strings[n] for n in thread["funcTable"]["name"]]
        lines = {ft["line"][i] for i in range(ft["length"]) if names[ft["func"][i]] == func}
        assert line in lines, (func, lines)
    span = main["samples"]["time"][-1] - main["samples"]["time"][0]
    assert 1.3 * 1000 < span < 1.7 * 1000
    assert marker_time(blocked, strings, "Off CPU") > 0.9 * span
    assert marker_time(blocked, strings, "No GIL") > 0.9 * span
    assert marker_time(blocked, strings, "Has GIL") < 0.05 * span
    assert marker_time(main, strings, "On CPU") > 0.8 * span
    assert marker_time(main, strings, "Has GIL") > 0.8 * span
    deltas = [d for d in blocked["samples"]["threadCPUDelta"][1:] if d is not None]
    assert deltas and sum(1 for d in deltas if d == 0) > 0.9 * len(deltas)
    assert io_gecko["meta"]["heatline"]["mode"] == "wall"
    assert 0.9 < io_gecko["meta"]["interval"] < 1.2  # ms, at the default 1 kHz


def test_speedscope_real_run_proportions(io_speedscope):
    check_speedscope(io_speedscope)
    frames = io_speedscope["shared"]["frames"]
    main, blocked = io_speedscope["profiles"]
    assert main["name"].startswith("MainThread (tid ") and "blocked_in_io" in blocked["name"]

    def leaf_weight(profile, prefix):
        return sum(w for stack, w in zip(profile["samples"], profile["weights"])
                   if stack and frames[stack[-1]]["name"].startswith(prefix))

    for profile, func in ((main, "busy (io_vs_cpu.py:"), (blocked, "blocked_in_io (io_vs_cpu.py:6)")):
        total = profile["endValue"] - profile["startValue"]
        assert 1.3e6 < total < 1.7e6  # µs: the 1.5 s run, on each thread's own timeline
        assert leaf_weight(profile, func) > 0.9 * total
    # in wall mode both threads are sampled the whole time: equal time, whatever they do
    assert abs(main["endValue"] - blocked["endValue"]) < 50_000
    busy_frame = next(f for f in frames if f["name"] == "busy (io_vs_cpu.py:12)")
    assert busy_frame["file"].endswith("tests/targets/io_vs_cpu.py") and busy_frame["line"] == 12


def test_jsonl_real_runs_wall_and_cpu_mode(tmp_path_factory):
    def self_counts(data):
        records = parse_jsonl(data)
        strings, frames, agg = jsonl_tables(records)
        counts: dict[str, int] = {}
        for fid, (own, _cum) in agg.items():
            name = strings[frames[fid]["func_str_id"]]
            counts[name] = counts.get(name, 0) + own
        return records, counts

    records, wall = self_counts(run_cli(tmp_path_factory, "jsonl", "io_vs_cpu.py"))
    assert records[0]["mode"] == "wall" and records[0]["sample_interval_usec"] == 1000
    assert 0.8 < wall["busy"] / wall["blocked_in_io"] < 1.25  # both sampled at every tick
    assert wall["busy"] + wall["blocked_in_io"] > 0.9 * records[-1]["samples_total"]
    records, cpu = self_counts(run_cli(tmp_path_factory, "jsonl", "io_vs_cpu.py", "--mode", "cpu"))
    assert records[0]["mode"] == "cpu"
    assert cpu.get("busy", 0) > 500 and cpu.get("blocked_in_io", 0) < 0.02 * cpu["busy"]


def test_gecko_and_speedscope_real_run_many_named_threads(tmp_path_factory):
    gecko = json.loads(run_cli(tmp_path_factory, "gecko", "threads.py", "--mode", "cpu", duration="1"))
    check_processed_profile(gecko)
    strings = gecko["shared"]["stringArray"]
    names = [t["name"] for t in gecko["threads"]]
    assert gecko["meta"]["heatline"]["mode"] == "cpu"  # --mode is accepted and recorded
    workers = {t["name"]: t for t in gecko["threads"] if t["name"].startswith("worker-")}
    assert len(workers) >= 6, names  # worker threads sleep half the time: most are seen on CPU
    for name, thread in workers.items():
        funcs = {strings[n] for n in thread["funcTable"]["name"]}
        assert f"worker_{name.split('-')[1]}" in funcs
    assert len(set(t["tid"] for t in gecko["threads"])) == len(names)

    data = json.loads(run_cli(tmp_path_factory, "speedscope", "threads.py", duration="1"))
    check_speedscope(data)
    profile_names = [p["name"] for p in data["profiles"]]
    assert len(profile_names) == 9 and profile_names[0].startswith("MainThread")
    assert {n.split(" ")[0] for n in profile_names[1:]} == {f"worker-{i}" for i in range(8)}
    frames = data["shared"]["frames"]
    for p in data["profiles"][1:]:
        func = "worker_" + p["name"].split(" ")[0].split("-")[1]
        own = sum(w for stack, w in zip(p["samples"], p["weights"])
                  if stack and frames[stack[-1]]["name"].startswith(func + " (threads.py:"))
        assert own > 0.8 * (p["endValue"] - p["startValue"]), (p["name"], own)


HOSTILE_LEAF = "<script>alert(1)</script>"
HOSTILE_OUTER = "\"><img src=x onerror=alert(2)>'&amp;💥"


@pytest.mark.parametrize("fmt", ["gecko", "jsonl", "speedscope"])
def test_hostile_names_survive_exactly(tmp_path_factory, fmt):
    (script,) = [n for n in os.listdir(os.path.join(ROOT, "tests", "targets")) if n.startswith("hostile_<script>")]
    data = run_cli(tmp_path_factory, fmt, script, duration="1")
    data.decode("ascii")  # every other character is \u-escaped
    if fmt == "gecko":
        profile = json.loads(data)
        check_processed_profile(profile)
        strings = profile["shared"]["stringArray"]
        main = profile["threads"][0]
        assert leaf_share(main, strings, HOSTILE_LEAF) > 0.8
        assert any(stack_names(main, strings, s)[-2:] == [HOSTILE_OUTER, HOSTILE_LEAF]
                   for s in main["samples"]["stack"] if s is not None)
        assert any(name.endswith(script) for name in strings)
    elif fmt == "jsonl":
        strings, frames, agg = jsonl_tables(parse_jsonl(data))
        own: dict[str, int] = {}
        for fid, (self_count, _cumulative) in agg.items():  # summed over the function's lines
            name = strings[frames[fid]["func_str_id"]]
            own[name] = own.get(name, 0) + self_count
        assert own[HOSTILE_LEAF] > 0.8 * sum(own.values()) and HOSTILE_OUTER in own
        assert any(path.endswith(script) for path in strings.values())
    else:
        profile = json.loads(data)
        check_speedscope(profile)
        frames = profile["shared"]["frames"]
        hot_line = next(f for f in frames if f["name"] == f"{HOSTILE_LEAF} ({script}:28)")
        assert hot_line["file"].endswith(script) and hot_line["line"] == 28
        main = profile["profiles"][0]
        in_leaf = sum(w for st, w in zip(main["samples"], main["weights"])
                      if st and frames[st[-1]]["name"].startswith(HOSTILE_LEAF + f" ({script}:"))
        assert in_leaf > 0.8 * (main["endValue"] - main["startValue"])


def test_replay_of_a_binary_profile_keeps_the_timeline(tmp_path_factory):
    """`replay` interleaves threads by record blocks: the timelines must come out as when live."""
    binary = profile_path(tmp_path_factory, "binary", "io_vs_cpu.py", duration="1")
    outputs = {}
    for fmt in ("gecko", "speedscope"):
        out = str(tmp_path_factory.mktemp("replay") / f"replayed.{fmt}")
        result = heatline("replay", binary, f"--{fmt}", "-o", out)
        assert result.returncode == 0, result.stderr
        with open(out, encoding="ascii") as fh:
            outputs[fmt] = json.load(fh)
    gecko = outputs["gecko"]
    check_processed_profile(gecko)
    strings = gecko["shared"]["stringArray"]
    main, blocked = gecko["threads"]
    span = main["samples"]["time"][-1] - main["samples"]["time"][0]
    assert 800 < span < 1200 and 800 < blocked["samples"]["time"][-1] - blocked["samples"]["time"][0] < 1200
    assert marker_time(blocked, strings, "Off CPU") > 0.9 * span
    assert marker_time(main, strings, "On CPU") > 0.8 * span
    assert leaf_share(blocked, strings, "blocked_in_io") > 0.9
    check_speedscope(outputs["speedscope"])
    for profile in outputs["speedscope"]["profiles"]:
        assert 0.8e6 < profile["endValue"] - profile["startValue"] < 1.2e6


# ==== speedscope's own importer, in Chromium =========================================================


def speedscope_release() -> str:
    """speedscope's built app from its npm package (fetched once with `npm pack` into a cache)."""
    cache = os.environ.get("HEATLINE_TEST_CACHE") or os.path.expanduser("~/.cache/heatline-tests")
    release = os.path.join(cache, f"speedscope-{SPEEDSCOPE_VERSION}", "package", "dist", "release")
    if os.path.exists(os.path.join(release, "index.html")):
        return release
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: speedscope's importer cannot be fetched")
    workdir = os.path.join(cache, f"speedscope-{SPEEDSCOPE_VERSION}")
    os.makedirs(workdir, exist_ok=True)
    try:
        packed = subprocess.run([npm, "pack", f"speedscope@{SPEEDSCOPE_VERSION}"], cwd=workdir,
                                capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip("npm pack speedscope timed out")
    if packed.returncode != 0:
        pytest.skip(f"npm pack speedscope failed: {packed.stderr.strip()[-300:]}")
    tarball = os.path.join(workdir, f"speedscope-{SPEEDSCOPE_VERSION}.tgz")
    shutil.unpack_archive(tarball, workdir)
    return release


def test_speedscope_file_opens_in_speedscope(io_speedscope, page, tmp_path):
    release = speedscope_release()
    with open(os.path.join(release, "file-format-schema.json"), encoding="utf-8") as fh:
        assert json.load(fh) == load_speedscope_schema()  # the schema we copied is this release's
    data = json.dumps(io_speedscope).encode("ascii")
    # What `speedscope FILE` does: a script that hands the file to the app, named in the URL.
    loader = tmp_path / "load.js"
    loader.write_text("speedscope.loadFileFromBase64(%s, %s)" % (
        json.dumps("out.speedscope.json"), json.dumps(base64.b64encode(data).decode())))
    page.goto(f"file://{release}/index.html#localProfilePath={loader}")
    page.wait_for_function("document.title.startsWith('Python ')")
    page.get_by_text("Sandwich").click()
    page.wait_for_function("document.body.innerText.includes('busy (io_vs_cpu.py:12)')")
    text = page.inner_text("body")
    assert "MainThread (tid " in text and "(1/2)" in text
    # the Sandwich table's row: total, self, name; busy's line runs the whole 1.5 s
    row = re.search(r"([\d.]+)s \([^)]*\)\s+([\d.]+)s \([^)]*\)\s+busy \(io_vs_cpu\.py:12\)", text)
    assert row and 1.3 < float(row.group(1)) < 1.7 and 1.3 < float(row.group(2)) < 1.7, text[:400]
    page.keyboard.press("n")  # the next profile: the blocked thread
    page.wait_for_function("document.body.innerText.includes('blocked_in_io (io_vs_cpu.py:6)')")
    text = page.inner_text("body")
    assert "(2/2)" in text and "Thread.run (threading.py:" in text
    assert page.errors == []
