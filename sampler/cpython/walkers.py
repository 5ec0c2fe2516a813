"""Which stack walker samples a target: the native core when it is built, else the pure-Python one.

The pure-Python `Unwinder` is the reference the native core is tested against; it is used when
the C extension could not be built (no compiler when heatline was installed) or when the user
asks for it with HEATLINE_NATIVE=0. Either way the choice is said once, in `heatline --version`
and in the run summary, never silently.
"""

from __future__ import annotations

import os
from typing import Any

NATIVE_ENV = "HEATLINE_NATIVE"


def native_choice(async_mode: str | bool | None = None, *, opcodes: bool = False,
                  native: bool = False) -> tuple[bool, str]:
    """(True, "") when runs use the native core; else (False, why not, for users). `async_mode`:
    --async-aware's mode (True: on, in its default mode, running), None or False: off.
    `opcodes`, `native`: --opcodes, --native asked for; the core must do them (NATIVE_FEATURES)."""
    if async_mode == "all":
        # no thread is walked: every task is read by the Python task reader (native.py)
        return False, "--async-mode all reads every task in Python, with no native part"
    if os.environ.get(NATIVE_ENV, "").strip() == "0":
        return False, f"{NATIVE_ENV}=0 is set"
    try:
        import sampler.cpython.native as core
    except ImportError as exc:  # the wrapper itself missing is a broken install, but still runs
        return False, f"the native sampler could not be loaded ({exc})"
    built, why = core.native_status()
    if not built:
        return built, why
    features = getattr(core, "NATIVE_FEATURES", frozenset())
    missing = [flag for flag, feature, asked in (("--opcodes", "opcodes", opcodes), ("--native", "native", native))
               if asked and feature not in features]
    if missing:
        return False, f"the native sampler does not do {' and '.join(missing)} yet"
    return True, ""


def sampler_description() -> str:
    """One line for `--version` and summaries: which walker samples, and why not the native one."""
    native, why = native_choice()
    return "native sampler" if native else f"pure-Python sampler: {why}"


def open_source(pid: int, *, all_threads: bool = False, mode: str = "wall", gc: bool = True,
                blocking: bool = False, async_mode: str | None = None, opcodes: bool = False,
                native: bool = False) -> Any:
    """A sample source for process `pid` (`sample()`, `alive()`, `thread_names()`, `close()`,
    `runtime`; the native core also has the batched `run`). With `blocking`, every sample is
    taken with the target's threads stopped (sampler.target.freeze). With `async_mode`
    (--async-aware), stacks are the running asyncio tasks' (sampler.cpython.async_stacks).
    `opcodes` (--opcodes): frames carry `Frame.opcode`; `native` (--native): `<native>` frames."""
    core, _ = native_choice(async_mode, opcodes=opcodes, native=native)
    # only what was asked is passed on: a core without the feature has no such parameter
    features = {name: True for name, asked in (("opcodes", opcodes), ("native", native)) if asked}
    # A loop runs its tasks on any thread: with --async-aware every thread is looked at (those
    # running no task are left out), as Tachyon does; -a itself is refused with it.
    all_threads = all_threads or async_mode is not None
    # Stopped threads all read as off CPU in /proc: under --blocking the walker samples every
    # thread and BlockingSource chooses cpu mode's by their state from just before the freeze.
    walk_mode = "wall" if blocking and mode == "cpu" else mode
    if core:
        from sampler.cpython.native import NativeUnwinder

        source = NativeUnwinder(pid, all_threads=all_threads, mode=walk_mode, gc=gc, async_mode=async_mode, **features)
    else:
        from sampler.cpython.unwinder import Unwinder

        source = Unwinder(pid, all_threads=all_threads, mode=walk_mode, gc=gc, async_mode=async_mode, **features)
    if not blocking:
        return source
    try:
        from sampler.target.freeze import BlockingSource

        return BlockingSource(source, pid, mode=mode)
    except BaseException:
        source.close()
        raise
