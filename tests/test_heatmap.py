"""--heatmap: a directory of HTML pages, from real profiled runs, checked as data and in Chromium."""

from __future__ import annotations

import glob
import os
import re
import shutil
import stat
import textwrap
from html.parser import HTMLParser

import pytest

from conftest import ALL_INTERPRETERS, INTERPRETERS, heatline, target, wait_ready
from sampler.collectors import COLLECTORS
from sampler.collectors import heatmap as heatmap_module
from sampler.collectors.heatmap import (
    OTHER, PROJECT, SITE, STDLIB, HeatmapCollector, aggregate, classify, heat_level, project_roots,
)
from sampler.errors import HeatlineError
from sampler.model import GC_FRAME, HAS_GIL, Frame, Profile, RunStats, ThreadSample

KNOWN_LINES = target("known_lines.py")
HOSTILE = glob.glob(os.path.join(os.path.dirname(KNOWN_LINES), "hostile_heatmap_*.py"))[0]
HOSTILE_WORK = "<script>alert(1)</script>\"'&amp;😀"  # the names the hostile target gives itself
HOSTILE_CALLER = "<img src=x onerror=alert(2)>'\"🔥"
HOSTILE_PSEUDO_FILE = "<script>alert(3)</script>"


# -- reading the pages back ------------------------------------------------------------------------


class _Rows(HTMLParser):
    """Rows of a page: `<tr>` attributes, and the text of each cell."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[dict, list[str]]] = []
        self.sections: list[tuple[str, int]] = []  # (section id, index of its first row)
        self._cell: list[str] | None = None
        self.links: list[tuple[str, str]] = []  # (href, text)
        self._link: list | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append((attrs.get("id", ""), len(self.rows)))
        elif tag == "tr":
            self.rows.append((attrs, []))
        elif tag == "td" and self.rows:
            self._cell = []
            self.rows[-1][1].append("")
        elif tag == "a":
            self._link = [attrs.get("href", ""), ""]

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "a" and self._link is not None:
            self.links.append(tuple(self._link))
            self._link = None

    def handle_data(self, data):
        if self._cell is not None and self.rows:
            self.rows[-1][1][-1] += data
        if self._link is not None:
            self._link[1] += data


def parse(path: str) -> _Rows:
    parser = _Rows()
    with open(path, encoding="utf-8") as fh:
        parser.feed(fh.read())
    return parser


def index_groups(directory: str) -> dict[str, list[tuple[dict, list[str]]]]:
    """Section id ('group-project', ...) -> its file rows, in page order."""
    doc = parse(os.path.join(directory, "index.html"))
    groups = {}
    bounds = doc.sections + [("", len(doc.rows))]
    for (name, start), (_next, end) in zip(bounds, bounds[1:]):
        groups[name] = [row for row in doc.rows[start:end] if row[0].get("class") == "file"]
    return groups


def line_rows(page: str) -> dict[int, tuple[int, int, str]]:
    """line -> (self, total, source text) of a file page."""
    out = {}
    for attrs, cells in parse(page).rows:
        m = re.fullmatch(r"line-(\d+)", attrs.get("id", ""))
        if m:
            out[int(m.group(1))] = (int(attrs.get("data-self", 0)), int(attrs.get("data-total", 0)), cells[3])
    return out


def page_for(directory: str, name: str) -> str:
    """The file page of the file the index shows as `name` (or as `.../name`)."""
    doc = parse(os.path.join(directory, "index.html"))
    for attrs, cells in doc.rows:
        if attrs.get("class") == "file" and cells and (cells[0] == name or cells[0].endswith("/" + name)):
            for href, text in doc.links:
                if text == cells[0]:
                    return os.path.join(directory, href)
    raise AssertionError(f"no page for {name} in the index")


def run_heatmap(out: str, script: str, *args: str, duration: str = "1.5", cwd: str | None = None) -> str:
    result = heatline("run", "-d", duration, "--heatmap", "-o", out, script, *args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    written = re.search(r"heatmap profile written to (.+)", result.stderr).group(1).strip()
    return written if os.path.isabs(written) else os.path.join(cwd or os.getcwd(), written)


def known_source_lines() -> list[str]:
    with open(KNOWN_LINES, encoding="utf-8") as fh:
        return fh.read().splitlines()


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> str:
    """A real profile of known_lines.py: inner() loops at line 8, called from main() line 21."""
    out = tmp_path_factory.mktemp("known") / "report.html"  # `.html` is stripped, as Tachyon
    written = run_heatmap(str(out), KNOWN_LINES, "30")
    assert written == str(out)[: -len(".html")]
    return written


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("hostile") / "heatmap"
    return run_heatmap(str(out), HOSTILE, "30")


def file_url(path: str, fragment: str = "") -> str:
    from pathlib import Path

    return Path(path).as_uri() + (f"#{fragment}" if fragment else "")


# -- the format from a real run ---------------------------------------------------------------------


def test_registered_as_heatmap():
    assert COLLECTORS["heatmap"] is HeatmapCollector
    collector = HeatmapCollector(Profile(RunStats(pid=77)))
    assert collector.default_output(77) == "heatmap_77"
    assert HeatmapCollector.opens_in_browser
    assert collector.browser_target("out/heatmap_77") == os.path.join("out/heatmap_77", "index.html")
    help_text = heatline("run", "--help").stdout
    assert "--heatmap" in help_text


def test_index_lists_known_lines_first_in_project(known):
    assert sorted(os.listdir(known)) == ["file_0000.html", "index.html"]
    groups = index_groups(known)
    assert list(groups) == ["group-project"]  # the target calls nothing else in Python
    first_attrs, first_cells = groups["group-project"][0]
    assert first_cells[0] == "tests/targets/known_lines.py"  # relative to the target's cwd
    doc = parse(os.path.join(known, "index.html"))
    with open(os.path.join(known, "index.html"), encoding="utf-8") as fh:
        text = fh.read()
    profile_total = int(re.search(r'id="profile-total" data-total="(\d+)"', text).group(1))
    samples = int(re.search(r'data-samples="(\d+)"', text).group(1))
    # every stack has known_lines.py's module body at its root: the file's total is all of them
    assert int(first_attrs["data-total"]) == profile_total
    assert 0.9 * samples <= profile_total <= samples
    assert first_cells[2] == "100.0%"
    assert ("file_0000.html", "tests/targets/known_lines.py") in doc.links


def test_page_shows_every_line_hot_line_8_and_line_21_total(known):
    rows = line_rows(os.path.join(known, "file_0000.html"))
    source = known_source_lines()
    assert sorted(rows) == list(range(1, len(source) + 1))  # every line, sampled or not
    assert [rows[n][2] for n in sorted(rows)] == source
    assert rows[8][2].strip() == "x += i * i  # line 8: the hot line"
    hottest_self = max(rows, key=lambda n: rows[n][0])
    assert hottest_self == 8
    file_total = int(re.search(r'data-total="(\d+)"', open(os.path.join(known, "index.html")).read().split('class="file"')[1]).group(1))
    assert rows[21][1] >= 0.95 * file_total  # main() calls inner() from line 21 almost always
    assert rows[25][1] >= 0.95 * file_total  # the module body's main() call is below everything
    assert rows[14][1] == 0  # outer() never runs
    assert rows[8][0] + rows[7][0] >= 0.9 * file_total  # inner()'s loop is where the time goes
    # self counts add up to the file's self; totals never exceed the file's total
    assert sum(r[0] for r in rows.values()) == file_total
    assert all(r[1] <= file_total and r[0] <= r[1] for r in rows.values())


def test_call_navigation_on_call_and_def_lines(known):
    page = os.path.join(known, "file_0000.html")
    with open(page, encoding="utf-8") as fh:
        text = fh.read()
    row = lambda n: re.search(rf'<tr id="line-{n}".*?</tr>', text).group(0)  # noqa: E731
    # line 21 calls inner(), whose menu links to its def line 5; line 5 lists line 21 as a caller
    assert 'href="file_0000.html#line-5"' in row(21) and "callee" in row(21)
    assert 'href="file_0000.html#line-21"' in row(5) and "caller" in row(5)
    assert 'href="file_0000.html#line-17"' in row(25)  # <module> line 25 -> main() at its def
    assert "<details" not in row(8)


def test_known_lines_in_chromium(known, page):
    index = os.path.join(known, "index.html")
    page.goto(file_url(index))
    assert page.locator("#group-project tr.file td.name").first.inner_text() == "tests/targets/known_lines.py"
    page.click("text=tests/targets/known_lines.py")
    page.wait_for_url(re.compile(r"file_0000\.html$"))
    rows = line_rows(os.path.join(known, "file_0000.html"))

    def shown(n: int) -> str:
        return page.locator(f"#line-{n} td").nth(1).inner_text().strip()

    assert page.locator("body").get_attribute("class").split().count("metric-self") == 1
    assert shown(21) == (f"{rows[21][0]:,}" if rows[21][0] else "")
    assert shown(8) == f"{rows[8][0]:,}"
    page.click("#show-total")
    assert shown(21) == f"{rows[21][1]:,}"
    assert shown(25) == f"{rows[25][1]:,}"
    assert page.get_attribute("#show-total", "aria-pressed") == "true"
    page.click("#show-self")
    assert shown(21) == (f"{rows[21][0]:,}" if rows[21][0] else "")

    # Hot only: exactly the lines with self samples stay visible
    assert page.locator("#line-1").is_visible()
    page.click("#show-hot")
    visible = {n for n in rows if page.locator(f"#line-{n}").is_visible()}
    assert visible == {n for n, r in rows.items() if r[0] > 0}
    assert 8 in visible and 1 not in visible
    page.click("#show-total")  # hot for Total: every line on a stack
    visible = {n for n in rows if page.locator(f"#line-{n}").is_visible()}
    assert visible == {n for n, r in rows.items() if r[1] > 0}
    assert 25 in visible and 14 not in visible
    page.click("#show-all")
    assert page.locator("#line-14").is_visible()

    # heat: the hot line is coloured, a never-run line is not
    bg = lambda n: page.eval_on_selector(f"#line-{n} td:nth-child(4)", "e => getComputedStyle(e).backgroundColor")  # noqa: E731
    assert bg(8) not in ("rgba(0, 0, 0, 0)", "transparent")
    assert bg(14) in ("rgba(0, 0, 0, 0)", "transparent")
    assert page.errors == []


def test_line_anchor_scrolls_and_highlights(tmp_path, page):
    """`#line-N` on a long file: the row is scrolled into view, marked, and Hot only yields to it."""
    script = tmp_path / "long_file.py"
    filler = "".join(f"# filler line {n}\n" for n in range(1, 301))
    script.write_text(filler + textwrap.dedent("""\
        import sys, time


        def spin():
            x = 0
            for i in range(20000):
                x += i * i  # line 307
            return x


        print("ready", flush=True)
        end = time.time() + float(sys.argv[1])
        while time.time() < end:
            spin()  # line 314
    """))
    written = run_heatmap(str(tmp_path / "out"), str(script), "30", cwd=str(tmp_path))
    file_page = page_for(written, "long_file.py")
    rows = line_rows(file_page)
    assert len(rows) == 314 and max(rows, key=lambda n: rows[n][0]) == 307

    page.goto(file_url(file_page, "line-307"))
    assert page.evaluate("document.querySelector(':target').id") == "line-307"
    assert page.evaluate("window.scrollY") > 1000
    box = page.locator("#line-307").bounding_box()
    assert 0 <= box["y"] and box["y"] + box["height"] <= 900
    shadow = page.eval_on_selector("#line-307 td:nth-child(4)", "e => getComputedStyle(e).boxShadow")
    assert shadow != "none"
    assert page.eval_on_selector("#line-306 td:nth-child(4)", "e => getComputedStyle(e).boxShadow") == "none"

    # A link to a cold line while Hot only is on shows all lines again, then scrolls there.
    page.click("#show-hot")
    assert not page.locator("#line-150").is_visible()
    page.evaluate("location.hash = '#line-150'")
    page.wait_for_function("document.querySelector('#line-150').getClientRects().length > 0")
    assert page.get_attribute("#show-all", "aria-pressed") == "true"
    box = page.locator("#line-150").bounding_box()
    assert 0 <= box["y"] <= 900
    # line numbers are links to their own anchors
    assert page.get_attribute("#line-42 td:nth-child(1) a", "href") == "#line-42"
    assert page.errors == []


def test_hostile_names_are_escaped(hostile, page):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    basename = os.path.basename(HOSTILE)
    groups = index_groups(hostile)
    project = groups["group-project"]
    assert project[0][1][0] == f"tests/targets/{basename}"
    # the pseudo-file is listed, without a page, under Other
    assert [cells[0] for _a, cells in groups["group-other"]] == [f"{HOSTILE_PSEUDO_FILE} (no source file)"]

    page.goto(file_url(os.path.join(hostile, "index.html")))
    text = page.locator("body").inner_text()
    assert f"tests/targets/{basename}" in text
    assert HOSTILE_PSEUDO_FILE in text
    assert page.evaluate("document.querySelectorAll('script, img, iframe, object').length") == 0

    file_page = page_for(hostile, basename)
    page.goto(file_url(file_page))
    text = page.locator("body").inner_text()
    assert HOSTILE_WORK in text and HOSTILE_CALLER in text  # verbatim, entities not decoded twice
    assert os.path.join(os.path.dirname(HOSTILE), basename) in text
    assert page.title() == f"{basename}: heatline heatmap"
    # the call menus carry the names too, as text
    page.click("#line-43 details.callees summary")
    assert page.locator("#line-43 details.callees li").first.inner_text().startswith(HOSTILE_CALLER)
    page.keyboard.press("Escape")  # menus close on Escape
    assert not page.locator("#line-43 details.callees li").first.is_visible()
    page.click("#line-44 details.callees summary")
    assert HOSTILE_PSEUDO_FILE in page.locator("#line-44 details.callees li").first.inner_text()
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # heatline's own
    assert page.evaluate("document.querySelectorAll('img, iframe, object').length") == 0
    handlers = page.evaluate(
        "[...document.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name))"
        ".filter(n => n.startsWith('on'))"
    )
    assert handlers == []
    rows = line_rows(file_page)
    assert max(rows, key=lambda n: rows[n][0]) in (13, 14)  # the renamed work() loop
    page.click("#show-total")
    assert dialogs == []
    assert page.errors == []


def test_pages_carry_a_strict_csp(known):
    for name in os.listdir(known):
        with open(os.path.join(known, name), encoding="utf-8") as fh:
            text = fh.read()
        csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', text).group(1)
        assert csp.startswith("default-src &#x27;none&#x27;; style-src &#x27;sha256-")
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "script-src &#x27;none&#x27;" in csp if name == "index.html" else "script-src &#x27;sha256-" in csp
        assert not re.search(r"<[a-z]+[^>]*\sstyle=", text)  # no style attributes for CSP to block
        assert "http://" not in text and "https://" not in text  # works with no network


def test_missing_source_shows_sampled_lines(tmp_path, page):
    """The source is gone when the heatmap is written (as in a replay elsewhere): sampled lines only."""
    script = tmp_path / "vanishing.py"
    script.write_text(textwrap.dedent("""\
        import os, sys, time


        def hot():
            x = 0
            for i in range(20000):
                x += i * i  # line 7
            return x


        os.remove(__file__)
        print("ready", flush=True)
        end = time.time() + float(sys.argv[1])
        while time.time() < end:
            hot()  # line 15
    """))
    written = run_heatmap(str(tmp_path / "out"), str(script), "30", cwd=str(tmp_path))
    assert not script.exists()
    file_page = page_for(written, "vanishing.py")
    rows = line_rows(file_page)
    assert 7 in rows and 15 in rows and rows[7][0] > 0
    assert 1 not in rows and 3 not in rows  # unsampled lines cannot be shown
    assert all(r[1] > 0 for r in rows.values())
    assert all(r[2] == "" for r in rows.values())
    page.goto(file_url(file_page, "line-7"))
    note = page.locator("#source-missing").inner_text()
    assert note.startswith("Source not available") and "No such file" in note
    assert page.evaluate("document.querySelector(':target').id") == "line-7"
    assert page.errors == []


def test_replay_with_the_source_gone(tmp_path, page):
    """`replay FILE --heatmap` on another day: the profiled script no longer exists."""
    script = tmp_path / "was_here.py"
    shutil.copy(KNOWN_LINES, script)
    result = heatline("run", "-d", "1", "--binary", "-o", str(tmp_path / "p.bin"), str(script), "30",
                      cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    script.unlink()
    result = heatline("replay", str(tmp_path / "p.bin"), "--heatmap", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    groups = index_groups(str(tmp_path / "out"))
    assert [c[0] for _a, c in groups["group-project"]] == ["was_here.py"]  # the script's directory
    with open(tmp_path / "out" / "index.html", encoding="utf-8") as fh:
        assert "directory of the script it ran" in fh.read()
    file_page = page_for(str(tmp_path / "out"), "was_here.py")
    rows = line_rows(file_page)
    # inner()'s loop is the hot spot: its body (8) or its `for` (7), which a 1 s run on a loaded
    # machine can rank either way (7 once, in CI beside a CPU hog)
    assert max(rows, key=lambda n: rows[n][0]) in (7, 8)
    assert {8, 21, 25} <= set(rows) and not {1, 14} & set(rows)
    page.goto(file_url(file_page))
    assert page.locator("#source-missing").inner_text().startswith("Source not available")
    page.click("#show-total")
    assert page.locator("#line-25 td").nth(1).inner_text().strip() == f"{rows[25][1]:,}"
    assert page.errors == []


SHARED_HOSTILE = glob.glob(os.path.join(os.path.dirname(KNOWN_LINES), "hostile_<script>*_names.py"))


@pytest.mark.skipif(not SHARED_HOSTILE, reason="the flamegraph's hostile target is not there")
def test_shared_hostile_target_is_escaped(tmp_path, page):
    """The other hostile target (markup in the file name itself, `"><img` in a function name)."""
    leaf, outer = "<script>alert(1)</script>", "\"><img src=x onerror=alert(2)>'&amp;💥"
    written = run_heatmap(str(tmp_path / "out"), SHARED_HOSTILE[0], "30", duration="1")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    basename = os.path.basename(SHARED_HOSTILE[0])
    page.goto(file_url(os.path.join(written, "index.html")))
    assert f"tests/targets/{basename}" in page.locator("body").inner_text()
    page.goto(file_url(page_for(written, basename)))
    text = page.locator("body").inner_text()
    assert leaf in text and outer in text
    assert page.evaluate("document.querySelectorAll('script').length") == 1
    assert page.evaluate("document.querySelectorAll('img, iframe, object').length") == 0
    assert dialogs == [] and page.errors == []


def test_existing_heatmap_directory_is_replaced(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "index.html").write_text("STALE")
    (out / "file_0003.html").write_text("STALE")
    os.chmod(out, 0o750)
    written = run_heatmap(str(tmp_path / "report.html"), KNOWN_LINES, "30", duration="0.5")
    assert written == str(out)
    assert sorted(os.listdir(out)) == ["file_0000.html", "index.html"]
    assert "STALE" not in (out / "index.html").read_text()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o750
    assert sorted(os.listdir(tmp_path)) == ["report"]  # no temporary directory left behind


def _other_python():
    import subprocess
    import sys

    current = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for interp in INTERPRETERS:
        out = subprocess.run([interp.path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() != current:
            return interp, out.stdout.strip()
    return None, None


def test_target_on_another_python_sorts_its_stdlib(tmp_path):
    """The target's stdlib is not the profiler's: it is told by its path, and its source shown."""
    interp, version = _other_python()
    if interp is None:
        pytest.skip("only one CPython minor version on this machine")
    script = tmp_path / "uses_difflib.py"
    script.write_text(textwrap.dedent("""\
        import difflib, sys, time

        A = [f"line {i} " * 3 for i in range(200)]
        B = [f"line {i * 7 % 200} " * 3 for i in range(200)]
        print("ready", flush=True)
        end = time.time() + float(sys.argv[1])
        while time.time() < end:
            difflib.SequenceMatcher(None, A, B).ratio()  # line 8
    """))
    result = heatline("run", "--python", interp.path, "-d", "1.5", "--heatmap", "-o", str(tmp_path / "out"),
                      str(script), "30", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    groups = index_groups(str(tmp_path / "out"))
    assert [c[0] for _a, c in groups["group-project"]] == ["uses_difflib.py"]
    stdlib = [c[0] for _a, c in groups["group-stdlib"]]
    assert stdlib[0] == "difflib.py"
    page = page_for(str(tmp_path / "out"), "difflib.py")
    with open(page, encoding="utf-8") as fh:
        text = fh.read()
    difflib_path = re.search(r'<h1><span class="path">([^<]+)</span>', text).group(1)
    assert f"/python{version}/difflib.py" in difflib_path
    with open(difflib_path, encoding="utf-8") as fh:
        source = fh.read().splitlines()
    rows = line_rows(page)
    assert [rows[n][2] for n in range(1, len(source) + 1)] == source  # entities decoded by the parser
    hottest = max(rows, key=lambda n: rows[n][0])
    assert "find_longest_match" in text and rows[hottest][0] > 0
    script_rows = line_rows(page_for(str(tmp_path / "out"), "uses_difflib.py"))
    assert script_rows[8][1] >= 0.9 * sum(r[0] for r in rows.values())


# -- the collector on hand-built profiles (a replay has no live process) -------------------------------


def make_profile(*stacks, samples=None):
    """Stacks leaf first, each (frames, weight); `samples` set as a replayed profile has it."""
    total = sum(w for _f, w in stacks)
    profile = Profile(RunStats(pid=999_999_999, samples=total if samples is None else samples,
                               attempts=total, duration_s=1.0, start_time=1e9))
    for frames, weight in stacks:
        profile.add(ThreadSample(1, HAS_GIL, tuple(frames)), weight)
    return profile


def test_recursion_counts_each_line_once_per_sample(tmp_path):
    rec = [Frame(str(tmp_path / "r.py"), "rec", 10) for _ in range(5)]
    leaf = Frame(str(tmp_path / "r.py"), "rec", 6)
    agg = aggregate([(1, (leaf, *rec), 3), (1, (leaf, *rec[:2]), 2), (1, tuple(rec), 1)])
    fs = agg.files[str(tmp_path / "r.py")]
    assert fs.line_total == {10: 6, 6: 5}
    assert fs.line_self == {6: 5, 10: 1}
    assert fs.total == 6 and fs.self == 6 and fs.funcs["rec"].total == 6


def test_recursion_target(tmp_path):
    written = run_heatmap(str(tmp_path / "out"), target("recursion.py"), "40", duration="1")
    rows = line_rows(page_for(written, "recursion.py"))
    with open(os.path.join(written, "index.html"), encoding="utf-8") as fh:
        file_total = int(re.search(r'class="file" data-total="(\d+)"', fh.read()).group(1))
    assert 0.9 * file_total <= rows[10][1] <= file_total  # 40 frames deep, counted once
    assert rows[16][1] == max(r[1] for r in rows.values())  # the module's loop is under all


def test_classify_by_path_shape_whatever_the_python():
    roots = ("/home/me/proj",)
    assert classify("/home/me/proj/app/main.py", roots) == PROJECT
    assert classify("/opt/python3.9/lib/python3.9/json/decoder.py", roots) == STDLIB
    assert classify("/home/me/.pyenv/versions/3.13.0/lib/python3.13t/os.py", roots) == STDLIB
    assert classify("/home/me/proj/.venv/lib/python3.12/site-packages/requests/api.py", roots) == SITE
    assert classify("/usr/lib/python3/dist-packages/apt/cache.py", roots) == SITE
    assert classify("<frozen importlib._bootstrap>", roots) == STDLIB
    assert classify("<string>", roots) == OTHER
    assert classify("/srv/elsewhere/tool.py", roots) == OTHER


def test_project_roots_for_replays():
    files = ["/w/proj/a/x.py", "/w/proj/b/y.py", "/usr/lib/python3.11/os.py"]
    roots, note = project_roots(None, [], files)
    assert roots == ("/w/proj",) and "common directory" in note
    roots, note = project_roots(None, ["/w/proj/a/x.py"], files)
    assert roots == ("/w/proj/a",) and "script" in note
    roots, note = project_roots("/w", ["/w/proj/a/x.py"], files)
    assert roots == ("/w",) and "working directory" in note


def test_replayed_profile_with_missing_source_and_pseudo_files(tmp_path):
    gone = str(tmp_path / "src" / "gone.py")
    profile = make_profile(
        ([Frame(gone, "work", 7), Frame(gone, "<module>", 12)], 30),
        ([Frame("<frozen posixpath>", "join", 80), Frame(gone, "<module>", 13)], 5),
        ([GC_FRAME, Frame(gone, "<module>", 13)], 2),
    )
    collector = HeatmapCollector(profile)
    assert collector.target_cwd is None  # a replay: its PID is not asked about
    written = collector.write(str(tmp_path / "out.html"))
    assert written == str(tmp_path / "out")
    groups = index_groups(written)
    assert [c[0] for _a, c in groups["group-project"]] == ["gone.py"]
    assert [c[0] for _a, c in groups["group-stdlib"]] == ["<frozen posixpath> (no source file)"]
    rows = line_rows(os.path.join(written, "file_0000.html"))
    assert {n: r[:2] for n, r in rows.items()} == {7: (30, 30), 12: (0, 30), 13: (0, 7)}
    with open(os.path.join(written, "index.html"), encoding="utf-8") as fh:
        index = fh.read()
    assert "&lt;GC&gt; 2" in index
    assert "directory of the script it ran" in index


def test_output_into_a_foreign_directory_keeps_its_files(tmp_path):
    profile = make_profile(([Frame(KNOWN_LINES, "inner", 8)], 4))
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    written = HeatmapCollector(profile).write(str(mine))
    assert written == str(mine / "heatmap_999999999")
    assert (mine / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(written)) == ["file_0000.html", "index.html"]


def test_output_over_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(HeatlineError, match=r"exists and is not a directory"):
        HeatmapCollector(make_profile(([Frame(KNOWN_LINES, "inner", 8)], 1))).write(str(tmp_path / "taken"))
    result = heatline("run", "-d", "0.3", "--heatmap", "-o", str(tmp_path / "taken"), KNOWN_LINES, "30")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("heatline: cannot write the heatmap")
    assert "Traceback" not in result.stderr


def test_replace_without_renameat2(tmp_path, monkeypatch):
    monkeypatch.setattr(heatmap_module, "_exchange", lambda a, b: False)
    profile = make_profile(([Frame(KNOWN_LINES, "inner", 8)], 4))
    out = tmp_path / "hm"
    HeatmapCollector(profile).write(str(out))
    (out / "file_0009.html").write_text("old")
    HeatmapCollector(profile).write(str(out))
    assert sorted(os.listdir(out)) == ["file_0000.html", "index.html"]
    assert sorted(os.listdir(tmp_path)) == ["hm"]


def test_heat_levels_are_log_scaled():
    assert heat_level(0, 1000) == 0
    assert heat_level(1, 1000) in (1, 2)
    assert heat_level(1000, 1000) == 10
    assert heat_level(31, 1000) in (5, 6)  # log(32) / log(1001) is 0.5: the middle level
    levels = [heat_level(n, 1000) for n in (1, 3, 10, 30, 100, 300, 1000)]
    assert levels == sorted(levels) and len(set(levels)) == len(levels)


def test_source_read_never_blocks_on_special_files(tmp_path):
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    profile = make_profile(([Frame(str(fifo), "f", 3)], 2))
    written = HeatmapCollector(profile).write(str(tmp_path / "out"))
    with open(os.path.join(written, "file_0000.html"), encoding="utf-8") as fh:
        assert "not a regular file" in fh.read()
    shutil.rmtree(written)


@pytest.mark.parametrize("interpreter", [p for p in ALL_INTERPRETERS if p.values[0].rooted])
def test_target_in_another_root_shows_its_source(interpreter, tmp_path, spawn):
    """A target in a container names its files inside its own root (/opt/heatline-tests/...,
    no such path on the host): the pages still show their source, read through the target's
    root, even though the target exits before the heatmap is written."""
    script = tmp_path / "contained.py"
    script.write_text(textwrap.dedent("""\
        import sys, time

        def spin():
            x = 0
            for i in range(5000):
                x += i  # line 6: the hot line
            return x

        print("ready", flush=True)
        end = time.time() + float(sys.argv[1])
        while time.time() < end:
            spin()
    """))
    p = spawn(interpreter, str(script), "2")
    wait_ready(p)
    inside = interpreter.script_path(str(script))
    assert not os.path.exists(inside)  # only the target's root has it
    out = tmp_path / "out"
    result = heatline("attach", str(p.pid), "--heatmap", "-o", str(out))  # until the target exits
    assert result.returncode == 0, result.stderr
    assert p.wait(timeout=30) == 0
    rows = line_rows(page_for(str(out), "contained.py"))
    assert [rows[n][2] for n in sorted(rows)] == script.read_text().splitlines()
    assert max(rows, key=lambda n: rows[n][0]) in (5, 6)
    assert rows[12][1] >= 0.9 * sum(r[0] for r in rows.values())  # everything under spin()
