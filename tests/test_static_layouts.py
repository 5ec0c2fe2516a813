"""The committed static_layouts.py must match what the CPython headers on this machine give."""

from __future__ import annotations

import shutil

import pytest

from sampler.cpython import generate_layouts as gl
from sampler.cpython.static_layouts import STATIC_LAYOUTS

CORE_KEYS = (
    "runtime.interpreters_head",
    "interp.threads_head",
    "tstate.next",
    "frame.previous",
    "frame.code",
    "code.filename",
    "code.linetable",
)

INSTALLS = gl.discover_installs()


def test_fields_table_is_consistent():
    gl.validate_fields()


@pytest.mark.parametrize("minor", [9, 10, 11, 12])
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
