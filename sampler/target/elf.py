"""A small reader for the parts of 64-bit ELF files the profiler needs.

Only what locating the interpreter requires: section headers by name, PT_LOAD segments (to
compute the load bias), and defined symbols from .dynsym and .symtab.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass

SHT_SYMTAB = 2
SHT_DYNSYM = 11
SHT_NOBITS = 8
PT_LOAD = 1
SHN_UNDEF = 0
# Symbol tables of the last few files read, by file identity: a run that follows subprocesses
# opens the same interpreter again for each, and parsing its table is most of a walker's start.
_SYMBOL_CACHE: dict[tuple[int, int, int, int], dict[str, int]] = {}
_SYMBOL_CACHE_SIZE = 4


class ElfError(Exception):
    pass


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    addr: int
    offset: int
    size: int


@dataclass(frozen=True)
class Segment:
    type: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int
    flags: int


class ElfFile:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                self._identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                try:
                    self._data: bytes | mmap.mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                except ValueError:  # empty file
                    self._data = b""
        except OSError as exc:
            raise ElfError(f"cannot open {path}: {exc.strerror}") from None
        data = self._data
        if len(data) < 64 or data[:4] != b"\x7fELF":
            raise ElfError(f"{path} is not an ELF file")
        if data[4] != 2:
            raise ElfError(f"{path} is a 32-bit ELF file; only 64-bit targets are supported")
        self._end = "<" if data[5] == 1 else ">"
        e = self._end
        (self.e_type, self.machine) = struct.unpack_from(e + "HH", data, 16)
        phoff, shoff = struct.unpack_from(e + "QQ", data, 32)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(e + "HHHHH", data, 54)
        self.segments = [
            self._segment(phoff + i * phentsize) for i in range(phnum) if phoff + (i + 1) * phentsize <= len(data)
        ]
        raw_sections = []
        for i in range(shnum):
            off = shoff + i * shentsize
            if off + 64 > len(data):
                break
            name, stype, _flags, addr, offset, size, link, _info, _align, entsize = struct.unpack_from(
                e + "IIQQQQIIQQ", data, off
            )
            raw_sections.append((name, stype, addr, offset, size, link, entsize))
        self._raw_sections = raw_sections
        names_off = raw_sections[shstrndx][3] if shstrndx < len(raw_sections) else 0
        self.sections: dict[str, Section] = {}
        for name, stype, addr, offset, size, _link, _entsize in raw_sections:
            sname = self._cstr(names_off + name) if names_off else ""
            # Keep the first of duplicate names except for .bss, where the largest wins.
            prev = self.sections.get(sname)
            if prev is None or (sname == ".bss" and size > prev.size):
                self.sections[sname] = Section(sname, stype, addr, offset, size)
        self._symbols: dict[str, int] | None = None

    def _segment(self, off: int) -> Segment:
        ptype, flags, offset, vaddr, _paddr, filesz, memsz, align = struct.unpack_from(
            self._end + "IIQQQQQQ", self._data, off
        )
        return Segment(ptype, offset, vaddr, filesz, memsz, align, flags)

    def _cstr(self, off: int) -> str:
        end = self._data.find(b"\0", off)
        if end < 0:
            end = len(self._data)
        return bytes(self._data[off:end]).decode("utf-8", "replace")

    @property
    def symbols(self) -> dict[str, int]:
        """Defined symbol name -> st_value, from .dynsym then .symtab."""
        if self._symbols is None:
            self._symbols = _SYMBOL_CACHE.get(self._identity)
        if self._symbols is None:
            syms: dict[str, int] = {}
            for _name, stype, _addr, offset, size, link, entsize in self._raw_sections:
                if stype not in (SHT_DYNSYM, SHT_SYMTAB) or not entsize:
                    continue
                strtab_off = self._raw_sections[link][3] if link < len(self._raw_sections) else 0
                for i in range(size // entsize):
                    st_name, _info, _other, shndx, value, _sz = struct.unpack_from(
                        self._end + "IBBHQQ", self._data, offset + i * entsize
                    )
                    if shndx == SHN_UNDEF or not st_name or not value:
                        continue
                    name = self._cstr(strtab_off + st_name)
                    syms.setdefault(name, value)
            self._symbols = syms
            if len(_SYMBOL_CACHE) >= _SYMBOL_CACHE_SIZE:
                _SYMBOL_CACHE.pop(next(iter(_SYMBOL_CACHE)))
            _SYMBOL_CACHE[self._identity] = syms
        return self._symbols

    def symbol(self, name: str) -> int | None:
        return self.symbols.get(name)

    def first_load_base(self) -> int:
        """Page-aligned vaddr of the first PT_LOAD segment (what the offset-0 mapping holds)."""
        for seg in self.segments:
            if seg.type == PT_LOAD:
                align = seg.align if seg.align > 1 else 0x1000
                return seg.vaddr - seg.vaddr % align
        return 0

    def read_at_vaddr(self, vaddr: int, size: int) -> bytes | None:
        """Bytes of initialised data at a virtual address, from the file itself."""
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.vaddr <= vaddr and vaddr + size <= seg.vaddr + seg.filesz:
                off = seg.offset + (vaddr - seg.vaddr)
                return bytes(self._data[off : off + size])
        return None

    def close(self) -> None:
        if isinstance(self._data, mmap.mmap):
            self._data.close()
