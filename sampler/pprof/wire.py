"""Protocol buffers' wire format, the part profile.proto uses: varints and length-delimited
fields, written into a bytearray and read back with every length checked against the bytes
that are really there (a hostile file cannot make the reader allocate or loop beyond its size).
"""

from __future__ import annotations

from typing import Iterable, Iterator

VARINT = 0
I64 = 1
LEN = 2
I32 = 5

_MASK64 = (1 << 64) - 1


class WireError(ValueError):
    """The bytes are not protobuf as profile.proto writes it; the message says where."""


class Writer:
    """Appends fields to a bytearray. Zero scalars are written too: callers leave them out."""

    def __init__(self) -> None:
        self.out = bytearray()

    def varint(self, value: int) -> None:
        value &= _MASK64  # negative int64s are ten-byte two's complement, as protobuf writes them
        out = self.out
        while value > 0x7F:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)

    def tag(self, field: int, wire_type: int) -> None:
        self.varint(field << 3 | wire_type)

    def int_field(self, field: int, value: int) -> None:
        if value:
            self.tag(field, VARINT)
            self.varint(value)

    def bytes_field(self, field: int, data: bytes | bytearray) -> None:
        """A length-delimited field, written even when empty (string tables start with "")."""
        self.tag(field, LEN)
        self.varint(len(data))
        self.out += data

    def packed(self, field: int, values: Iterable[int]) -> None:
        inner = Writer()
        for value in values:
            inner.varint(value)
        if inner.out:
            self.bytes_field(field, inner.out)


def read_varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it); at most ten bytes, as protobuf allows."""
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise WireError("a number runs past the end of its message")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise WireError("a number longer than ten bytes")


def signed(value: int) -> int:
    """An int64 field's value from its unsigned varint."""
    return value - (1 << 64) if value >> 63 else value


def fields(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) for each field in data[start:end]: an int for varints
    and fixed-width fields, a memoryview for length-delimited ones. Unknown fields are skipped
    by the caller; groups (wire types 3 and 4, long deprecated) are refused."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    pos = start
    end = len(view) if end is None else end
    while pos < end:
        key, pos = read_varint(view, pos, end)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise WireError("a field numbered 0")
        if wire_type == VARINT:
            value, pos = read_varint(view, pos, end)
            yield field, wire_type, value
        elif wire_type == LEN:
            size, pos = read_varint(view, pos, end)
            if size > end - pos:
                raise WireError(f"a field of {size} bytes where {end - pos} are left")
            yield field, wire_type, view[pos:pos + size]
            pos += size
        elif wire_type in (I64, I32):
            width = 8 if wire_type == I64 else 4
            if width > end - pos:
                raise WireError("a fixed-width number runs past the end of its message")
            yield field, wire_type, int.from_bytes(view[pos:pos + width], "little")
            pos += width
        else:
            raise WireError(f"wire type {wire_type}")


def ints(wire_type: int, value: int | memoryview) -> list[int]:
    """A repeated integer field's values: one varint, or a packed run of them."""
    if wire_type == VARINT:
        return [value]  # type: ignore[list-item]
    if wire_type != LEN:
        raise WireError(f"an integer field with wire type {wire_type}")
    view = value  # type: ignore[assignment]
    out = []
    pos, end = 0, len(view)
    while pos < end:
        number, pos = read_varint(view, pos, end)
        out.append(number)
    return out
