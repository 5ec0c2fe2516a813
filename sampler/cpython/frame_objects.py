"""The 3.9/3.10 stack walk: a chain of `PyFrameObject`s linked by f_back, read one by one.

A live frame object holds its f_back alive, and suspended frames do not change: if the old top
frame is still the same live activation after the walk, and every caller reads the same again,
everything below it was stable while it was read (whatever the top called since).
"""

from __future__ import annotations

from typing import Callable

from sampler.cpython.stack_chunks import MAX_DEPTH, TRUNCATED_FRAME, StackWalker, TornStack
from sampler.errors import ReadError
from sampler.model import NATIVE_FRAME, Frame
from sampler.target.memory import I32, U64

u64 = U64.unpack_from
i32 = I32.unpack_from

Walked = list[tuple[int, bytes]]


class FrameObjectWalker(StackWalker):
    """Walks frame objects from the thread's current one down; the chain hangs from `top` alone."""

    def attempt(
        self, tstate: int, tbuf: bytes, top: int, fresh: bool, guard: Callable[[], bool] | None
    ) -> tuple[Frame, ...] | None:
        try:
            frames, head, walked = self.walk(top)
        except TornStack:
            return None
        if self.same_frame_object(top, head) and self.unchanged(walked) and (guard is None or guard()):
            return frames
        return None

    def same_frame_object(self, addr: int, head: bytes) -> bool:
        L = self.L
        now = self.memory.read(addr, self.frame_read)
        return (
            u64(now, 0)[0] > 0
            and now[L["frame.previous"] : L["frame.previous"] + 8] == head[L["frame.previous"] : L["frame.previous"] + 8]
            and now[L["frame.code"] : L["frame.code"] + 8] == head[L["frame.code"] : L["frame.code"] + 8]
        )

    def walk(self, f: int) -> tuple[tuple[Frame, ...], bytes, Walked]:
        """The walk from frame object `f`: frames leaf first, the top frame's bytes, and each
        caller's (address, bytes) for `unchanged`."""
        L = self.L
        prev_off, code_off, lasti_off = L["frame.previous"], L["frame.code"], L["frame.lasti"]
        scale = self.t.lasti_scale
        frames: list[Frame] = []
        walked: Walked = []
        seen: set[int] = set()
        head = b""
        leaf_call = False
        while f:
            if len(frames) >= MAX_DEPTH:
                # Cut, not torn: the kept frames are checked by the caller as any walk's are.
                return (NATIVE_FRAME,) * leaf_call + tuple(frames) + (TRUNCATED_FRAME,), head, walked
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
            offset = lasti * scale if lasti >= 0 else -1
            # f_lasti is the instruction being executed (a caller's: its call); 3.9 counts it in
            # bytes, 3.10 in code units (scale), so `offset` is in bytes either way.
            opcode = -1
            if (self.opcodes or (self.native and not frames)) and offset >= 0 and info.code_start:
                opcode = self.opcode_at(info.code_start + offset)
                if not frames:
                    leaf_call = self.leaf_calls(opcode)
            frames.append(info.frame_at(offset, opcode if self.opcodes else -1))
            f = u64(fb, prev_off)[0]
        # No entry frames before 3.11: only the leaf rule places <native> here.
        if leaf_call:
            frames.insert(0, NATIVE_FRAME)
        return tuple(frames), head, walked

    def unchanged(self, walked: Walked) -> bool:
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
