"""Typed, validated arguments of the server's `workspace/executeCommand` commands.

A command takes one JSON object (`{"pid": 1234, "mode": "cpu"}`), or its main value alone as a
shortcut (`[1234]`, `["/tmp/profile.bin"]`) for clients where typing an object is awkward.
Names are camelCase on the wire and snake_case here. Anything malformed raises
`InvalidArguments` with one line saying what is wrong, which the server returns as an LSP
InvalidParams error.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, TypeVar, get_type_hints

from sampler.model import ASYNC_MODES
from sampler.model import MODES

from .errors import InvalidArguments

T = TypeVar("T")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _meta(*, positional: bool = False, required: bool = False, choices: Sequence[str] = (), minimum: float | None = None,
          maximum: float | None = None) -> dict[str, Any]:
    return {"positional": positional, "required": required, "choices": tuple(choices), "minimum": minimum, "maximum": maximum}


@dataclass(frozen=True)
class SamplingArgs:
    """Options `run` and `attach` share; None means "the user's setting"."""

    rate: int | None = field(default=None, metadata=_meta(minimum=1, maximum=1_000_000))  # Hz
    mode: str | None = field(default=None, metadata=_meta(choices=MODES))
    all_threads: bool | None = None
    duration: float | None = field(default=None, metadata=_meta(minimum=0.001, maximum=7 * 24 * 3600))
    gc: bool | None = None
    async_aware: bool | None = None  # asyncio task stacks
    async_mode: str | None = field(default=None, metadata=_meta(choices=ASYNC_MODES))
    opcodes: bool | None = None  # each frame's instruction (`--opcodes`)
    native: bool | None = None  # <native> frames for time in C (`--native`)
    output: str | None = None  # also save the run as a --binary file here
    subprocesses: bool | None = None  # also profile the Python processes the target starts


@dataclass(frozen=True)
class RunArgs(SamplingArgs):
    script: str | None = field(default=None, metadata=_meta(positional=True))
    module: str | None = None
    args: tuple[str, ...] = ()
    cwd: str | None = None
    python: str | None = None


@dataclass(frozen=True)
class AttachArgs(SamplingArgs):
    pid: int = field(default=0, metadata=_meta(positional=True, required=True, minimum=1))


@dataclass(frozen=True)
class ShowProcessArgs:
    pid: int | None = field(default=None, metadata=_meta(positional=True, minimum=1))  # None: all processes


@dataclass(frozen=True)
class PathArgs:
    path: str = field(default="", metadata=_meta(positional=True, required=True))


@dataclass(frozen=True)
class DiffArgs:
    baseline: str = field(default="", metadata=_meta(positional=True, required=True))
    current: str | None = None  # a profile file; default: the profile loaded now


@dataclass(frozen=True)
class FlamegraphArgs:
    output: str | None = field(default=None, metadata=_meta(positional=True))
    # focus on a function: {"file": path, "function": name, "line": 0-based line in the document}
    file: str | None = None
    function: str | None = None
    line: int | None = field(default=None, metadata=_meta(minimum=0))
    show: bool = False  # ask the client to open the page (window/showDocument, external)
    return_data: bool = False  # include the flame graph's data in the result


@dataclass(frozen=True)
class HottestArgs:
    count: int = field(default=20, metadata=_meta(positional=True, minimum=1, maximum=10_000))
    kind: str = field(default="lines", metadata=_meta(choices=("lines", "functions")))
    by: str = field(default="self", metadata=_meta(choices=("self", "total")))


@dataclass(frozen=True)
class ProfileTestArgs(SamplingArgs):
    path: str = field(default="", metadata=_meta(positional=True, required=True))  # the test file
    node: str = field(default="", metadata=_meta(required=True))  # pytest's id in it: "test_a", "TestA::test_b"
    cwd: str | None = None
    python: str | None = None


@dataclass(frozen=True)
class WhichTestArgs:
    path: str = field(default="", metadata=_meta(positional=True, required=True))
    line: int = field(default=0, metadata=_meta(required=True, minimum=0))  # 0-based


@dataclass(frozen=True)
class HotFunctionsArgs:
    count: int = field(default=50, metadata=_meta(positional=True, minimum=1, maximum=10_000))


@dataclass(frozen=True)
class NoArgs:
    pass


def _type_name(kind: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(kind, str(kind))


def _convert(cmd: str, key: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> Any:
    where = f"{cmd}: argument '{key}'"
    optional = hint in (int | None, float | None, bool | None, str | None)
    if value is None:
        if optional:
            return None
        raise InvalidArguments(f"{where} must not be null")
    base = hint.__args__[0] if optional else hint
    if base == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArguments(f"{where} must be a list of strings")
        return tuple(value)
    if base is bool:
        if not isinstance(value, bool):
            raise InvalidArguments(f"{where} must be true or false, not {value!r}")
        return value
    if base in (int, float):
        # JSON has one number type: 2.0 is an acceptable integer, True is not a number.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArguments(f"{where} must be {_type_name(base)}, not {value!r}")
        # Python's JSON reader takes NaN and Infinity: a NaN duration would never end a run.
        if not math.isfinite(value):
            raise InvalidArguments(f"{where} must be a finite number, not {value!r}")
        if base is int:
            if value != int(value):
                raise InvalidArguments(f"{where} must be an integer, not {value!r}")
            value = int(value)
        else:
            value = float(value)
        low, high = meta.get("minimum"), meta.get("maximum")
        if low is not None and value < low:
            raise InvalidArguments(f"{where} must be at least {low:g}, not {value!r}")
        if high is not None and value > high:
            raise InvalidArguments(f"{where} must be at most {high:g}, not {value!r}")
        return value
    if base is str:
        if not isinstance(value, str):
            raise InvalidArguments(f"{where} must be a string, not {value!r}")
        if "\0" in value:
            raise InvalidArguments(f"{where} must not contain NUL characters")
        choices = meta.get("choices") or ()
        if choices and value not in choices:
            raise InvalidArguments(f"{where} must be one of {', '.join(choices)}, not {value!r}")
        return value
    raise TypeError(f"unsupported argument type {hint!r}")  # a programming error, not a user's


def parse(cmd: str, spec: type[T], arguments: Sequence[Any] | None) -> T:
    """`arguments` (the raw executeCommand list) as an instance of the dataclass `spec`."""
    fields = {f.name: f for f in dataclasses.fields(spec)}  # type: ignore[arg-type]
    hints = get_type_hints(spec)
    args = list(arguments or [])
    if len(args) > 1:
        raise InvalidArguments(f"{cmd} takes one argument object, got {len(args)} arguments")
    raw: Any = args[0] if args else {}
    if not isinstance(raw, dict):
        positional = [f for f in fields.values() if f.metadata.get("positional")]
        if not positional or isinstance(raw, (list, bool)) or raw is None:
            raise InvalidArguments(f"{cmd} takes an object of named arguments, not {raw!r}")
        raw = {_camel(positional[0].name): raw}
    by_camel = {_camel(name): name for name in fields}
    unknown = sorted(k for k in raw if k not in by_camel)
    if unknown:
        known = ", ".join(sorted(by_camel)) or "none"
        raise InvalidArguments(f"{cmd}: unknown argument(s) {', '.join(map(repr, unknown))} (known: {known})")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = by_camel[key]
        values[name] = _convert(cmd, key, value, hints[name], fields[name].metadata)
    missing = [_camel(n) for n, f in fields.items() if f.metadata.get("required") and n not in values]
    if missing:
        raise InvalidArguments(f"{cmd}: missing argument(s) {', '.join(map(repr, missing))}")
    return spec(**values)
