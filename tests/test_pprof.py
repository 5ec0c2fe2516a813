"""--pprof: our encoder and decoder on built profiles, hostile files refused in one line, and
real runs on every CPython read back by our decoder, by the loaders and (when Go is installed)
by `go tool pprof` itself, each against heatline's own pstats of the same profile.
"""

from __future__ import annotations

import gzip
import io
import marshal
import re
import shutil
import subprocess
from collections import Counter

import pytest

from conftest import ALL_INTERPRETERS, attach_binary, heatline, target, wait_ready
from sampler.collectors.pprof import PprofCollector
from sampler.collectors.pstats import PstatsCollector
from sampler.errors import ProfileFileError
from sampler.lineindex import LineIndex
from sampler.loaders import load_profile
from sampler.model import HAS_GIL, ON_CPU, UNKNOWN, Frame, Profile, RunStats, ThreadSample
from sampler.pprof import Function, Label, Line, Location, PprofProfile, Sample, ValueType, decode, encode
from sampler.pprof import reading

KNOWN = target("known_lines.py")
LEAF = Frame(KNOWN, "inner", 8)
CALLER = Frame(KNOWN, "main", 21)
OTHER = Frame(KNOWN, "outer", 14)


def read_pprof(path: str) -> PprofProfile:
    with open(path, "rb") as fh:
        return decode(gzip.decompress(fh.read()))


def strings_of(p: PprofProfile, vt: ValueType) -> tuple[str, str]:
    return p.string(vt.type), p.string(vt.unit)


def labels_of(p: PprofProfile, sample: Sample) -> dict[str, str | int]:
    return {p.string(l.key): (p.string(l.str) if l.str else l.num) for l in sample.labels}


def pprof_heat(p: PprofProfile) -> dict[tuple[str, int, str], tuple[int, int]]:
    """pstats' (direct, cumulative) per (file, line, function), computed from the pprof samples."""
    lines = {}
    functions = {fn.id: fn for fn in p.functions}
    for loc in p.locations:
        (line,) = loc.lines  # one line per location
        fn = functions[line.function_id]
        lines[loc.id] = (p.string(fn.filename) or "~", line.line, p.string(fn.name))
    heat: dict = {}
    for s in p.samples:
        keys = [lines[lid] for lid in s.location_ids]
        for key in dict.fromkeys(keys):
            direct, cumul = heat.get(key, (0, 0))
            heat[key] = (direct + (s.values[0] if keys[0] == key else 0), cumul + s.values[0])
    return heat


def pstats_heat(path: str) -> dict[tuple[str, int, str], tuple[int, int]]:
    with open(path, "rb") as fh:
        return {key: value[:2] for key, value in marshal.load(fh).items()}


# -- built profiles --------------------------------------------------------------------------------

def built_collector() -> PprofCollector:
    profile = Profile(RunStats(pid=4242, mode="wall", interval_usec=250, python_version="3.12.1",
                               start_time=1_700_000_000.5, duration_s=2.25))
    profile.thread_names.update({1: "MainThread", 2: "worker"})
    collector = PprofCollector(profile)
    profile.add_sink(collector)
    profile.collect(0, [ThreadSample(1, HAS_GIL | ON_CPU, (LEAF, CALLER)),
                        ThreadSample(2, 0, (OTHER, CALLER))], 3)
    profile.collect(250, [ThreadSample(1, UNKNOWN, (LEAF, CALLER)),
                          ThreadSample(1, ON_CPU, (Frame("~", "<GC>", 0), LEAF, CALLER))])
    return collector


def test_the_encoder_writes_what_the_profile_holds():
    collector = built_collector()
    p = decode(gzip.decompress(_dump(collector)))
    assert [strings_of(p, vt) for vt in p.sample_types] == [("samples", "count"), ("wall", "nanoseconds")]
    assert strings_of(p, p.period_type) == ("wall", "nanoseconds") and p.period == 250_000
    assert p.string(p.default_sample_type) == "wall"
    assert p.time_nanos == 1_700_000_000_500_000_000 and p.duration_nanos == 2_250_000_000
    assert {p.string(c) for c in p.comments} >= {"pid: 4242", "python: 3.12.1", "mode: wall"}
    # one location per (file, function, line), one function per (file, name, def line)
    assert len(p.locations) == 4 and all(len(loc.lines) == 1 for loc in p.locations)
    functions = {p.string(fn.name): (p.string(fn.filename), fn.start_line) for fn in p.functions}
    assert functions == {"inner": (KNOWN, 5), "main": (KNOWN, 17), "outer": (KNOWN, 12), "<GC>": ("", 0)}
    by_labels = {tuple(sorted(labels_of(p, s).items())): s.values for s in p.samples}
    assert by_labels == {
        (("cpu", "on"), ("gil", "held"), ("mode", "wall"), ("pid", 4242), ("thread_id", 1), ("thread_name", "MainThread")): [3, 750_000],
        (("cpu", "off"), ("gil", "not held"), ("mode", "wall"), ("pid", 4242), ("thread_id", 2), ("thread_name", "worker")): [3, 750_000],
        (("cpu", "unknown"), ("gil", "unknown"), ("mode", "wall"), ("pid", 4242), ("thread_id", 1), ("thread_name", "MainThread")): [1, 250_000],
        (("cpu", "on"), ("gil", "not held"), ("mode", "wall"), ("pid", 4242), ("thread_id", 1), ("thread_name", "MainThread")): [1, 250_000],
    }
    expected = {key: (d, c) for key, (d, c) in PstatsCollector(collector.profile).index().spot_heat()}
    assert pprof_heat(p) == expected


def test_cpu_mode_counts_cpu_time_and_the_same_profile_makes_the_same_bytes():
    profile = Profile(RunStats(mode="cpu", interval_usec=1000))
    profile.add(ThreadSample(1, ON_CPU, (LEAF,)), 5)
    collector = PprofCollector(profile)  # nothing streamed: written from the Profile's stacks
    p = decode(gzip.decompress(_dump(collector)))
    assert [strings_of(p, vt) for vt in p.sample_types] == [("samples", "count"), ("cpu", "nanoseconds")]
    (sample,) = p.samples
    assert sample.values == [5, 5_000_000] and labels_of(p, sample) == {"thread_id": 1, "mode": "cpu"}
    assert _dump(collector) == _dump(PprofCollector(profile))


def test_a_written_file_loads_back_into_the_same_stacks(tmp_path):
    collector = built_collector()
    path = collector.write(str(tmp_path / "p.pb.gz"))
    loaded = load_profile(path)
    assert loaded.kind == "pprof"
    assert sorted(loaded.profile.iter_stacks()) == sorted(collector.profile.iter_stacks())
    stats = loaded.profile.stats
    assert (stats.pid, stats.python_version, stats.interval_usec, stats.mode) == (4242, "3.12.1", 250, "wall")
    assert loaded.profile.thread_names == {1: "MainThread", 2: "worker"}
    assert loaded.recorded_start == 1_700_000_000.5  # the server's staleness starts from it
    statuses = loaded.profile.status_counts[1]
    assert statuses[HAS_GIL | ON_CPU] == 3 and statuses[UNKNOWN] == 1 and statuses[ON_CPU] == 1


def test_a_time_only_profile_counts_samples_over_the_period(tmp_path):
    """What Pyroscope and Go write: cpu nanoseconds and a period, no count."""
    p = PprofProfile(strings=["", "cpu", "nanoseconds", "f", "a.py"])
    p.sample_types = [ValueType(1, 2)]
    p.period_type, p.period = ValueType(1, 2), 10_000_000
    p.functions = [Function(1, 3, 3, 4, 1)]
    p.locations = [Location(1, [Line(1, 7)])]
    p.samples = [Sample([1], [50_000_000]), Sample([1], [-20_000_000])]  # a diff's negative value left out
    path = tmp_path / "foreign.pb.gz"
    path.write_bytes(gzip.compress(encode(p)))
    profile = load_profile(str(path)).profile
    assert list(profile.iter_stacks()) == [(0, (Frame("a.py", "f", 7),), 5)]
    assert (profile.stats.mode, profile.stats.interval_usec) == ("cpu", 10_000)


def test_wire_round_trip_keeps_negative_and_large_numbers():
    p = PprofProfile(strings=["", "x"], sample_types=[ValueType(1, 1)], time_nanos=2**62, duration_nanos=1)
    p.functions = [Function(1, 1, 1, 1, -3)]
    p.locations = [Location(2**40, [Line(1, 2**31 - 1)])]
    p.samples = [Sample([2**40], [-5], [Label(1, num=-7)])]
    back = decode(encode(p))
    assert back.samples[0].values == [-5] and back.samples[0].labels[0].num == -7
    assert back.functions[0].start_line == -3 and back.locations[0].id == 2**40 and back.time_nanos == 2**62


# -- hostile files ---------------------------------------------------------------------------------

def _dump(collector) -> bytes:
    out = io.BytesIO()
    collector.dump(out)
    return out.getvalue()


def _load_error(path) -> str:
    with pytest.raises(ProfileFileError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def _encoded(**fields) -> bytes:
    """A small profile with `fields` replaced, gzipped."""
    p = PprofProfile(strings=["", "samples"], sample_types=[ValueType(1, 0)], samples=[Sample([], [1])])
    for name, value in fields.items():
        setattr(p, name, value)
    return gzip.compress(encode(p))


def _valid() -> bytes:
    return encode(decode(gzip.decompress(_dump(built_collector()))))


@pytest.mark.parametrize("make, expected", [
    (lambda: gzip.compress(_valid())[:-12], "truncated"),
    (lambda: gzip.compress(_valid())[:40] + b"\0" * 40, "corrupt"),
    (lambda: gzip.compress(_valid()[:-3]), "corrupt or truncated pprof file"),
    (lambda: gzip.compress(b"\x12\xff\xff\xff\xff\x0f" + b"\0" * 8), "bytes where"),  # a 4 GiB sample
    (lambda: gzip.compress(b"\x10" + b"\xff" * 11), "longer than ten bytes"),
    (lambda: _encoded(strings=["x"]), "does not start with an empty string"),
    (lambda: _encoded(sample_types=[ValueType(9, 0)]), "refers to string 9"),
    (lambda: _encoded(samples=[Sample([7], [1])]), "unknown location 7"),
    (lambda: _encoded(samples=[Sample([], [])]), "0 values for 1 sample types"),
    (lambda: _encoded(locations=[Location(1, [Line(3, 1)])]), "unknown function 3"),
    (lambda: _encoded(functions=[Function(1), Function(1)]), "function id 1 is zero or repeated"),
    (lambda: _encoded(sample_types=[], samples=[]), "no sample types"),
    (lambda: gzip.compress(b"not a profile at all, but gzipped"), "corrupt or truncated"),
])
def test_corrupt_files_are_refused_in_one_line(tmp_path, make, expected):
    path = tmp_path / "bad.pb.gz"
    path.write_bytes(make())
    assert expected in _load_error(path)


def test_a_gzip_bomb_is_cut_at_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "MAX_PPROF_BYTES", 1 << 20)
    path = tmp_path / "bomb.pb.gz"
    path.write_bytes(gzip.compress(b"\x32\x00" * (4 << 20)))
    assert "larger than heatline reads" in _load_error(path)


def test_samples_expanding_one_deep_location_many_times_are_refused(tmp_path):
    """One location of 20,000 lines named by 20,000 distinct samples: 400 million frames from
    a file of under a megabyte; refused before they are built."""
    p = PprofProfile(strings=["", "samples", "count", "f", "a.py"], sample_types=[ValueType(1, 2)])
    p.functions = [Function(1, 3, 3, 4, 1)]
    p.locations = [Location(1, [Line(1, 1)] * 20_000)] + [Location(i, [Line(1, 2)]) for i in range(2, 20_002)]
    p.samples = [Sample([i, 1], [1]) for i in range(2, 20_002)]
    path = tmp_path / "deep.pb.gz"
    path.write_bytes(gzip.compress(encode(p)))
    assert "expand to more frames" in _load_error(path)


# -- real runs on every CPython ----------------------------------------------------------------------

@pytest.fixture(scope="module", params=ALL_INTERPRETERS)
def real_run(request, tmp_path_factory):
    """One 1.5 s attach per CPython to known_lines.py, kept as --binary, replayed to pprof and pstats."""
    interpreter = request.param
    out = tmp_path_factory.mktemp("pprof")
    before, after = attach_binary(interpreter.command(KNOWN, "30"), str(out / "run.bin"), "-a")
    for fmt, name in (("--pprof", "run.pb.gz"), ("--pstats", "run.pstats")):
        res = heatline("replay", fmt, "-o", str(out / name), str(out / "run.bin"))
        assert res.returncode == 0, res.stderr
    return interpreter, out, (before, after)


def test_a_real_run_reads_back_with_the_pstats_numbers(real_run):
    interpreter, out, (before, after) = real_run
    p = read_pprof(str(out / "run.pb.gz"))
    heat = pstats_heat(str(out / "run.pstats"))
    assert pprof_heat(p) == heat
    script = interpreter.script_path(KNOWN)
    total = sum(direct for direct, _ in heat.values())
    in_inner = sum(d for (f, _line, func), (d, _c) in heat.items() if (f, func) == (script, "inner"))
    assert heat[(script, 8, "inner")][0] > 0 and in_inner > total * 0.5  # the target's hot spot
    assert all(s.values[1] == s.values[0] * p.period for s in p.samples)
    assert before - 5 <= p.time_nanos / 1e9 <= after and 0.5e9 < p.duration_nanos < 60e9
    for s in p.samples:
        labels = labels_of(p, s)
        assert labels["mode"] == "wall" and labels["thread_id"] == proc_tid(labels)
        assert labels["gil"] in ("held", "not held", "unknown") and labels["cpu"] in ("on", "off", "unknown")
    keys = [(fn.filename, fn.name, fn.start_line) for fn in p.functions]
    assert len(keys) == len(set(keys))
    if not interpreter.rooted:  # a root's paths are not the host's: no source to find def lines in
        inner = [fn for fn in p.functions if p.string(fn.name) == "inner"]
        assert [fn.start_line for fn in inner] == [5]
    loaded = load_profile(str(out / "run.pb.gz")).profile
    assert {k: v for k, v in PstatsCollector(loaded).index().spot_heat()} == heat


def proc_tid(labels) -> int:
    tid = labels["thread_id"]
    assert isinstance(tid, int) and tid > 0
    return tid


def test_run_writes_pprof_in_cpu_mode(tmp_path):
    path = tmp_path / "cpu.pb.gz"
    res = heatline("run", "--mode", "cpu", "--pprof", "-o", str(path), KNOWN, "1")
    assert res.returncode == 0, res.stderr
    p = read_pprof(str(path))
    assert [strings_of(p, vt) for vt in p.sample_types] == [("samples", "count"), ("cpu", "nanoseconds")]
    assert p.samples and all(labels_of(p, s)["mode"] == "cpu" for s in p.samples)
    on_cpu = sum(s.values[0] for s in p.samples if labels_of(p, s)["cpu"] == "on")
    assert on_cpu == sum(s.values[0] for s in p.samples)


# -- go tool pprof ---------------------------------------------------------------------------------

GO = shutil.which("go")
needs_go = pytest.mark.skipif(GO is None, reason="go is not installed (tests/install-system-deps.sh installs golang-go)")
_ROW = re.compile(r"^\s*(\S+)\s+\S+%\s+\S+%\s+(\S+)\s+\S+%\s+(.*)$")
_UNITS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0, "": 1.0}


def go_pprof(*args: str) -> str:
    res = subprocess.run([GO, "tool", "pprof", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def top_rows(text: str) -> list[tuple[str, str, str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("flat")) + 1
    return [_ROW.match(line).groups() for line in lines[start:] if line.strip()]


def _millis(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([a-zµ]*)", text).groups()
    return float(number) * _UNITS[unit]


@pytest.fixture(scope="module")
def go_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pprof_go")
    res = heatline("run", "-a", "--binary", "-o", str(out / "run.bin"), KNOWN, "1.5")
    assert res.returncode == 0, res.stderr
    for fmt, name in (("--pprof", "run.pb.gz"), ("--pstats", "run.pstats")):
        res = heatline("replay", fmt, "-o", str(out / name), str(out / "run.bin"))
        assert res.returncode == 0, res.stderr
    return out


@needs_go
def test_go_top_by_line_shows_the_pstats_counts(go_run):
    heat = pstats_heat(str(go_run / "run.pstats"))
    text = go_pprof("-top", "-lines", "-sample_index=samples", "-nodefraction=0", "-nodecount=0",
                    str(go_run / "run.pb.gz"))
    shown = {}
    for flat, cum, name in top_rows(text):
        func, _, place = name.rpartition(" ")
        filename, _, line = place.rpartition(":")
        shown[(filename, int(line))] = (func, int(flat), int(cum))
    expected = {(f, line): (func, d, c) for (f, line, func), (d, c) in heat.items() if f != "~"}
    for key, (func, direct, cumul) in expected.items():
        go_func, flat, cum = shown[key]
        # pprof drops <...> from names (C++ template arguments to it): "<module>" shows as nothing
        assert go_func == ("" if func.startswith("<") else func) and (flat, cum) == (direct, cumul), key


@needs_go
def test_go_top_by_function_shows_heatline_shares_within_rounding(go_run):
    profile = load_profile(str(go_run / "run.bin")).profile
    index = LineIndex((tid, frames, w) for tid, frames, w in profile.iter_stacks() if frames)
    total = index.total
    interval_ms = profile.stats.interval_usec / 1000
    text = go_pprof("-top", "-nodefraction=0", "-nodecount=0", str(go_run / "run.pb.gz"))
    shown = {name: (_millis(flat), _millis(cum)) for flat, cum, name in top_rows(text)}
    checked = 0
    for (filename, funcname), stats in index.all_functions():
        if funcname.startswith("<") or filename == "~":
            continue  # shown nameless (see above), and merged with every other such function
        flat, cum = shown[funcname]
        for got, samples in ((flat, stats.self_samples), (cum, stats.total_samples)):
            want = samples * interval_ms
            assert abs(got - want) <= max(0.006 * want, 1.0), (funcname, got, want)  # 3 figures
            assert abs(got / (total * interval_ms) - samples / total) < 0.01
        checked += 1
    assert checked >= 2


@needs_go
def test_go_traces_hold_every_stack_with_its_count(go_run):
    profile = load_profile(str(go_run / "run.bin")).profile
    expected = Counter()
    for tid, frames, weight in profile.iter_stacks():
        if frames:
            names = tuple(f"{'' if f.funcname.startswith('<') else f.funcname} {f.filename}:{f.lineno}".strip()
                          for f in frames if f.filename != "~")
            expected[(tid, names)] += weight
    text = go_pprof("-traces", "-lines", "-sample_index=samples", str(go_run / "run.pb.gz"))
    got = Counter()
    for block in text.split("-----------+-------------------------------------------------------")[1:]:
        lines = [line for line in block.splitlines() if line.strip()]
        labels = dict(re.match(r"^\s*(\w+):\s+(.*)$", line).groups() for line in lines if re.match(r"^\s*\w+:\s", line))
        frames = [line for line in lines if not re.match(r"^\s*\w+:\s", line)]
        if not frames:  # the rule closing the last trace
            continue
        count, first = re.match(r"^\s*(\d+)\s+(.*)$", frames[0]).groups()
        names = tuple(line.strip() for line in [first, *frames[1:]])
        got[(int(labels["thread_id"].strip("[]")), names)] += int(count)
    assert got == expected


@pytest.mark.parametrize("interpreter", [p for p in ALL_INTERPRETERS if p.values[0].rooted][-1:])
def test_a_live_run_finds_def_lines_inside_the_targets_root(interpreter, spawn, tmp_path):
    """Written while the target runs, the start lines come from its sources as it names them,
    inside its own root (a container's paths are not the host's), as the heatmap reads them."""
    proc = spawn(interpreter, KNOWN, "30")
    wait_ready(proc)
    out = tmp_path / "live.pb.gz"
    res = heatline("attach", str(proc.pid), "-d", "1", "--pprof", "-o", str(out))
    assert res.returncode == 0, res.stderr
    p = read_pprof(str(out))
    starts = {p.string(fn.name): fn.start_line for fn in p.functions if p.string(fn.filename) == interpreter.script_path(KNOWN)}
    assert starts.get("inner") == 5 and starts.get("main", 0) > 5
