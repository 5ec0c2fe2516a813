"""Saved profiles of every kind that carries lines, loaded back for the editor."""

from __future__ import annotations

import cProfile
import marshal

import pytest

from conftest import heatline, target
from sampler.errors import ProfileFileError
from sampler.loaders import load_profile
from server.heat import HeatIndex

HOT = (target("known_lines.py"), 8)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, str]:
    """One real run of known_lines.py, written as binary, pprof, collapsed and pstats."""
    out = tmp_path_factory.mktemp("saved")
    binary = str(out / "run.bin")
    result = heatline("run", "--binary", "-o", binary, target("known_lines.py"), "1.5")
    assert result.returncode == 0, result.stderr
    paths = {"binary": binary}
    for kind, flag, name in (("pprof", "--pprof", "run.pb.gz"), ("collapsed", "--collapsed", "run.txt"),
                             ("pstats", "--pstats", "run.pstats")):
        paths[kind] = str(out / name)
        result = heatline("replay", binary, flag, "-o", paths[kind])
        assert result.returncode == 0, result.stderr
    return paths


@pytest.mark.parametrize("kind", ["binary", "pprof", "collapsed", "pstats"])
def test_each_kind_shows_the_known_hot_line(saved, kind):
    loaded = load_profile(saved[kind])
    assert loaded.kind == kind
    index = HeatIndex(loaded.profile)
    binary = load_profile(saved["binary"])
    reference = HeatIndex(binary.profile)
    # The start of the run, from which edited sources count as stale, is in binary and pprof files only.
    if kind in ("binary", "pprof"):
        assert loaded.recorded_start == pytest.approx(binary.profile.stats.start_time, abs=1e-3)
    else:
        assert loaded.recorded_start is None
    # Collapsed files keep only base names; the rest keep full paths.
    filename = HOT[0] if kind != "collapsed" else "known_lines.py"
    lines = index.lines(filename)
    hot = max(lines.values(), key=lambda h: h.self_samples)
    assert hot.line == HOT[1] and hot.self_samples > 0.5 * index.total_samples
    # Self counts survive every format exactly.
    ref = reference.lines(HOT[0])

    def self_counts(heat):
        return {n: h.self_samples for n, h in heat.items() if h.self_samples}

    assert self_counts(lines) == self_counts(ref)
    assert index.total_samples == reference.total_samples
    if kind == "pstats":
        # Stacks are one caller deep; the file's own cumulative counts give exact totals.
        assert not loaded.exact_totals
        assert loaded.line_totals[(HOT[0], 21)] == ref[21].total_samples  # main's call of inner()
        assert loaded.line_totals[(HOT[0], 25)] == ref[25].total_samples  # the call of main()
    else:
        assert loaded.exact_totals
        assert {n: h.total_samples for n, h in lines.items()} == {n: h.total_samples for n, h in ref.items()}


def test_cprofile_output_is_refused_with_the_reason(tmp_path):
    path = str(tmp_path / "cprofile.pstats")
    prof = cProfile.Profile()
    prof.runcall(sum, [sum(range(i)) for i in range(200)])
    prof.runcall(sorted, list(range(5000)))
    prof.dump_stats(path)
    with pytest.raises(ProfileFileError, match="cProfile"):
        load_profile(path)


@pytest.mark.parametrize("content, message", [
    (b"{\x00\x01", "corrupt or truncated pstats"),
    (marshal.dumps({"a": 1}), "not a pstats file"),
    (b"main;inner lots\n", "not a collapsed-stack line"),
    (b"\xff\xfe\x00garbage", "not a profile heatline can open"),
    (b"", "no samples"),
])
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(ProfileFileError, match=message) as info:
        load_profile(str(path))
    assert "\n" not in str(info.value)


def test_truncated_binary_is_refused(saved, tmp_path):
    data = open(saved["binary"], "rb").read()
    path = tmp_path / "cut.bin"
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(ProfileFileError):
        load_profile(str(path))
