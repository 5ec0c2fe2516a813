"""--opcodes and --native on a real target, on every CPython of the suite, and beside Tachyon.

tests/targets/opcode_adds.py: add_loop()'s line 13 is an integer add (`total + i` on ints past
the small-int cache), digest()'s line 18 a call into hashlib's C code. One 1.5 s sampling run
per interpreter, in process with both options (as `attach --opcodes --native` samples), feeds
every format (the gecko from the sample stream): the add is the hot line's top instruction by its
base name (BINARY_ADD on 3.9/3.10, BINARY_OP after), in the heatmap's panel, the flame graph's
node and the gecko's markers; the digest line's time is mostly `<native>`, in the heatmap, the
flame graph, collapsed stacks and pstats. The venv's pages are opened in Chromium. On 3.15, Tachyon
runs the same target with --opcodes; its heatmap, flame graph and gecko name the same instruction
on the add line, and heatline's replay of Tachyon's own --binary file gives the flame graph
Tachyon gives, instruction counts included.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import threading
from collections import Counter

import pytest

import sid_root
from conftest import ALL_INTERPRETERS, favoured, target
from sampler.collectors.collapsed import CollapsedCollector
from sampler.collectors.flamegraph import flamegraph_data, render_html, tree, walk
from sampler.collectors.gecko import GeckoCollector
from sampler.collectors.heatmap import HeatmapCollector
from sampler.collectors.pstats import PstatsCollector
from sampler.cpython.opcodes import opcode_table
from sampler.loaders import replay_binary
from sampler.model import Profile, RunStats
from sampler.replay import open_binary_profile

SCRIPT = "opcode_adds.py"
ADD_LINE, NATIVE_LINE = 13, 18
SECONDS = 1.5
ADD_NAMES = {"BINARY_ADD", "BINARY_OP"}  # the add's base instruction: 3.9/3.10, then 3.11+
MIN_NATIVE = 0.6  # of the digest line's samples in C (sha256 of 8 MB: nearly all of it)


def base_name(table, opcode: int) -> str:
    return table.info(opcode).base_opname


class Run:
    """One interpreter's --opcodes --native profile and what the formats make of it."""

    def __init__(self, interp) -> None:
        self.interp = interp

    def sample(self) -> None:
        """1.5 s of the target, sampled in process as `attach --opcodes --native` does."""
        from sampler.cpython.walkers import open_source
        from sampler.sampling import SamplingLoop

        proc = subprocess.Popen([*favoured(), *self.interp.command(target(SCRIPT))], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            assert "ready" in line, f"{SCRIPT} did not start: {line!r}"
            source = open_source(proc.pid, opcodes=True, native=True)
            lowered = _favour_this_thread()
            try:
                stats = RunStats(pid=proc.pid, python_version=source.runtime.version_string, opcodes=True,
                                 native=True)
                self.profile = Profile(stats)
                self.gecko = GeckoCollector(self.profile)
                heatmap = HeatmapCollector(self.profile)  # takes the target's files now, while it runs
                SamplingLoop(source, self.profile, interval_usec=1000, duration_s=SECONDS, sinks=[self.gecko]).run()
            finally:
                source.close()
                if lowered is not None:
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), lowered)
        finally:
            proc.kill()
            proc.communicate()
        # a starved sampler (a loaded machine) says so here rather than as a wrong share later
        assert stats.samples >= 300, f"{self.interp.label}: {stats.samples} samples in {SECONDS} s"
        self.table = opcode_table(stats.python_version)
        self.flame = flamegraph_data(self.profile)
        self.pages = heatmap.pages()
        self.heatmap = next(text for name, text in self.pages.items()
                            if name != "index.html" and SCRIPT in text.split("<h1>")[1].split("</h1>")[0])
        self.heatmap_collector = heatmap


def _favour_this_thread() -> int | None:
    """The sampling thread ahead of ordinary work, as `favoured()` puts the target (and the CLI
    in other tests): else on a loaded machine the favoured target starves the sampler. Returns
    the niceness to restore (None: not root, nothing changed)."""
    if os.geteuid() != 0:
        return None
    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    os.setpriority(os.PRIO_PROCESS, tid, -20)
    return before


@pytest.fixture(scope="module", params=ALL_INTERPRETERS)
def run(request):
    result = Run(request.param)
    result.sample()
    return result


# -- the profile itself -------------------------------------------------------------------------------


def test_frames_carry_instructions_of_the_targets_version(run):
    stats = run.profile.stats
    assert stats.opcodes and stats.native
    assert run.table.exact, f"no opcode table for {stats.python_version}"
    at_add = Counter()
    for tid, frames, weight in run.profile.iter_stacks():
        for f in frames:
            if f.filename.endswith(SCRIPT) and f.lineno == ADD_LINE and f.opcode >= 0:
                at_add[base_name(run.table, f.opcode)] += weight
    assert at_add, "no instruction recorded on the add line"
    top, n = at_add.most_common(1)[0]
    assert top in ADD_NAMES, at_add
    assert n >= 0.3 * sum(at_add.values()), at_add


# -- the heatmap ---------------------------------------------------------------------------------------


def panel(page: str, line: int) -> str:
    m = re.search(rf'<tr class="bc-row" id="bytecode-{line}" hidden>(.*?)</div></td></tr>', page, re.S)
    assert m, f"no bytecode panel for line {line}"
    return m.group(1)


def instruction_rows(panel_html: str) -> list[tuple[str, int]]:
    return [(html.unescape(name), int(samples)) for samples, name in
            re.findall(r'data-samples="(\d+)"><td class="mono">([^<]*)', panel_html)]


def test_heatmap_panel_tops_the_add_and_shows_the_c_share(run):
    rows = instruction_rows(panel(run.heatmap, ADD_LINE))
    assert rows and rows[0][0].split(" (")[-1].rstrip(")") in ADD_NAMES, rows
    assert re.search(r'class="bc-spec">\d+%</strong> specialized', panel(run.heatmap, ADD_LINE))
    line = re.search(rf'<tr id="line-{NATIVE_LINE}"[^>]*data-total="(\d+)".*?</tr>', run.heatmap, re.S)
    assert line, "the digest line has no samples"
    native = re.search(r'data-native="(\d+)"', line.group(0))
    assert native and int(native.group(1)) >= MIN_NATIVE * int(line.group(1))
    assert "In C code it called" in panel(run.heatmap, NATIVE_LINE)


# -- the flame graph -----------------------------------------------------------------------------------


def node_opcodes(data, index) -> Counter:
    ops = data["opcodes"]
    if index not in ops["node"]:
        return Counter()
    return Counter({int(k): v for k, v in ops["counts"][ops["node"].index(index)].items()})


def test_flamegraph_names_the_add_and_draws_native(run):
    data = run.flame
    names = data["opcode_mapping"]["names"]
    nodes = [node for _path, node in walk(tree(data))]
    add_nodes = [n for n in nodes if n["name"].startswith("add_loop (") and n["name"].endswith(f":{ADD_LINE})")]
    counts = sum((node_opcodes(data, n["index"]) for n in add_nodes), Counter())
    top = counts.most_common(1)[0][0]
    assert base_name(run.table, top) in ADD_NAMES and names[str(top)] == run.table.info(top).opname
    digest = [n for n in nodes if n["name"].startswith("digest (")]
    total = sum(n["value"] for n in digest)
    in_c = sum(c["value"] for n in digest for c in n["children"] if c["name"] == "<native>")
    assert total and in_c >= MIN_NATIVE * total


def test_collapsed_and_pstats_show_native(run):
    lines = CollapsedCollector(run.profile).lines()
    digest = [(line, int(line.rsplit(" ", 1)[1])) for line in lines if f":digest:{NATIVE_LINE}" in line]
    in_c = sum(n for line, n in digest if line.rsplit(" ", 1)[0].endswith(";<native>"))
    assert in_c >= MIN_NATIVE * sum(n for _line, n in digest)
    stats = PstatsCollector(run.profile).create_stats()
    assert stats[("~", 0, "<native>")][0] > 0
    # an instruction never splits a line's row: one key per (file, line, function)
    keys = [k for k in stats if k[0].endswith(SCRIPT) and k[1] == ADD_LINE]
    assert len(keys) == 1


# -- gecko ---------------------------------------------------------------------------------------------


def opcode_markers(gecko: dict) -> list[dict]:
    return [d for t in gecko["threads"] for d in t["markers"]["data"] if d.get("type") == "Opcode"]


def test_gecko_opcode_markers(run):
    gecko = run.gecko.build()
    assert "Opcode" in {s["name"] for s in gecko["meta"]["markerSchema"]}
    markers = [m for m in opcode_markers(gecko) if m["function"] == "add_loop" and m["line"] == ADD_LINE]
    time_by_base = Counter()
    for m in markers:
        time_by_base[m["base_opname"]] += m["duration"]
    assert time_by_base.most_common(1)[0][0] in ADD_NAMES, time_by_base


# -- in Chromium (the venv's CPython) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def venv_run():
    result = Run(next(p.values[0] for p in ALL_INTERPRETERS if p.values[0].label.startswith("current-")))
    result.sample()
    return result


def test_pages_in_chromium(venv_run, page, tmp_path):
    from pathlib import Path

    from test_flamegraph import frames_of, hover_frame, open_page

    folder = tmp_path / "heatmap"
    venv_run.heatmap_collector.write(str(folder))
    page_name = next(n for n, t in venv_run.pages.items() if t == venv_run.heatmap)
    page.goto(Path(folder / page_name).as_uri())
    page.click(f"#line-{ADD_LINE} button.bc-toggle")
    text = page.locator(f"#bytecode-{ADD_LINE}").inner_text()
    assert any(name in text for name in ADD_NAMES) and "specialized" in text
    assert page.locator(f"#line-{ADD_LINE} .instr").count() >= 1  # the line cut into column spans
    assert page.errors == []

    fg = tmp_path / "fg.html"
    fg.write_text(render_html(venv_run.flame), encoding="utf-8")
    open_page(page, str(fg))
    node = max((f for f in frames_of(page) if f["funcname"] == "add_loop" and f["line"] == ADD_LINE),
               key=lambda f: f["value"])
    hover_frame(page, node)
    tip = page.evaluate("window.heatline.tooltipText()")
    assert "Bytecode instructions:" in tip and any(name in tip for name in ADD_NAMES)
    assert page.errors == [] and page.evaluate("window.__csp") == []


# -- beside Tachyon (3.15) ----------------------------------------------------------------------------


def _tachyon_reason() -> str | None:
    reason = sid_root.unavailable_reason()
    if reason is None and sid_root.version_of("3.15") is None:
        reason = "python3.15 does not run in the sid root"
    return reason


TACHYON_TIMEOUT = 120


def in_root(*argv: str) -> None:
    res = subprocess.run(sid_root.in_root(*argv), capture_output=True, text=True, timeout=TACHYON_TIMEOUT)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def tachyon(tmp_path_factory):
    """Tachyon's --opcodes run of the target as a --binary file, replayed by Tachyon into its
    heatmap and flame graph, and its gecko (paths on the host)."""
    reason = _tachyon_reason()
    if reason:
        pytest.skip(f"Tachyon (CPython 3.15 in the sid root): {reason}")
    inside = f"/tmp/heatline-opcodes-{os.getpid()}"
    folder = sid_root.host_path(inside)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    script = sid_root.path_in_root(target(SCRIPT))
    tachyon = ["/usr/bin/python3.15", "-m", "profiling.sampling"]
    in_root(*tachyon, "run", "-d", "2", "--opcodes", "--binary", "-o", f"{inside}/t.bin", script, "30")
    in_root(*tachyon, "replay", f"{inside}/t.bin", "--heatmap", "-o", f"{inside}/hm")
    in_root(*tachyon, "replay", f"{inside}/t.bin", "--flamegraph", "-o", f"{inside}/fg.html")
    # Tachyon's replay writes no opcode markers (its gecko takes them from the --opcodes flag,
    # which replay has not): a run of its own
    in_root(*tachyon, "run", "-d", "2", "--opcodes", "--gecko", "-o", f"{inside}/g.json", script, "30")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def tachyon_flame(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    start = text.index("const EMBEDDED_DATA = ") + len("const EMBEDDED_DATA = ")
    return json.JSONDecoder().raw_decode(text, start)[0]


def tachyon_line_bytecode(folder: str, line: int) -> list[dict]:
    for name in sorted(os.listdir(os.path.join(folder, "hm"))):
        with open(os.path.join(folder, "hm", name), encoding="utf-8") as fh:
            text = fh.read()
        if "add_loop" not in text or name == "index.html":
            continue
        m = re.search(rf'id="line-{line}"[^>]*>.*?data-bytecode=\'([^\']*)\'', text, re.S)
        if m:
            return json.loads(html.unescape(m.group(1)))
    raise AssertionError(f"no bytecode for line {line} in Tachyon's heatmap")


def add_line_counts_by_name(tree_node: dict, strings: list, line: int, names: dict) -> Counter:
    """Tachyon's flame graph: instruction counts, by name, of the add_loop nodes at `line`."""
    out = Counter()
    todo = [tree_node]
    while todo:
        node = todo.pop()
        if "funcname" in node and strings[node["funcname"]] == "add_loop" and node.get("lineno") == line:
            for op, n in node.get("opcodes", {}).items():
                out[names.get(str(op), f"<{op}>")] += n
        todo.extend(node.get("children", []))
    return out


@pytest.mark.parametrize("run", [p for p in ALL_INTERPRETERS if p.values[0].label == "sid-3.15"], indirect=True)
def test_tachyon_names_the_same_instructions(run, tachyon):
    # heatmap: the add line's top instruction, by name, and its share within a margin
    theirs = tachyon_line_bytecode(tachyon, ADD_LINE)
    ours = instruction_rows(panel(run.heatmap, ADD_LINE))
    assert theirs[0]["opname"] == ours[0][0], (theirs[:3], ours[:3])
    their_share = theirs[0]["samples"] / sum(i["samples"] for i in theirs)
    our_share = ours[0][1] / sum(n for _name, n in ours)
    assert abs(their_share - our_share) < 0.25, (their_share, our_share)
    # flame graph: the same names for the same numbers, and the same top instruction
    flame = tachyon_flame(os.path.join(tachyon, "fg.html"))
    their_names = flame["opcode_mapping"]["names"]
    for op, name in their_names.items():
        assert run.flame["opcode_mapping"]["names"].get(op, name) == name
    their_add = add_line_counts_by_name(flame, flame["strings"], ADD_LINE, their_names)
    nodes = [n for _p, n in walk(tree(run.flame)) if n["name"].startswith("add_loop (") and n["name"].endswith(f":{ADD_LINE})")]
    our_add = Counter()
    for n in nodes:
        for op, count in node_opcodes(run.flame, n["index"]).items():
            our_add[run.flame["opcode_mapping"]["names"][str(op)]] += count
    assert their_add.most_common(1)[0][0] == our_add.most_common(1)[0][0], (their_add, our_add)
    # gecko: the same schema entry, and the same instruction holds the add line longest
    with open(os.path.join(tachyon, "g.json"), encoding="utf-8") as fh:
        their_gecko = json.load(fh)
    their_schema = next(s for s in their_gecko["meta"]["markerSchema"] if s["name"] == "Opcode")
    our_schema = next(s for s in run.gecko.build()["meta"]["markerSchema"] if s["name"] == "Opcode")
    assert [f["key"] for f in their_schema["fields"]] == [f["key"] for f in our_schema["fields"]]

    def longest(gecko):
        time = Counter()
        for m in opcode_markers(gecko):
            if m["function"] == "add_loop" and m["line"] == ADD_LINE:
                time[m["opname"]] += m["duration"]
        return time.most_common(1)[0][0]

    assert longest(their_gecko) == longest(run.gecko.build())


def test_our_replay_of_tachyons_binary_counts_its_instructions(tachyon):
    """Tachyon's own file, read by heatline: the flame graph's instruction counts per function
    line are Tachyon's, exactly (same samples, same counting: every frame, once per node)."""
    profile = replay_binary(open_binary_profile(os.path.join(tachyon, "t.bin")))
    ours = flamegraph_data(profile, min_share=0)
    flame = tachyon_flame(os.path.join(tachyon, "fg.html"))
    theirs = add_line_counts_by_name(flame, flame["strings"], ADD_LINE, flame["opcode_mapping"]["names"])
    names = ours["opcode_mapping"]["names"]
    mine = Counter()
    for _p, n in walk(tree(ours)):
        if n["name"].startswith("add_loop (") and n["name"].endswith(f":{ADD_LINE})"):
            for op, count in node_opcodes(ours, n["index"]).items():
                mine[names[str(op)]] += count
    assert mine == theirs


# -- the live view ---------------------------------------------------------------------------------


@pytest.fixture
def live_panes():
    from test_live_tui import Pane

    opened = []

    def open_pane(argv, width, height):
        opened.append(Pane(argv, width, height))
        return opened[-1]

    yield open_pane
    for pane in opened:
        pane.close()


def test_live_opcode_panel(live_panes):
    """`run --live --opcodes --native` in tmux: the panel names the top row's instructions
    (Tachyon's "Opcodes for f()"), j/k move it to the next row and back, and the digest line's
    shows its C share. Rows are narrowed with the filter, so their order is known."""
    from test_live_tui import heatline_argv, table

    pane = live_panes(heatline_argv("run", "--live", "--opcodes", "--native", target(SCRIPT), "60"), 150, 40)
    pane.wait_for("Opcodes for ")

    def narrow(text: str, rows: int) -> None:
        """Filter the table by `text` (the prompt starts with the last filter: cleared first) and
        wait until it shows `rows` rows (the panel shows the first)."""
        pane.keys("/")
        pane.wait_for("Filter (")
        pane.keys("C-u")
        pane.type(text)
        pane.keys("Enter")
        pane.wait(lambda s: f"Filter: {text} " in s and len(table(s)[1]) >= rows, f"{rows} rows matching {text}")

    def panel_of(screen: str) -> str:
        return screen.split("Opcodes for ", 1)[1]

    narrow("add_loop", 2)
    add = pane.wait(lambda s: f"add_loop() at {SCRIPT}:{ADD_LINE} " in s and "BINARY_" in s and "specialized (" in s,
                    "the add line's panel")
    first = next(line for line in panel_of(add).splitlines()[1:] if "%" in line)
    assert any(name in first for name in ADD_NAMES), panel_of(add)  # the add tops its line
    assert re.search(r"\d+% specialized \(\d+/\d+ samples\)", panel_of(add))
    pane.keys("j")
    pane.wait(lambda s: "Opcodes for add_loop() at " in s and f"{SCRIPT}:{ADD_LINE} " not in s.split("Opcodes for ")[1][:80],
              "j: the next row's panel")
    pane.keys("k")
    pane.wait_for(f"Opcodes for add_loop() at {SCRIPT}:{ADD_LINE} ")
    narrow("digest", 1)
    pane.keys("s")  # by cumulative share: the line that calls sha256 first
    digest = pane.wait(lambda s: f"digest() at {SCRIPT}:{NATIVE_LINE} " in s and "(<native>)" in s, "the digest line's panel")
    m = re.search(r"in C code it called \(<native>\): (\d+) of (\d+) samples", digest)
    assert m and int(m.group(1)) >= MIN_NATIVE * int(m.group(2))
    pane.keys("q")
    assert pane.exit_status() == 0
