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


def native_choice(async_mode: str | bool | None = None) -> tuple[bool, str]:
    """(True, "") when runs use the native core; else (False, why not, for users). `async_mode`:
    --async-aware's mode (True: on, in its default mode, running), None or False: off."""
    if async_mode == "all":
        # no thread is walked: every task is read by the Python task reader (native.py)
        return False, "--async-mode all reads every task in Python, with no native part"
    if os.environ.get(NATIVE_ENV, "").strip() == "0":
        return False, f"{NATIVE_ENV}=0 is set"
    try:
        from sampler.cpython.native import native_status
    except ImportError as exc:  # the wrapper itself missing is a broken install, but still runs
        return False, f"the native sampler could not be loaded ({exc})"
    return native_status()


def sampler_description() -> str:
    """One line for `--version` and summaries: which walker samples, and why not the native one."""
    native, why = native_choice()
    return "native sampler" if native else f"pure-Python sampler: {why}"


def open_source(pid: int, *, all_threads: bool = False, mode: str = "wall", gc: bool = True,
                blocking: bool = False, async_mode: str | None = None) -> Any:
    """A sample source for process `pid` (`sample()`, `alive()`, `thread_names()`, `close()`,
    `runtime`; the native core also has the batched `run`). With `blocking`, every sample is
    taken with the target's threads stopped (sampler.target.freeze). With `async_mode`
    (--async-aware), stacks are the running asyncio tasks' (sampler.cpython.async_stacks)."""
    native, _ = native_choice(async_mode)
    # A loop runs its tasks on any thread: with --async-aware every thread is looked at (those
    # running no task are left out), as Tachyon does; -a itself is refused with it.
    all_threads = all_threads or async_mode is not None
    # Stopped threads all read as off CPU in /proc: under --blocking the walker samples every
    # thread and BlockingSource chooses cpu mode's by their state from just before the freeze.
    walk_mode = "wall" if blocking and mode == "cpu" else mode
    if native:
        from sampler.cpython.native import NativeUnwinder

        source = NativeUnwinder(pid, all_threads=all_threads, mode=walk_mode, gc=gc, async_mode=async_mode)
    else:
        from sampler.cpython.unwinder import Unwinder

        source = Unwinder(pid, all_threads=all_threads, mode=walk_mode, gc=gc, async_mode=async_mode)
    if not blocking:
        return source
    try:
        from sampler.target.freeze import BlockingSource

        return BlockingSource(source, pid, mode=mode)
    except BaseException:
        source.close()
        raise
