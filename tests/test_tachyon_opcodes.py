"""--opcodes and --native beside the real Tachyon (CPython 3.15.2's profiler) on one 3.15 target:
each tool reads the other's `--binary --opcodes` file with the same opcodes, and what each
captures of the same target agrees (the hot instruction of each function, where <native> goes).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

import sid_root
from conftest import heatline, parse_collapsed, target, wait_ready
from sampler.cpython.opcodes import opcode_table
from sampler.loaders import load_profile
from sampler.replay import open_binary_profile
from test_tachyon_interop import PYTHON, REASON, TIMEOUT, tachyon_attach, work  # noqa: F401 - work: a fixture

pytestmark = pytest.mark.skipif(REASON is not None, reason=f"Tachyon (CPython 3.15 in the sid root): {REASON}")

# Tachyon's own reading of a binary file: each sample's frames (leaf first) as
# "function:line:opcode", counted; run inside the root with the file's path there.
TACHYON_READ = r"""
import json, sys
from collections import Counter
from profiling.sampling.binary_reader import BinaryReader
from profiling.sampling.collector import extract_lineno

class Count:
    def __init__(self):
        self.stacks = Counter()
    def collect(self, stack_frames, timestamps_us=None):
        weight = len(timestamps_us) if timestamps_us else 1
        for interp in stack_frames:
            for thread in interp.threads:
                key = []
                for f in thread.frame_info:
                    op = getattr(f, "opcode", None)
                    key.append("%s:%d:%s" % (f.funcname, extract_lineno(f.location), -1 if op is None else op))
                self.stacks["|".join(key)] += weight
    def collect_failed_sample(self):
        pass

c = Count()
with BinaryReader(sys.argv[1]) as r:
    r.replay_samples(c)
print(json.dumps(c.stacks))
"""


def tachyon_reads(inside: str) -> Counter:
    res = subprocess.run(sid_root.in_root(PYTHON, "-c", TACHYON_READ, inside), capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr
    return Counter(json.loads(res.stdout))


def heatline_reads(host: str) -> Counter:
    stacks: Counter = Counter()
    for _ts, threads, weight in open_binary_profile(host).samples():
        for t in threads:
            stacks["|".join(f"{f.funcname}:{f.lineno}:{f.opcode}" for f in t.frames)] += weight
    return stacks


def _started(script: str):
    proc = subprocess.Popen(sid_root.in_root(PYTHON, sid_root.path_in_root(target(script))),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_ready(proc)
    return proc


def _stop(proc) -> None:
    proc.kill()
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()


@pytest.fixture(scope="module")
def loops(work):
    """opcode_loops.py on 3.15, sampled for a second by Tachyon, then by heatline, both writing
    `--binary --opcodes --native`; (tachyon's file, heatline's file) as (host, inside) pairs."""
    host, inside = work
    proc = _started("opcode_loops.py")
    try:
        tachyon_attach(proc.pid, "-d", "1", "--opcodes", "--native", "--binary", "-o", f"{inside}/t.bin")
        res = heatline("attach", str(proc.pid), "-d", "1", "--opcodes", "--native", "--binary", "-o", f"{host}/h.bin")
        assert res.returncode == 0, res.stderr
    finally:
        _stop(proc)
    return (f"{host}/t.bin", f"{inside}/t.bin"), (f"{host}/h.bin", f"{inside}/h.bin")


def test_heatline_reads_tachyons_opcodes(loops):
    (host, inside), _ = loops
    ours, theirs = heatline_reads(host), tachyon_reads(inside)
    assert ours == theirs
    reader = open_binary_profile(host)
    assert reader.capture_config["opcodes"] and reader.capture_config["native"]
    run = reader.run_stats()
    assert run.opcodes and run.native and run.python_version.startswith("3.15.")


def test_tachyon_reads_heatlines_opcodes(loops):
    _, (host, inside) = loops
    ours, theirs = heatline_reads(host), tachyon_reads(inside)
    assert ours == theirs
    assert any(":-1" not in s.split("|")[0] for s in ours)


def _leaf_shares(stacks: Counter, func: str) -> Counter:
    """Leaf opcode -> share of the samples whose innermost Python frame is `func`."""
    here = Counter()
    for key, n in stacks.items():
        python = [part for part in key.split("|") if not part.startswith("<")]
        if python and python[0].split(":")[0] == func:
            here[int(python[0].split(":")[2])] += n
    total = sum(here.values())
    return Counter({op: n / total for op, n in here.items()}) if total else here


@pytest.mark.parametrize("func, hot", [("attr_loop", "LOAD_ATTR_INSTANCE_VALUE"), ("add_loop", "BINARY_OP_ADD_INT"),
                                       ("poly_call", "CALL_EX_NON_PY_GENERAL")])
def test_both_see_the_same_hot_instructions(loops, func, hot):
    """Two captures of one target a second apart: each function's instructions in similar shares."""
    (t_host, _), (h_host, _) = loops
    table = opcode_table("3.15")
    ours, theirs = _leaf_shares(heatline_reads(h_host), func), _leaf_shares(heatline_reads(t_host), func)
    op = next(o for o, name in table.mapping()["names"].items() if name == hot)
    assert ours[op] >= 0.04 and theirs[op] >= 0.04, (ours, theirs)
    assert abs(ours[op] - theirs[op]) <= 0.2, (ours, theirs)
    # the instructions either saw at least a tenth of the time, the other saw too
    for a, b in ((ours, theirs), (theirs, ours)):
        assert all(b[o] > 0 for o, s in a.items() if s >= 0.1), (table.format(o) for o in a)


def test_native_frames_where_tachyon_puts_them(work):
    """sorted(key=keyf): Tachyon's collapsed stacks and ours put a <native> between sort_with_key and
    keyf and at the root; ours adds one on top of a frame calling into C (Tachyon has none)."""
    host, inside = work
    proc = _started("native_share.py")
    try:
        tachyon_attach(proc.pid, "-d", "1", "--native", "--collapsed", "-o", f"{inside}/t.txt")
        res = heatline("attach", str(proc.pid), "-d", "1", "--native", "--collapsed", "-o", f"{host}/h.txt")
        assert res.returncode == 0, res.stderr
    finally:
        _stop(proc)
    for path, leaf_native in ((f"{host}/t.txt", False), (f"{host}/h.txt", True)):
        rows = parse_collapsed(path)
        total = sum(n for _t, _f, n in rows)
        funcs = [([f.split(":")[1] if ":" in f else f for f in frames], n) for _t, frames, n in rows]
        keyed = [(f, n) for f, n in funcs if "keyf" in f]
        between = sum(n for f, n in keyed if f[f.index("keyf") - 1] == "<native>"
                      and f[f.index("keyf") - 2] == "sort_with_key")
        assert between >= 0.95 * sum(n for _f, n in keyed) > 0, path
        assert sum(n for f, n in funcs if f[0] == "<native>") >= 0.95 * total, path
        in_c = sum(n for f, n in funcs if "in_c" in f)
        on_top = sum(n for f, n in funcs if "in_c" in f and f[-1] == "<native>")
        assert (on_top >= 0.8 * in_c) if leaf_native else on_top == 0, path
        assert load_profile(path).profile.stats.native  # the loader tells --native by its frames
