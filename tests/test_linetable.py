"""Our line-table decoders against each interpreter's own answers, over real stdlib code."""

from __future__ import annotations

import json
import subprocess

import pytest

from sampler.cpython.linetable import parse_lnotab, parse_linetable_310, parse_locations_311

# Runs under the target interpreter (3.9+): prints every code object's raw table and the
# positions CPython itself reports for each instruction.
DUMP = r'''
import dis, json, sys, types
import argparse, threading, json as _json, asyncio.base_events as abe
def codes(co):
    yield co
    for c in co.co_consts:
        if isinstance(c, types.CodeType):
            yield from codes(c)
out = []
for mod in (argparse, threading, _json.decoder, abe):
    src = open(mod.__file__, encoding="utf-8").read()
    for co in codes(compile(src, mod.__file__, "exec")):
        if sys.version_info >= (3, 11):
            table = co.co_linetable
            expect = [[2 * i, *p] for i, p in enumerate(co.co_positions()) if p[0] is not None]
        elif sys.version_info >= (3, 10):
            table = co.co_linetable
            expect = [[off, line, -1, -1, -1] for s, e, line in co.co_lines() if line is not None
                      for off in range(s, e, 2)]
        else:
            table = co.co_lnotab
            starts = list(dis.findlinestarts(co))
            expect = []
            for off in range(0, len(co.co_code), 2):
                line = [l for o, l in starts if o <= off][-1] if starts and starts[0][0] <= off else co.co_firstlineno
                expect.append([off, line, -1, -1, -1])
        out.append({"t": table.hex(), "f": co.co_firstlineno, "e": expect})
print(json.dumps(out))
'''


def _parser_for(interpreter):
    ver = subprocess.run(interpreter.python("-c", "import sys; print(sys.version_info[1])"),
                         capture_output=True, text=True)
    minor = int(ver.stdout)
    if minor >= 11:
        return parse_locations_311, True
    if minor == 10:
        return parse_linetable_310, False
    return parse_lnotab, False


def test_line_tables_match_cpython(interpreter):
    parse, with_columns = _parser_for(interpreter)
    res = subprocess.run(interpreter.python("-c", DUMP), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    codes = json.loads(res.stdout)
    assert len(codes) > 300
    checked = 0
    for code in codes:
        table = parse(bytes.fromhex(code["t"]), code["f"])
        for off, line, end_line, col, end_col in code["e"]:
            loc = table.locate(off)
            assert loc.lineno == line, (code["f"], off)
            if with_columns and end_line is not None:
                assert (loc.end_lineno, loc.col, loc.end_col) == (
                    end_line, -1 if col is None else col, -1 if end_col is None else end_col
                ), (code["f"], off)
            checked += 1
    assert checked > 10000


def test_not_started_frame_is_first_line():
    table = parse_locations_311(b"", 42)
    assert table.locate(-2).lineno == 42


@pytest.mark.parametrize("data", [b"\xff", b"\xf0\x81", b"\x80", b"\x00\x00\x00"])
def test_damaged_tables_do_not_raise(data):
    parse_locations_311(data, 1).locate(10)
    parse_linetable_310(data, 1).locate(10)
    parse_lnotab(data, 1).locate(10)
