"""Names of the instruction bytes a target executes (--opcodes), per CPython version.

The tables are data made by `generate_opcodes.py` from each version's own `dis`/`opcode`
modules; they cover the adaptive (specialized) instructions of 3.11+, which a frame's
`co_code_adaptive` holds while it runs, and name each one's base instruction.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from sampler.cpython.opcode_tables import TABLES


class OpcodeInfo(NamedTuple):
    opname: str  # e.g. LOAD_ATTR_INSTANCE_VALUE; "<N>" when the version has no such byte
    base_opname: str  # the instruction it specializes (LOAD_ATTR), else opname itself
    is_specialized: bool


# The call family: instructions during which the frame is inside what it called (CALL,
# CALL_FUNCTION_KW, CALL_METHOD, PRECALL, CALL_KW, their specializations and instrumented forms).
_CALL_NAME = re.compile(r"^(INSTRUMENTED_)?(CALL|PRECALL)(_|$)")
_NOT_CALLS = frozenset({"CALL_INTRINSIC_1", "CALL_INTRINSIC_2", "CALL_FINALLY"})


class OpcodeTable:
    """One CPython minor's opcode names; `exact` is False when it stands in for a version
    heatline has no table for (the newest table heatline has)."""

    def __init__(self, version: tuple[int, int], exact: bool) -> None:
        self.version = version
        self.exact = exact
        raw = TABLES[version]
        self._names: dict[int, str] = dict(raw["names"])
        self._deopt: dict[int, int] = dict(raw["deopt"])
        self._caches: dict[int, int] = dict(raw.get("caches", {}))
        # EXTENDED_ARG and its specialized forms: prefixes of the instruction they extend
        self.prefixes = frozenset(op for op in self._names if self.info(op).base_opname == "EXTENDED_ARG")
        # the base instructions that have specialized forms (3.11+; none before)
        self.specializable = frozenset(self._deopt.values())
        self._calls = frozenset(
            op for op in self._names if _CALL_NAME.match(self.info(op).base_opname)
            and self.info(op).base_opname not in _NOT_CALLS
        )

    def info(self, opcode: int) -> OpcodeInfo:
        name = self._names.get(opcode)
        if name is None:
            return OpcodeInfo(f"<{opcode}>", f"<{opcode}>", False)
        base = self._deopt.get(opcode)
        if base is None:
            return OpcodeInfo(name, name, False)
        return OpcodeInfo(name, self._names.get(base, f"<{base}>"), True)

    def format(self, opcode: int) -> str:
        """"LOAD_ATTR_INSTANCE_VALUE (LOAD_ATTR)" for a specialized instruction, else its name."""
        info = self.info(opcode)
        return f"{info.opname} ({info.base_opname})" if info.is_specialized else info.opname

    def mapping(self) -> dict:
        """{"names": {byte: name}, "deopt": {specialized byte: base byte}}, JSON-able."""
        return {"names": dict(self._names), "deopt": dict(self._deopt)}

    def cache_units(self, opcode: int) -> int:
        """The inline cache code units that follow instruction `opcode` (3.11+; 0 before)."""
        return self._caches.get(opcode, 0)

    def is_call(self, opcode: int) -> bool:
        """Whether `opcode` is a call: a frame executing it is inside the function it called."""
        return opcode in self._calls


def _parse(version: str | tuple[int, int]) -> tuple[int, int] | None:
    if isinstance(version, tuple):
        return (int(version[0]), int(version[1])) if len(version) >= 2 else None
    match = re.match(r"^(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


@lru_cache(maxsize=None)
def _table(version: tuple[int, int] | None) -> OpcodeTable:
    if version in TABLES:
        return OpcodeTable(version, True)
    return OpcodeTable(max(TABLES), False)


def opcode_table(version: str | tuple[int, int]) -> OpcodeTable:
    """The table of CPython `version` ("3.12.1", "3.12" or (3, 12)); an unknown or empty
    version gets the newest table, with `exact` False."""
    return _table(_parse(version))
