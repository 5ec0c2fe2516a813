"""Walking a live CPython's threads and frames from outside, one sample at a time.

The target is never stopped and never written to. Each sample reads the interpreter state, each
thread state, and the thread's stack, then parses frames from that copy; code objects come from
`CodeCache`. Inconsistent data (a torn read of a stack that changed under us) raises `ReadError`,
which the sampling loop counts as a failed sample.

`Unwinder` is the facade: it runs the interpreter and thread loops, the status bits, the
exception state, the GC frame and the retry loop, and leaves the rest to one module per job:
`frame_objects` (the 3.9/3.10 walk), `stack_chunks` (the 3.11+ walk and its consistency checks)
and `thread_identity` (TIDs, the main thread, names).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Iterator

from sampler.cpython.code_objects import CodeCache
from sampler.cpython.frame_objects import FrameObjectWalker
from sampler.cpython.runtime import Runtime, locate_runtime
from sampler.cpython.stack_chunks import (
    CHUNK_DATA,
    CHUNK_MIN_BYTES,
    CHUNK_PREVIOUS,
    CHUNK_TOP,
    MAX_CHUNK_BYTES,
    MAX_CHUNKS,
    MAX_DEPTH,
    MAX_WALK,
    TRUNCATED_FRAME,
    ChunkWalker,
    StackWalker,
    TornStack,
    check_bottom,
)
from sampler.cpython.thread_identity import MAX_INTERPRETERS, MAX_THREADS, ThreadIdentity
from sampler.errors import ProcessGoneError, ReadError
from sampler.model import (
    GC_FRAME,
    HAS_EXCEPTION,
    HAS_GIL,
    MAIN_THREAD,
    NATIVE_FRAME,
    ON_CPU,
    UNKNOWN,
    Frame,
    ThreadSample,
    mode_accepts,
)
from sampler.target.maps import is_gone
from sampler.target.memory import I32, U64, RemoteMemory
from sampler.target.threads import CpuStates

if TYPE_CHECKING:
    from sampler.cpython.async_stacks import AsyncStacks

EPOCH_SECONDS = 1.0
GUARD_WINDOW_S = 100e-6

u64 = U64.unpack_from
i32 = I32.unpack_from


def _span(layout: dict[str, int], keys: list[str], width: int = 8) -> tuple[int, int]:
    offs = [layout[k] for k in keys if k in layout]
    if not offs:
        return 0, 0
    return min(offs), max(offs) + width


def _kept_by_identity(name: str) -> property:
    """An attribute `ThreadIdentity` keeps, under the name the tests set it by on an `Unwinder`."""
    return property(lambda self: getattr(self.identity, name), lambda self, value: setattr(self.identity, name, value))


class Unwinder:
    """Produces `ThreadSample`s for one target process."""

    # The 3.11+ bottom-of-stack rule, for callers that check chunks of their own.
    _check_bottom = staticmethod(check_bottom)

    def __init__(
        self,
        pid: int,
        *,
        all_threads: bool = False,
        mode: str = "wall",
        gc: bool = True,
        memory: RemoteMemory | None = None,
        async_mode: str | None = None,
        opcodes: bool = False,
        native: bool = False,
    ) -> None:
        self.pid = pid
        self.all_threads = all_threads
        self.mode = mode
        self.gc = gc
        self.opcodes = opcodes  # --opcodes: Frame.opcode on every frame
        self.native = native  # --native: <native> frames where the thread is in C
        self.memory = memory or RemoteMemory(pid)
        self.runtime: Runtime = locate_runtime(pid, self.memory)
        self.codes = CodeCache(self.memory, self.runtime)
        self.cpu = CpuStates(pid)
        self._setup_layout()
        # --async-aware: samples are rebuilt from each thread's running asyncio task (imported
        # only then: plain sampling does not depend on the asyncio reader).
        self.tasks: AsyncStacks | None = None
        if async_mode is not None:
            from sampler.cpython.async_stacks import AsyncStacks

            self.tasks = AsyncStacks(pid, self.memory, self.runtime, async_mode, self.codes)
        self.identity = ThreadIdentity(pid, self.memory, self.runtime, (self.interp_lo, self.interp_hi))
        self._walker: StackWalker
        if self.t.frame_kind == "object":
            self._walker = FrameObjectWalker(self.memory, self.L, self.t, self.codes, self.frame_read)
        else:
            make = ChunkWalker if self.tasks is None else self.tasks.walker_for
            self._walker = make(self.memory, self.L, self.t, self.codes, self.frame_read, self._top_frame)
        if opcodes or native:
            from sampler.cpython.opcodes import opcode_table

            table = opcode_table(self.runtime.version_string)
            self._walker.record(opcodes, native, table)
            if opcodes and self.tasks is not None:
                self.tasks.record_opcodes(table)
        self._epoch_started = time.monotonic()
        self._generation = -1

    # -- layout ---------------------------------------------------------------------------------

    def _setup_layout(self) -> None:
        rt = self.runtime
        L = rt.layout
        t = rt.traits
        self.L = L
        self.t = t
        self.interp_keys = [
            k
            for k in (
                "interp.threads_head",
                "interp.next",
                "interp.id",
                "interp.gc_collecting",
                "interp.gil_holder",
                "interp.gil_locked",
                "interp.threads_main",
                "interp.code_object_generation",
            )
            if k in L
        ]
        self.interp_lo, self.interp_hi = _span(L, self.interp_keys)
        self.tstate_size = L["tstate.size"]
        self.frame_size = L["frame.size"]
        if t.frame_kind == "object":
            # Only the header fields are needed from a PyFrameObject.
            self.frame_read = max(L["frame.previous"], L["frame.code"], L["frame.lasti"]) + 8
        else:
            self.frame_read = max(L["frame.previous"], L["frame.code"], L["frame.instr_ptr"], L["frame.owner"]) + 8
            self.frame_read = max(self.frame_read, min(self.frame_size, 96))
        self.err_item_size = max(L.get("err_stackitem.previous_item", 8), L.get("err_stackitem.exc_value", 0)) + 8
        self.none = rt.none_addr

    # -- thread identity, for the native core and the tests --------------------------------------

    @property
    def main_pthread(self) -> int:
        """The main thread's `pthread_t` (3.9/3.10 tell the main thread by it); 0 if unknown."""
        return self.identity.main_pthread

    _main_pthread = main_pthread

    _tid_offset = _kept_by_identity("tid_offset")
    _thread_name_reader = _kept_by_identity("name_reader")

    def pthread_tid_offset(self) -> int:
        """The kernel TID's offset inside glibc's `struct pthread` (3.9/3.10), inferred from the
        live threads if not yet; -1 when the thread state has the native id or none fits."""
        return self.identity.pthread_tid_offset()

    def _native_tid(self, tbuf: bytes) -> int:
        return self.identity.native_tid(tbuf)

    def _infer_tid_offset(self) -> int:
        return self.identity.infer_tid_offset()

    def native_thread_ids(self) -> dict[int, int]:
        """`tstate.thread_id` (how asyncio's tables know a thread) -> the native id samples use,
        for every thread of the main interpreter."""
        identity = self.identity
        interp = identity.first_interp()
        return dict(identity.thread_ids(tbuf) for _tstate, tbuf in identity.iter_threads(interp, identity.interp_bytes(interp)))

    def thread_names(self) -> dict[int, str]:
        """`threading.Thread.name` of the target's Python threads, keyed like `ThreadSample.thread_id`
        (see `ThreadIdentity.thread_names`)."""
        return self.identity.thread_names()

    # -- per sample -----------------------------------------------------------------------------

    def _gil_holder(self, interp_buf: bytes) -> int:
        L = self.L
        if self.t.gil == "runtime":
            lo, hi = _span(L, ["runtime.gil_holder", "runtime.gil_locked"])
            if not hi:
                return 0
            buf = self.memory.read(self.runtime.runtime_addr + lo, hi - lo)
            locked = i32(buf, L["runtime.gil_locked"] - lo)[0]
            return u64(buf, L["runtime.gil_holder"] - lo)[0] if locked else 0
        if "interp.gil_locked" in L:
            locked = i32(interp_buf, L["interp.gil_locked"] - self.interp_lo)[0]
            return u64(interp_buf, L["interp.gil_holder"] - self.interp_lo)[0] if locked else 0
        return -1  # per-thread holds_gil (3.15) is used instead

    def _advance_epoch(self, interp_buf: bytes) -> None:
        L = self.L
        if "interp.code_object_generation" in L:
            gen = u64(interp_buf, L["interp.code_object_generation"] - self.interp_lo)[0]
            if gen != self._generation:
                self._generation = gen
                self.codes.clear()
            return
        now = time.monotonic()
        if now - self._epoch_started >= EPOCH_SECONDS:
            self._epoch_started = now
            self.codes.epoch += 1

    def sample(self) -> list[ThreadSample]:
        """One sample of every wanted thread of every interpreter."""
        L = self.L
        out: list[ThreadSample] = []
        interp = self.identity.first_interp()
        seen_interps = 0
        while interp:
            seen_interps += 1
            if seen_interps > MAX_INTERPRETERS:
                raise ReadError("interpreter list does not end")
            ibuf = self.identity.interp_bytes(interp)
            if seen_interps == 1:
                self._advance_epoch(ibuf)
            self._sample_interp(interp, ibuf, out)
            if not self.all_threads:
                break
            interp = u64(ibuf, L["interp.next"] - self.interp_lo)[0] if "interp.next" in L else 0
        return out

    def _sample_interp(self, interp: int, ibuf: bytes, out: list[ThreadSample]) -> None:
        L = self.L
        lo = self.interp_lo
        interp_id = i32(ibuf, L["interp.id"] - lo)[0] if "interp.id" in L else 0
        holder = self._gil_holder(ibuf)
        collecting = bool(i32(ibuf, L["interp.gc_collecting"] - lo)[0]) if "interp.gc_collecting" in L else False
        main_tstate = u64(ibuf, L["interp.threads_main"] - lo)[0] if "interp.threads_main" in L else 0
        if self.tasks is not None and self.tasks.mode == "all":
            self._sample_tasks(interp, ibuf, interp_id, holder, main_tstate, out)
            return
        first = len(out)
        gc_thread = None
        if not self.all_threads:
            found = self.identity.main_thread(interp, ibuf, main_tstate)
            candidates: Iterator[tuple[int, bytes]] = iter([found] if found else [])
        else:
            candidates = self.identity.iter_threads(interp, ibuf)
        for tstate, tbuf in candidates:
            sample = self._thread(interp, interp_id, tstate, tbuf, holder, main_tstate)
            if sample is None:
                continue
            out.append(sample)
            if collecting and (sample.status & HAS_GIL) and gc_thread is None:
                gc_thread = len(out) - 1
        if collecting and self.gc and len(out) > first:
            idx = gc_thread if gc_thread is not None else first
            s = out[idx]
            # No Python frames (e.g. the collections of interpreter shutdown): nothing to blame.
            if s.frames:
                # The collection is what the thread does in C: it replaces a <native> leaf.
                below = s.frames[1:] if s.frames[0] == NATIVE_FRAME else s.frames
                out[idx] = s._replace(frames=(GC_FRAME,) + below)

    def _sample_tasks(self, interp: int, ibuf: bytes, interp_id: int, holder: int, main_tstate: int,
                      out: list[ThreadSample]) -> None:
        """`--async-mode all`: a stack per leaf asyncio task (`AsyncStacks.task_stacks`), under
        the thread whose list or loop holds it, with that thread's status; a task no live thread
        holds is under thread 0. A task a thread is running shows that thread's walked frames."""
        assert self.tasks is not None
        threads: dict[int, tuple[int, int]] = {}  # tstate.thread_id -> (native tid, status)
        running: dict[int, tuple[Frame, ...]] = {}  # running task -> its own frames, walked
        for tstate, tbuf in self.identity.iter_threads(interp, ibuf):
            thread_id, tid = self.identity.thread_ids(tbuf)
            status = self._gil_status(tstate, tbuf, holder)
            if self.identity.is_main(tstate, tbuf, main_tstate):
                status |= MAIN_THREAD
            threads[thread_id] = (tid, status | self._cpu_status(tid))
            found = self.tasks.running_own(tstate, tbuf, self._frames)
            if found is not None:
                running[found[0]] = found[1]
        for thread_id, frames in self.tasks.task_stacks(running):
            tid, status = threads.get(thread_id, (0, 0))
            out.append(ThreadSample(tid, status, frames, interp_id))

    def _gil_status(self, tstate: int, tbuf: bytes, holder: int) -> int:
        """HAS_GIL when the thread holds its interpreter's GIL (`holder`: `_gil_holder`)."""
        if holder == -1:
            if "tstate.holds_gil" in self.L and i32(tbuf, self.L["tstate.holds_gil"])[0]:
                return HAS_GIL
        elif holder and holder == tstate:
            return HAS_GIL
        return 0

    def _has_exception(self, tstate: int, tbuf: bytes) -> bool:
        L = self.L
        none = self.none
        for key in ("tstate.current_exception", "tstate.curexc_type"):
            if key in L:
                if u64(tbuf, L[key])[0] not in (0, none):
                    return True
                break
        if "tstate.exc_info" in L:
            item = u64(tbuf, L["tstate.exc_info"])[0]
        elif "tstate.exc_state" in L:
            item = tstate + L["tstate.exc_state"]
        else:
            return False
        value_off = L.get("err_stackitem.exc_value", 0)
        prev_off = L.get("err_stackitem.previous_item", 8)
        # The innermost item may belong to a generator that handles nothing; look outwards.
        for _ in range(8):
            if not item:
                return False
            rel = item - tstate
            if 0 <= rel and rel + self.err_item_size <= len(tbuf):
                ibuf, base = tbuf, rel
            else:
                ibuf, base = self.memory.read(item, self.err_item_size), 0
            value = u64(ibuf, base + value_off)[0]
            if value not in (0, none):
                return True
            item = u64(ibuf, base + prev_off)[0]
        return False

    def _thread(
        self, interp: int, interp_id: int, tstate: int, tbuf: bytes, holder: int, main_tstate: int
    ) -> ThreadSample | None:
        # Order matters: the target runs on while we read, so the state taken from `tbuf` must
        # be paired with a stack read right after it; the slower /proc read comes last.
        L = self.L
        mode = self.mode
        status = self._gil_status(tstate, tbuf, holder)
        if self.identity.is_main(tstate, tbuf, main_tstate):
            status |= MAIN_THREAD
        if mode in ("wall", "exception") and self._has_exception(tstate, tbuf):
            status |= HAS_EXCEPTION
        tid = self.identity.thread_ids(tbuf)[1]
        if mode == "cpu":
            status |= self._cpu_status(tid)
        if not mode_accepts(mode, status):
            return None
        if mode == "exception":
            # The stack must be copied while the exception is in flight. A handler and the code
            # after it reuse the same frame addresses, so the pointer checks cannot tell them
            # apart: bracket the copy itself with two reads of the exception state instead.
            def in_flight() -> bytes | None:
                fresh = self.identity.read_tstate(tstate, interp)
                return fresh if self._has_exception(tstate, fresh) else None

            frames = self._frames(tstate, tbuf, guard=in_flight)
            if frames is None:
                return None
        elif self.tasks is None:
            frames = self._frames(tstate, tbuf)
        else:
            frames = self.tasks.frames(tstate, tbuf, self._frames)
            if frames is None:
                return None  # running no task
        if mode != "cpu":
            status |= self._cpu_status(tid)
        return ThreadSample(tid, status, frames, interp_id)

    def _cpu_status(self, tid: int) -> int:
        on_cpu = self.cpu.on_cpu(tid)
        if on_cpu is None:
            return UNKNOWN
        return ON_CPU if on_cpu else 0

    # -- frames ---------------------------------------------------------------------------------

    def _frames(
        self, tstate: int, tbuf: bytes, guard: Callable[[], bytes | None] | None = None
    ) -> tuple[Frame, ...] | None:
        """The thread's stack, leaf first, checked for consistency.

        The target keeps running while we read. Frames below the top one are suspended and
        cannot change while the top frame stays the same, so a stack copy is consistent if the
        top frame pointer is unchanged right after it was taken. The check must follow the copy
        closely: a slow walk gives a recursing target time to unwind and rebuild its stack at the
        same addresses, which the pointer alone cannot tell. Each walker says whether its copy
        holds; retry twice, then give up.

        `guard`, if given, must hold right before and right after the copy (within
        GUARD_WINDOW_S); if it does not, the thread is left out of this sample (None). It
        returns the thread state it read, from which the copy is then taken.
        """
        holds: Callable[[], bool] | None = None
        for attempt in range(3):
            fresh = attempt > 0
            if guard is not None:
                opened = time.perf_counter()
                guarded = guard()
                if guarded is None:
                    return None
                tbuf, fresh = guarded, False
                holds = self._guard_check(guard, opened)
            top = self._top_frame(tstate, tbuf, fresh)
            if not top:
                return ()
            frames = self._walker.attempt(tstate, tbuf, top, fresh, holds)
            if frames is not None:
                return frames
        raise TornStack("the stack kept changing while it was read")

    @staticmethod
    def _guard_check(guard: Callable[[], bytes | None], opened: float) -> Callable[[], bool]:
        """The check that `guard` still holds and the copy took at most GUARD_WINDOW_S since `opened`."""
        return lambda: guard() is not None and time.perf_counter() - opened <= GUARD_WINDOW_S

    def _top_frame(self, tstate: int, tbuf: bytes, fresh: bool) -> int:
        L = self.L
        mem = self.memory
        root = self.t.frame_root
        if root == "cframe":
            cf = mem.read_u64(tstate + L["tstate.cframe"]) if fresh else u64(tbuf, L["tstate.cframe"])[0]
            if not cf:
                return 0
            rel = cf - tstate + L["cframe.current_frame"]
            if not fresh and 0 <= rel <= len(tbuf) - 8:
                return u64(tbuf, rel)[0]
            return mem.read_u64(cf + L["cframe.current_frame"])
        off = L[root]
        return mem.read_u64(tstate + off) if fresh else u64(tbuf, off)[0]

    # -- lifecycle ------------------------------------------------------------------------------

    def alive(self) -> bool:
        return not is_gone(self.pid)

    def close(self) -> None:
        self.cpu.close()
        self.memory.close()


__all__ = [
    "CHUNK_DATA",
    "CHUNK_MIN_BYTES",
    "CHUNK_PREVIOUS",
    "CHUNK_TOP",
    "GUARD_WINDOW_S",
    "MAX_CHUNKS",
    "MAX_CHUNK_BYTES",
    "MAX_DEPTH",
    "MAX_THREADS",
    "MAX_WALK",
    "TRUNCATED_FRAME",
    "ProcessGoneError",
    "TornStack",
    "Unwinder",
]
