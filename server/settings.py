"""The user's settings (`heatline.*`), read with workspace/configuration."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from sampler.model import ASYNC_MODES
from sampler.model import MODES


@dataclass(frozen=True)
class Settings:
    sampling_rate: int = 1000  # Hz
    mode: str = "wall"
    all_threads: bool = False
    async_aware: bool = False  # asyncio task stacks (`--async-aware`)
    async_mode: str = "running"  # `--async-mode`: used with async_aware only
    opcodes: bool = False  # record each frame's instruction (`--opcodes`)
    native: bool = False  # <native> frames for time in C code (`--native`)
    inlay_hint_threshold: float = 5.0  # percent of the profile's samples spent on a line (self)
    code_lens: bool = True
    inlay_hints: bool = True
    python_path: str | None = None  # the interpreter a `run` target uses; None = the server's own
    subprocesses: bool = False  # `--subprocesses`: also profile the Python processes a target starts
    test_lenses: bool = True  # "Profile" lenses above tests and __main__ blocks (server/testlens.py)


_FLAGS = {"allThreads": "all_threads", "asyncAware": "async_aware", "codeLens": "code_lens", "inlayHints": "inlay_hints",
          "opcodes": "opcodes", "native": "native", "subprocesses": "subprocesses", "testLenses": "test_lenses"}


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if low <= value <= high else None


def settings_from(section: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Settings from a `heatline` configuration section; bad values keep their default and are
    reported (one line each) rather than failing, since a typo in settings must not stop profiling."""
    settings = base or Settings()
    problems: list[str] = []
    if section is None:
        return settings, problems
    if not isinstance(section, Mapping):
        return settings, [f"heatline settings must be an object, not {section!r}"]
    changes: dict[str, Any] = {}
    for key, value in section.items():
        if value is None:
            continue
        if key == "samplingRate":
            hz = _number(value, 1, 1_000_000)
            if hz is None:
                problems.append(f"heatline.samplingRate must be a number of samples per second (1-1000000), not {value!r}")
            else:
                changes["sampling_rate"] = int(hz)
        elif key == "mode":
            if value in MODES:
                changes["mode"] = value
            else:
                problems.append(f"heatline.mode must be one of {', '.join(MODES)}, not {value!r}")
        elif key == "asyncMode":
            if value in ASYNC_MODES:
                changes["async_mode"] = value
            else:
                problems.append(f"heatline.asyncMode must be one of {', '.join(ASYNC_MODES)}, not {value!r}")
        elif key in _FLAGS:
            if isinstance(value, bool):
                changes[_FLAGS[key]] = value
            else:
                problems.append(f"heatline.{key} must be true or false, not {value!r}")
        elif key == "inlayHintThreshold":
            pct = _number(value, 0, 100)
            if pct is None:
                problems.append(f"heatline.inlayHintThreshold must be a percentage (0-100), not {value!r}")
            else:
                changes["inlay_hint_threshold"] = pct
        elif key == "pythonPath":
            if isinstance(value, str):
                changes["python_path"] = value or None
            else:
                problems.append(f"heatline.pythonPath must be a path, not {value!r}")
        # Unknown keys belong to clients (e.g. an editor's colours): not ours to judge.
    return replace(settings, **changes), problems
