"""profile.proto's messages as dataclasses, encoded to and decoded from its wire form.

Only what heatline writes and reads is kept: sample types, samples with labels, locations with
lines, functions, the string table, the period and the times. Mappings are written (one, saying
every location is already symbolized, so `go tool pprof` does not try to symbolize) and skipped
when read; drop/keep frames and comments are skipped. Ids and string indexes are checked when
read, so a decoded profile refers to nothing it does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .wire import LEN, VARINT, WireError, Writer, fields, ints, signed


@dataclass
class ValueType:
    type: int = 0  # string table indexes
    unit: int = 0


@dataclass
class Label:
    key: int = 0
    str: int = 0
    num: int = 0


@dataclass
class Sample:
    location_ids: list[int] = field(default_factory=list)  # leaf first
    values: list[int] = field(default_factory=list)  # one per sample type
    labels: list[Label] = field(default_factory=list)


@dataclass
class Line:
    function_id: int = 0
    line: int = 0


@dataclass
class Location:
    id: int = 0
    lines: list[Line] = field(default_factory=list)  # inlined callees first, the caller last


@dataclass
class Function:
    id: int = 0
    name: int = 0
    system_name: int = 0
    filename: int = 0
    start_line: int = 0


@dataclass
class PprofProfile:
    sample_types: list[ValueType] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    locations: list[Location] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    strings: list[str] = field(default_factory=lambda: [""])
    time_nanos: int = 0
    duration_nanos: int = 0
    period_type: ValueType | None = None
    period: int = 0
    default_sample_type: int = 0
    comments: list[int] = field(default_factory=list)

    def string(self, index: int) -> str:
        return self.strings[index]


# -- encoding ------------------------------------------------------------------------------------

def _ints(*numbered: tuple[int, int]) -> bytearray:
    """A message of integer fields, (field number, value) each; zeros left out."""
    w = Writer()
    for number, value in numbered:
        w.int_field(number, value)
    return w.out


def encode(p: PprofProfile) -> bytes:
    """The profile's wire form (not gzipped)."""
    w = Writer()
    for vt in p.sample_types:
        w.bytes_field(1, _ints((1, vt.type), (2, vt.unit)))
    for s in p.samples:
        inner = Writer()
        inner.packed(1, s.location_ids)
        inner.packed(2, s.values)
        for label in s.labels:
            inner.bytes_field(3, _ints((1, label.key), (2, label.str), (3, label.num)))
        w.bytes_field(2, inner.out)
    # one mapping, id 1, with has_functions, has_filenames and has_line_numbers set
    w.bytes_field(3, _ints((1, 1), (7, 1), (8, 1), (9, 1)))
    for loc in p.locations:
        inner = Writer()
        inner.out += _ints((1, loc.id), (2, 1))  # every location in the one mapping
        for line in loc.lines:
            inner.bytes_field(4, _ints((1, line.function_id), (2, line.line)))
        w.bytes_field(4, inner.out)
    for fn in p.functions:
        w.bytes_field(5, _ints((1, fn.id), (2, fn.name), (3, fn.system_name), (4, fn.filename), (5, fn.start_line)))
    for text in p.strings:
        w.bytes_field(6, text.encode("utf-8", "surrogateescape"))
    w.int_field(9, p.time_nanos)
    w.int_field(10, p.duration_nanos)
    if p.period_type is not None:
        w.bytes_field(11, _ints((1, p.period_type.type), (2, p.period_type.unit)))
    w.int_field(12, p.period)
    for comment in p.comments:
        w.int_field(13, comment)
    w.int_field(14, p.default_sample_type)
    return bytes(w.out)


# -- decoding ------------------------------------------------------------------------------------

def _expect(wire_type: int, wanted: int, what: str) -> None:
    if wire_type != wanted:
        raise WireError(f"{what} with wire type {wire_type}")


def _decode_value_type(data: memoryview) -> ValueType:
    vt = ValueType()
    for number, wire_type, value in fields(data):
        if number in (1, 2):
            _expect(wire_type, VARINT, "a value type")
            if number == 1:
                vt.type = value  # type: ignore[assignment]
            else:
                vt.unit = value  # type: ignore[assignment]
    return vt


def _decode_sample(data: memoryview) -> Sample:
    s = Sample()
    for number, wire_type, value in fields(data):
        if number == 1:
            s.location_ids.extend(ints(wire_type, value))
        elif number == 2:
            s.values.extend(signed(v) for v in ints(wire_type, value))
        elif number == 3:
            _expect(wire_type, LEN, "a label")
            label = Label()
            for n, wt, v in fields(value):  # type: ignore[arg-type]
                if n in (1, 2, 3):
                    _expect(wt, VARINT, "a label field")
                    setattr(label, ("key", "str", "num")[n - 1], signed(v) if n == 3 else v)  # type: ignore[arg-type]
            s.labels.append(label)
    return s


def _decode_location(data: memoryview) -> Location:
    loc = Location()
    for number, wire_type, value in fields(data):
        if number == 1:
            _expect(wire_type, VARINT, "a location id")
            loc.id = value  # type: ignore[assignment]
        elif number == 4:
            _expect(wire_type, LEN, "a location line")
            line = Line()
            for n, wt, v in fields(value):  # type: ignore[arg-type]
                if n == 1:
                    _expect(wt, VARINT, "a line's function")
                    line.function_id = v  # type: ignore[assignment]
                elif n == 2:
                    _expect(wt, VARINT, "a line number")
                    line.line = signed(v)  # type: ignore[arg-type]
            loc.lines.append(line)
    return loc


def _decode_function(data: memoryview) -> Function:
    fn = Function()
    for number, wire_type, value in fields(data):
        if 1 <= number <= 5:
            _expect(wire_type, VARINT, "a function field")
            value = signed(value) if number == 5 else value  # type: ignore[arg-type]
            setattr(fn, ("id", "name", "system_name", "filename", "start_line")[number - 1], value)
    return fn


def decode(data: bytes) -> PprofProfile:
    """A profile from its wire form (not gzipped); `WireError` when it is not one."""
    p = PprofProfile(strings=[])
    for number, wire_type, value in fields(data):
        if number in (1, 2, 4, 5, 6, 11):
            _expect(wire_type, LEN, f"field {number} of a profile")
            if number == 1:
                p.sample_types.append(_decode_value_type(value))  # type: ignore[arg-type]
            elif number == 2:
                p.samples.append(_decode_sample(value))  # type: ignore[arg-type]
            elif number == 4:
                p.locations.append(_decode_location(value))  # type: ignore[arg-type]
            elif number == 5:
                p.functions.append(_decode_function(value))  # type: ignore[arg-type]
            elif number == 6:
                p.strings.append(bytes(value).decode("utf-8", "surrogateescape"))  # type: ignore[arg-type]
            else:
                p.period_type = _decode_value_type(value)  # type: ignore[arg-type]
        elif number in (9, 10, 12, 14):
            _expect(wire_type, VARINT, f"field {number} of a profile")
            name = {9: "time_nanos", 10: "duration_nanos", 12: "period", 14: "default_sample_type"}[number]
            setattr(p, name, signed(value) if number != 14 else value)  # type: ignore[arg-type]
        elif number == 13:
            p.comments.extend(ints(wire_type, value))
    _check(p)
    return p


def _check(p: PprofProfile) -> None:
    """Every string index, id and value count refers to something the profile holds."""
    if not p.strings or p.strings[0] != "":
        raise WireError("the string table does not start with an empty string")
    count = len(p.strings)

    def string(index: int, what: str) -> None:
        if not 0 <= index < count:
            raise WireError(f"{what} refers to string {index} of {count}")

    for vt in p.sample_types + ([p.period_type] if p.period_type else []):
        string(vt.type, "a value type")
        string(vt.unit, "a value type")
    string(p.default_sample_type, "the default sample type")
    for comment in p.comments:
        string(comment, "a comment")
    function_ids = _unique_ids("function", [fn.id for fn in p.functions])
    for fn in p.functions:
        for index in (fn.name, fn.system_name, fn.filename):
            string(index, "a function")
    location_ids = _unique_ids("location", [loc.id for loc in p.locations])
    for loc in p.locations:
        for line in loc.lines:
            if line.function_id not in function_ids:
                raise WireError(f"location {loc.id} refers to an unknown function {line.function_id}")
    types = len(p.sample_types)
    for s in p.samples:
        if len(s.values) != types:
            raise WireError(f"a sample with {len(s.values)} values for {types} sample types")
        for lid in s.location_ids:
            if lid not in location_ids:
                raise WireError(f"a sample refers to an unknown location {lid}")
        for label in s.labels:
            string(label.key, "a label")
            string(label.str, "a label")


def _unique_ids(what: str, ids: list[int]) -> set[int]:
    seen: set[int] = set()
    for i in ids:
        if i == 0 or i in seen:
            raise WireError(f"{what} id {i} is zero or repeated")
        seen.add(i)
    return seen
