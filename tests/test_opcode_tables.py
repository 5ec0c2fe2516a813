"""The stored opcode tables (sampler/cpython/opcode_tables.py) against each real CPython."""

from __future__ import annotations

import re

import pytest

import sid_root
from conftest import ALL_INTERPRETERS
from sampler.cpython.generate_opcodes import probe
from sampler.cpython.opcodes import OpcodeInfo, opcode_table


@pytest.mark.parametrize("interp", ALL_INTERPRETERS)
def test_stored_table_matches_the_interpreter(interp):
    argv = sid_root.in_root(interp.path) if interp.rooted else [interp.path]
    live = probe(argv)
    table = opcode_table(live["version"])
    assert table.exact, f"no stored table for {live['version']}"
    assert table.mapping() == {"names": live["names"], "deopt": live["deopt"]}
    assert all(table.cache_units(op) == live["caches"].get(op, 0) for op in range(256))


def _byte(version: str, name: str) -> int:
    names = opcode_table(version).mapping()["names"]
    return next(op for op, n in names.items() if n == name)


KNOWN = {
    "3.9": ["BINARY_ADD", "INPLACE_ADD", "LOAD_ATTR", "CALL_FUNCTION", "CALL_METHOD"],
    "3.10": ["BINARY_ADD", "INPLACE_ADD", "LOAD_ATTR", "CALL_FUNCTION", "CALL_METHOD"],
    "3.11": ["BINARY_OP_ADD_INT", "LOAD_ATTR_INSTANCE_VALUE", "PRECALL", "CALL", "PRECALL_NO_KW_BUILTIN_FAST"],
    "3.12": ["BINARY_OP_ADD_INT", "LOAD_ATTR_INSTANCE_VALUE", "CALL_NO_KW_BUILTIN_FAST", "INSTRUMENTED_CALL"],
    "3.13": ["BINARY_OP_ADD_INT", "LOAD_ATTR_INSTANCE_VALUE", "CALL_BUILTIN_FAST", "ENTER_EXECUTOR", "CALL_KW"],
    "3.14": ["BINARY_OP_ADD_INT", "LOAD_ATTR_INSTANCE_VALUE", "CALL_BUILTIN_FAST", "ENTER_EXECUTOR"],
    "3.15": ["BINARY_OP_ADD_INT", "LOAD_ATTR_INSTANCE_VALUE", "CALL_BUILTIN_FAST", "ENTER_EXECUTOR"],
}


@pytest.mark.parametrize("version", sorted(KNOWN))
def test_known_names(version):
    table = opcode_table(version)
    assert table.exact and table.version == tuple(map(int, version.split(".")))
    for name in KNOWN[version]:
        op = _byte(version, name)
        info = table.info(op)
        assert info.opname == name
        calls = bool(re.match(r"(INSTRUMENTED_)?(PRE)?CALL", name))
        assert table.is_call(op) == calls, name
    for name in ("LOAD_CONST", "LOAD_FAST", "RETURN_VALUE"):
        assert not table.is_call(_byte(version, name))
    assert _byte(version, "EXTENDED_ARG") in table.prefixes


@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13", "3.14", "3.15"])
def test_specialized_instructions_name_their_base(version):
    table = opcode_table(version)
    op = _byte(version, "LOAD_ATTR_INSTANCE_VALUE")
    assert table.info(op) == OpcodeInfo("LOAD_ATTR_INSTANCE_VALUE", "LOAD_ATTR", True)
    assert table.format(op) == "LOAD_ATTR_INSTANCE_VALUE (LOAD_ATTR)"
    assert table.format(_byte(version, "LOAD_CONST")) == "LOAD_CONST"
    assert table.is_call(_byte(version, "CALL_PY_EXACT_ARGS"))
    # a call's inline caches: what a 3.11/3.12 caller's instruction pointer may sit on
    assert table.cache_units(_byte(version, "CALL")) == (4 if version == "3.11" else 3)


def test_version_forms_and_fallback():
    assert opcode_table("3.12.1") is opcode_table((3, 12)) is opcode_table("3.12")
    newest = opcode_table("")
    assert not newest.exact and newest.version == max(opcode_table(v).version for v in KNOWN)
    assert not opcode_table("3.99").exact
    unknown = next(op for op in range(256) if op not in opcode_table("3.9").mapping()["names"])
    assert opcode_table("3.9").info(unknown) == OpcodeInfo(f"<{unknown}>", f"<{unknown}>", False)
    assert opcode_table("3.9").format(unknown) == f"<{unknown}>"
