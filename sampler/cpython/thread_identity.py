"""Which thread a thread state is: its kernel TID, whether it is the main thread, its name.

3.11+ store the native TID in the thread state. 3.9/3.10 store only the `pthread_t`, a pointer to
glibc's `struct pthread`, which holds the TID at an offset glibc does not publish: it is inferred
from the live threads once, and again if it turns out wrong.
"""

from __future__ import annotations

from typing import Iterator

from sampler.cpython.runtime import Runtime
from sampler.cpython.thread_names import ThreadNames, read_comm_names
from sampler.errors import ReadError
from sampler.target.memory import I32, U64, RemoteMemory
from sampler.target.threads import task_ids

MAX_THREADS = 4096
MAX_INTERPRETERS = 256  # a longer interpreter list is a torn read, not a process
# How much of the main thread's `struct pthread` is searched for the TID field.
PTHREAD_SEARCH_BYTES = 2048

u64 = U64.unpack_from
i32 = I32.unpack_from


class ThreadIdentity:
    """Thread states of an interpreter, and who each one is."""

    def __init__(self, pid: int, memory: RemoteMemory, runtime: Runtime, interp_span: tuple[int, int]) -> None:
        self.pid = pid
        self.memory = memory
        self.runtime = runtime
        self.L = runtime.layout
        # The part of the interpreter state that the facade reads in one go: `ibuf` starts here.
        self.interp_lo, self.interp_hi = interp_span
        self.tstate_size = self.L["tstate.size"]
        self.main_tstate = 0
        self.main_pthread = self._read_main_pthread()
        self.tid_offset: int | None = None
        self.wrong_tid_offsets: set[int] = set()
        self.name_reader: ThreadNames | None = None

    def _read_main_pthread(self) -> int:
        off = self.L.get("runtime.main_thread")
        if off is None or "interp.threads_main" in self.L:
            return 0
        try:
            return self.memory.read_u64(self.runtime.runtime_addr + off)
        except ReadError:
            return 0

    # -- thread states --------------------------------------------------------------------------

    def read_tstate(self, addr: int, interp: int) -> bytes:
        tbuf = self.memory.read(addr, self.tstate_size)
        if u64(tbuf, self.L["tstate.interp"])[0] != interp:
            raise ReadError(f"thread state {addr:#x} does not belong to interpreter {interp:#x}")
        return tbuf

    def iter_threads(self, interp: int, ibuf: bytes) -> Iterator[tuple[int, bytes]]:
        """Thread states one at a time, so each is processed right after it is read."""
        L = self.L
        tstate = u64(ibuf, L["interp.threads_head"] - self.interp_lo)[0]
        count = 0
        while tstate:
            count += 1
            if count > MAX_THREADS:
                raise ReadError("thread list does not end")
            tbuf = self.read_tstate(tstate, interp)
            yield tstate, tbuf
            tstate = u64(tbuf, L["tstate.next"])[0]

    def all_threads(self, interp: int, ibuf: bytes) -> list[tuple[int, bytes]]:
        return list(self.iter_threads(interp, ibuf))

    # -- the main thread ------------------------------------------------------------------------

    def is_main(self, tstate: int, tbuf: bytes, main_tstate: int) -> bool:
        if main_tstate:
            return tstate == main_tstate
        if self.main_pthread:
            return u64(tbuf, self.L["tstate.thread_id"])[0] == self.main_pthread
        return False

    def main_thread(self, interp: int, ibuf: bytes, main_tstate: int) -> tuple[int, bytes] | None:
        if main_tstate:
            return main_tstate, self.read_tstate(main_tstate, interp)
        cached = self.main_tstate
        if cached:
            try:
                tbuf = self.read_tstate(cached, interp)
                if self.is_main(cached, tbuf, 0):
                    return cached, tbuf
            except ReadError:
                pass
        threads = self.all_threads(interp, ibuf)
        if not threads:
            return None
        for tstate, tbuf in threads:
            if self.is_main(tstate, tbuf, 0):
                self.main_tstate = tstate
                return tstate, tbuf
        # Threads are pushed at the head, so the oldest (the main thread) is the last one.
        self.main_tstate = threads[-1][0]
        return threads[-1]

    # -- kernel TIDs ----------------------------------------------------------------------------

    def native_tid(self, tbuf: bytes) -> int:
        L = self.L
        if "tstate.native_thread_id" in L:
            return u64(tbuf, L["tstate.native_thread_id"])[0]
        pthread = u64(tbuf, L["tstate.thread_id"])[0]
        for _ in range(2):
            if self.tid_offset is None:
                self.tid_offset = self.infer_tid_offset()
            if self.tid_offset < 0 or not pthread:
                return 0
            try:
                tid = I32.unpack(self.memory.read(pthread + self.tid_offset, 4))[0]
            except ReadError:
                return 0
            if tid != self.pid or not self.main_pthread or pthread == self.main_pthread:
                return tid
            # Only the main thread's TID is the PID: the offset, inferred while the other threads
            # happened to agree, is some other field that held the PID. Infer again without it.
            self.wrong_tid_offsets.add(self.tid_offset)
            self.tid_offset = None
        return 0

    def pthread_tid_offset(self) -> int:
        """The TID's offset in `struct pthread`, inferred now if not yet; -1 when the thread
        state carries the native id itself (3.11+) or no offset fits."""
        if "tstate.native_thread_id" in self.L:
            return -1
        if self.tid_offset is None:
            self.tid_offset = self.infer_tid_offset()
        return self.tid_offset

    def infer_tid_offset(self) -> int:
        """Where glibc keeps the kernel TID inside `struct pthread` (3.9/3.10 have no native id).

        The main thread's `struct pthread` holds the PID as its TID; the first offset where it
        does, and where the threads' values are distinct tasks of the process, is the one.
        """
        if not self.main_pthread:
            return -1
        try:
            buf = self.memory.read(self.main_pthread, PTHREAD_SEARCH_BYTES)
        except ReadError:
            return -1
        tasks = set(task_ids(self.pid))
        interp = self.first_interp()
        # thread_id itself: the native id is what this inference is for
        pthreads = [u64(tb, self.L["tstate.thread_id"])[0] for _, tb in self.all_threads(interp, self.interp_bytes(interp))]
        for off in range(0, len(buf) - 4, 4):
            if i32(buf, off)[0] != self.pid or off in self.wrong_tid_offsets:
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

    # -- reading the thread list ----------------------------------------------------------------

    def first_interp(self) -> int:
        """The address of the first (main) interpreter's state."""
        return self.memory.read_u64(self.runtime.runtime_addr + self.L["runtime.interpreters_head"])

    def interp_bytes(self, interp: int) -> bytes:
        """The part of interpreter state `interp` the sampler reads (from `interp_lo` on)."""
        return self.memory.read(interp + self.interp_lo, self.interp_hi - self.interp_lo)

    def thread_ids(self, tbuf: bytes) -> tuple[int, int]:
        """A thread state's `thread_id` (how Python and asyncio's tables know a thread) and the
        id samples use: its native (kernel) id, or `thread_id` where that cannot be had."""
        thread_id = u64(tbuf, self.L["tstate.thread_id"])[0]
        return thread_id, self.native_tid(tbuf) or thread_id

    # -- names ----------------------------------------------------------------------------------

    def thread_names(self) -> dict[int, str]:
        """`threading.Thread.name` of the target's Python threads, keyed like `ThreadSample.thread_id`.

        3.9-3.13: read from each interpreter's `threading._active`; {} for an interpreter that
        never imported threading. 3.14+: the OS thread names CPython gives the threads it starts
        (`/proc/PID/task/TID/comm`, cut to 15 bytes), without the main thread. {} if the target's
        memory cannot be read consistently right now.
        """
        reader = self.name_reader
        if reader is None:
            reader = self.name_reader = ThreadNames(self.memory, self.runtime)
        L = self.L
        names: dict[int, str] = {}
        tids: list[int] = []
        try:
            interp = self.first_interp()
            for _ in range(MAX_INTERPRETERS):
                if not interp:
                    break
                by_ident = reader.read(interp) if reader.supported else {}
                ibuf = self.interp_bytes(interp)
                for _tstate, tbuf in self.iter_threads(interp, ibuf):
                    ident, tid = self.thread_ids(tbuf)
                    tids.append(tid)
                    if ident in by_ident:
                        names[tid] = by_ident[ident]
                interp = u64(ibuf, L["interp.next"] - self.interp_lo)[0] if "interp.next" in L else 0
        except ReadError:
            return {}
        return names if reader.supported else read_comm_names(self.pid, tids)
