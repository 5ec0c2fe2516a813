"""Binary files (and pstats, JSONL) shared with the real Tachyon, CPython 3.15.2's profiler.

Targets run on the sid root's python3.15; Tachyon profiles them from inside the root, heatline
from the host by PID. Each tool then replays the other's `--binary` file, and what comes out must
be what the writer's own replay gives: the same samples, the same stacks, exactly.
"""

from __future__ import annotations

import json
import marshal
import os
import re
import shutil
import subprocess
import sys
from collections import Counter

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

import sid_root
from conftest import heatline, parse_collapsed, target, wait_ready
from sampler.collectors import COLLECTORS
from sampler.loaders import load_profile
from sampler.replay import open_binary_profile
from test_lsp_server import execute, heat_for, hottest, init_params, make_client, open_doc, wait_until


def _unavailable() -> str | None:
    reason = sid_root.unavailable_reason()
    if reason is None and sid_root.version_of("3.15") is None:
        reason = f"python3.15 does not run in the sid root {sid_root.root_path()}"
    return reason


REASON = _unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"Tachyon (CPython 3.15 in the sid root): {REASON}")

PYTHON = "/usr/bin/python3.15"
# What each kind of target is and the sampling options that show it.
KINDS = {
    "single": ("known_lines.py", []),
    "threads": ("threads.py", ["-a"]),  # 8 workers and the main thread
    "gc": ("gc_heavy.py", []),  # <GC> frames
}
TIMEOUT = 120  # a guard against hanging, not a performance bound


# -- running Tachyon --------------------------------------------------------------------------------


def tachyon_attach(pid: int, *args: str) -> subprocess.CompletedProcess:
    """Tachyon attaching to a target in the root. It has to run in the target's own mount
    namespace: from another one, /proc/PID/maps names the target's files by host paths, which
    do not exist inside the root, and Tachyon fails with "Failed to find the PyRuntime section"."""
    cmd = ["nsenter", "-t", str(pid), "-m", "-r", PYTHON, "-m", "profiling.sampling", "attach", str(pid), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    return res


def tachyon(*args: str) -> subprocess.CompletedProcess:
    res = subprocess.run(sid_root.tachyon(*args), capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return res


def tachyon_replay(inside: str, flag: str, out: str) -> int:
    """Tachyon's replay of a file inside the root; returns the samples it says it replayed."""
    res = tachyon("replay", inside, flag, "-o", out)
    m = re.search(r"^Replaying (\d+) samples", res.stdout, re.M)
    assert m, res.stdout
    return int(m.group(1))


def heatline_replay(path: str, *args: str) -> int:
    res = heatline("replay", path, *args)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    m = re.search(r"^Replayed ([\d,]+) samples", res.stderr, re.M)
    assert m, res.stderr
    return int(m.group(1).replace(",", ""))


def tachyon_info(inside: str) -> dict:
    """Tachyon's own reading of a binary file's header (`BinaryReader.get_info`)."""
    code = ("import json, sys\nfrom profiling.sampling.binary_reader import BinaryReader\n"
            "with BinaryReader(sys.argv[1]) as r:\n    print(json.dumps(r.get_info(), default=list))")
    res = subprocess.run(sid_root.in_root(PYTHON, "-c", code, inside), capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


# -- comparing outputs ------------------------------------------------------------------------------


def collapsed_lines(path: str) -> Counter:
    rows = Counter()
    for tid, frames, count in parse_collapsed(path):
        rows[(tid, tuple(frames))] += count
    return rows


def pstats_rows(path: str) -> dict:
    """(file, line, func) -> (direct, cumulative, {caller: samples}); Tachyon stores a caller's
    samples as a count, heatline as cProfile's tuple (count first)."""
    with open(path, "rb") as fh:
        data = marshal.load(fh)
    return {
        key: (value[0], value[1], {c: (n if isinstance(n, int) else n[0]) for c, n in value[4].items()})
        for key, value in data.items() if key != ("__sampled__",)
    }


def jsonl_records(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def jsonl_counts(path: str) -> tuple[int, Counter]:
    """samples_total and (path, func, line, end_line, col, end_col) -> (self, cumulative)."""
    records = jsonl_records(path)
    strings = {s["str_id"]: s["value"] for r in records if r["type"] == "string_table" for s in r["strings"]}
    frames = {f["frame_id"]: (strings[f["path_str_id"]], strings[f["func_str_id"]], f["line"], f.get("end_line"),
                              f.get("col"), f.get("end_col"))
              for r in records if r["type"] == "frame_table" for f in r["frames"]}
    counts = Counter()
    for r in records:
        if r["type"] == "agg":
            for e in r["entries"]:
                counts[frames[e["frame_id"]]] = (e["self"], e["cumulative"])
    return records[-1]["samples_total"], counts


def gecko_thread_samples(path: str) -> Counter:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return Counter({t["tid"]: t["samples"]["length"] for t in data["threads"]})


def flamegraph_stacks(path: str) -> tuple[int, Counter]:
    """Tachyon's flame graph page: its root total and the self samples of each call path, named
    as collapsed stacks name frames (basename:func:line, synthetic frames by name)."""
    with open(path, encoding="utf-8") as fh:
        html = fh.read()
    start = html.index("const EMBEDDED_DATA = ") + len("const EMBEDDED_DATA = ")
    root, _ = json.JSONDecoder().raw_decode(html, start)
    strings = root["strings"]
    stacks = Counter()

    def walk(node: dict, path: tuple) -> None:
        filename, func, line = strings[node["filename"]], strings[node["funcname"]], node["lineno"]
        name = func if filename == "~" and line == 0 else f"{os.path.basename(filename)}:{func}:{line}"
        here = path + (name,)
        if node.get("self"):
            stacks[here] += node["self"]
        for child in node.get("children", []):
            walk(child, here)

    if "filename" in root:  # a profile with one root frame has that frame as the tree's root
        walk(root, ())
    else:
        for child in root.get("children", []):
            walk(child, ())
    return root["value"], stacks


def without_threads(rows: Counter) -> Counter:
    out = Counter()
    for (_tid, frames), count in rows.items():
        out[frames] += count
    return out


# -- targets and files ------------------------------------------------------------------------------


class Targets:
    """One running 3.15 target per kind, started in the root on first use, ended at module end."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}

    def pid(self, kind: str) -> int:
        proc = self.procs.get(kind)
        if proc is None or proc.poll() is not None:
            script = sid_root.path_in_root(target(KINDS[kind][0]))
            proc = subprocess.Popen(sid_root.in_root(PYTHON, script), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            self.procs[kind] = proc
            wait_ready(proc)
        return proc.pid

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()


@pytest.fixture(scope="module")
def targets():
    t = Targets()
    yield t
    t.close()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A directory both sides reach: `host` on the host, `inside` the same place in the root."""
    name = os.path.basename(str(tmp_path_factory.mktemp("interop")))
    inside = f"/tmp/heatline-interop-{os.getpid()}-{name}"
    host = sid_root.host_path(inside)
    os.makedirs(host)
    yield host, inside
    shutil.rmtree(host, ignore_errors=True)


# -- 1. heatline replays Tachyon's binary files ------------------------------------------------------


@pytest.mark.parametrize("compression", ["zstd", "none"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_heatline_replays_tachyon_binary(targets, work, kind, compression):
    host, inside = work
    pid = targets.pid(kind)
    name = f"tachyon-{kind}-{compression}"
    tachyon_attach(pid, "-d", "1", *KINDS[kind][1], "--binary", "--compression", compression,
                   "-o", f"{inside}/{name}.bin")
    binary = f"{host}/{name}.bin"

    reader = open_binary_profile(binary)
    info = tachyon_info(f"{inside}/{name}.bin")
    assert reader.sample_count == info["sample_count"] > 0
    assert reader.compression == compression and reader.version == 1 and not reader.old_layout
    assert reader.mode == "wall" and info["mode"] == 0
    assert reader.capture_config == info["capture_config"]
    assert reader.capture_config["all_threads"] == (kind == "threads") and reader.capture_config["gc"]
    n = reader.sample_count

    # collapsed: every line, exactly
    assert tachyon_replay(f"{inside}/{name}.bin", "--collapsed", f"{inside}/{name}.t.txt") == n
    assert heatline_replay(binary, "--collapsed", "-o", f"{host}/{name}.h.txt") == n
    theirs, ours = collapsed_lines(f"{host}/{name}.t.txt"), collapsed_lines(f"{host}/{name}.h.txt")
    assert ours == theirs
    assert sum(ours.values()) == n
    if kind == "threads":
        assert len({tid for tid, _ in ours}) == 9
    if kind == "gc":
        assert any("<GC>" in frames for _, frames in ours)

    # pstats: direct and cumulative samples and callers, per (file, line, function)
    tachyon_replay(f"{inside}/{name}.bin", "--pstats", f"{inside}/{name}.t.pstats")
    assert heatline_replay(binary, "--pstats", "-o", f"{host}/{name}.h.pstats") == n
    assert pstats_rows(f"{host}/{name}.h.pstats") == pstats_rows(f"{host}/{name}.t.pstats")

    # jsonl: the same total and per-frame counts
    tachyon_replay(f"{inside}/{name}.bin", "--jsonl", f"{inside}/{name}.t.jsonl")
    assert heatline_replay(binary, "--jsonl", "-o", f"{host}/{name}.h.jsonl") == n
    assert jsonl_counts(f"{host}/{name}.h.jsonl") == jsonl_counts(f"{host}/{name}.t.jsonl")

    # gecko: the same samples per thread
    tachyon_replay(f"{inside}/{name}.bin", "--gecko", f"{inside}/{name}.t.json")
    assert heatline_replay(binary, "--gecko", "-o", f"{host}/{name}.h.json") == n
    assert gecko_thread_samples(f"{host}/{name}.h.json") == gecko_thread_samples(f"{host}/{name}.t.json")

    # every other format heatline replays into takes all n samples
    for fmt, collector in COLLECTORS.items():
        if not collector.replayable or fmt in ("collapsed", "pstats", "jsonl", "gecko"):
            continue
        args = [collector.cli_flag]
        if collector.cli_value_option:
            args.append(binary)  # the diff's baseline: the file itself
        assert heatline_replay(binary, *args, "-o", f"{host}/{name}.{fmt}.out") == n, fmt
        assert os.path.exists(f"{host}/{name}.{fmt}.out"), fmt

    # the regression gate takes Tachyon's binary beside any other kind: here its own pprof replay,
    # the same samples, so no share moves even with a threshold of 0
    gate = heatline("compare", binary, f"{host}/{name}.pprof.out", "--threshold", "0")
    assert gate.returncode == 0 and gate.stdout.splitlines()[-1].startswith("PASS"), gate.stdout + gate.stderr


# -- 2. Tachyon replays heatline's binary files ------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_tachyon_replays_heatline_binary(targets, work, kind):
    host, inside = work
    pid = targets.pid(kind)
    name = f"heatline-{kind}"
    extra = ["--no-gc"] if kind == "single" else []  # the capture flags must say so
    res = heatline("attach", str(pid), "-d", "1", *KINDS[kind][1], *extra, "--binary", "-o", f"{host}/{name}.bin",
                   timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    binary = f"{host}/{name}.bin"
    n = open_binary_profile(binary).sample_count
    assert n > 0

    info = tachyon_info(f"{inside}/{name}.bin")
    assert info["sample_count"] == n and info["version"] == 1
    assert info["python_version"] == [int(x) for x in sid_root.version_of("3.15").split(".")]  # the target's
    assert info["mode"] == 0  # wall
    assert info["capture_config"] == {"all_threads": kind == "threads", "native": False, "gc": kind != "single",
                                      "opcodes": False, "blocking": False}

    assert tachyon_replay(f"{inside}/{name}.bin", "--collapsed", f"{inside}/{name}.t.txt") == n
    assert heatline_replay(binary, "--collapsed", "-o", f"{host}/{name}.h.txt") == n
    theirs, ours = collapsed_lines(f"{host}/{name}.t.txt"), collapsed_lines(f"{host}/{name}.h.txt")
    assert theirs == ours
    assert sum(theirs.values()) <= n and sum(theirs.values()) > 0
    if kind == "threads":
        assert len({tid for tid, _ in theirs}) == 9
    if kind == "gc":
        assert any("<GC>" in frames for _, frames in theirs)

    tachyon_replay(f"{inside}/{name}.bin", "--pstats", f"{inside}/{name}.t.pstats")
    heatline_replay(binary, "--pstats", "-o", f"{host}/{name}.h.pstats")
    assert pstats_rows(f"{host}/{name}.t.pstats") == pstats_rows(f"{host}/{name}.h.pstats")

    tachyon_replay(f"{inside}/{name}.bin", "--flamegraph", f"{inside}/{name}.t.html")
    total, stacks = flamegraph_stacks(f"{host}/{name}.t.html")
    assert total == sum(ours.values())
    assert stacks == without_threads(ours)


# -- 3. Tachyon's pstats files in heatline's loaders and the language server ----------------------------


@pytest.fixture(scope="module")
def tachyon_pstats(targets, work) -> str:
    host, inside = work
    tachyon_attach(targets.pid("single"), "-d", "1", "--pstats", "-o", f"{inside}/tachyon.pstats")
    return f"{host}/tachyon.pstats"


def test_tachyon_pstats_loads(tachyon_pstats):
    rows = pstats_rows(tachyon_pstats)
    loaded = load_profile(tachyon_pstats)
    assert loaded.kind == "pstats" and not loaded.exact_totals
    direct = Counter()
    for _tid, frames, weight in loaded.profile.iter_stacks():
        direct[frames[0].key()] += weight
    assert direct == Counter({key: d for key, (d, _c, _callers) in rows.items() if d})
    inside_path = sid_root.path_in_root(target("known_lines.py"))
    assert loaded.line_totals[(inside_path, 21)] == rows[(inside_path, 21, "main")][1]
    hot = max(direct, key=direct.get)
    assert hot[0] == inside_path and hot[2] == "inner" and hot[1] in (7, 8)
    assert loaded.profile.stats.interval_usec == 1000


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "server"],
                                              client_factory=make_client))
async def lsp(lsp_client: LanguageClient):
    await lsp_client.initialize_session(init_params())
    yield
    await lsp_client.shutdown_session()


async def test_tachyon_pstats_opens_in_the_language_server(lsp: LanguageClient, tachyon_pstats):
    rows = pstats_rows(tachyon_pstats)
    samples = sum(d for d, _c, _callers in rows.values())
    # The profile names the file by its path inside the root: matched by its trailing components.
    uri = open_doc(lsp, target("known_lines.py"))
    described = await execute(lsp, "heatline.open", {"path": tachyon_pstats})
    assert described["totalSamples"] == samples
    note = await wait_until(lambda: heat_for(lsp, uri), "heat from Tachyon's pstats file")
    assert hottest(note)["line"] in (6, 7)  # inner()'s loop (0-based lines)
    assert not [m for m in lsp.messages if m.type == types.MessageType.Error]


# -- 4. JSONL from both profilers ---------------------------------------------------------------------


def _shape(records: list[dict]) -> tuple:
    """Record types in order (runs of one type collapsed) and the fields each kind of record and
    entry carries."""
    types_in_order = [r["type"] for i, r in enumerate(records) if i == 0 or records[i - 1]["type"] != r["type"]]
    fields = {}
    for r in records:
        fields.setdefault(r["type"], set()).update(r)
        for list_field in ("strings", "frames", "entries"):
            for entry in r.get(list_field, []):
                fields.setdefault(f"{r['type']}.{list_field}", set()).update(entry)
    return types_in_order, {k: sorted(v) for k, v in fields.items()}


@pytest.mark.parametrize("kind", ["single", "threads"])
def test_jsonl_from_both_has_the_same_records_and_fields(targets, work, kind):
    host, inside = work
    pid = targets.pid(kind)
    tachyon_attach(pid, "-d", "1", *KINDS[kind][1], "--jsonl", "-o", f"{inside}/{kind}.t.jsonl")
    res = heatline("attach", str(pid), "-d", "1", *KINDS[kind][1], "--jsonl", "-o", f"{host}/{kind}.h.jsonl",
                   timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    theirs, ours = jsonl_records(f"{host}/{kind}.t.jsonl"), jsonl_records(f"{host}/{kind}.h.jsonl")
    assert _shape(ours) == _shape(theirs)
    assert _shape(ours)[0] == ["meta", "string_table", "frame_table", "agg", "end"]
    assert ours[0]["mode"] == theirs[0]["mode"] == "wall"
    assert ours[-1]["samples_total"] > 0 and theirs[-1]["samples_total"] > 0
