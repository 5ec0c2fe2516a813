"""What the formats show of `--opcodes` and `--native`: instruction names for the profile's
Python version, per-instruction rows, specialization shares and source column spans.

Opcode numbers mean different instructions in each CPython version, so names always come from
the table of the *target's* version (`RunStats.python_version`), never from the interpreter
running heatline. Every format that shows instructions goes through here, so they name and count
them alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..model import NATIVE_FRAME, Frame, Profile

if TYPE_CHECKING:
    from ..cpython.opcodes import OpcodeTable


def is_native(frame: Frame) -> bool:
    """Tachyon's synthetic `<native>` frame: time in C code."""
    return frame.is_synthetic and frame.funcname == NATIVE_FRAME.funcname


def has_opcodes(profile: Profile) -> bool:
    """Whether the profile recorded instructions (its run said so, or a frame carries one)."""
    return profile.stats.opcodes or any(frame.opcode >= 0 for frame in profile.frames)


def has_native(profile: Profile) -> bool:
    return profile.stats.native or any(is_native(frame) for frame in profile.frames)


def opcode_table(profile: Profile) -> "OpcodeTable":
    from ..cpython.opcodes import opcode_table as table_for_version

    return table_for_version(profile.stats.python_version)


def opcode_mapping(table: "OpcodeTable") -> dict[str, Any]:
    """Tachyon's `opcode_mapping` (`names`, `deopt`; JSON keys are strings), plus the version the
    names are for and whether the table is that version's own (`exact`)."""
    mapping = table.mapping()
    return {
        "names": {str(op): name for op, name in mapping["names"].items()},
        "deopt": {str(op): base for op, base in mapping["deopt"].items()},
        "version": "%d.%d" % tuple(table.version),
        "exact": bool(table.exact),
    }


def instruction(table: "OpcodeTable", opcode: int, samples: int) -> dict[str, Any]:
    """One instruction's row, in Tachyon's field names."""
    info = table.info(opcode)
    return {
        "opcode": opcode,
        "opname": table.format(opcode),
        "base_opname": info.base_opname,
        "is_specialized": bool(info.is_specialized),
        "samples": samples,
    }


def specialized_share(rows: Sequence[dict[str, Any]]) -> tuple[int, int, int]:
    """(percent of samples in specialized instructions, as Tachyon rounds it (down); specialized
    samples; all samples)."""
    total = sum(row["samples"] for row in rows)
    special = sum(row["samples"] for row in rows if row["is_specialized"])
    return (100 * special // total if total else 0), special, total


def add_count(counts: dict[int, int], opcode: int, weight: int) -> None:
    counts[opcode] = counts.get(opcode, 0) + weight


def sparse_counts(indexed: Iterable[tuple[int, dict[int, int]]]) -> dict[str, list[Any]]:
    """`{"node": [i, ...], "counts": [{"opcode": n}, ...]}` for the entries with any counts:
    opcodes per node without a column entry for every node that has none."""
    nodes: list[int] = []
    counts: list[dict[str, int]] = []
    for index, per_opcode in indexed:
        if per_opcode:
            nodes.append(index)
            counts.append({str(op): n for op, n in sorted(per_opcode.items())})
    return {"node": nodes, "counts": counts}


def char_columns(text: str, start: int, end: int) -> tuple[int, int]:
    """CPython's column offsets count UTF-8 bytes; the same span in characters of `text`."""
    encoded = text.encode("utf-8", "surrogatepass")
    start = max(0, min(start, len(encoded)))
    end = max(start, min(end, len(encoded)))
    return (len(encoded[:start].decode("utf-8", "ignore")), len(encoded[:end].decode("utf-8", "ignore")))
