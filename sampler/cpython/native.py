"""The native sampling core (`sampler._native`, C) behind the same interface as `Unwinder`.

The C side walks threads and stacks with process_vm_readv and hands back interned ids; this
module gives it every offset it needs (all CPython knowledge stays in sampler/cpython), answers
its questions about code objects through the pure-Python `CodeCache`, and turns ids into
`ThreadSample`s once each: a repeated stack costs a list look-up.

`--async-mode running` (`async_mode="running"`): the C walk also cuts each thread's stack at its
running task's coroutine frame, reading the running task from the thread state on 3.14+; what
stays in Python, through the reference's `AsyncStacks`, is the running task on 3.11-3.13 (in
asyncio's dicts) and the frames after the cut (the task's marker and the tasks awaiting it: names,
awaiter sets, suspended coroutine chains), handed to C as an id per distinct tuple.
`--async-mode all` walks no thread's stack: every task is read by the Python task reader, so
`sample()` is the reference's own and there is no batched `run`.
"""


from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

import sampler.cpython.unwinder as reference
from sampler.cpython.opcodes import opcode_table
from sampler.cpython.runtime import Runtime
from sampler.cpython.stack_chunks import (
    MAX_CHUNK_BYTES, MAX_CHUNKS, MAX_DEPTH, MAX_PREFIXES, MAX_WALK, TRUNCATED_FRAME, chunk_header,
)
from sampler.cpython.thread_identity import MAX_INTERPRETERS, MAX_THREADS
from sampler.cpython.versions import ENTRY_SHIM
from sampler.cpython.unwinder import Unwinder
from sampler.errors import ProcessGoneError, ProcessPermissionError, ReadError
from sampler.model import GC_FRAME, MODES, NATIVE_FRAME, SYNTHETIC_FILENAME, Frame, ThreadSample

try:
    from sampler import _native  # type: ignore[attr-defined]

    _IMPORT_ERROR = ""
except ImportError as exc:  # pragma: no cover - depends on how heatline was installed
    _native = None
    _IMPORT_ERROR = str(exc)

# What the C core does beyond the plain walk, as this build says (an extension built before a
# feature existed lacks it): walkers.py samples a run asking for anything else with the
# pure-Python walker. "opcodes": Frame.opcode (--opcodes); "native": <native> frames (--native).
NATIVE_FEATURES: frozenset[str] = frozenset(getattr(_native, "FEATURES", ()))

# Other modes read a thread's /proc state at most this often (cpu mode reads it every sample).
CPU_REUSE_NS = 1_000_000
MAX_CODES = 65536  # code objects remembered for naming stacks (the C side bounds its own table)
UNKNOWN_FRAME = Frame(SYNTHETIC_FILENAME, "<unknown>", 0)
# The C core's pseudo entries (code address 0), by their offset.
PSEUDO_FRAMES = {} if _native is None else {
    _native.PSEUDO_GC: GC_FRAME, _native.PSEUDO_TRUNCATED: TRUNCATED_FRAME,
    getattr(_native, "PSEUDO_NATIVE", -1): NATIVE_FRAME,
}
# --async-aware: C reuses a running task's awaiter frames while the bytes they were made from read
# the same, and asks Python again at least this often anyway (as the reference reader reuses its
# awaiter derivation before 3.14 for RELATIONS_TTL_S): an address freed and reused for an equal
# looking state is shown for at most this long.
SUFFIX_REUSE_NS = 50_000_000


def native_status() -> tuple[bool, str]:
    """(True, "") when the C extension `sampler._native` imported; else (False, one-line reason)."""
    if _native is not None:
        return True, ""
    if importlib.util.find_spec("sampler._native") is None:
        return False, "the C extension was not built (no C compiler or Python headers when heatline was installed)"
    return False, f"the C extension could not be loaded: {_IMPORT_ERROR}"


@dataclass
class Batch:
    """What one `NativeUnwinder.run` call did."""

    ticks: list[tuple[int, list[ThreadSample]]]
    attempts: int
    errors: int
    gone: bool
    next_tick_ns: int
    cost_min_ns: int
    cost_max_ns: int
    cost_total_ns: int


def build_config(py: Unwinder, *, all_threads: bool, mode: str, gc: bool,
                 async_running: bool = False, opcodes: bool = False, native: bool = False) -> dict[str, Any]:
    """Every offset and limit the C walker needs, from the reference walker's layout."""
    rt = py.runtime
    L = rt.layout
    t = rt.traits
    cfg: dict[str, Any] = {}
    for key in (
        "runtime.interpreters_head", "runtime.gil_holder", "runtime.gil_locked",
        "interp.threads_head", "interp.next", "interp.id", "interp.gc_collecting", "interp.gil_holder",
        "interp.gil_locked", "interp.threads_main", "interp.code_object_generation",
        "tstate.size", "tstate.interp", "tstate.next", "tstate.thread_id", "tstate.native_thread_id",
        "tstate.holds_gil", "tstate.exc_info", "tstate.exc_state", "tstate.datastack_chunk",
        "tstate.datastack_top", "tstate.cframe", "cframe.current_frame",
        "frame.previous", "frame.code", "frame.lasti", "frame.instr_ptr", "frame.owner", "code.code_adaptive",
        "frame.is_entry",
    ):
        if key in L:
            cfg[key] = L[key]
    cfg["runtime_addr"] = rt.runtime_addr
    if t.gil == "runtime":
        cfg["gil_kind"] = 0 if "runtime.gil_holder" in L and "runtime.gil_locked" in L else 3
    else:
        cfg["gil_kind"] = 1 if "interp.gil_locked" in L else 2
    cfg["interp_lo"], cfg["interp_hi"] = py.interp_lo, py.interp_hi
    for key in ("tstate.current_exception", "tstate.curexc_type"):
        if key in L:
            cfg["exc_current"] = L[key]
            break
    if t.frame_root == "cframe":
        cfg["root_is_cframe"] = 1
    else:
        cfg["root_is_cframe"] = 0
        cfg["root"] = L[t.frame_root]
    cfg["err_stackitem.exc_value"] = L.get("err_stackitem.exc_value", 0)
    cfg["err_stackitem.previous_item"] = L.get("err_stackitem.previous_item", 8)
    cfg["err_item_size"] = py.err_item_size
    cfg["none_addr"] = rt.none_addr
    cfg["frame_is_object"] = int(t.frame_kind == "object")
    cfg["frame_read"] = py.frame_read
    cfg["lasti_scale"] = t.lasti_scale
    cfg["code_tag_mask"] = t.code_tag_mask
    cfg["skip_owners"] = sorted(t.skip_owners)
    cfg["chunk.previous"], cfg["chunk.top"], cfg["chunk.data"] = chunk_header(L)
    cfg["chunk_min_bytes"] = t.chunk_min_bytes
    cfg["max_chunk_bytes"] = MAX_CHUNK_BYTES
    cfg["max_chunks"] = MAX_CHUNKS
    cfg["max_depth"] = MAX_DEPTH
    cfg["max_walk"] = MAX_WALK
    cfg["max_threads"] = MAX_THREADS
    cfg["max_interps"] = MAX_INTERPRETERS
    # read at construction, so a test that widens the reference's window widens this one too
    cfg["guard_window_ns"] = int(reference.GUARD_WINDOW_S * 1e9)
    cfg["epoch_ns"] = int(reference.EPOCH_SECONDS * 1e9)
    cfg["cpu_reuse_ns"] = CPU_REUSE_NS
    cfg["main_pthread"] = py.main_pthread
    # -2: inferred by Python when first needed (3.9/3.10 only); -1: the native id is in tstate
    cfg["tid_offset"] = -1 if "tstate.native_thread_id" in L else -2
    cfg["pid"] = py.pid
    cfg["mode"] = MODES.index(mode)
    cfg["all_threads"] = int(all_threads)
    cfg["gc"] = int(gc)
    cfg["async_running"] = int(async_running)
    cfg["async.suffix_reuse_ns"] = SUFFIX_REUSE_NS
    cfg["opcodes"] = int(opcodes)
    cfg["native"] = int(native)
    if opcodes or native:
        table = opcode_table(rt.minor)
        # an instruction is read with the prefixes before it, as the reference's opcode_at reads
        cfg["prefix_opcodes"] = sorted(table.prefixes)
        cfg["instruction_read"] = 2 * (MAX_PREFIXES + 1)
        if native:
            # the <native> leaf's call family, as the target's version defines it
            cfg["call_opcodes"] = [op for op in range(256) if table.is_call(op)]
    offset = py.tasks.running_task_offset() if async_running and py.tasks is not None else None
    if offset is not None and offset >= 0:
        cfg["async.running_task"] = offset
        # read with the thread state (3.14+ keeps it past the public struct, in the same allocation)
        cfg["tstate.size"] = max(cfg["tstate.size"], offset + 8)
    return cfg


class NativeUnwinder:
    """Produces `ThreadSample`s for one target process, walked by the C extension."""

    def __init__(self, pid: int, *, all_threads: bool = False, mode: str = "wall", gc: bool = True,
                 async_mode: str | None = None, opcodes: bool = False, native: bool = False) -> None:
        if _native is None:
            raise RuntimeError(native_status()[1])
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.pid = pid
        self.all_threads = all_threads
        self.mode = mode
        self.gc = gc
        self.async_mode = async_mode
        self.opcodes = opcodes
        self.native = native
        # The reference walker locates the runtime, reads code objects and names threads (and,
        # with async_mode, asyncio's tasks).
        self._py = Unwinder(pid, all_threads=all_threads, mode=mode, gc=gc, async_mode=async_mode,
                            opcodes=opcodes, native=native)
        self.runtime: Runtime = self._py.runtime
        self.codes = self._py.codes
        self.tasks = self._py.tasks
        async_running = async_mode == "running"
        # --async-aware: the frames after a running task's own, by id (0: none), and the last
        # failed task read's message.
        self._suffixes: list[tuple[Frame, ...]] = [()]
        self._suffix_ids: dict[tuple[Frame, ...], int] = {(): 0}
        self._async_offsets_given = False
        self._async_error = ""
        self._frames: dict[int, tuple[Frame, ...]] = {}
        # The code objects the walks validated, by address: stacks are named from these after a
        # batch, without reading the target again (it may have exited by then).
        self._infos: dict[int, Any] = {}
        # --opcodes/--native on 3.11/3.12: each code object's _units_back, by id (with the object)
        self._backs: dict[int, tuple[Any, bytes | None]] = {}
        self._table = opcode_table(self.runtime.minor) if opcodes or native else None
        self._samples: list[ThreadSample | None] = []
        try:
            config = build_config(self._py, all_threads=all_threads, mode=mode, gc=gc, async_running=async_running,
                                  opcodes=opcodes, native=native)
            self._async_offsets_given = "async.running_task" in config
            self._walker = _native.Walker(
                pid, config, self._code_kind, self._epoch, self._tid_offset, self._resolve, self._samples,
                self._running_task, self._suffix,
            )
        except BaseException:
            self._py.close()
            raise

    # -- callbacks from C -----------------------------------------------------------------------

    def _code_kind(self, addr: int) -> int | tuple[int, int, bytes | None]:
        """0: not a code object (the walk is torn), 1: code, 2: a shim code (skipped), 3: gone,
        4: 3.12's entry-frame shim (skipped; a <native> with --native). With --opcodes or
        --native, a code's kind comes with what C needs to find a frame's instruction byte: the
        first instruction byte's address, and on 3.11/3.12 (None elsewhere) per code unit how
        many units back its instruction starts (`_units_back`)."""
        old = self.codes.entries.get(addr)
        try:
            info = self.codes.get(addr)
        except ReadError:
            return 0
        except ProcessGoneError:
            return 3
        if old is not None and info is not old:
            self._forget_samples()  # the address holds another code object now
        if len(self._infos) >= MAX_CODES:
            self._infos.clear()
        self._infos[addr] = info
        kind = 1
        if info.is_shim:
            kind = 4 if (info.filename, info.name) == ENTRY_SHIM else 2
        if self.opcodes or self.native:
            try:
                back = self._units_back(info) if kind == 1 else None
            except ProcessGoneError:
                return 3
            return kind, info.code_start, back
        return kind

    def _units_back(self, info: Any) -> bytes | None:
        """3.11/3.12 (`ip_in_caches`): for each code unit of `info`'s instructions, how far back
        its instruction starts, from the reference's decoding (CodeCache.instruction_start), made
        once per code object; None where a frame's instruction pointer is on its instruction, or
        the code could not be read (each unit its own instruction then, as for the reference)."""
        if self._table is None or not self.runtime.traits.ip_in_caches:
            return None
        made = self._backs.get(id(info))
        if made is not None and made[0] is info:
            return made[1]
        try:
            self.codes.instruction_start(info, 0, self._table.cache_units)
        except ReadError:
            return None
        starts = info.starts
        back = bytes(min(unit - start, 255) for unit, start in enumerate(starts)) if starts else None
        if len(self._backs) >= MAX_CODES:
            self._backs.clear()
        self._backs[id(info)] = (info, back)
        return back

    def _epoch(self, kind: int) -> None:
        if kind == 0:  # 3.14+: code objects were freed, their addresses may be reused
            self.codes.clear()
            self._forget_samples()
        elif kind == 1:  # before 3.14: re-check fingerprints from now on
            self.codes.epoch += 1
        else:  # the C side started its interning over: ids restart
            self._forget_samples()
            self._suffixes[1:] = []
            self._suffix_ids = {(): 0}

    def _forget_samples(self) -> None:
        self._frames.clear()
        self._samples[:] = []

    def _tid_offset(self, wrong: int) -> int:
        """Where struct pthread keeps the kernel TID (3.9/3.10), inferred again without `wrong`
        (>= 0: an offset the C side found holding the PID for a thread other than the main one)."""
        identity = self._py.identity
        if wrong >= 0:
            identity.wrong_tid_offsets.add(wrong)
        identity.tid_offset = identity.infer_tid_offset()
        return identity.tid_offset

    def _async_call(self, call: Callable[..., Any], *args: int) -> Any:
        """An --async-aware callback's answer to C: what `call` returns, -1 for a failed read
        (its message kept for the ReadError), -2 for the target gone."""
        try:
            return call(*args)
        except ProcessGoneError:
            return -2
        except ReadError as exc:
            self._async_error = str(exc)
            return -1

    def _running_task(self, thread_id: int) -> int:
        """The task thread `thread_id` runs (0: none), for C where the thread state does not say
        (before 3.14, or until the target's AsyncioDebug table is found)."""
        assert self.tasks is not None
        if not self._async_offsets_given:
            offset = self.tasks.running_task_offset()
            if offset is not None:  # asyncio is loaded now
                if offset >= 0:
                    self._walker.set_async(offset)
                self._async_offsets_given = True
        return self._async_call(self.tasks.running_task, thread_id)

    def _suffix(self, task: int, thread_id: int) -> int | tuple[int, int, Any]:
        """For running task `task`: (the id of the frames after its own in its thread's sample,
        its coroutine frame, the ranges both are made from, which C may reuse them for while
        those read the same (walker.c, cached_suffix), or None); -1 or -2 when it failed."""
        assert self.tasks is not None
        made = self._async_call(self.tasks.awaiters_of, task, thread_id)
        if isinstance(made, int):
            return made
        found = self._suffix_ids.get(made.frames)
        if found is None:
            found = self._suffix_ids[made.frames] = len(self._suffixes)
            self._suffixes.append(made.frames)
        return found, made.coro_frame, made.inputs

    def _resolve(self, key: int) -> ThreadSample:
        tid, status, interp_id, stack, suffix = self._walker.key(key)
        frames = self._frames.get(stack)
        if frames is None:
            frames = self._frames[stack] = self._stack_frames(stack)
        if suffix:
            frames += self._suffixes[suffix]
        sample = ThreadSample(tid, status, frames, interp_id)
        samples = self._samples
        if key >= len(samples):
            samples.extend([None] * (key + 1 - len(samples)))
        samples[key] = sample
        return sample

    def _stack_frames(self, stack: int) -> tuple[Frame, ...]:
        out: list[Frame] = []
        for code, offset, opcode in self._walker.stack(stack):
            if not code:
                out.append(PSEUDO_FRAMES[offset])
                continue
            info = self._infos.get(code)
            if info is None:
                try:
                    info = self.codes.get(code)
                except (ReadError, ProcessGoneError):
                    # freed, or the target gone, since the walk: nothing to name it by
                    out.append(UNKNOWN_FRAME)
                    continue
            out.append(info.frame_at(offset, opcode))
        return tuple(out)

    # -- sampling -------------------------------------------------------------------------------

    def _raise(self, code: int, message: str) -> None:
        if code == _native.GONE:
            raise ProcessGoneError(f"process {self.pid} exited while heatline was reading it.")
        if code == _native.PERM:
            raise ProcessPermissionError(self.pid)
        if not message and self._async_error:
            message = self._async_error
        self._async_error = ""
        raise ReadError(message or "the stack kept changing while it was read")

    def sample(self) -> list[ThreadSample]:
        """One sample of every wanted thread of every interpreter (as `Unwinder.sample`)."""
        if self.async_mode == "all":
            return self._py.sample()  # the task reader's, in Python (see the module's docstring)
        result = self._walker.sample()
        if type(result) is tuple:
            self._raise(*result)
        return result

    def run(self, next_tick_ns: int, interval_ns: int, stop_ns: int, max_ticks: int) -> Batch:
        """Sample on schedule until stop_ns, max_ticks good ticks, a failed tick or the target's end."""
        if self.async_mode == "all":
            raise RuntimeError("--async-mode all has no native loop: its samples are the Python task reader's")
        ticks, attempts, errors, gone, next_tick, cmin, cmax, ctotal, failure = self._walker.run(
            next_tick_ns, interval_ns, stop_ns, max_ticks
        )
        if failure:
            self._raise(failure, "")
        return Batch(ticks, attempts, errors, bool(gone), next_tick, cmin, cmax, ctotal)

    def stats(self) -> dict[str, int]:
        return self._walker.stats()

    # -- lifecycle ------------------------------------------------------------------------------

    def alive(self) -> bool:
        return self._py.alive()

    def thread_names(self) -> dict[int, str]:
        return self._py.thread_names()

    def close(self) -> None:
        self._walker.close()
        self._py.close()


__all__ = ["NATIVE_FEATURES", "Batch", "NativeUnwinder", "native_status"]
