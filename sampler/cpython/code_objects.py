"""Reading code objects and strings out of the target, with the caches that keep a sample cheap.

A code object is read once (its header, name, filename and line table); afterwards a frame costs
only a dictionary look-up of (code address, instruction offset, opcode). Without a generation counter
(before 3.14) a freed code object's address can be reused, so entries are re-checked against the
target at most once per `epoch` (about a second) by comparing their header's pointers.
"""

from __future__ import annotations


from typing import Callable

from sampler.cpython.linetable import PARSERS, LineTable
from sampler.cpython.runtime import Runtime
from sampler.errors import ReadError
from sampler.model import Frame
from sampler.target.memory import I32, I64, U32, U64, RemoteMemory

# Names longer than this (a function or file name of thousands of characters, e.g. from
# compile() or code.replace()) keep their first MAX_NAME_CHARS characters and TRUNCATION_MARK:
# the sample counts, and one absurd name costs no more to read, cache and write than this.
MAX_NAME_CHARS = 1000
TRUNCATION_MARK = "\u2026"  # …
# A length no machine's memory holds is garbage (a pointer caught mid-change), not a long name.
MAX_STRING_CHARS = 1 << 40
MAX_LINETABLE_BYTES = 1 << 20
MAX_MEMO = 4096
MAX_CODE_UNITS = 1 << 22  # a code object's instructions (8 MiB): more is garbage, not code



class CodeInfo:
    __slots__ = ("filename", "name", "table", "code_start", "code_units", "fingerprint", "epoch", "memo",
                 "is_shim", "starts")

    def __init__(
        self,
        filename: str,
        name: str,
        table: LineTable,
        code_start: int,
        fingerprint: tuple,
        epoch: int,
        is_shim: bool = False,
        code_units: int = 0,
    ) -> None:
        self.is_shim = is_shim
        self.code_units = code_units  # 3.11+: the instructions' length, in 2-byte code units
        # 3.11/3.12 --opcodes: each code unit's instruction start, in units (`instruction_start`)
        self.starts: list[int] | None = None
        self.filename = filename
        self.name = name
        self.table = table
        # remote address of the first instruction byte: co_code_adaptive (3.11+), the co_code
        # bytes' data (3.9/3.10); 0 when unknown
        self.code_start = code_start
        self.fingerprint = fingerprint
        self.epoch = epoch
        self.memo: dict[int, Frame] = {}

    def frame_at(self, byte_offset: int, opcode: int = -1) -> Frame:
        """The frame at instruction `byte_offset`, executing `opcode` (-1: not recorded)."""
        # One int key per (offset, opcode): opcode + 1 fits in 9 bits, whatever the offset's sign.
        key = (byte_offset << 9) | (opcode + 1)
        frame = self.memo.get(key)
        if frame is None:
            loc = self.table.locate(byte_offset)
            frame = Frame(self.filename, self.name, loc.lineno, loc.end_lineno, loc.col, loc.end_col, opcode)
            if len(self.memo) < MAX_MEMO:
                self.memo[key] = frame
        return frame


def instruction_starts(code: bytes, cache_units: Callable[[int], int]) -> list[int]:
    """For each 2-byte code unit of adaptive bytecode `code`, the unit its instruction starts at:
    an instruction is its opcode unit and `cache_units(opcode)` inline cache units. The layout
    never changes while the code lives (specializing rewrites opcodes within their family, whose
    caches are the same), so one decoding serves every sample."""
    units = len(code) // 2
    starts = [0] * units
    i = 0
    while i < units:
        end = min(units, i + 1 + cache_units(code[2 * i]))
        for j in range(i, end):
            starts[j] = i
        i = end
    return starts


class StringReader:
    """Decodes compact str and bytes objects from the target."""

    def __init__(self, memory: RemoteMemory, runtime: Runtime) -> None:
        L = runtime.layout
        self.memory = memory
        self.state = L["unicode.state"]
        self.length = L["unicode.length"]
        self.ascii_size = L["unicode.ascii_size"]
        self.compact_size = L["unicode.compact_size"]
        self.bytes_size = L.get("bytes.ob_size", 16)
        self.bytes_data = L.get("bytes.ob_sval", 32)

    def read_str(self, addr: int) -> str:
        """The str at `addr`, cut to MAX_NAME_CHARS characters plus TRUNCATION_MARK if longer."""
        if not addr:
            raise ReadError("NULL string")
        head = self.memory.read(addr, self.compact_size)
        length = I64.unpack_from(head, self.length)[0]
        state = U32.unpack_from(head, self.state)[0]
        kind = (state >> 2) & 7
        compact = (state >> 5) & 1
        ascii_ = (state >> 6) & 1
        if not compact or kind not in (1, 2, 4) or not 0 <= length <= MAX_STRING_CHARS:
            raise ReadError(f"not a compact str at {addr:#x}")
        if length == 0:
            return ""
        # Every kind stores one code point per unit, so cutting at a unit never splits a character.
        kept = min(length, MAX_NAME_CHARS)
        mark = TRUNCATION_MARK if kept < length else ""
        if ascii_:
            start = self.ascii_size
            data = self.memory.read(addr + start, kept)
            return data.decode("ascii", "replace") + mark
        data = self.memory.read(addr + self.compact_size, kept * kind)
        codec = {1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind]
        return data.decode(codec, "replace") + mark

    def read_bytes(self, addr: int) -> bytes:
        if not addr:
            return b""
        size = I64.unpack_from(self.memory.read(addr + self.bytes_size, 8), 0)[0]
        if not 0 <= size <= MAX_LINETABLE_BYTES:
            raise ReadError(f"implausible bytes length {size} at {addr:#x}")
        return self.memory.read(addr + self.bytes_data, size) if size else b""


class CodeCache:
    def __init__(self, memory: RemoteMemory, runtime: Runtime) -> None:
        L = runtime.layout
        t = runtime.traits
        self.memory = memory
        self.strings = StringReader(memory, runtime)
        self.size = L["code.size"]
        self.ob_type = L.get("object.ob_type", 8)
        self.filename = L["code.filename"]
        self.name = L["code.qualname"] if t.qualname and "code.qualname" in L else L["code.name"]
        self.firstlineno = L["code.firstlineno"]
        self.linetable = L["code.linetable"]
        self.code_adaptive = L.get("code.code_adaptive")
        self.code_bytes = L.get("code.code")  # 3.9/3.10: co_code, a bytes object
        self.ob_size = L.get("bytes.ob_size", 16)  # PyVarObject's ob_size: a code object's too
        self.code_type = runtime.code_type_addr
        self.parse = PARSERS[t.linetable]
        self.shim_codes = t.shim_codes
        self.entries: dict[int, CodeInfo] = {}
        self.epoch = 0
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self.entries.clear()

    def instruction_start(self, info: CodeInfo, byte_offset: int, cache_units: Callable[[int], int]) -> int:
        """The byte offset of the instruction that code unit `byte_offset` of `info` belongs to.
        For 3.11/3.12, where a caller's prev_instr points at its call's last inline cache unit;
        the code is read and decoded once (`instruction_starts`). Unknown: `byte_offset` itself."""
        starts = info.starts
        if starts is None:
            if not info.code_units:
                return byte_offset
            starts = info.starts = instruction_starts(self.memory.read(info.code_start, 2 * info.code_units),
                                                      cache_units)
        unit = byte_offset >> 1
        return 2 * starts[unit] if 0 <= unit < len(starts) else byte_offset

    def get(self, addr: int) -> CodeInfo:
        info = self.entries.get(addr)
        if info is not None and info.epoch == self.epoch:
            self.hits += 1
            return info
        self.misses += 1
        head = self.memory.read(addr, self.size)
        if self.code_type and U64.unpack_from(head, self.ob_type)[0] != self.code_type:
            raise ReadError(f"no code object at {addr:#x}")
        fingerprint = (
            U64.unpack_from(head, self.filename)[0],
            U64.unpack_from(head, self.name)[0],
            U64.unpack_from(head, self.linetable)[0],
            I32.unpack_from(head, self.firstlineno)[0],
        )
        if info is not None and info.fingerprint == fingerprint:
            info.epoch = self.epoch
            return info
        fn_ptr, name_ptr, lt_ptr, first = fingerprint
        filename = self.strings.read_str(fn_ptr)
        name = self.strings.read_str(name_ptr)
        table = self.parse(self.strings.read_bytes(lt_ptr), first)
        code_units = 0
        if self.code_adaptive is not None:
            code_start = addr + self.code_adaptive
            code_units = I64.unpack_from(head, self.ob_size)[0]
        elif self.code_bytes is not None:
            co_code = U64.unpack_from(head, self.code_bytes)[0]
            code_start = co_code + self.strings.bytes_data if co_code else 0
        else:
            code_start = 0
        info = CodeInfo(
            filename, name, table, code_start, fingerprint, self.epoch, (filename, name) in self.shim_codes,
            code_units if 0 < code_units <= MAX_CODE_UNITS else 0,
        )
        if len(self.entries) > 65536:
            self.entries.clear()
        self.entries[addr] = info
        return info
