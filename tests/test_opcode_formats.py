"""--opcodes and --native in the output formats, on synthetic samples: instruction counts and
names per the target's version, Tachyon's gecko markers, `<native>` frames drawn as Tachyon
draws them, and no format split by an instruction (the end-to-end runs are in
test_opcode_targets.py)."""

from __future__ import annotations

import io
import json


from sampler.collectors.collapsed import CollapsedCollector
from sampler.collectors.diff_flamegraph import diff_flamegraph_data
from sampler.collectors.flamegraph import flamegraph_data, frame_info, render_html, tree, walk
from sampler.collectors.gecko import GeckoCollector
from sampler.collectors.jsonl import JsonlCollector
from sampler.collectors.opcode_view import char_columns, specialized_share
from sampler.collectors.pstats import PstatsCollector
from sampler.collectors.speedscope import SpeedscopeCollector
from sampler.cpython.opcodes import opcode_table
from sampler.model import HAS_GIL, MAIN_THREAD, NATIVE_FRAME, ON_CPU, Frame, Profile, RunStats, ThreadSample

VERSION = "3.12.1"
TABLE = opcode_table(VERSION)
OP = {name: op for op, name in TABLE.mapping()["names"].items()}
ADD_INT, BINARY_OP, LOAD_FAST, CALL = OP["BINARY_OP_ADD_INT"], OP["BINARY_OP"], OP["LOAD_FAST"], OP["CALL"]


def hot(opcode: int, col: int = 8, end_col: int = 13) -> Frame:
    return Frame("/src/t.py", "hot", 5, 5, col, end_col, opcode)


MAIN_CALL = Frame("/src/t.py", "main", 10, 10, 4, 9, CALL)
MAIN_NATIVE = Frame("/src/t.py", "main", 11, 11, 4, 20, CALL)

# (leaf-first frames, weight): 6 specialized adds, 2 generic ones, 2 loads, 4 in C under main
STACKS = [
    ((hot(ADD_INT), MAIN_CALL), 6),
    ((hot(BINARY_OP), MAIN_CALL), 2),
    ((hot(LOAD_FAST, 8, 9), MAIN_CALL), 2),
    ((NATIVE_FRAME, MAIN_NATIVE), 4),
]


def profile(stacks=STACKS, opcodes=True) -> Profile:
    p = Profile(RunStats(pid=7, python_version=VERSION, opcodes=opcodes, native=True))
    for frames, weight in stacks:
        p.add(ThreadSample(1, HAS_GIL | ON_CPU | MAIN_THREAD, frames), weight)
    return p


def test_opcode_view_helpers():
    rows = [{"samples": 6, "is_specialized": True}, {"samples": 3, "is_specialized": False}]
    assert specialized_share(rows) == (66, 6, 9)  # rounded down, as Tachyon
    assert char_columns("é = a + b", 5, 10) == (4, 9)  # byte offsets -> characters


def test_collapsed_and_pstats_show_native_and_merge_instructions():
    lines = CollapsedCollector(profile()).lines()
    assert lines == ["tid:1;t.py:main:10;t.py:hot:5 10", "tid:1;t.py:main:11;<native> 4"]
    stats = PstatsCollector(profile()).create_stats()
    assert stats[("~", 0, "<native>")][:2] == (4, 4)
    assert stats[("/src/t.py", 5, "hot")][:2] == (10, 10)  # one row whatever the instruction


def test_pstats_file_keys_native_as_tachyon(tmp_path):
    import pstats

    out = PstatsCollector(profile()).write(str(tmp_path / "p.pstats"))
    loaded = pstats.Stats(out)
    # Tachyon's key; the stdlib prints a ("~", 0, name) key as "{native}", for both files alike
    assert ("~", 0, "<native>") in loaded.stats
    assert "{native}" in {pstats.func_std_string(key) for key in loaded.stats}


def test_jsonl_and_speedscope_frames_do_not_split_by_instruction():
    out = io.BytesIO()
    JsonlCollector(profile(), run_id="r").dump(out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    frames = [f for r in records if r["type"] == "frame_table" for f in r["frames"]]
    strings = {s["str_id"]: s["value"] for r in records if r["type"] == "string_table" for s in r["strings"]}
    at_hot = [f for f in frames if strings[f["func_str_id"]] == "hot"]
    assert len(at_hot) == 2  # the add's column span and the load's, not one per instruction
    assert any(strings[f["func_str_id"]] == "<native>" and f["line"] == 0 for f in frames)
    out = io.BytesIO()
    SpeedscopeCollector(profile()).dump(out)
    names = [f["name"] for f in json.loads(out.getvalue())["shared"]["frames"]]
    assert names.count("hot (t.py:5)") == 1 and "<native>" in names


def node_named(data, name):
    return next(node for _path, node in walk(tree(data)) if node["name"] == name)


def node_opcodes(data, index):
    ops = data["opcodes"]
    return {int(k): v for k, v in ops["counts"][ops["node"].index(index)].items()} if index in ops["node"] else {}


def test_flamegraph_counts_instructions_per_node_and_names_them():
    data = flamegraph_data(profile())
    hot_node = node_named(data, "hot (/src/t.py:5)")
    assert hot_node["value"] == 10  # instructions and columns do not split the node
    assert node_opcodes(data, hot_node["index"]) == {ADD_INT: 6, BINARY_OP: 2, LOAD_FAST: 2}
    main_node = node_named(data, "main (/src/t.py:10)")
    assert node_opcodes(data, main_node["index"]) == {CALL: 10}  # callers count theirs too
    mapping = data["opcode_mapping"]
    assert mapping["names"][str(ADD_INT)] == "BINARY_OP_ADD_INT"
    assert mapping["deopt"][str(ADD_INT)] == BINARY_OP
    assert mapping["version"] == "3.12" and mapping["exact"] is True
    native = node_named(data, "<native>")
    info = frame_info(data, native["frame"])
    assert info["synthetic"] and info["filename"] == "~" and info["name"] == "<native>"
    json.dumps(data)  # JSON-able


def test_flamegraph_without_opcodes_has_no_opcode_data():
    plain = [(tuple(f._replace(opcode=-1) for f in frames), w) for frames, w in STACKS]
    data = flamegraph_data(profile(plain, opcodes=False))
    assert "opcodes" not in data and "opcode_mapping" not in data


def test_flamegraph_thread_values_carry_opcodes():
    p = profile()
    p.add(ThreadSample(2, HAS_GIL, (hot(LOAD_FAST), MAIN_CALL)), 3)
    data = flamegraph_data(p)
    hot_index = node_named(data, "hot (/src/t.py:5)")["index"]
    per_thread = data["thread_values"][2]["opcodes"]
    assert per_thread["counts"][per_thread["node"].index(hot_index)] == {str(LOAD_FAST): 3}


def test_diff_flamegraph_keeps_this_runs_opcodes():
    data = diff_flamegraph_data(profile(), profile())
    hot_node = node_named(data, "hot (/src/t.py)")
    assert node_opcodes(data, hot_node["index"]) == {ADD_INT: 6, BINARY_OP: 2, LOAD_FAST: 2}
    assert "BINARY_OP_ADD_INT" in data["opcode_mapping"]["names"].values()


def test_flamegraph_html_escapes_names_from_the_target():
    evil = Frame("/src/<img src=x>.py", "</script><b>", 3, 3, 0, 1, LOAD_FAST)
    page = render_html(flamegraph_data(profile([((evil,), 5)])))
    assert "</script><b>" not in page and "<img src=x>" not in page


def feed_gecko(leaves, opcodes=True):
    """A gecko collector fed one sample per leaf, 1 ms apart."""
    p = Profile(RunStats(pid=7, python_version=VERSION, opcodes=opcodes))
    collector = GeckoCollector(p)
    p.add_sink(collector)
    for i, leaf in enumerate(leaves):
        p.collect(1_000_000 + 1000 * i, [ThreadSample(1, HAS_GIL | ON_CPU | MAIN_THREAD, (leaf, MAIN_CALL))])
    return collector.build()


def test_gecko_opcode_markers_per_run_of_the_same_leaf():
    leaves = [hot(ADD_INT)] * 3 + [hot(BINARY_OP)] + [NATIVE_FRAME] * 2 + [hot(ADD_INT)] * 2
    gecko = feed_gecko(leaves)
    schema = {s["name"]: s for s in gecko["meta"]["markerSchema"]}
    assert [f["key"] for f in schema["Opcode"]["fields"]] == [
        "opname", "base_opname", "is_specialized", "line", "column", "function", "duration"]
    markers = gecko["threads"][0]["markers"]
    strings = gecko["shared"]["stringArray"]
    runs = [(strings[name], data, start, end) for name, data, start, end in
            zip(markers["name"], markers["data"], markers["startTime"], markers["endTime"])
            if data["type"] == "Opcode"]
    assert [r[0] for r in runs] == ["BINARY_OP_ADD_INT (BINARY_OP)", "BINARY_OP", "BINARY_OP_ADD_INT (BINARY_OP)"]
    first = runs[0][1]
    assert first["opcode"] == ADD_INT and first["base_opname"] == "BINARY_OP" and first["is_specialized"] is True
    assert first["line"] == 5 and first["column"] == 8 and first["function"] == "hot"
    assert runs[0][2:] == (0.0, 3.0) and runs[1][2:] == (3.0, 4.0)  # the <native> run has no marker
    assert runs[2][2] == 6.0 and first["duration"] == 3.0
    assert all(c == 7 for c, d in zip(markers["category"], markers["data"]) if d["type"] == "Opcode")
    categories = gecko["meta"]["categories"]
    native = gecko["threads"][0]["frameTable"]["category"]
    assert categories[2]["name"] == "Native" and 2 in native  # the <native> frame


def test_gecko_without_opcodes_has_neither_markers_nor_schema():
    plain = hot(-1)
    gecko = feed_gecko([plain] * 3, opcodes=False)
    assert "Opcode" not in {s["name"] for s in gecko["meta"]["markerSchema"]}
    assert all(d["type"] != "Opcode" for d in gecko["threads"][0]["markers"]["data"])


def heatmap_page(tmp_path, stacks=None, opcodes=True):
    source = tmp_path / "t.py"
    lines = [""] * 12
    lines[4] = "    x = (a + b) * é_var"  # line 5: 'a + b' at columns 9-14 (bytes = chars here)
    lines[9] = "    hot()"
    lines[10] = "    zlib.compress(data)"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    name = str(source)
    stacks = [(tuple(f._replace(filename=name) if f.filename == "/src/t.py" else f for f in frames), w)
              for frames, w in (stacks or STACKS)]
    from sampler.collectors.heatmap import HeatmapCollector

    pages = HeatmapCollector(profile(stacks, opcodes)).pages()
    return next(text for page, text in pages.items() if page != "index.html")


def test_heatmap_bytecode_panel_spans_and_native_share(tmp_path):
    stacks = [((hot(ADD_INT, 9, 14), MAIN_CALL), 6), ((hot(BINARY_OP, 9, 14), MAIN_CALL), 2),
              ((hot(LOAD_FAST, 9, 10), MAIN_CALL), 2), ((NATIVE_FRAME, MAIN_NATIVE), 4)]
    page = heatmap_page(tmp_path, stacks)
    panel = page.split('id="bytecode-5"')[1].split("</tr></tbody></table></div>")[0]
    assert ">60%</strong> specialized" in panel and "(1/3 instructions, 6/10 samples)" in panel
    rows = panel.split('class="bc-instr')[1:]
    assert "BINARY_OP_ADD_INT (BINARY_OP)" in rows[0] and "SPECIALIZED" in rows[0] and "60.0%" in rows[0]
    assert ">9-14<" in rows[0] and "LOAD_FAST" in rows[2] and ">9-10<" in rows[2]
    line5 = page.split('id="line-5"')[1].split("</tr>")[0]
    # 'a' (9-10) is LOAD_FAST's narrower span; ' + b' the rest of the add's
    assert '<span class="instr c1" data-samples="2"' in line5 and ">a</span>" in line5
    assert 'data-samples="8"' in line5 and "> + b</span>" in line5
    assert 'aria-controls="bytecode-5"' in line5 and "sp3" in line5.split(">")[0]
    line11 = page.split('id="line-11"')[1].split("</tr>")[0]
    assert 'data-native="4"' in line11 and "C 100.0%" in line11
    assert 'id="bytecode-11"' in page and "In C code it called" in page
    assert 'id="show-spec"' in page and "Python 3.12" in page


def test_heatmap_without_opcodes_has_no_bytecode_view(tmp_path):
    page = heatmap_page(tmp_path, [((hot(-1), MAIN_CALL._replace(opcode=-1)), 3)], opcodes=False)
    assert 'class="bc-toggle"' not in page and 'id="show-spec"' not in page


def test_live_table_opcode_panel():
    from sampler.tui.table import LiveTable

    p = profile()
    table = LiveTable(1000)
    table.apply(p.delta_since(None))
    table.figures(p.stats, 0.0)
    rows = {(r.funcname, r.lineno): r for r in table.rows()}
    lines = table.opcode_panel(rows[("hot", 5)])
    assert lines[0].kind == "title" and "Opcodes for hot() at t.py:5" in lines[0].text
    assert "BINARY_OP_ADD_INT (BINARY_OP)" in lines[1].text and lines[1].kind == "specialized"
    assert "60.0% (     6)" in lines[1].text and lines[2].kind == "base"
    assert any("60% specialized (6/10 samples)" in line.text for line in lines)
    native = table.opcode_panel(rows[("main", 11)], unicode=False)
    assert any("<native>): 4 of 4 samples (100.0%)" in line.text for line in native)
    assert all(line.text.isascii() for line in native)
    plain = LiveTable(1000)
    bare = profile([((hot(-1),), 2)], opcodes=False)
    plain.apply(bare.delta_since(None))
    plain.figures(bare.stats, 0.0)
    assert "No opcode data for hot()" in plain.opcode_panel(plain.rows()[0])[1].text


# -- the pages in Chromium ------------------------------------------------------------------------


def test_heatmap_bytecode_panel_in_chromium(tmp_path, page):
    from pathlib import Path

    stacks = [((hot(ADD_INT, 9, 14), MAIN_CALL), 6), ((hot(LOAD_FAST, 9, 10), MAIN_CALL), 2),
              ((NATIVE_FRAME, MAIN_NATIVE), 4)]
    text = heatmap_page(tmp_path, stacks)
    path = tmp_path / "page.html"
    path.write_text(text, encoding="utf-8")
    page.goto(Path(path).as_uri())
    panel = page.locator("#bytecode-5")
    assert panel.is_hidden()
    page.click("#line-5 button.bc-toggle")
    assert panel.is_visible() and "BINARY_OP_ADD_INT (BINARY_OP)" in panel.inner_text()
    assert page.get_attribute("#line-5 button.bc-toggle", "aria-expanded") == "true"
    page.click("#line-5 button.bc-toggle")
    assert panel.is_hidden()
    page.click("#toggle-all-bytecode")
    assert panel.is_visible() and page.locator("#bytecode-11").is_visible()
    assert "In C code it called" in page.locator("#bytecode-11").inner_text()
    # the add's span is underlined more strongly than the load's
    shadow = lambda sel: page.eval_on_selector(sel, "e => getComputedStyle(e).boxShadow")  # noqa: E731
    assert shadow('#line-5 .instr[data-samples="6"]') != shadow('#line-5 .instr[data-samples="2"]')
    bg = lambda: page.eval_on_selector("#line-5 td:nth-child(4)", "e => getComputedStyle(e).backgroundColor")  # noqa: E731
    heat = bg()
    page.click("#show-spec")
    assert bg() != heat and "spec-view" in page.get_attribute("body", "class")
    assert page.errors == []


def test_flamegraph_tooltip_lists_instructions_in_chromium(tmp_path, page):
    from test_flamegraph import frames_of, hover_frame, open_page

    path = tmp_path / "fg.html"
    path.write_text(render_html(flamegraph_data(profile())), encoding="utf-8")
    open_page(page, str(path))
    frames = frames_of(page)
    hover_frame(page, next(f for f in frames if f["funcname"] == "hot"))
    text = page.evaluate("window.heatline.tooltipText()")
    assert "Bytecode instructions:" in text
    assert "BINARY_OP_ADD_INT (BINARY_OP)SPECIALIZED 6 (60.0%)" in text.replace("\n", "")
    assert "LOAD_FAST 2 (20.0%)" in text
    hover_frame(page, next(f for f in frames if f["funcname"] == "<native>"))
    text = page.evaluate("window.heatline.tooltipText()")
    assert "native code (C)" in text and "Bytecode" not in text
    page.evaluate("window.heatline.setInverted(true)")
    hover_frame(page, next(f for f in frames_of(page) if f["funcname"] == "hot"))
    assert "BINARY_OP_ADD_INT" in page.evaluate("window.heatline.tooltipText()")
    assert page.errors == [] and page.evaluate("window.__csp") == []
