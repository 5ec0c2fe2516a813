"""Output formats: Tachyon's collector expectations plus heatline's own (table, files)."""

from __future__ import annotations

import io
import marshal
import os
import pstats
import re
import stat

import pytest

from sampler.collectors import COLLECTORS, CollapsedCollector, Collector, PstatsCollector
from sampler.launcher_frames import INTERNAL_FRAME_SUFFIXES, strip_internal_frames
from sampler.errors import HeatlineError, UsageError
from sampler.model import GC_FRAME, HAS_GIL, ON_CPU, Frame, Profile, RunStats, ThreadSample

FUNC1 = Frame("file.py", "func1", 10, 10)
FUNC2 = Frame("file.py", "func2", 20, 20)
OTHER = Frame("other.py", "other_func", 5, 5)


def make_profile(*stacks, interval_usec=1000, mode="wall", pid=4242, tid=1):
    """A profile from stacks given leaf first, each `frames` or `(frames, weight)`."""
    profile = Profile(RunStats(pid=pid, mode=mode, interval_usec=interval_usec))
    for stack in stacks:
        frames, weight = stack if isinstance(stack, tuple) and isinstance(stack[1], int) else (stack, 1)
        profile.add(ThreadSample(tid, HAS_GIL | ON_CPU, tuple(frames)), weight)
    return profile


def tachyon_profile(interval_usec=1000):
    return make_profile([FUNC1, FUNC2], [FUNC1, FUNC2], [OTHER], interval_usec=interval_usec)


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def table(profile, **options):
    out = io.StringIO()
    PstatsCollector(profile, **options).write_stdout(out)
    return out.getvalue()


def table_rows(text):
    """The table's rows as (nsamples, label), in order."""
    lines = text.split("Legend:")[0].splitlines()[2:]
    return [(line.split()[0], line.split()[-1]) for line in lines if line.strip()]


# -- registry and base ------------------------------------------------------------------------


def test_registry():
    assert list(COLLECTORS) == [
        "pstats", "collapsed", "flamegraph", "diff_flamegraph", "gecko", "heatmap", "jsonl", "speedscope", "pprof",
        "binary",
    ]
    assert COLLECTORS["pstats"] is PstatsCollector and COLLECTORS["collapsed"] is CollapsedCollector
    flags = set()
    for name, cls in COLLECTORS.items():
        assert issubclass(cls, Collector) and cls.format_name == name
        assert cls.cli_flag.startswith("--") and cls.cli_flag not in flags and cls.cli_help
        flags.add(cls.cli_flag)


def test_default_output_names():
    profile = tachyon_profile()
    assert PstatsCollector(profile).default_output(123) == "pstats_123.pstats"
    assert CollapsedCollector(profile).default_output(123) == "collapsed_123.txt"


def test_unknown_option_and_bad_sort():
    with pytest.raises(TypeError):
        CollapsedCollector(tachyon_profile(), sort="name")
    with pytest.raises(UsageError):
        PstatsCollector(tachyon_profile(), sort="calls")


def test_write_stdout_not_implemented_by_default():
    class Nothing(Collector):
        format_name = "nothing"

    with pytest.raises(NotImplementedError):
        Nothing(tachyon_profile()).write_stdout(io.StringIO())


def test_write_into_directory_uses_default_name(tmp_path):
    written = CollapsedCollector(tachyon_profile()).write(tmp_path)
    assert written == os.path.join(str(tmp_path), "collapsed_4242.txt")
    assert os.listdir(tmp_path) == ["collapsed_4242.txt"]


def test_write_replaces_atomically_and_keeps_mode(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    assert CollapsedCollector(tachyon_profile()).write(str(target)) == str(target)
    assert target.read_text().startswith("tid:1;")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    class Broken(CollapsedCollector):
        def dump(self, fh):
            fh.write(b"partial")
            raise RuntimeError("boom")

    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        Broken(tachyon_profile()).write(target)
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_write_to_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(HeatlineError, match="cannot write"):
        CollapsedCollector(tachyon_profile()).write(tmp_path / "no" / "such.txt")


def test_internal_frames_are_stripped():
    launcher = Frame("/x/" + INTERNAL_FRAME_SUFFIXES[0], "main", 40)
    runpy = [Frame("<frozen runpy>", "_run_code", 88), Frame("<frozen runpy>", "run_path", 280)]
    module = Frame("/app/script.py", "<module>", 3)
    stack = (FUNC1, module, *runpy, launcher, Frame("<string>", "<module>", 1))
    assert strip_internal_frames(stack) == (FUNC1, module)
    from sampler.launcher import COORDINATOR

    assert strip_internal_frames((module, Frame(COORDINATOR, "main", 70))) == (module,)
    assert strip_internal_frames((FUNC1, FUNC2)) == (FUNC1, FUNC2)
    assert strip_internal_frames((launcher,)) == ()
    profile = make_profile(stack, [launcher])
    assert CollapsedCollector(profile).lines() == ["tid:1;script.py:<module>:3;file.py:func1:10 1"]
    assert table_rows(table(profile)) == [("1/1", "file.py:10(func1)"), ("0/1", "script.py:3(<module>)")]


# -- collapsed --------------------------------------------------------------------------------


def test_collapsed_tachyon_export(tmp_path):
    path = CollapsedCollector(tachyon_profile()).write(tmp_path / "out.txt")
    with open(path, encoding="utf-8") as fh:
        content = fh.read()
    assert content == "tid:1;file.py:func2:20;file.py:func1:10 2\ntid:1;other.py:other_func:5 1\n"


def test_collapsed_speedscope_and_flamegraph_shape():
    profile = make_profile(
        [GC_FRAME, Frame("/a/b/x y.py", "C.m", 7)],
        ([Frame("/weird;name\n.py", "f", 1)], 3),
        [FUNC1, FUNC2],
    )
    lines = CollapsedCollector(profile).lines()
    assert lines == [
        "tid:1;weird,name .py:f:1 3",
        "tid:1;file.py:func2:20;file.py:func1:10 1",
        "tid:1;x y.py:C.m:7;<GC> 1",
    ]
    for line in lines:  # speedscope: /^(.*) (\d+)$/, frames split on ";"
        match = re.fullmatch(r"(.*) (\d+)", line)
        assert match and all(match.group(1).split(";"))


def test_collapsed_merges_identical_lines_and_separates_threads():
    profile = Profile(RunStats())
    profile.add(ThreadSample(7, 0, (Frame("/a/mod.py", "f", 1),)), 2)
    profile.add(ThreadSample(7, 0, (Frame("/b/mod.py", "f", 1),)), 2)  # same text, other file
    profile.add(ThreadSample(8, 0, (Frame("/a/mod.py", "f", 1),)), 5)
    assert CollapsedCollector(profile).lines() == ["tid:8;mod.py:f:1 5", "tid:7;mod.py:f:1 4"]
    out = io.StringIO()
    CollapsedCollector(profile).write_stdout(out)
    assert out.getvalue() == "tid:8;mod.py:f:1 5\ntid:7;mod.py:f:1 4\n"


# -- pstats aggregation -----------------------------------------------------------------------


def test_pstats_tachyon_create_stats():
    stats = PstatsCollector(tachyon_profile(interval_usec=1_000_000)).create_stats()
    assert stats[("file.py", 10, "func1")][:4] == (2, 2, 2.0, 2.0)
    assert stats[("file.py", 20, "func2")][:4] == (0, 2, 0.0, 2.0)
    assert stats[("other.py", 5, "other_func")][:4] == (1, 1, 1.0, 1.0)
    assert stats[("file.py", 10, "func1")][4] == {("file.py", 20, "func2"): (2, 2, 2.0, 2.0)}
    assert stats[("file.py", 20, "func2")][4] == {}


def test_pstats_file_has_cprofile_shape(tmp_path):
    path = PstatsCollector(tachyon_profile(interval_usec=1_000_000)).write(tmp_path)
    assert os.path.basename(path) == "pstats_4242.pstats"
    with open(path, "rb") as fh:
        data = marshal.load(fh)
    assert ("__sampled__",) not in data
    for key, (cc, nc, tt, ct, callers) in data.items():
        assert len(key) == 3 and cc <= nc and tt <= ct
        for caller, value in callers.items():
            assert caller in data and isinstance(value, tuple) and len(value) == 4


def test_pstats_loads_in_stdlib_pstats(tmp_path):
    profile = make_profile(
        [FUNC1, FUNC2], [FUNC1, FUNC2], [OTHER, FUNC2], [GC_FRAME], interval_usec=1_000_000
    )
    path = PstatsCollector(profile).write(tmp_path / "p.pstats")
    out = io.StringIO()
    st = pstats.Stats(path, stream=out)
    st.sort_stats("cumulative").print_stats()
    st.print_callers()
    st.print_callees()
    text = out.getvalue()
    assert "file.py:20(func2)" in text and "{GC}" in text
    assert st.total_tt == 4.0
    assert st.stats[("file.py", 20, "func2")][:4] == (0, 3, 0.0, 3.0)
    callers_section = text.split("was called by...")[1]
    assert re.search(r"file\.py:10\(func1\)\s+<-\s+2\s+2\.000\s+2\.000\s+file\.py:20\(func2\)", callers_section)
    st.strip_dirs().add(path)  # merging caller tuples works too


def test_recursion_same_frame_five_times():
    stats = PstatsCollector(make_profile([FUNC1] * 5)).create_stats()
    cc, nc, _, _, callers = stats[FUNC1.key()]
    assert (cc, nc) == (1, 1)
    assert callers == {FUNC1.key(): (1, 1, 0.001, 0.001)}


def test_recursion_depths_3_2_4():
    profile = make_profile([FUNC1] * 3 + [OTHER], [FUNC1] * 2 + [OTHER], [FUNC1] * 4 + [OTHER])
    stats = PstatsCollector(profile).create_stats()
    assert stats[FUNC1.key()][:2] == (3, 3)
    assert stats[OTHER.key()][:2] == (0, 3)


def test_deep_recursion_cumulative_at_most_100_percent():
    profile = make_profile(*([[FUNC1] * 100] * 10))
    stats = PstatsCollector(profile).create_stats()
    assert stats[FUNC1.key()][:2] == (10, 10)
    rows = table_rows(table(profile))
    assert rows == [("10/10", "file.py:10(func1)")]
    line = table(profile).splitlines()[2].split()
    assert line[1] == "100.0" and line[3] == "100.0"


def test_lines_of_one_function_are_separate_rows():
    a, b = Frame("f.py", "work", 3), Frame("f.py", "work", 4)
    main = Frame("f.py", "main", 10)
    stats = PstatsCollector(make_profile([a, main], [a, main], [b, main])).create_stats()
    assert stats[("f.py", 3, "work")][:2] == (2, 2)
    assert stats[("f.py", 4, "work")][:2] == (1, 1)
    assert stats[("f.py", 10, "main")][:2] == (0, 3)


def test_callers_counted_once_per_stack_per_pair():
    # main -> f -> g -> f -> g : the pair (g called by f) is adjacent twice in one stack
    f, g, main = Frame("m.py", "f", 1), Frame("m.py", "g", 2), Frame("m.py", "main", 3)
    stats = PstatsCollector(make_profile(([g, f, g, f, main], 4))).create_stats()
    assert stats[g.key()][4][f.key()][:2] == (4, 4)
    assert stats[f.key()][4] == {g.key(): (4, 4, 0.0, 0.004), main.key(): (4, 4, 0.0, 0.004)}


# -- the table --------------------------------------------------------------------------------


def many_functions_profile():
    stacks = []
    for i in range(20):  # fn0 has 20 direct samples ... fn19 has 1
        stacks.append(([Frame(f"/src/pkg/mod{i % 3}.py", f"fn{i}", i + 1), FUNC2], 20 - i))
    stacks.append(([OTHER, FUNC2], 0 + 25))  # largest cumulative for FUNC2 is obvious anyway
    return make_profile(*stacks)


def test_table_layout():
    text = table(tachyon_profile(interval_usec=1_000_000))
    lines = text.splitlines()
    assert lines[0] == "Profile Stats:"
    assert lines[1] == (
        "       nsamples   sample%   tottime (s)    cumul%   cumtime (s)  filename:lineno(function)"
    )
    assert lines[2] == "            2/2      66.7         2.000      66.7         2.000  file.py:10(func1)"
    assert lines[3] == "            1/1      33.3         1.000      33.3         1.000  other.py:5(other_func)"
    assert lines[4] == "            0/2       0.0         0.000      66.7         2.000  file.py:20(func2)"
    assert "Legend:" in text and "Summary of Interesting Functions:" in text
    assert "\033[" not in text


def test_table_time_units():
    text = table(tachyon_profile(interval_usec=1000))  # max 2 ms
    assert "tottime (ms)" in text and "cumtime (ms)" in text
    assert "2.000" in text.splitlines()[2]
    text = table(tachyon_profile(interval_usec=100))  # max 200 μs
    assert "tottime (μs)" in text and "200.000" in text.splitlines()[2]
    profile = make_profile(([FUNC1, FUNC2], 1500), ([FUNC2], 2))  # tottime 1.5 s, cumtime 1.502 s
    header = table(profile).splitlines()[1]
    assert "tottime (s)" in header and "cumtime (s)" in header
    profile = make_profile(([FUNC1, FUNC2], 1), ([FUNC2], 1000))  # tottime max 1 s
    header = table(profile).splitlines()[1]
    assert "tottime (s)" in header
    profile = make_profile(([FUNC1, FUNC2], 1), ([FUNC2, OTHER], 1))
    assert "tottime (ms)" in table(profile, sort="name")


def test_table_micro_sign_falls_back_on_ascii_streams():
    buf = io.BytesIO()
    stream = io.TextIOWrapper(buf, encoding="ascii")
    PstatsCollector(tachyon_profile(interval_usec=10)).write_stdout(stream)
    stream.flush()
    assert b"tottime (us)" in buf.getvalue()


def test_table_sorting_and_limit():
    profile = many_functions_profile()
    rows = table_rows(table(profile))
    assert len(rows) == 15
    assert rows[0] == ("25/25", "other.py:5(other_func)")
    assert rows[1] == ("20/20", "mod0.py:1(fn0)")
    assert rows[14][0] == "7/7"
    assert len(table_rows(table(profile, limit=3))) == 3
    assert len(table_rows(table(profile, limit=None))) == 22
    for sort in ("cumtime", "cumul-pct", "nsamples-cumul"):
        assert table_rows(table(profile, sort=sort, limit=2)) == [
            ("0/235", "file.py:20(func2)"),
            ("25/25", "other.py:5(other_func)"),
        ]
    for sort in ("tottime", "sample-pct", "nsamples"):
        assert table_rows(table(profile, sort=sort, limit=1)) == [("25/25", "other.py:5(other_func)")]
    names = [label for _, label in table_rows(table(profile, sort="name", limit=None))]
    assert names[0] == "file.py:20(func2)" and names[1] == "mod0.py:1(fn0)"
    assert names[2] == "mod0.py:4(fn3)" and names[-1] == "other.py:5(other_func)"


def test_table_disambiguates_equal_basenames():
    profile = make_profile([Frame("/a/x/util.py", "f", 1)], [Frame("/b/y/util.py", "f", 1)])
    labels = sorted(label for _, label in table_rows(table(profile)))
    assert labels == ["x/util.py:1(f)", "y/util.py:1(f)"]


def test_table_synthetic_frames_show_their_name():
    rows = table_rows(table(make_profile([GC_FRAME, FUNC1], [GC_FRAME, FUNC1])))
    assert rows[0] == ("2/2", "<GC>")


def test_table_colours_only_on_tty():
    out = FakeTTY()
    PstatsCollector(tachyon_profile()).write_stdout(out)
    text = out.getvalue()
    assert "\033[1;34mProfile Stats:\033[0m" in text
    assert "\033[32mfile.py\033[0m:\033[33m10\033[0m(\033[36mfunc1\033[0m)" in text


def test_table_summary():
    main, work, helper = Frame("app.py", "main", 1), Frame("app.py", "work", 5), Frame("app.py", "helper", 9)
    work2 = Frame("app.py", "work", 6)
    profile = make_profile(
        ([work, main], 6), ([work2, main], 2), ([helper, work, main], 4), ([main], 1), ([helper, main], 1)
    )
    text = table(profile)
    summary = text.split("Summary of Interesting Functions:")[1]
    hot, indirect, magnification = re.split(r"\n(?=Functions with)", summary.strip())[:3]
    assert hot.startswith("Functions with Highest Direct/Cumulative Ratio (Hot Spots):")
    hot_lines = hot.splitlines()[1:]
    assert hot_lines[0].endswith("app.py:helper") and "1.000" in hot_lines[0]
    # work: lines 5 and 6 merge into one function (8 direct, 12 cumulative)
    assert hot_lines[1].endswith("app.py:work") and "(8/12 samples)" in hot_lines[1]
    assert indirect.splitlines()[1].split()[0] == "13" and indirect.splitlines()[1].endswith("app.py:main")
    assert magnification.splitlines()[1].endswith("app.py:main")
    assert "14.0x" in magnification.splitlines()[1]
    assert "Summary" not in table(profile, show_summary=False)
    assert "Legend:" in table(profile, show_summary=False)


def test_no_samples():
    assert table(Profile(RunStats(mode="wall"))) == "No samples were collected.\n"
    assert table(Profile(RunStats(mode="cpu"))) == (
        "No samples were collected.\nThis can happen in CPU mode when all threads are idle.\n"
    )
    assert CollapsedCollector(Profile()).lines() == []


def test_launcher_only_gc_is_dropped():
    from sampler.launcher_frames import strip_internal_frames
    from sampler.launcher import COORDINATOR
    from sampler.model import GC_FRAME, Frame

    launcher = Frame(COORDINATOR, "main", 60)
    user = Frame("/app/x.py", "work", 3)
    assert strip_internal_frames((GC_FRAME, launcher)) == ()
    assert strip_internal_frames((GC_FRAME, user, launcher)) == (GC_FRAME, user)


def test_the_table_shows_escape_sequences_in_names_as_text():
    """A function or file named with terminal escapes (the target chooses its names) is printed
    escaped in the table and the summary, never acted on by the user's terminal."""
    evil = Frame("/t/ev\x1b]0;title\x07il.py", "evil\x1b[31mRED", 3, 3)
    text = table(make_profile([evil, FUNC1], [evil]))
    assert "\x1b" not in text and "\x07" not in text
    assert "evil\\x1b[31mRED" in text and "ev\\x1b]0;title\\x07il.py" in text
