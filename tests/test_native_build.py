"""The native core is optional: an install without a C compiler still works, and says so.

The suite's own environment builds the extension (the README's `pip install -e .`), so the native
core is expected here; these tests make the other case real: a build whose compiler fails, and a
heatline whose package has no extension, run end to end.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

from conftest import ROOT, parse_collapsed, target


def _run(args: list[str], env_extra: dict[str, str], cwd: str, pythonpath: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "HEATLINE_NATIVE")}
    env.update(env_extra)
    env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=180)


def test_the_suite_runs_the_native_core():
    res = _run(["-m", "sampler", "--version"], {}, ROOT, ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "heatline 0.1.0 (native sampler)", res.stdout


def test_a_failing_compiler_does_not_fail_the_build(tmp_path):
    build, temp = tmp_path / "lib", tmp_path / "tmp"
    res = _run(["setup.py", "-q", "build_ext", "-b", str(build), "-t", str(temp)],
               {"CC": "/bin/false", "LDSHARED": "/bin/false"}, ROOT, ROOT)
    assert res.returncode == 0, res.stderr
    assert "building extension \"sampler._native\" failed" in res.stderr
    assert not glob.glob(str(build / "**" / "_native*"), recursive=True)


# `heatline` from the copy only: the editable install's finder would still find the built
# extension by its full name, so it is taken out of the import system first.
WITHOUT_EDITABLE = (
    "import sys, runpy; "
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '').lower()]; "
    "sys.argv[0] = 'heatline'; runpy.run_module('sampler', run_name='__main__', alter_sys=True)"
)


def test_without_the_extension_heatline_profiles_and_says_why(tmp_path):
    # A copy of the package without the built extension: what a compiler-less install gives.
    shutil.copytree(os.path.join(ROOT, "sampler"), tmp_path / "sampler",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    version = _run(["-c", WITHOUT_EDITABLE, "--version"], {}, str(tmp_path), str(tmp_path))
    assert version.returncode == 0, version.stderr
    assert "pure-Python sampler: the C extension was not built" in version.stdout, version.stdout

    out = tmp_path / "out.txt"
    res = _run(["-c", WITHOUT_EDITABLE, "run", "--collapsed", "-o", str(out), target("known_lines.py"), "1.5"],
               {}, str(tmp_path), str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "Note: sampled with the pure-Python walker (the C extension was not built" in res.stdout, res.stdout
    rows = parse_collapsed(str(out))
    inner = sum(c for _t, frames, c in rows if frames and frames[-1].startswith("known_lines.py:inner:"))
    assert inner >= 0.8 * sum(c for _t, _f, c in rows), rows[:5]


def test_heatline_native_0_chooses_the_reference_walker_and_says_so(tmp_path):
    out = tmp_path / "out.txt"
    res = _run(["-m", "sampler", "run", "--collapsed", "-o", str(out), target("known_lines.py"), "1"],
               {"HEATLINE_NATIVE": "0"}, ROOT, ROOT)
    assert res.returncode == 0, res.stderr
    assert "Note: sampled with the pure-Python walker (HEATLINE_NATIVE=0 is set)." in res.stdout, res.stdout
    native = _run(["-m", "sampler", "run", "--collapsed", "-o", str(out), target("known_lines.py"), "1"],
                  {}, ROOT, ROOT)
    assert native.returncode == 0, native.stderr
    assert "pure-Python" not in native.stdout + native.stderr
    assert parse_collapsed(str(out))
