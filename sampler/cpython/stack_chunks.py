"""The 3.11+ stack walk: `_PyInterpreterFrame`s on the thread's data stack, and the checks that
tell a copy of one moment of that stack from one torn by the running target.

A deep stack spans several chunks; each is read whole (rather than frame by frame), which keeps
the copy short, so a stack rebuilt meanwhile is rarer and caught. Also home of the walk limits
and `TornStack`, which the 3.9/3.10 frame-object walk shares.
"""

from __future__ import annotations

from typing import Callable

from sampler.cpython.code_objects import CodeCache, CodeInfo
from sampler.cpython.opcodes import OpcodeTable
from sampler.cpython.versions import ENTRY_SHIM, TRAITS, VersionTraits
from sampler.errors import ReadError
from sampler.model import NATIVE_FRAME, SYNTHETIC_FILENAME, Frame
from sampler.target.memory import U64, RemoteMemory

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
# _PyStackChunk as 3.11-3.15 lay it out: previous, size, top (slots in use, saved when a newer
# chunk is pushed), then the data slots. A walker takes them from its layout ("chunk.*"); these
# are for callers without one, and for a version whose layout lacks the keys.
CHUNK_PREVIOUS, CHUNK_TOP, CHUNK_DATA = 0, 16, 24
CHUNK_MIN_BYTES = TRAITS[(3, 11)].chunk_min_bytes
MAX_PREFIXES = 3  # EXTENDED_ARGs before one instruction (a 32-bit argument)

u64 = U64.unpack_from

Chunks = list[tuple[int, bytes]]


class TornStack(ReadError):
    """The stack copy holds frames from different moments: retried, then counted as an error."""


def chunk_header(layout: dict[str, int]) -> tuple[int, int, int]:
    """Where a _PyStackChunk keeps `previous`, `top` and its first data slot, from the layout
    (generated from the headers), with the layout every 3.11-3.15 has for a layout without them."""
    return (layout.get("chunk.previous", CHUNK_PREVIOUS), layout.get("chunk.top", CHUNK_TOP),
            layout.get("chunk.data", CHUNK_DATA))


def returned_into(chunks: Chunks, now: int, top: int, min_bytes: int) -> bool:
    """Whether the thread's current frame `now` lies in the newest copied chunk below the copy's
    top frame, itself in that chunk: the top returned (a callback that C calls in a loop returns
    between two calls) into a frame that was suspended, hence unchanged, while the copy was
    taken. A top outside the chunk (a generator's frame, a C-stack shim) has no "below" there."""
    chunk, cbuf = chunks[0]
    # the chunk's own mapping: at least min_bytes, more when its copy was longer
    return bool(chunk) and chunk <= now < top < chunk + max(len(cbuf), min_bytes)


def check_bottom(chunks: Chunks, lowest: int, previous_off: int = CHUNK_PREVIOUS, data_off: int = CHUNK_DATA) -> None:
    """Raise TornStack unless the walk came down to the bottom of the data stack.

    The oldest chunk (no `previous`) is never freed; its first frame sits in its first data
    slot, or the second (CPython keeps the first slot so that popping the bottom frame does
    not free the chunk). Unknown when the chunks were not all read: nothing is checked then.
    """
    root, rbuf = chunks[-1]
    if not root or len(rbuf) < data_off or u64(rbuf, previous_off)[0]:
        return
    base = root + data_off
    if lowest in (base, base + 8):
        return
    # An empty data stack (only the kept slot) has no bottom frame to reach.
    if not lowest and len(chunks) == 1 and len(rbuf) <= data_off + 8:
        return
    raise TornStack("the frame chain stops above the bottom of the data stack: the stack changed")


def _native_below(frames: list[Frame]) -> None:
    """An entry frame: C called into the Python frames above it. One `<native>` stands for it,
    under a Python frame (a leading entry frame is C the thread returns into, not a caller) and
    never twice in a row (3.14+'s bottom sentinel sits right under the root entry frame)."""
    if frames and frames[-1] is not NATIVE_FRAME:
        frames.append(NATIVE_FRAME)


class StackWalker:
    """What both walks read with; `attempt` is the one walk of a retry loop.

    `record(opcodes, native, table)` asks for more than lines: each frame's instruction byte
    (--opcodes) and `<native>` frames where the thread is in C (--native, docs/internals.md
    "Opcodes and <native> frames"): where C called into Python (the walk's entry frames) and on
    top of a leaf frame that is executing a call (`OpcodeTable.is_call`)."""

    def __init__(
        self, memory: RemoteMemory, layout: dict[str, int], traits: VersionTraits, codes: CodeCache, frame_read: int
    ) -> None:
        self.memory = memory
        self.L = layout
        self.t = traits
        self.codes = codes
        self.frame_read = frame_read  # bytes read of each frame: its header fields the walk uses
        self.opcodes = False
        self.native = False
        self.table: OpcodeTable | None = None

    def record(self, opcodes: bool, native: bool, table: OpcodeTable) -> None:
        """Record each frame's opcode and/or `<native>` frames, naming opcodes with `table`."""
        self.opcodes, self.native, self.table = opcodes, native, table

    def opcode_at(self, address: int) -> int:
        """The instruction byte at `address`: one small read of the code the frame runs, taken
        after the stack copy (the leaf may have moved on meanwhile, as with any profiler). An
        EXTENDED_ARG there is a prefix (3.9/3.10 leave f_lasti on it while the instruction it
        extends runs): the instruction after the prefixes, at most three, is the one named."""
        try:
            try:
                code = self.memory.read(address, 2 * (MAX_PREFIXES + 1))
            except ReadError:
                code = self.memory.read(address, 1)  # the last instruction, at a mapping's end
        except ReadError as exc:
            # code freed with its frame: the stack moved on
            raise TornStack(f"{exc}: the stack changed") from None
        prefixes = self.table.prefixes if self.table is not None else frozenset()
        for i in range(0, len(code), 2):
            if code[i] not in prefixes:
                return code[i]
        return code[0]

    def instruction_at(self, info: CodeInfo, offset: int) -> int:
        """The byte offset of the instruction a frame at `offset` executes: 3.13+'s instr_ptr and
        a running leaf's prev_instr point at it; a 3.11/3.12 frame that pushed its callee inline
        is on the call's last inline cache unit."""
        if self.t.ip_in_caches and self.table is not None:
            return self.codes.instruction_start(info, offset, self.table.cache_units)
        return offset

    def leaf_calls(self, opcode: int) -> bool:
        """Whether a leaf frame executing `opcode` is inside the (C) function it called."""
        return self.native and self.table is not None and opcode >= 0 and self.table.is_call(opcode)

    def attempt(
        self, tstate: int, tbuf: bytes, top: int, fresh: bool, guard: Callable[[], bool] | None
    ) -> tuple[Frame, ...] | None:
        """The stack under the thread's current frame `top`, or None if this walk cannot be
        trusted (try again). `fresh`: `tbuf` is older than `top`. `guard`, if given, must hold
        right after the walk."""
        raise NotImplementedError


class ChunkWalker(StackWalker):
    """Copies a thread's data stack and walks the copy into frames."""

    def __init__(
        self,
        memory: RemoteMemory,
        layout: dict[str, int],
        traits: VersionTraits,
        codes: CodeCache,
        frame_read: int,
        top_frame: Callable[[int, bytes, bool], int],
    ) -> None:
        super().__init__(memory, layout, traits, codes, frame_read)
        self.tstate_size = layout["tstate.size"]
        # (tstate, tbuf, fresh) -> the thread's current frame; fresh reads it from the target.
        self.top_frame = top_frame
        self.previous_off, self.top_off, self.data_off = chunk_header(layout)
        self.min_bytes = traits.chunk_min_bytes
        self._leaf_call = False  # the last walk's leaf frame is executing a call (--native)
        self._entry_flag = layout.get("frame.is_entry") if traits.entry_flag else None

    def attempt(
        self, tstate: int, tbuf: bytes, top: int, fresh: bool, guard: Callable[[], bool] | None
    ) -> tuple[Frame, ...] | None:
        chunks = self.read_chunks(tstate, tbuf, fresh)
        if guard is not None and not guard():
            return None
        # The copy is trustworthy if the top frame is still live right after it, called on, or
        # returned into a frame of the copy (settle then cuts the stack there)...
        now = self.top_frame(tstate, tbuf, True)
        if now != top and not returned_into(chunks, now, top, self.min_bytes) and not self.descends_from(now, top):
            return None
        if not self.suspended_unchanged(chunks, top, now):
            return None
        try:
            frames, starts = self.interp_frames(top, chunks)
        except TornStack:
            return None
        # ...and entry frames on the C stack and generator frames, read during the walk,
        # were live only if the stack has not unwound past them afterwards.
        settled = self.settle(tstate, tbuf, top, frames, starts)
        # A thread with a current frame runs Python code: no frames at all means the walk
        # met frames half-built or half-cleared.
        if not settled:
            return None
        # A stack cut down to where the top returned is the stack after the guard's last
        # look, which the guard does not vouch for (the handler may have returned): look again.
        if guard is not None and settled is not frames:
            return None
        # The leaf rule, for the stack as walked only: a stack cut to where the top returned
        # has a caller for leaf, past its call by now.
        if settled is frames and self._leaf_call:
            settled = (NATIVE_FRAME,) + settled
        return settled

    def read_chunks(self, tstate: int, tbuf: bytes, fresh: bool) -> Chunks:
        """The used part of each of the thread's stack chunks, one read each, newest first:
        [(address, bytes)]."""
        L = self.L
        prev_off, top_off, data_off = self.previous_off, self.top_off, self.data_off
        if fresh:
            tbuf = self.memory.read(tstate, self.tstate_size)
        chunk = u64(tbuf, L["tstate.datastack_chunk"])[0]
        top = u64(tbuf, L["tstate.datastack_top"])[0]
        if not (chunk and chunk < top <= chunk + MAX_CHUNK_BYTES):
            return [(0, b"")]
        cbuf = self.memory.read(chunk, top - chunk)
        chunks = [(chunk, cbuf)]
        previous = u64(cbuf, prev_off)[0] if len(cbuf) >= data_off else 0
        while previous and len(chunks) < MAX_CHUNKS:
            try:
                # an older chunk is full (a newer one was pushed): read the smallest chunk size
                # whole, and again only for a bigger chunk
                older = self.memory.read(previous, self.min_bytes)
                used = data_off + 8 * u64(older, top_off)[0]
                if not data_off < used <= MAX_CHUNK_BYTES:
                    break
                older = older[:used] if used <= len(older) else self.memory.read(previous, used)
            except ReadError:
                break  # frames there are read one by one, as any frame outside the copies
            chunks.append((previous, older))
            previous = u64(older, prev_off)[0]
        return chunks

    def interp_frames(self, f: int, chunks: Chunks) -> tuple[tuple[Frame, ...], dict[int, int]]:
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
        native, want_opcodes, entry_flag = self.native, self.opcodes, self._entry_flag
        self._leaf_call = False
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
                # An entry frame (C called the eval loop here) or the bottom sentinel (3.14+).
                if native:
                    _native_below(frames)
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
                if native and (info.filename, info.name) == ENTRY_SHIM:
                    _native_below(frames)  # 3.12's entry frame, caught before its owner was set
                f = prev
                continue
            ip = u64(fb, base + ip_off)[0]
            offset = ip - info.code_start
            # A frame that called another must be past its first instruction (RESUME); one
            # that is not was pushed after our copy's top frame, i.e. the copy is torn.
            if frames and offset <= 0:
                raise TornStack(
                    f"{info.name} has not started yet calls {frames[-1].funcname}: the stack changed"
                )
            if len(frames) >= MAX_DEPTH:  # >=: a 3.11 entry frame adds two at once
                # Cut below the innermost MAX_DEPTH frames (this one, their caller, was checked
                # above). The chain goes on, so it cannot be one that stops above the bottom of
                # the data stack: the bottom check has nothing to say about a cut walk. Frames
                # walked below the kept ones leave `starts`: a top that returned there has
                # unwound every kept frame, and `settle` must not report the marker alone.
                kept = {addr: i for addr, i in starts.items() if i < MAX_DEPTH}
                return tuple(frames) + (TRUNCATED_FRAME,), kept
            opcode = -1
            if (want_opcodes or (native and not frames)) and offset >= 0:
                opcode = self.opcode_at(info.code_start + self.instruction_at(info, offset))
                if not frames:
                    self._leaf_call = self.leaf_calls(opcode)
            frames.append(info.frame_at(offset, opcode if want_opcodes else -1))
            if native and entry_flag is not None and fb[base + entry_flag]:
                frames.append(NATIVE_FRAME)  # 3.11: this frame was entered from C, its caller
            f = prev
        check_bottom(chunks, lowest, self.previous_off, self.data_off)
        return tuple(frames), starts

    def suspended_unchanged(self, chunks: Chunks, top: int, now: int) -> bool:
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
                    if length + self.frame_read <= len(cbuf):
                        head = self.frame_read  # the live frame (top, or returned into): its header too
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

    def descends_from(self, frame: int, ancestor: int, hops: int = 3) -> bool:
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

    def settle(
        self, tstate: int, tbuf: bytes, top: int, frames: tuple[Frame, ...], starts: dict[int, int]
    ) -> tuple[Frame, ...] | None:
        """The walked stack as it stands now, or None if the thread moved to other code.

        Same top, or a callee of it: the walk holds. The top returned to one of the walked
        frames: the stack from there down is the thread's true stack now. Anything else: torn.
        """
        now = self.top_frame(tstate, tbuf, True)
        if now == top:
            return frames
        index = starts.get(now)
        if index is not None:
            return frames[index:]
        return frames if self.descends_from(now, top) else None
