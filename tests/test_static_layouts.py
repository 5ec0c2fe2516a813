"""The committed static_layouts.py must match what the CPython headers on this machine give
(pyenv's, the system's, and the sid root's 3.14/3.15 -dev packages), and the layout heatline
assembles for a live 3.13+ target (its `_Py_DebugOffsets` plus these tables) must match them too."""

from __future__ import annotations

import shutil

import pytest

from conftest import target, wait_ready
from sampler.cpython import generate_layouts as gl
from sampler.cpython.runtime import locate_runtime
from sampler.cpython.stack_chunks import CHUNK_DATA, CHUNK_PREVIOUS, CHUNK_TOP
from sampler.cpython.static_layouts import STATIC_LAYOUTS
from sampler.cpython.versions import DEBUG_NEIGHBOURS, NEIGHBOUR_SINCE, TRAITS
from sampler.target.memory import RemoteMemory

CORE_KEYS = (
    "runtime.interpreters_head",
    "interp.threads_head",
    "tstate.next",
    "frame.previous",
    "frame.code",
    "code.filename",
    "code.linetable",
)

CHUNK_KEYS = ("chunk.previous", "chunk.top", "chunk.data")

INSTALLS = gl.discover_installs()
HAS_GCC = shutil.which("gcc") is not None


def test_fields_table_is_consistent():
    gl.validate_fields()


@pytest.mark.parametrize("minor", list(gl.SUPPORTED_MINORS))
def test_committed_table_has_core_keys(minor):
    table = STATIC_LAYOUTS.get((3, minor))
    assert table is not None, f"no committed layout for 3.{minor}"
    missing = [key for key in CORE_KEYS if key not in table]
    assert not missing, f"3.{minor} lacks {missing}"


def test_committed_tables_have_exactly_the_fields_table_keys():
    for (major, minor), table in STATIC_LAYOUTS.items():
        assert major == 3 and minor in gl.SUPPORTED_MINORS
        assert set(table) == gl.expected_keys(minor), f"3.{minor}"
        assert all(isinstance(v, int) and v >= 0 for v in table.values())


@pytest.mark.parametrize("minor", [m for m in gl.SUPPORTED_MINORS if m >= 11])
def test_committed_tables_give_the_stack_chunk_header(minor):
    """The 3.11+ walk reads `_PyStackChunk` by these keys; its fallbacks for a layout without
    them are the values every supported version has."""
    table = STATIC_LAYOUTS[(3, minor)]
    assert {key: table.get(key) for key in CHUNK_KEYS} == dict(zip(CHUNK_KEYS, (CHUNK_PREVIOUS, CHUNK_TOP, CHUNK_DATA)))


def test_committed_file_is_rendered_canonically():
    assert gl.OUTPUT_PATH.read_text() == gl.render(STATIC_LAYOUTS)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed; cannot measure layouts")
@pytest.mark.parametrize(
    "install",
    INSTALLS
    or [pytest.param(None, marks=pytest.mark.skip(reason="no CPython 3.9-3.13 headers with internal/ found"))],
    ids=lambda install: install.test_id if install else "no-headers",
)
def test_committed_layout_matches_headers(install):
    measured = gl.measure(install)
    committed = STATIC_LAYOUTS.get((3, install.minor))
    assert committed is not None, f"3.{install.minor} headers found at {install.include_dir} but no committed table"
    diff = {
        key: (committed.get(key), measured.get(key))
        for key in sorted(set(committed) | set(measured))
        if committed.get(key) != measured.get(key)
    }
    assert not diff, f"(committed, headers) differ for {install.test_id}: {diff}"


def _measured_or_skip(install):
    if install is None:
        pytest.skip("no CPython headers with internal/ found")
    if not HAS_GCC:
        pytest.skip("gcc not installed; cannot measure layouts")
    return gl.measure(install)


def test_sid_root_headers_are_discovered():
    """The sid root's 3.14/3.15 headers are found by default when the root exists."""
    root = gl.sid_root() / "usr" / "include"
    present = [m for m in (14, 15) if (root / f"python3.{m}" / "internal").is_dir()]
    if not present:
        pytest.skip(f"no sid root headers under {root}")
    found = {(i.minor, i.source) for i in INSTALLS}
    assert {(m, "sid") for m in present} <= found


@pytest.mark.parametrize(
    "install",
    [i for i in INSTALLS if i.minor >= 13] or [None],
    ids=lambda install: install.test_id if install else "no-headers",
)
def test_debug_table_neighbours_match_headers(install):
    """Fields taken at a fixed distance from a debug-table field sit there in the headers."""
    measured = _measured_or_skip(install)
    for key, (anchor, distance) in DEBUG_NEIGHBOURS.items():
        if (3, install.minor) < NEIGHBOUR_SINCE.get(key, (3, 13)):
            assert key not in measured, f"{key} exists in 3.{install.minor}: NEIGHBOUR_SINCE is wrong"
            continue
        assert measured[key] == measured[anchor] + distance, (
            f"{install.test_id}: {key}={measured[key]}, {anchor}={measured[anchor]} (+{distance} expected)"
        )


def test_hand_written_supplements_agree_with_generated_tables():
    for version, traits in TRAITS.items():
        table = STATIC_LAYOUTS.get(version, {})
        wrong = {k: (v, table[k]) for k, v in traits.supplement.items() if k in table and table[k] != v}
        assert not wrong, f"{version}: (supplement, headers) {wrong}"


def test_live_layout_matches_headers(interpreter, spawn):
    """The layout a real 3.13+ target is read with (its own `_Py_DebugOffsets`, the neighbour
    rules, the generated table) gives every field the offset its headers give."""
    p = spawn(interpreter, target("known_lines.py"))
    wait_ready(p)
    memory = RemoteMemory(p.pid)
    try:
        runtime = locate_runtime(p.pid, memory)
    finally:
        memory.close()
    if runtime.minor < (3, 13):
        pytest.skip(f"{runtime.version_string} has no _Py_DebugOffsets")
    # the headers of the same release if they are here, else another of the same minor
    same = sorted(
        (i for i in INSTALLS if (3, i.minor) == runtime.minor),
        key=lambda i: i.version != runtime.version_string,
    )
    if not same or not HAS_GCC:
        pytest.skip(f"no headers for {runtime.version_string} here, or no gcc")
    headers = gl.measure(same[0])
    wrong = {
        key: (runtime.layout[key], headers[key])
        for key in sorted(set(runtime.layout) & set(headers))
        if runtime.layout[key] != headers[key]
    }
    assert not wrong, f"{runtime.version_string}: (used, headers) {wrong}"
    used = {"tstate.exc_info", "tstate.exc_state", "tstate.current_exception", "tstate.datastack_top"}
    used |= set(CHUNK_KEYS)  # the debug table has no _PyStackChunk: the generated table supplies it
    assert used <= set(runtime.layout) & set(headers)
