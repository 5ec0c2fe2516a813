"""Every output format carries `--async-aware` task markers, end to end on real asyncio targets.

One profiling run per interpreter (the venv's CPython and the sid root's 3.14 and 3.15): heatline
attaches to tests/targets/async_split.py (`heavy` and `light` tasks, 70/30 of the work, gathered
by `supervisor` under asyncio.run's `Task-1`) and to tests/targets/async_tree.py in
`--async-mode all` (a tree of named tasks), each into a `--binary` file, and `heatline replay`
turns both into every format. Each format is read back with a parser of its own and must give
every task the samples the binary gives it (a task is on a stack at most once, so its total is
the weight of the stacks holding it); heavy's share must be 70% within a margin a loaded machine
keeps. How each format shows a task (README, `--async-aware`):

- collapsed `<task>:NAME:0`, pstats key `("<task>", 0, NAME)`, JSON Lines path `<task>` with
  `"line": 0` only: Tachyon's shapes (checked against Tachyon 3.15's own replay of our file);
- flame graph and diff: a task colour and stripe, tooltip "asyncio task", a tasks list (Chromium);
- gecko: an "asyncio task" category and an AsyncTask marker per running task;
- heatmap: no page for `<task>`, an "Asyncio tasks" table, tasks in the call menus;
- speedscope: frames `<task> NAME` without a file;
- binary: no location, as Tachyon stores its `<task>` frames (Tachyon reads them as its own; we
  read a file Tachyon's own writer made from its own async stacks).

tests/test_async_aware.py holds the shares against Tachyon's live run and the refusals; this file
holds the formats.
"""

from __future__ import annotations

import html
import json
import marshal
import math
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

import sid_root
from conftest import ALL_INTERPRETERS, favoured, heatline, parse_collapsed, target
from sampler.collectors import COLLECTORS
from sampler.model import HAS_GIL, TASK_FILENAME, Profile, RunStats, ThreadSample, task_frame
from sampler.replay import open_binary_profile, replay
from test_data_formats import check_processed_profile, check_speedscope

WORKERS = ("heavy", "light")
SPLIT_TASKS = {"Task-1", "supervisor", *WORKERS}
HEAVY_TRUTH = 70.0
MARGIN = 8.0  # percentage points: whole-task shares on a busy 2-core machine
TREE_TASKS = {"Task-1", "shared-worker (2 parents)", "watcher-1", "watcher-2", "gatherer", "gathered-1", "gathered-2",
              "group-owner", "grouped", "early-owner", "grouped-early"}
FORMATS = {"collapsed": "txt", "pstats": "pstats", "flamegraph": "html", "gecko": "gecko.json", "heatmap": "",
           "jsonl": "jsonl", "speedscope": "speedscope.json"}  # replay writes no --binary (nor does Tachyon's)
DATA_RE = re.compile(r'<script type="application/json" id="heatline-data">(.*?)</script>', re.S)


def _current_and_rooted():
    """The venv's CPython and the sid root's (skipped with the reason when the root is missing)."""
    return [p for p in ALL_INTERPRETERS if p.values[0].rooted or p.values[0].label.startswith("current-")]


# -- one run per interpreter, replayed into every format -------------------------------------------


class Run:
    """The binary files of one interpreter's runs and every format replayed from them."""

    def __init__(self, interp, folder: str) -> None:
        self.interp = interp
        self.folder = folder
        self.outputs: dict[tuple[str, str], str] = {}  # (run, format) -> path

    def out(self, run: str, fmt: str) -> str:
        return self.outputs[(run, fmt)]

    def binary(self, run: str) -> str:
        return os.path.join(self.folder, f"{run}.bin")

    def truth(self, run: str) -> Counter:
        """Per task, the weight of the binary's stacks holding it."""
        return task_totals(load(self.binary(run)))


def load(path: str) -> Profile:
    profile = Profile()
    replay(open_binary_profile(path), profile)
    return profile


def leaf_tasks(profile: Profile) -> set:
    """The innermost task of every stack (`--async-mode all`: one stack per task at each tick)."""
    return {next(f.funcname for f in frames if f.is_task) for _tid, frames, _w in profile.iter_stacks()
            if any(f.is_task for f in frames)}


def task_totals(profile: Profile) -> Counter:
    totals: Counter = Counter()
    for _tid, frames, weight in profile.iter_stacks():
        for name in {f.funcname for f in frames if f.is_task}:
            totals[name] += weight
    return totals


def _attach(interp, script: str, out: str, seconds: float, *options: str) -> None:
    proc = subprocess.Popen([*favoured(), *interp.command(target(script))], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "ready" in line, f"{script} did not start: {line!r}"
        res = heatline("attach", str(proc.pid), "-d", str(seconds), "--async-aware", *options, "--binary", "-o", out,
                       prefix=favoured())
        assert res.returncode == 0, res.stderr
    finally:
        proc.kill()
        proc.communicate()


def _replay(binary: str, fmt: str, out: str, *extra: str) -> str:
    res = heatline("replay", binary, f"--{fmt}", *extra, "-o", out)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module", params=_current_and_rooted())
def run(request, tmp_path_factory):
    interp = request.param
    if interp.rooted and shutil.which("nsenter") is None:
        pytest.skip("nsenter (util-linux) is missing")
    result = Run(interp, str(tmp_path_factory.mktemp(f"async-{interp.label}")))
    _attach(interp, "async_split.py", result.binary("split"), 4)
    _attach(interp, "async_tree.py", result.binary("tree"), 1.5, "--async-mode", "all")
    # The diff's baseline: the split run without `light`, so that task is new in the diff.
    baseline = _write_baseline(load(result.binary("split")), os.path.join(result.folder, "baseline.bin"))
    jobs = [(run, fmt, os.path.join(result.folder, f"{run}-out.{ext}" if ext else f"{run}-heatmap"), ())
            for run in ("split", "tree") for fmt, ext in FORMATS.items()]
    jobs.append(("split", "diff-flamegraph", os.path.join(result.folder, "split-diff.html"),
                 (baseline,)))
    with ThreadPoolExecutor(2) as pool:
        done = pool.map(lambda j: _replay(result.binary(j[0]), j[1], j[2], *j[3]), jobs)
        for job, path in zip(jobs, done):
            result.outputs[(job[0], job[1])] = path
    return result


def _write_baseline(split: Profile, path: str) -> str:
    """`split` less every stack of the `light` task, as a --binary file."""
    baseline = Profile(RunStats(interval_usec=split.stats.interval_usec))
    for tid, frames, weight in split.iter_stacks():
        if task_frame("light") not in frames:
            baseline.add(ThreadSample(tid, HAS_GIL, frames), weight)
    writer = COLLECTORS["binary"](baseline)
    for tid, frames, weight in baseline.iter_stacks():
        writer.collect(0, [ThreadSample(tid, HAS_GIL, frames)], weight)
    return writer.write(path)


# -- each format's tasks, read back ------------------------------------------------------------------

TASK_PREFIX = TASK_FILENAME + " "  # `<task> NAME`: a task's name where a format has one string


def collapsed_tasks(path: str) -> Counter:
    totals: Counter = Counter()
    for _tid, frames, count in parse_collapsed(path):
        for name in {f[len("<task>:"):-len(":0")] for f in frames if f.startswith("<task>:") and f.endswith(":0")}:
            totals[name] += count
    return totals


def pstats_tasks(path: str) -> Counter:
    with open(path, "rb") as fh:
        stats = marshal.load(fh)
    return Counter({key[2]: value[1] for key, value in stats.items() if key[:2] == (TASK_FILENAME, 0)})


def flamegraph_data_of(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        found = DATA_RE.search(fh.read())
    assert found, "no data in the page"
    return json.loads(found[1])


def flamegraph_tasks(data: dict, column: str = "value") -> Counter:
    frames, nodes = data["frames"], data["nodes"]
    totals: Counter = Counter()
    for frame, value in zip(nodes["frame"], nodes[column]):
        if frame >= 0 and frames["file"][frame] == -2:
            totals[frames["funcname"][frame]] += value
    return totals


def gecko_tasks(path: str) -> tuple[Counter, Counter, dict]:
    """Per task: samples with it on the stack, and ms of AsyncTask markers; and the profile."""
    with open(path, encoding="utf-8") as fh:
        profile = json.load(fh)
    check_processed_profile(profile)
    strings = profile["shared"]["stringArray"]
    category = [c["name"] for c in profile["meta"]["categories"]].index("asyncio task")
    samples: Counter = Counter()
    marked: Counter = Counter()
    for thread in profile["threads"]:
        stacks, frames, funcs = thread["stackTable"], thread["frameTable"], thread["funcTable"]
        names: dict = {}

        def tasks_at(stack):
            if stack not in names:
                own = set()
                frame = stacks["frame"][stack]
                func_name = strings[funcs["name"][frames["func"][frame]]]
                if frames["category"][frame] == category:
                    assert func_name.startswith(TASK_PREFIX) and funcs["fileName"][frames["func"][frame]] is None
                    own.add(func_name[len(TASK_PREFIX):])
                else:
                    assert not func_name.startswith(TASK_PREFIX), func_name
                prefix = stacks["prefix"][stack]
                names[stack] = own | (tasks_at(prefix) if prefix is not None else set())
            return names[stack]

        weights = thread["samples"]["weight"] or [1] * thread["samples"]["length"]
        for stack, weight in zip(thread["samples"]["stack"], weights):
            for name in tasks_at(stack) if stack is not None else ():
                samples[name] += weight
        markers = thread["markers"]
        for i in range(markers["length"]):
            data = markers["data"][i]
            if data["type"] == "AsyncTask":
                assert markers["category"][i] == category and strings[markers["name"][i]] == TASK_PREFIX + data["task"]
                marked[data["task"]] += markers["endTime"][i] - markers["startTime"][i]
    return samples, marked, profile


def heatmap_tasks(directory: str) -> Counter:
    with open(os.path.join(directory, "index.html"), encoding="utf-8") as fh:
        index = fh.read()
    return Counter({html.unescape(name): int(total) for name, total in
                    re.findall(r'<tr class="task" data-task="([^"]*)" data-total="(\d+)"', index)})


def jsonl_tasks(path: str) -> Counter:
    with open(path, encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    strings = {s["str_id"]: s["value"] for r in records if r["type"] == "string_table" for s in r["strings"]}
    frames = {f["frame_id"]: f for r in records if r["type"] == "frame_table" for f in r["frames"]}
    totals: Counter = Counter()
    for r in records:
        for entry in r.get("entries", ()) if r["type"] == "agg" else ():
            frame = frames[entry["frame_id"]]
            if strings[frame["path_str_id"]] == TASK_FILENAME:
                # Tachyon's record of a frame with no location: the line, 0, and nothing else.
                assert set(frame) == {"frame_id", "path_str_id", "func_str_id", "line"} and frame["line"] == 0, frame
                totals[strings[frame["func_str_id"]]] += entry["cumulative"]
    return totals


def speedscope_tasks(path: str) -> Counter:
    """Per task, the time (µs) it was on the stack."""
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    check_speedscope(doc)
    frames = doc["shared"]["frames"]
    task_of = {}
    for i, frame in enumerate(frames):
        if frame["name"].startswith(TASK_PREFIX):
            assert "file" not in frame and "line" not in frame, frame
            task_of[i] = frame["name"][len(TASK_PREFIX):]
    totals: Counter = Counter()
    for prof in doc["profiles"]:
        for stack, weight in zip(prof["samples"], prof["weights"]):
            for name in {task_of[i] for i in stack if i in task_of}:
                totals[name] += weight
    return totals


def share(totals: Counter, name: str, of=WORKERS) -> float:
    return 100.0 * totals[name] / sum(totals[n] for n in of)


def timed_share_allowance(speedscope: str, name: str = "heavy") -> float:
    """How far (points) a task's share by time may stand from its share by samples when the
    intervals between samples vary independently of the task running: 4 standard deviations
    of the difference, at least 2.0. On a loaded machine the sampler stalls now and then, and
    one long interval moves the time share of whichever task it fell on (CI saw 2.4 points
    beside a CPU hog and three other test runs). A marker or weight given to the wrong task is
    systematic and stands out of this; the intervals are the speedscope file's own weights."""
    with open(speedscope, encoding="utf-8") as fh:
        doc = json.load(fh)
    frames = doc["shared"]["frames"]
    task_of = {i: f["name"][len(TASK_PREFIX):] for i, f in enumerate(frames) if f["name"].startswith(TASK_PREFIX)}
    weights, hits = [], 0
    for prof in doc["profiles"]:
        for stack, weight in zip(prof["samples"], prof["weights"]):
            tasks = {task_of[i] for i in stack if i in task_of}
            if tasks & set(WORKERS):
                weights.append(weight)
                hits += name in tasks
    n, total = len(weights), sum(weights)
    if not n or not total:
        return 2.0
    p = hits / n
    spread = sum((w / total - 1 / n) ** 2 for w in weights) / n  # variance of one sample's excess weight
    return max(2.0, 4 * 100 * math.sqrt(n * p * (1 - p) * spread))


# -- the tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["split", "tree"])
def test_binary_keeps_task_frames(run, which):
    reader = open_binary_profile(run.binary(which))
    list(reader.samples())
    tasks = [f for f in reader.frames if f is not None and f.filename == TASK_FILENAME]
    # Exactly model.task_frame: line 0 and no end, column or end column (stored as no location).
    assert tasks and all(f == task_frame(f.funcname) for f in tasks), tasks
    names = {f.funcname for f in tasks}
    if which == "split":
        assert names == SPLIT_TASKS
        truth = run.truth("split")
        print(f"[{run.interp.label}] heavy {share(truth, 'heavy'):.1f}% of {sum(truth[n] for n in WORKERS)} samples")
        assert abs(share(truth, "heavy") - HEAVY_TRUTH) <= MARGIN, truth
        # The workers run under the supervisor, under Task-1 (but in the first moments, before
        # the gather, no task awaits them yet).
        assert truth["supervisor"] >= 0.9 * (truth["heavy"] + truth["light"])
    else:
        assert TREE_TASKS <= names, TREE_TASKS - names


@pytest.mark.parametrize("which", ["split", "tree"])
@pytest.mark.parametrize("fmt,reader", [("collapsed", collapsed_tasks), ("pstats", pstats_tasks),
                                        ("heatmap", heatmap_tasks), ("jsonl", jsonl_tasks)])
def test_aggregate_formats_give_each_task_its_samples(run, which, fmt, reader):
    got = reader(run.out(which, fmt))
    assert got == run.truth(which)
    if which == "split":
        assert abs(share(got, "heavy") - HEAVY_TRUTH) <= MARGIN


def test_collapsed_is_tachyons_task_shape(run):
    for _tid, frames, _count in parse_collapsed(run.out("split", "collapsed")):
        tasks = [f for f in frames if f.startswith("<task>")]
        assert tasks and all(re.fullmatch(r"<task>:[^:]+:0", f) for f in tasks), frames
        if len(tasks) == 3:  # Tachyon's order: root task, its coroutine, the next task, ...
            assert tasks[:2] == ["<task>:Task-1:0", "<task>:supervisor:0"] and frames[0] == "<task>:Task-1:0"


def test_pstats_file_loads_with_task_functions(run):
    stats = pstats.Stats(run.out("split", "pstats"))
    for name in SPLIT_TASKS:
        cc, nc, _tt, ct, callers = stats.stats[(TASK_FILENAME, 0, name)]
        assert nc > 0 and ct > 0
        # cProfile's shape (what snakeviz reads): callers map to 4-tuples.
        assert all(isinstance(v, tuple) and len(v) == 4 for v in callers.values())
    # A worker's coroutine is called from its task marker: snakeviz draws it under the task.
    heavy_coro = [k for k in stats.stats if k[2] == "heavy" and k[0] != TASK_FILENAME]
    assert heavy_coro and all((TASK_FILENAME, 0, "heavy") in stats.stats[k][4] for k in heavy_coro)


@pytest.mark.parametrize("which", ["split", "tree"])
def test_flamegraph_marks_tasks(run, which):
    data = flamegraph_data_of(run.out(which, "flamegraph"))
    truth = run.truth(which)
    got = flamegraph_tasks(data)
    assert set(got) <= set(truth)
    for name, total in truth.items():  # nodes under 0.1% of the samples are pruned, as in Tachyon
        assert total - data["pruned"]["samples"] <= got[name] <= total, (name, got[name], total)
    # no task is taken for a file
    assert TASK_FILENAME not in {f["filename"] for f in data["files"]}


def test_diff_flamegraph_shows_the_new_task(run):
    data = flamegraph_data_of(run.out("split", "diff-flamegraph"))
    frames, nodes = data["frames"], data["nodes"]
    status: dict = {}
    for frame, st in zip(nodes["frame"], nodes["status"]):
        if frame >= 0 and frames["file"][frame] == -2:
            status.setdefault(frames["funcname"][frame], set()).add(st)
    # light is only in this run: new wherever it is; heavy is in both, matched at least once.
    assert status["light"] == {1} and 0 in status["heavy"], status
    now, base = flamegraph_tasks(data), flamegraph_tasks(data, "baseline_total")
    assert base["light"] == 0 and now["light"] > 0 and base["heavy"] > 0


@pytest.mark.parametrize("which", ["split", "tree"])
def test_gecko_task_category_and_markers(run, which):
    samples, marked, profile = gecko_tasks(run.out(which, "gecko"))
    assert samples == run.truth(which)
    assert {"name": "asyncio task", "color": "brown", "subcategories": ["Other"]} in profile["meta"]["categories"]
    assert "AsyncTask" in {s["name"] for s in profile["meta"]["markerSchema"]}
    if which == "split":
        # Markers follow the running (innermost) task: the workers, never the tasks awaiting them.
        assert set(marked) == set(WORKERS)
        print(f"[{run.interp.label}] gecko: heavy markers {share(marked, 'heavy'):.1f}%, samples "
              f"{share(samples, 'heavy'):.1f}%")
        assert abs(share(marked, "heavy") - share(samples, "heavy")) <= timed_share_allowance(run.out(which, "speedscope"))
        assert abs(share(marked, "heavy") - HEAVY_TRUTH) <= MARGIN
    else:  # every task at each tick: a track per task, and none is marked the running one
        assert not marked
        lanes = {t["name"].split(": " + TASK_PREFIX, 1)[1] for t in profile["threads"]}
        assert lanes == leaf_tasks(load(run.binary("tree")))


@pytest.mark.parametrize("which", ["split", "tree"])
def test_speedscope_task_frames(run, which):
    got = speedscope_tasks(run.out(which, "speedscope"))
    truth = run.truth(which)
    assert set(got) == set(truth)
    with open(run.out(which, "speedscope"), encoding="utf-8") as fh:
        profiles = json.load(fh)["profiles"]
    names = [p["name"] for p in profiles]
    if which == "split":  # one timeline for the thread, its tasks in turn
        assert len(names) == 1 and TASK_PREFIX not in names[0]
        assert abs(share(got, "heavy") - share(truth, "heavy")) <= timed_share_allowance(run.out(which, "speedscope"))
    else:  # every task at each tick: a timeline per task, each lasting the whole run
        assert {n.split(": " + TASK_PREFIX, 1)[1] for n in names} == leaf_tasks(load(run.binary("tree")))
        spans = [p["endValue"] - p["startValue"] for p in profiles]
        assert min(spans) >= 0.9 * max(spans), dict(zip(names, spans))


def test_heatmap_pages_and_task_menus(run, page):
    directory = run.out("split", "heatmap")
    pages = sorted(os.listdir(directory))
    with open(os.path.join(directory, "index.html"), encoding="utf-8") as fh:
        index = fh.read()
    assert "&lt;task&gt;" not in index.split('id="group-tasks"')[0]  # not among the files
    # One page for async_split.py and none for the task markers.
    sources = []
    for name in pages:
        if name.startswith("file_"):
            with open(os.path.join(directory, name), encoding="utf-8") as fh:
                text = fh.read()
            sources.append(re.search(r'<h1><span class="path">([^<]*)</span>', text)[1])
            if "async_split.py" in sources[-1]:
                split_page = os.path.join(directory, name)
    assert any(s.endswith("async_split.py") for s in sources) and TASK_FILENAME not in [html.unescape(s) for s in sources]
    with open(split_page, encoding="utf-8") as fh:
        text = fh.read()
    # supervisor's `await asyncio.gather(*workers)` leads to both workers' tasks.
    gather = re.search(r'<tr id="line-70".*?</tr>', text, re.S)[0]
    assert "&lt;task&gt; heavy" in gather and "&lt;task&gt; light" in gather and "asyncio task" in gather
    _check_pages_in_chromium(page, [split_page, os.path.join(directory, "index.html")])
    names = page.locator("#group-tasks tr.task td.name").all_text_contents()
    assert set(names) == SPLIT_TASKS


def _check_pages_in_chromium(page, paths) -> None:
    from pathlib import Path

    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for path in paths:
        page.goto(Path(path).as_uri())
        page.wait_for_load_state("load")
    assert not page.errors and not dialogs, (page.errors, dialogs)


def _canvas_colour(page, x: float, y: float) -> str:
    return page.evaluate(
        """([x, y]) => {
          const c = document.querySelector('canvas'), r = c.getBoundingClientRect();
          const d = window.devicePixelRatio || 1;
          const p = c.getContext('2d').getImageData(Math.round((x - r.left) * d), Math.round((y - r.top) * d), 1, 1).data;
          return '#' + [p[0], p[1], p[2]].map(v => v.toString(16).padStart(2, '0')).join('');
        }""", [x, y])


def _css(page, name: str) -> str:
    return page.evaluate(f"getComputedStyle(document.documentElement).getPropertyValue('{name}').trim()")


def test_flamegraph_task_with_several_awaiters_in_chromium(run, page):
    _check_pages_in_chromium(page, [run.out("tree", "flamegraph")])
    shared = [f for f in page.evaluate("window.heatline.visibleFrames()") if f["funcname"] == "shared-worker (2 parents)"]
    assert len(shared) == 2 and all(f["task"] for f in shared)  # under each watcher
    page.mouse.move(shared[0]["x"] + shared[0]["width"] / 2, shared[0]["y"] + shared[0]["height"] / 2)
    assert "Awaited by 2 tasks: its samples are shared out among them, each counted once" in \
        page.evaluate("window.heatline.tooltipText()").splitlines()


@pytest.mark.parametrize("fmt", ["flamegraph", "diff-flamegraph"])
def test_flamegraph_tasks_in_chromium(run, page, fmt):
    _check_pages_in_chromium(page, [run.out("split", fmt)])
    frames = page.evaluate("window.heatline.visibleFrames()")
    tasks = [f for f in frames if f["task"]]
    assert {f["funcname"] for f in tasks} == SPLIT_TASKS
    assert all(f["name"] == TASK_PREFIX + f["funcname"] and f["file"] == TASK_FILENAME for f in tasks)
    assert not any(f["task"] for f in frames if f["file"] != TASK_FILENAME)
    heavy = max((f for f in tasks if f["funcname"] == "heavy"), key=lambda f: f["width"])
    # Drawn as a task: the stripe at its left edge, and (outside a diff) the task colour.
    assert _canvas_colour(page, heavy["x"] + 1, heavy["y"] + 2) == _css(page, "--task-edge")
    if fmt == "flamegraph":
        assert _canvas_colour(page, heavy["x"] + heavy["width"] - 4, heavy["y"] + 2) == _css(page, "--task")
    page.mouse.move(heavy["x"] + heavy["width"] / 2, heavy["y"] + heavy["height"] / 2)
    tip = page.evaluate("window.heatline.tooltipText()").splitlines()
    assert tip[:2] == ["heavy", "asyncio task"], tip
    # "<task>" finds every task and nothing else; the sidebar lists them.
    found = page.evaluate("window.heatline.search('<task>')")
    assert found["frames"] == len(SPLIT_TASKS) and found["share"] == 1  # every stack is in a task
    listed = page.locator(".hl-tasks .hl-fn").all_text_contents()
    assert set(listed) == SPLIT_TASKS and listed[0] in ("Task-1", "supervisor")


# -- Tachyon 3.15: the binary both ways, collapsed and JSON Lines from the same file ------------------

# Run by the root's python3.15: every `<task>` frame Tachyon's reader gives, with its location.
TACHYON_TASK_LOCATIONS = r"""
import json, sys
from profiling.sampling.binary_reader import BinaryReader

class Tasks:
    def __init__(self):
        self.seen = {}
    def collect(self, stack_frames, timestamps_us=None):
        for interpreter in stack_frames:
            for thread in interpreter.threads:
                for frame in thread.frame_info:
                    if frame.filename == "<task>":
                        self.seen.setdefault(frame.funcname, set()).add(repr(frame.location))

tasks = Tasks()
with BinaryReader(sys.argv[1]) as reader:
    reader.replay_samples(tasks)
print(json.dumps({name: sorted(where) for name, where in tasks.seen.items()}))
"""

# Run by the root's python3.15: a --binary file of async stacks made by Tachyon itself (its CLI
# refuses --binary with --async-aware): its unwinder's running-task stacks, linearised by its own
# collector code, written by its own BinaryCollector.
TACHYON_ASYNC_BINARY = r"""
import subprocess, sys, time
import _remote_debugging as rd
from profiling.sampling.binary_collector import BinaryCollector
from profiling.sampling.collector import iter_async_frames

script, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
target = subprocess.Popen([sys.executable, script], stdout=subprocess.PIPE)
try:
    assert b"ready" in target.stdout.readline()
    unwinder = rd.RemoteUnwinder(target.pid, mode=0, cache_frames=True)
    collector = BinaryCollector(out, 1000, compression="zstd", mode=0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            awaited = unwinder.get_async_stack_trace()
        except (RuntimeError, OSError):
            continue
        threads = [rd.ThreadInfo((tid, rd.THREAD_STATUS_HAS_GIL, frames))
                   for frames, tid, _ in iter_async_frames(awaited) if frames]
        if threads:
            collector.collect([rd.InterpreterInfo((0, threads))])
        time.sleep(0.001)
    collector.export(out)
finally:
    target.kill()
"""


@pytest.fixture
def tachyon(run):
    """Paths inside the sid root for files Tachyon reads or writes; removed afterwards."""
    if not run.interp.rooted or not run.interp.path.endswith("3.15"):
        pytest.skip("Tachyon is CPython 3.15's: checked on the sid root's 3.15")
    inside = tempfile.mkdtemp(prefix="heatline-async-formats-", dir=sid_root.host_path("/tmp"))
    yield "/tmp/" + os.path.basename(inside)
    shutil.rmtree(inside, ignore_errors=True)


def _in_root(*argv: str, timeout: float = 120) -> str:
    res = subprocess.run(sid_root.in_root(*argv), capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_tachyon_reads_our_task_frames_as_its_own(run, tachyon):
    ours = tachyon + "/split.bin"
    shutil.copy(run.binary("split"), sid_root.host_path(ours))
    # No location, as Tachyon's own `<task>` frames (FrameInfo(("<task>", None, name, None))).
    seen = json.loads(_in_root("/usr/bin/python3.15", "-c", TACHYON_TASK_LOCATIONS, ours))
    assert seen == {name: ["None"] for name in SPLIT_TASKS}
    # Its collapsed and JSON Lines writers, fed our file, agree with ours line for line.
    _in_root("/usr/bin/python3.15", "-m", "profiling.sampling", "replay", ours, "--collapsed", "-o", ours + ".txt")
    assert sorted(parse_collapsed(sid_root.host_path(ours + ".txt"))) == sorted(parse_collapsed(run.out("split", "collapsed")))
    _in_root("/usr/bin/python3.15", "-m", "profiling.sampling", "replay", ours, "--jsonl", "-o", ours + ".jsonl")

    def records(path):
        with open(path, encoding="utf-8") as fh:
            return [{k: v for k, v in json.loads(line).items() if k != "run_id"} for line in fh
                    if json.loads(line)["type"] in ("string_table", "frame_table", "agg", "end")]

    assert records(sid_root.host_path(ours + ".jsonl")) == records(run.out("split", "jsonl"))


def test_we_replay_tachyons_async_binary(run, tachyon, tmp_path):
    theirs = tachyon + "/tachyon-async.bin"
    _in_root("/usr/bin/python3.15", "-c", TACHYON_ASYNC_BINARY, sid_root.path_in_root(target("async_split.py")),
             theirs, "2")
    reader = open_binary_profile(sid_root.host_path(theirs))
    list(reader.samples())
    tasks = [f for f in reader.frames if f is not None and f.filename == TASK_FILENAME]
    assert {f.funcname for f in tasks} == SPLIT_TASKS and all(f == task_frame(f.funcname) for f in tasks), tasks
    truth = task_totals(load(sid_root.host_path(theirs)))
    assert abs(share(truth, "heavy") - HEAVY_TRUTH) <= MARGIN, truth
    # heatline's replay of Tachyon's file: every format, the same tasks and counts.
    out = _replay(sid_root.host_path(theirs), "collapsed", str(tmp_path / "ours.txt"))
    _in_root("/usr/bin/python3.15", "-m", "profiling.sampling", "replay", theirs, "--collapsed", "-o", theirs + ".txt")
    assert sorted(parse_collapsed(out)) == sorted(parse_collapsed(sid_root.host_path(theirs + ".txt")))
    assert collapsed_tasks(out) == truth
    pages = _replay(sid_root.host_path(theirs), "heatmap", str(tmp_path / "heatmap"))
    assert heatmap_tasks(pages) == truth
    assert flamegraph_tasks(flamegraph_data_of(_replay(sid_root.host_path(theirs), "flamegraph",
                                                       str(tmp_path / "f.html")))).keys() == truth.keys()


# -- hostile task names ---------------------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script>&\"'<img src=x onerror=alert(2)>"
HOSTILE_TARGET = f"""
import asyncio

async def spin():
    while True:
        total = 0
        for i in range(20000):
            total += i
        await asyncio.sleep(0)

async def main():
    print("ready", flush=True)
    await asyncio.create_task(spin(), name={HOSTILE!r})

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A real run of a task named like markup, replayed into the HTML formats."""
    folder = tmp_path_factory.mktemp("async-hostile")
    script = folder / "hostile_task.py"
    script.write_text(HOSTILE_TARGET, encoding="utf-8")
    binary = str(folder / "h.bin")
    res = heatline("run", "--async-aware", "-d", "1.5", "--binary", "-o", binary, str(script))
    assert res.returncode == 0, res.stderr
    assert HOSTILE in task_totals(load(binary))
    return {fmt: _replay(binary, fmt, str(folder / name), *extra) for fmt, name, extra in
            [("flamegraph", "f.html", ()), ("diff-flamegraph", "d.html", (binary,)), ("heatmap", "hm", ())]}


@pytest.mark.parametrize("fmt", ["flamegraph", "diff-flamegraph"])
def test_hostile_task_name_in_flamegraphs(hostile, page, fmt):
    with open(hostile[fmt], encoding="utf-8") as fh:
        assert "<script>alert" not in fh.read()
    _check_pages_in_chromium(page, [hostile[fmt]])
    frame = [f for f in page.evaluate("window.heatline.visibleFrames()") if f["task"] and f["funcname"] == HOSTILE]
    assert frame and frame[0]["name"] == TASK_PREFIX + HOSTILE
    page.mouse.move(frame[0]["x"] + frame[0]["width"] / 2, frame[0]["y"] + frame[0]["height"] / 2)
    assert page.evaluate("window.heatline.tooltipText()").splitlines()[:2] == [HOSTILE, "asyncio task"]
    assert HOSTILE in page.locator(".hl-tasks .hl-fn").all_text_contents()
    assert page.locator("script").count() == 2 and page.locator("img").count() == 0  # nothing injected


def test_hostile_task_name_in_heatmap(hostile, page):
    directory = hostile["heatmap"]
    with open(os.path.join(directory, "index.html"), encoding="utf-8") as fh:
        assert "<script>alert" not in fh.read()
    pages = [os.path.join(directory, name) for name in sorted(os.listdir(directory)) if name.startswith("file_")]
    _check_pages_in_chromium(page, pages + [os.path.join(directory, "index.html")])
    assert sorted(page.locator("#group-tasks tr.task td.name").all_text_contents()) == sorted([HOSTILE, "Task-1"])
    assert page.locator("img").count() == 0 and page.locator("script").count() == 0
