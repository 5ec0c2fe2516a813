"""Walking a live CPython's threads and frames from outside, one sample at a time.

The target is never stopped and never written to. Each sample reads the interpreter state, each
thread state, and (3.11+) the thread's current stack chunk in one read, then parses frames from
that local copy; code objects come from `CodeCache`. Inconsistent data (a torn read of a stack
that changed under us) raises `ReadError`, which the sampling loop counts as a failed sample.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

from sampler.cpython.code_objects import CodeCache
from sampler.cpython.runtime import Runtime, locate_runtime
from sampler.cpython.thread_names import ThreadNames, read_comm_names
from sampler.errors import ProcessGoneError, ReadError
from sampler.model import (
    GC_FRAME,
    HAS_EXCEPTION,
    HAS_GIL,
    MAIN_THREAD,
    ON_CPU,
    SYNTHETIC_FILENAME,
    UNKNOWN,
    Frame,
    ThreadSample,
    mode_accepts,
)
from sampler.target.maps import is_gone
from sampler.target.memory import I32, U64, RemoteMemory
from sampler.target.threads import CpuStates, task_ids

MAX_THREADS = 4096
# A stack deeper than this keeps its innermost MAX_DEPTH frames and ends in TRUNCATED_FRAME: the
# walk and its re-read cost grow with depth (about 10 µs a frame on 3.9/3.10), so a recursion
# thousands deep must not make every sample slow, nor fail. Stacks this deep worked before the
# cut existed, so it changes nothing for them.
MAX_DEPTH = 2048
# Frames walked but not reported (entry frames, the __init__ shim) are at most about one per
# reported frame; a longer chain is not a stack.
MAX_WALK = 4 * MAX_DEPTH
TRUNCATED_FRAME = Frame(SYNTHETIC_FILENAME, "<truncated>", 0)
MAX_CHUNK_BYTES = 16 << 20
MAX_CHUNKS = 64  # stack chunks followed per thread: 16 KiB each at first, then larger
# _PyStackChunk (3.11-3.15): previous, size, top (slots in use, saved when a newer chunk is
# pushed), then the data slots.
CHUNK_PREVIOUS, CHUNK_TOP, CHUNK_DATA = 0, 16, 24
CHUNK_MIN_BYTES = 16 << 10  # _PY_DATA_STACK_CHUNK_SIZE: no chunk is smaller
EPOCH_SECONDS = 1.0
GUARD_WINDOW_S = 100e-6

u64 = U64.unpack_from
i32 = I32.unpack_from


class TornStack(ReadError):
    """The stack copy holds frames from different moments: retried, then counted as an error."""


def _span(layout: dict[str, int], keys: list[str], width: int = 8) -> tuple[int, int]:
    offs = [layout[k] for k in keys if k in layout]
    if not offs:
        return 0, 0
    return min(offs), max(offs) + width


class Unwinder:
    """Produces `ThreadSample`s for one target process."""

    def __init__(
        self,
        pid: int,
        *,
        all_threads: bool = False,
        mode: str = "wall",
        gc: bool = True,
        memory: RemoteMemory | None = None,
    ) -> None:
        self.pid = pid
        self.all_threads = all_threads
        self.mode = mode
        self.gc = gc
        self.memory = memory or RemoteMemory(pid)
        self.runtime: Runtime = locate_runtime(pid, self.memory)
        self.codes = CodeCache(self.memory, self.runtime)
        self.cpu = CpuStates(pid)
        self._setup_layout()
        self._main_tstate = 0
        self._main_pthread = self._read_main_pthread()
        self._tid_offset: int | None = None
        self._wrong_tid_offsets: set[int] = set()
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

    def _read_main_pthread(self) -> int:
        off = self.L.get("runtime.main_thread")
        if off is None or "interp.threads_main" in self.L:
            return 0
        try:
            return self.memory.read_u64(self.runtime.runtime_addr + off)
        except ReadError:
            return 0

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
        rt = self.runtime
        out: list[ThreadSample] = []
        interp = self.memory.read_u64(rt.runtime_addr + L["runtime.interpreters_head"])
        seen_interps = 0
        while interp:
            seen_interps += 1
            if seen_interps > 256:
                raise ReadError("interpreter list does not end")
            ibuf = self.memory.read(interp + self.interp_lo, self.interp_hi - self.interp_lo)
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
        first = len(out)
        gc_thread = None
        if not self.all_threads:
            found = self._main_thread(interp, ibuf, main_tstate)
            candidates: Iterator[tuple[int, bytes]] = iter([found] if found else [])
        else:
            candidates = self._iter_threads(interp, ibuf)
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
                out[idx] = s._replace(frames=(GC_FRAME,) + s.frames)

    def _read_tstate(self, addr: int, interp: int) -> bytes:
        tbuf = self.memory.read(addr, self.tstate_size)
        if u64(tbuf, self.L["tstate.interp"])[0] != interp:
            raise ReadError(f"thread state {addr:#x} does not belong to interpreter {interp:#x}")
        return tbuf

    def _iter_threads(self, interp: int, ibuf: bytes) -> Iterator[tuple[int, bytes]]:
        """Thread states one at a time, so each is processed right after it is read."""
        L = self.L
        tstate = u64(ibuf, L["interp.threads_head"] - self.interp_lo)[0]
        count = 0
        while tstate:
            count += 1
            if count > MAX_THREADS:
                raise ReadError("thread list does not end")
            tbuf = self._read_tstate(tstate, interp)
            yield tstate, tbuf
            tstate = u64(tbuf, L["tstate.next"])[0]

    def _all_threads(self, interp: int, ibuf: bytes) -> list[tuple[int, bytes]]:
        return list(self._iter_threads(interp, ibuf))

    def _is_main(self, tstate: int, tbuf: bytes, main_tstate: int) -> bool:
        if main_tstate:
            return tstate == main_tstate
        if self._main_pthread:
            return u64(tbuf, self.L["tstate.thread_id"])[0] == self._main_pthread
        return False

    def _main_thread(self, interp: int, ibuf: bytes, main_tstate: int) -> tuple[int, bytes] | None:
        if main_tstate:
            return main_tstate, self._read_tstate(main_tstate, interp)
        cached = self._main_tstate
        if cached:
            try:
                tbuf = self._read_tstate(cached, interp)
                if self._is_main(cached, tbuf, 0):
                    return cached, tbuf
            except ReadError:
                pass
        threads = self._all_threads(interp, ibuf)
        if not threads:
            return None
        for tstate, tbuf in threads:
            if self._is_main(tstate, tbuf, 0):
                self._main_tstate = tstate
                return tstate, tbuf
        # Threads are pushed at the head, so the oldest (the main thread) is the last one.
        self._main_tstate = threads[-1][0]
        return threads[-1]

    def _native_tid(self, tbuf: bytes) -> int:
        L = self.L
        if "tstate.native_thread_id" in L:
            return u64(tbuf, L["tstate.native_thread_id"])[0]
        pthread = u64(tbuf, L["tstate.thread_id"])[0]
        for _ in range(2):
            if self._tid_offset is None:
                self._tid_offset = self._infer_tid_offset()
            if self._tid_offset < 0 or not pthread:
                return 0
            try:
                tid = I32.unpack(self.memory.read(pthread + self._tid_offset, 4))[0]
            except ReadError:
                return 0
            if tid != self.pid or not self._main_pthread or pthread == self._main_pthread:
                return tid
            # Only the main thread's TID is the PID: the offset, inferred while the other threads
            # happened to agree, is some other field that held the PID. Infer again without it.
            self._wrong_tid_offsets.add(self._tid_offset)
            self._tid_offset = None
        return 0

    def _infer_tid_offset(self) -> int:
        """Where glibc keeps the kernel TID inside `struct pthread` (3.9/3.10 have no native id).

        The main thread's `struct pthread` holds the PID as its TID; the first offset where it
        does, and where the threads' values are distinct tasks of the process, is the one.
        """
        if not self._main_pthread:
            return -1
        try:
            buf = self.memory.read(self._main_pthread, 2048)
        except ReadError:
            return -1
        tasks = set(task_ids(self.pid))
        interp = self.memory.read_u64(self.runtime.runtime_addr + self.L["runtime.interpreters_head"])
        ibuf = self.memory.read(interp + self.interp_lo, self.interp_hi - self.interp_lo)
        pthreads = [u64(tb, self.L["tstate.thread_id"])[0] for _, tb in self._all_threads(interp, ibuf)]
        for off in range(0, len(buf) - 4, 4):
            if i32(buf, off)[0] != self.pid or off in self._wrong_tid_offsets:
                continue
            seen: set[int] = set()
            for p in pthreads:
                try:
                    tid = I32.unpack(self.memory.read(p + off, 4))[0]
                except ReadError:
                    break
                # every thread's TID is one of the process's tasks, and no two threads share one
                if tid not in tasks or tid in seen:
                    break
                seen.add(tid)
            else:
                return off
        return -1

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
        status = 0
        if holder == -1:
            if "tstate.holds_gil" in L and i32(tbuf, L["tstate.holds_gil"])[0]:
                status |= HAS_GIL
        elif holder and holder == tstate:
            status |= HAS_GIL
        if self._is_main(tstate, tbuf, main_tstate):
            status |= MAIN_THREAD
        if mode in ("wall", "exception") and self._has_exception(tstate, tbuf):
            status |= HAS_EXCEPTION
        tid = self._native_tid(tbuf) or u64(tbuf, L["tstate.thread_id"])[0]
        if mode == "cpu":
            status |= self._cpu_status(tid)
        if not mode_accepts(mode, status):
            return None
        if mode == "exception":
            # The stack must be copied while the exception is in flight. A handler and the code
            # after it reuse the same frame addresses, so the pointer checks cannot tell them
            # apart: bracket the copy itself with two reads of the exception state instead.
            def in_flight() -> bytes | None:
                fresh = self._read_tstate(tstate, interp)
                return fresh if self._has_exception(tstate, fresh) else None

            frames = self._frames(tstate, tbuf, guard=in_flight)
            if frames is None:
                return None
        else:
            frames = self._frames(tstate, tbuf)
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
        same addresses, which the pointer alone cannot tell. Retry twice, then give up.

        `guard`, if given, must hold right before and right after the copy (within
        GUARD_WINDOW_S); if it does not, the thread is left out of this sample (None). It
        returns the thread state it read, from which the copy is then taken.
        """
        for attempt in range(3):
            fresh = attempt > 0
            if guard is not None:
                opened = time.perf_counter()
                guarded = guard()
                if guarded is None:
                    return None
                tbuf, fresh = guarded, False
            top = self._top_frame(tstate, tbuf, fresh)
            if not top:
                return ()
            if self.t.frame_kind == "object":
                # A live frame object holds its f_back alive, and suspended frames do not
                # change: if the old top frame is still the same live activation after the walk,
                # everything below it was stable while we read it (whatever it called since).
                try:
                    frames, head, walked = self._object_frames(top)
                except TornStack:
                    continue
                if (
                    self._same_frame_object(top, head)
                    and self._object_frames_unchanged(walked)
                    and self._guard_holds(guard, opened if guard else 0.0)
                ):
                    return frames
                continue
            chunks = self._read_chunks(tstate, tbuf, fresh)
            if guard is not None and not self._guard_holds(guard, opened):
                continue
            # The copy is trustworthy if the top frame is still live right after it...
            now = self._top_frame(tstate, tbuf, fresh=True)
            if now != top and not self._descends_from(now, top):
                continue
            if not self._suspended_unchanged(chunks, top, now):
                continue
            try:
                frames, starts = self._interp_frames(top, chunks)
            except TornStack:
                continue
            # ...and entry frames on the C stack and generator frames, read during the walk,
            # were live only if the stack has not unwound past them afterwards.
            settled = self._settle(tstate, tbuf, top, frames, starts)
            # A thread with a current frame runs Python code: no frames at all means the walk
            # met frames half-built or half-cleared.
            if not settled:
                continue
            # A stack cut down to where the top returned is the stack after the guard's last
            # look, which the guard does not vouch for (the handler may have returned): look again.
            if guard is not None and settled is not frames:
                continue
            return settled
        raise TornStack("the stack kept changing while it was read")

    def _suspended_unchanged(self, chunks: list[tuple[int, bytes]], top: int, now: int) -> bool:
        """Whether the copied frames below the live one read the same again.

        Suspended frames do not change, so a difference means the stack unwound and was rebuilt
        at the same addresses while it was being copied: the copy then holds frames caught
        mid-rebuild (a caller seen before it made its call) under a top frame whose pointer
        checks out. Frames from the live one up are left out: they may run on. Older chunks
        hold only suspended frames.

        The top frame itself may run on, but its code and caller are fixed for as long as it
        lives, so they must read the same too. They do not when the copy caught its slot
        between two activations: the callee returned and the slot was taken by another frame
        (pushed again for the next call of a callback, whose caller is linked only after the
        push; or reused by a sibling call, e.g. build() -> __init__ where plain() -> spin()
        had been, leaving a stale spin frame under build() in the copy).
        """
        L = self.L
        fixed = [(L[k], L[k] + 8) for k in ("frame.previous", "frame.code")]
        try:
            for i, (chunk, cbuf) in enumerate(chunks):
                length = len(cbuf)
                head = 0
                if i == 0:
                    edge = now if chunk <= now < top else top
                    if not chunk <= edge <= chunk + length:
                        continue  # the live frame is elsewhere (a generator, a C-stack shim)
                    length = edge - chunk
                    if edge == top and length + self.frame_read <= len(cbuf):
                        head = self.frame_read  # the top frame is still live: check its header
                if length + head <= 0:
                    continue
                fresh = self.memory.read(chunk, length + head)
                if fresh[:length] != cbuf[:length]:
                    return False
                if head and any(fresh[length + a : length + b] != cbuf[length + a : length + b] for a, b in fixed):
                    return False
        except ReadError:
            return False
        return True

    @staticmethod
    def _guard_holds(guard: Callable[[], bytes | None] | None, opened: float) -> bool:
        if guard is None:
            return True
        return guard() is not None and time.perf_counter() - opened <= GUARD_WINDOW_S

    def _descends_from(self, frame: int, ancestor: int, hops: int = 3) -> bool:
        """Whether `ancestor` is among the first `hops` callers of `frame` (a leaf that called on)."""
        prev_off = self.L["frame.previous"]
        for _ in range(hops):
            if frame < 4096:
                return False
            try:
                frame = self.memory.read_u64(frame + prev_off)
            except ReadError:
                return False  # a C-stack entry frame caught half-built: not a live callee
            if frame == ancestor:
                return True
        return False

    def _settle(
        self, tstate: int, tbuf: bytes, top: int, frames: tuple[Frame, ...], starts: dict[int, int]
    ) -> tuple[Frame, ...] | None:
        """The walked stack as it stands now, or None if the thread moved to other code.

        Same top, or a callee of it: the walk holds. The top returned to one of the walked
        frames: the stack from there down is the thread's true stack now. Anything else: torn.
        """
        now = self._top_frame(tstate, tbuf, fresh=True)
        if now == top:
            return frames
        index = starts.get(now)
        if index is not None:
            return frames[index:]
        return frames if self._descends_from(now, top) else None

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

    def _same_frame_object(self, addr: int, head: bytes) -> bool:
        L = self.L
        now = self.memory.read(addr, self.frame_read)
        return (
            u64(now, 0)[0] > 0
            and now[L["frame.previous"] : L["frame.previous"] + 8] == head[L["frame.previous"] : L["frame.previous"] + 8]
            and now[L["frame.code"] : L["frame.code"] + 8] == head[L["frame.code"] : L["frame.code"] + 8]
        )

    def _object_frames(self, f: int) -> tuple[tuple[Frame, ...], bytes, list[tuple[int, bytes]]]:
        """The walk from frame object `f`: frames leaf first, the top frame's bytes, and each
        caller's (address, bytes) for `_object_frames_unchanged`."""
        L = self.L
        prev_off, code_off, lasti_off = L["frame.previous"], L["frame.code"], L["frame.lasti"]
        scale = self.t.lasti_scale
        frames: list[Frame] = []
        walked: list[tuple[int, bytes]] = []
        seen: set[int] = set()
        head = b""
        while f:
            if len(frames) >= MAX_DEPTH:
                # Cut, not torn: the kept frames are checked by the caller as any walk's are.
                return tuple(frames) + (TRUNCATED_FRAME,), head, walked
            if f in seen:
                # A live chain never comes back to a frame: a loop is a torn read, never cut.
                raise TornStack("the frame chain loops: the stack changed")
            seen.add(f)
            try:
                fb = self.memory.read(f, self.frame_read)
            except ReadError as exc:
                # f_back of a frame object freed (and its memory reused) during the walk
                raise TornStack(f"{exc}: the stack changed") from None
            if not head:
                head = fb
            else:
                walked.append((f, fb))
            if not u64(fb, 0)[0]:
                raise TornStack("walked into a freed frame object")
            try:
                info = self.codes.get(u64(fb, code_off)[0])
            except ReadError as exc:
                raise TornStack(f"{exc}: the stack changed") from None
            lasti = i32(fb, lasti_off)[0]
            if lasti < 0 and frames:
                raise TornStack("a frame with callees has not started: the stack changed")
            frames.append(info.frame_at(lasti * scale if lasti >= 0 else -1))
            f = u64(fb, prev_off)[0]
        return tuple(frames), head, walked

    def _object_frames_unchanged(self, walked: list[tuple[int, bytes]]) -> bool:
        """Whether the callers read the same again: suspended frames do not change, but 3.9/3.10
        reuse a code object's frame object for its next call, so a stack unwound and rebuilt
        during a walk frame by frame can splice stale and new frames into one that never was."""
        L = self.L
        fields = [(L[k], L[k] + 8) for k in ("frame.previous", "frame.code")]
        fields.append((L["frame.lasti"], L["frame.lasti"] + 4))
        try:
            for addr, before in walked:
                now = self.memory.read(addr, self.frame_read)
                if any(now[a:b] != before[a:b] for a, b in fields):
                    return False
        except ReadError:
            return False
        return True

    def _read_chunks(self, tstate: int, tbuf: bytes, fresh: bool) -> list[tuple[int, bytes]]:
        """The used part of each of the thread's stack chunks, one read each, newest first:
        [(address, bytes)]. A deep stack spans several chunks; reading them whole (rather than
        frame by frame) keeps the copy short, so a stack rebuilt meanwhile is rarer and caught."""
        L = self.L
        if fresh:
            tbuf = self.memory.read(tstate, self.tstate_size)
        chunk = u64(tbuf, L["tstate.datastack_chunk"])[0]
        top = u64(tbuf, L["tstate.datastack_top"])[0]
        if not (chunk and chunk < top <= chunk + MAX_CHUNK_BYTES):
            return [(0, b"")]
        cbuf = self.memory.read(chunk, top - chunk)
        chunks = [(chunk, cbuf)]
        previous = u64(cbuf, CHUNK_PREVIOUS)[0] if len(cbuf) >= CHUNK_DATA else 0
        while previous and len(chunks) < MAX_CHUNKS:
            try:
                # an older chunk is full (a newer one was pushed): read the smallest chunk size
                # whole, and again only for a bigger chunk
                older = self.memory.read(previous, CHUNK_MIN_BYTES)
                used = CHUNK_DATA + 8 * u64(older, CHUNK_TOP)[0]
                if not CHUNK_DATA < used <= MAX_CHUNK_BYTES:
                    break
                older = older[:used] if used <= len(older) else self.memory.read(previous, used)
            except ReadError:
                break  # frames there are read one by one, as any frame outside the copies
            chunks.append((previous, older))
            previous = u64(older, CHUNK_PREVIOUS)[0]
        return chunks

    def _interp_frames(self, f: int, chunks: list[tuple[int, bytes]]) -> tuple[tuple[Frame, ...], dict[int, int]]:
        """Frames from `f` down, leaf first, and for each walked frame address the index of the
        first reported frame at or below it (entry and shim frames are walked, not reported).

        Raises TornStack when the copy cannot be one moment of the thread's stack. Besides a
        caller that has not started, that is a walk that ends before the bottom of the data
        stack: every frame on it belongs to the thread's one call chain, so the chain must come
        down to the first frame of the oldest chunk. It does not when the copy caught the top
        frame being pushed again at the address the pointer check saw (a callback that C calls
        in a loop, e.g. a sort key): `previous` is linked only after the push, and a walk that
        ends there would report the callback without its callers.
        """
        L = self.L
        t = self.t
        mem = self.memory
        chunk, cbuf = chunks[0]
        clen = len(cbuf)
        older = chunks[1:]
        prev_off, code_off, ip_off, owner_off = L["frame.previous"], L["frame.code"], L["frame.instr_ptr"], L["frame.owner"]
        need = self.frame_read
        mask = ~t.code_tag_mask
        skip = t.skip_owners
        codes = self.codes
        frames: list[Frame] = []
        starts: dict[int, int] = {}
        lowest = 0  # the last walked frame that lies in the data-stack copy
        while f:
            if f in starts:
                # A live chain never comes back to a frame: a loop is a torn read, never cut.
                raise TornStack(f"the frame chain loops at {f:#x}: the stack changed")
            if len(starts) >= MAX_WALK:
                raise ReadError("too many stack frames")
            starts[f] = len(frames)
            rel = f - chunk
            if chunk and 0 <= rel and rel + need <= clen:
                fb, base = cbuf, rel
                lowest = f
            else:
                for start, buf in older:
                    if 0 <= f - start and f - start + need <= len(buf):
                        fb, base = buf, f - start
                        lowest = f
                        break
                else:
                    # Outside the copies: an entry frame on the C stack, a generator's frame, or
                    # an address taken from a frame caught half-built (3.12 links `previous` only
                    # after the push, so it may hold anything until then).
                    if f & 7 or f < 4096:
                        raise TornStack(f"a frame at {f:#x} is not a frame address: the stack changed")
                    if any(0 <= f - start < len(buf) for start, buf in chunks):
                        lowest = f  # a frame smaller than `need` at the very end of a copy
                    try:
                        fb, base = mem.read(f, need), 0
                    except ReadError as exc:
                        raise TornStack(f"{exc}: the stack changed") from None
            prev = u64(fb, base + prev_off)[0]
            owner = fb[base + owner_off]
            if owner in skip:
                f = prev
                continue
            code = u64(fb, base + code_off)[0] & mask
            if not code:
                f = prev
                continue
            try:
                info = codes.get(code)
            except ReadError as exc:
                # a code pointer from a frame caught half-built, or one whose code was freed
                raise TornStack(f"{exc}: the stack changed") from None
            if info.is_shim:
                f = prev
                continue
            offset = u64(fb, base + ip_off)[0] - info.code_start
            # A frame that called another must be past its first instruction (RESUME); one
            # that is not was pushed after our copy's top frame, i.e. the copy is torn.
            if frames and offset <= 0:
                raise TornStack(
                    f"{info.name} has not started yet calls {frames[-1].funcname}: the stack changed"
                )
            if len(frames) == MAX_DEPTH:
                # Cut below the innermost MAX_DEPTH frames (this one, their caller, was checked
                # above). The chain goes on, so it cannot be one that stops above the bottom of
                # the data stack: the bottom check has nothing to say about a cut walk. Frames
                # walked below the kept ones leave `starts`: a top that returned there has
                # unwound every kept frame, and `_settle` must not report the marker alone.
                kept = {addr: i for addr, i in starts.items() if i < MAX_DEPTH}
                return tuple(frames) + (TRUNCATED_FRAME,), kept
            frames.append(info.frame_at(offset))
            f = prev
        self._check_bottom(chunks, lowest)
        return tuple(frames), starts

    @staticmethod
    def _check_bottom(chunks: list[tuple[int, bytes]], lowest: int) -> None:
        """Raise TornStack unless the walk came down to the bottom of the data stack.

        The oldest chunk (no `previous`) is never freed; its first frame sits in its first data
        slot, or the second (CPython keeps the first slot so that popping the bottom frame does
        not free the chunk). Unknown when the chunks were not all read: nothing is checked then.
        """
        root, rbuf = chunks[-1]
        if not root or len(rbuf) < CHUNK_DATA or u64(rbuf, CHUNK_PREVIOUS)[0]:
            return
        base = root + CHUNK_DATA
        if lowest in (base, base + 8):
            return
        # An empty data stack (only the kept slot) has no bottom frame to reach.
        if not lowest and len(chunks) == 1 and len(rbuf) <= CHUNK_DATA + 8:
            return
        raise TornStack("the frame chain stops above the bottom of the data stack: the stack changed")

    # -- lifecycle ------------------------------------------------------------------------------

    def alive(self) -> bool:
        return not is_gone(self.pid)

    def close(self) -> None:
        self.cpu.close()
        self.memory.close()

    # -- thread names ---------------------------------------------------------------------------

    _thread_name_reader: ThreadNames | None = None

    def thread_names(self) -> dict[int, str]:
        """`threading.Thread.name` of the target's Python threads, keyed like `ThreadSample.thread_id`.

        3.9-3.13: read from each interpreter's `threading._active`; {} for an interpreter that
        never imported threading. 3.14+: the OS thread names CPython gives the threads it starts
        (`/proc/PID/task/TID/comm`, cut to 15 bytes), without the main thread. {} if the target's
        memory cannot be read consistently right now.
        """
        reader = self._thread_name_reader
        if reader is None:
            reader = self._thread_name_reader = ThreadNames(self.memory, self.runtime)
        L = self.L
        names: dict[int, str] = {}
        tids: list[int] = []
        try:
            interp = self.memory.read_u64(self.runtime.runtime_addr + L["runtime.interpreters_head"])
            for _ in range(256):
                if not interp:
                    break
                by_ident = reader.read(interp) if reader.supported else {}
                ibuf = self.memory.read(interp + self.interp_lo, self.interp_hi - self.interp_lo)
                for _tstate, tbuf in self._iter_threads(interp, ibuf):
                    ident = u64(tbuf, L["tstate.thread_id"])[0]
                    tid = self._native_tid(tbuf) or ident
                    tids.append(tid)
                    if ident in by_ident:
                        names[tid] = by_ident[ident]
                interp = u64(ibuf, L["interp.next"] - self.interp_lo)[0] if "interp.next" in L else 0
        except ReadError:
            return {}
        return names if reader.supported else read_comm_names(self.pid, tids)


__all__ = ["Unwinder", "ProcessGoneError"]
