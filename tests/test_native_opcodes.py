"""--opcodes and --native through the native core against the pure-Python reference, on frozen
targets, under every CPython here.

One target per interpreter (tests/targets/diff_native.py: an add loop and an attribute loop, a
sort calling a Python key from C, a thread in zlib, one in time.sleep, `cls()` running
`__init__`s over a generator) is frozen again and again (SIGSTOP, as in test_native_walker.py);
at each freeze both walkers sample it with each setting below and must give the same
`ThreadSample`s: the same frames, the same `Frame.opcode` on each, the same `<native>` frames in
the same places. The native core's timed loop (`run`) must give them too. The freezes go on until
the reference has shown what each rule is about: a `<native>` leaf on a frame in a call, a
`<native>` where C called back into Python (3.11+: 3.9/3.10 have no entry frames) and opcodes on
the frames. A second target (tests/targets/wide_locals.py) is compared the same way until a frame
on an EXTENDED_ARG prefix was caught: neither walker may name a frame by its prefix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple

import pytest

import sampler.cpython.unwinder as reference_module
from conftest import ALL_INTERPRETERS, Interpreter, target, wait_ready
from sampler.cpython import native
from sampler.cpython.opcodes import OpcodeTable, opcode_table
from sampler.cpython.unwinder import Unwinder
from sampler.cpython.walkers import native_choice
from sampler.model import NATIVE_FRAME, SYNTHETIC_FILENAME, ThreadSample
from test_native_async import _ready_reader, _start, fresh_relations, readable  # noqa: F401
from test_native_walker import DEADLINE_S, Outcome, _batch_differs, _freeze, _run_on, _take, compare

MIN_FREEZES = 4
MAX_FREEZES = 16  # freezes until every rule was seen at work at least once


class Config(NamedTuple):
    all_threads: bool
    mode: str
    opcodes: bool
    native: bool

    def __str__(self) -> str:
        flags = " ".join(f for f, on in (("--opcodes", self.opcodes), ("--native", self.native)) if on)
        return f"mode={self.mode} all_threads={self.all_threads} {flags}"


# Plain sampling is test_native_walker.py's. gil mode leaves out the threads waiting for the GIL
# (the sorter and the builder take turns with the main thread): another set of threads per freeze.
CONFIGS = [Config(True, "wall", True, False), Config(True, "wall", False, True), Config(True, "wall", True, True),
           Config(False, "wall", True, True), Config(True, "gil", True, True)]
BOTH = Config(True, "wall", True, True)


def _python(frame) -> bool:
    return frame.filename != SYNTHETIC_FILENAME


def _native_leaf(samples: list[ThreadSample]) -> bool:
    return any(s.frames[:1] == (NATIVE_FRAME,) and len(s.frames) > 1 and _python(s.frames[1]) for s in samples)


def _native_between(samples: list[ThreadSample]) -> bool:
    """C called back into Python: a <native> with Python frames on both sides (sort_work, keyf)."""
    return any(f == NATIVE_FRAME and _python(s.frames[i - 1]) and _python(s.frames[i + 1])
               for s in samples for i, f in enumerate(s.frames[1:-1], 1))


def _opcodes_everywhere(samples: list[ThreadSample]) -> bool:
    """Every Python frame has its opcode; only a leaf that has not started may lack one (3.9/3.10)."""
    return bool(samples) and all(f.opcode >= 0 for s in samples for f in s.frames[1:] if _python(f))


@dataclass
class Findings:
    """What one interpreter's freezes found."""

    label: str
    freezes: int = 0
    wanted: set[str] = field(default_factory=set)  # the rules this version has
    seen: set[str] = field(default_factory=set)  # the rules the reference showed at work
    mismatches: dict[str, list[str]] = field(default_factory=dict)  # difference -> where it showed
    batch_problems: dict[str, list[str]] = field(default_factory=dict)
    table: OpcodeTable | None = None  # the target's opcodes
    prefixes_named: list[str] = field(default_factory=list)  # frames named by an EXTENDED_ARG

    def report(self, table: dict[str, list[str]]) -> str:
        parts = [f"  on {self.label} ({', '.join(where[:4])}):\n{diff}" for diff, where in table.items()]
        return f"{len(parts)} differences between the reference and the native core:\n" + "\n".join(parts[:6])


def _wanted(version: tuple[int, int]) -> set[str]:
    wanted = {"native leaf", "opcodes"}
    if version >= (3, 11):  # entry frames
        wanted.add("native between")
    return wanted


def _look(findings: Findings, config: Config, ref: list[ThreadSample], nat: list[ThreadSample] | None) -> None:
    """diff_native.py's rules, seen at work in the reference's samples."""
    if config != BOTH:
        return
    if _native_leaf(ref):
        findings.seen.add("native leaf")
    if _native_between(ref):
        findings.seen.add("native between")
    if _opcodes_everywhere(ref):
        findings.seen.add("opcodes")


Look = Callable[[Findings, Config, list[ThreadSample], "list[ThreadSample] | None"], None]


def _freeze_and_compare(proc: subprocess.Popen, interpreter: Interpreter, configs: list[Config],
                        wanted: Callable[[tuple[int, int]], set[str]], look: Look,
                        max_freezes: int = MAX_FREEZES) -> Findings:
    """Freezes `proc` until `look` saw every `wanted` rule at work (or `max_freezes`), both
    walkers sampling it with each of `configs` at every freeze."""
    _run_on(proc)
    _freeze(proc)
    findings = Findings(interpreter.label)
    walkers = {}
    try:
        for c in configs:
            settings = dict(all_threads=c.all_threads, mode=c.mode, opcodes=c.opcodes, native=c.native)
            walkers[c] = (Unwinder(proc.pid, **settings), native.NativeUnwinder(proc.pid, **settings))
        minor = walkers[configs[0]][0].runtime.minor
        findings.wanted = wanted(minor)
        findings.table = opcode_table(minor)
        while findings.freezes < MIN_FREEZES or (not findings.wanted <= findings.seen
                                                 and findings.freezes < max_freezes):
            if findings.freezes:
                _run_on(proc)
                _freeze(proc)
            findings.freezes += 1
            where = f"freeze {findings.freezes}"
            for config, (ref_walker, nat_walker) in walkers.items():
                ref, nat = _take(ref_walker, config.mode), _take(nat_walker, config.mode)
                if ref.samples is not None:
                    look(findings, config, ref.samples, nat.samples)
                diff = compare(ref, nat) or [f"{line} (sampled again)" for line in
                                             compare(ref, _take(nat_walker, config.mode))]
                if diff:
                    findings.mismatches.setdefault("\n".join(diff), []).append(f"{where} {config}")
                elif config.mode == "wall" and ref.samples is not None:
                    problems = _batch_differs(ref.samples, nat_walker)
                    if problems:
                        findings.batch_problems.setdefault("\n".join(problems), []).append(f"{where} {config}")
    finally:
        for pair in walkers.values():
            for w in pair:
                w.close()
    return findings


@contextmanager
def _target(interpreter: Interpreter, script: str) -> Iterator[subprocess.Popen]:
    """`script` running under `interpreter`, ready; killed after."""
    if not native.native_status()[0]:
        pytest.fail(f"the native core is not built: {native.native_status()[1]}")
    proc = subprocess.Popen(interpreter.command(target(script)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    with pytest.MonkeyPatch.context() as patch:
        # a frozen stack cannot change: the reference's exception-mode window must not drop a
        # thread for a slow walk (test_native_walker.py's frozen_window)
        patch.setattr(reference_module, "GUARD_WINDOW_S", DEADLINE_S)
        try:
            wait_ready(proc)
            yield proc
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()


@pytest.fixture(scope="module", params=ALL_INTERPRETERS)
def findings(request) -> Iterator[Findings]:
    """One target per interpreter, frozen until every rule showed, compared at every freeze."""
    with _target(request.param, "diff_native.py") as proc:
        yield _freeze_and_compare(proc, request.param, CONFIGS, _wanted, _look)


def test_the_native_core_does_opcodes_and_native():
    """walkers.py picks the native core for --opcodes and --native when it is built."""
    assert native.NATIVE_FEATURES >= {"opcodes", "native"}
    assert native_choice(opcodes=True, native=True) == (True, "")


def test_same_frames_opcodes_and_native_frames(findings: Findings):
    assert not findings.mismatches, findings.report(findings.mismatches)


def test_run_batches_give_the_same_samples(findings: Findings):
    assert not findings.batch_problems, findings.report(findings.batch_problems)


def test_every_rule_was_seen_at_work(findings: Findings):
    """The comparisons covered what they are about: the reference showed each rule in action."""
    missing = sorted(findings.wanted - findings.seen)
    assert not missing, f"{findings.label}: in {findings.freezes} freezes the reference never showed {missing}"


# -- EXTENDED_ARG prefixes --------------------------------------------------------------------------
# tests/targets/wide_locals.py: a loop over locals past the 256th, so its loads and stores carry an
# EXTENDED_ARG prefix, on which 3.9/3.10 leave f_lasti while the instruction runs. Both walkers
# must name the instruction after the prefixes, never a prefix.

WIDE_CONFIGS = [Config(False, "wall", True, False), Config(False, "wall", True, True)]
WIDE_MAX_FREEZES = 40  # a freeze lands in a prefixed load or store about a third of the time
PREFIXED = ("LOAD_FAST", "STORE_FAST")  # in wide()'s loop, each names a local past the 256th


def _wide_wanted(version: tuple[int, int]) -> set[str]:
    return {"prefixed"}


def _wide_look(findings: Findings, config: Config, ref: list[ThreadSample], nat: list[ThreadSample] | None) -> None:
    """A prefixed instruction caught running (in the reference), and any frame named by a prefix."""
    table = findings.table
    assert table is not None
    for walker, samples in (("reference", ref), ("native core", nat or [])):
        for s in samples:
            if any(f.opcode in table.prefixes for f in s.frames):
                frames = ", ".join(f"{f.funcname}:{f.lineno} {table.format(f.opcode)}" for f in s.frames)
                findings.prefixes_named.append(f"{findings.label} {walker} {config}: {frames}")
    for s in ref:
        leaf = next((f for f in s.frames if _python(f)), None)
        if leaf is not None and leaf.funcname == "wide" and leaf.opcode >= 0 \
                and table.info(leaf.opcode).base_opname.startswith(PREFIXED):
            findings.seen.add("prefixed")


@pytest.fixture(scope="module", params=ALL_INTERPRETERS)
def wide(request) -> Iterator[Findings]:
    """wide_locals.py per interpreter, frozen until the reference caught a prefixed instruction."""
    with _target(request.param, "wide_locals.py") as proc:
        yield _freeze_and_compare(proc, request.param, WIDE_CONFIGS, _wide_wanted, _wide_look,
                                  WIDE_MAX_FREEZES)


def test_prefixed_instructions_alike(wide: Findings):
    """Both walkers name the same instruction for a frame on an EXTENDED_ARG prefix."""
    assert not wide.mismatches, wide.report(wide.mismatches)
    assert not wide.batch_problems, wide.report(wide.batch_problems)


def test_no_frame_is_named_by_a_prefix(wide: Findings):
    assert not wide.prefixes_named, "\n".join(wide.prefixes_named[:6])
    assert "prefixed" in wide.seen, f"{wide.label}: in {wide.freezes} freezes no prefixed instruction was caught"


ASYNC_FREEZES = 3


def test_async_running_mode_with_opcodes(readable, spawn):
    """--async-aware --opcodes (Tachyon allows the pair; --native it refuses): the C walk's frames
    carry their opcodes and the awaiter frames from Python theirs, as in the reference, on a
    target whose tasks keep switching (tests/test_native_async.py's async_split)."""
    proc = _start(spawn, readable, "async_split.py")
    ref = Unwinder(proc.pid, async_mode="running", opcodes=True)
    nat = native.NativeUnwinder(proc.pid, async_mode="running", opcodes=True)
    try:
        deadline = time.monotonic() + DEADLINE_S
        _ready_reader(ref, deadline)
        _ready_reader(nat, deadline)
        opcodes_seen = 0
        for freeze in range(ASYNC_FREEZES):
            _freeze(proc)
            try:
                r, n = _take(ref, "wall"), _take(nat, "wall")
                diff = compare(r, n)
                assert not diff, f"freeze {freeze}:\n" + "\n".join(diff)
                opcodes_seen += sum(f.opcode >= 0 for s in r.samples or [] for f in s.frames)
            finally:
                _run_on(proc)
        assert opcodes_seen, "the reference's samples carried no opcode"
    finally:
        ref.close()
        nat.close()
