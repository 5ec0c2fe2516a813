#!/usr/bin/env python3
"""Sampling accuracy: impossible stacks at 100 kHz, and exception mode's share (issue 12, figures 4-5).

Figure 4: error rate and impossible stacks at a requested 100 kHz on a 150-deep recursion that
unwinds and rebuilds itself (`targets/rebuilding_recursion.py DEPTH LEAF`). Two leaves: 100,000
iterations (a few ms at the bottom per rebuild, as tests/targets/recursion.py) and 1,000 (the
stack is torn down and rebuilt every few tens of µs: most samples then race a changing stack).

Which stacks are possible is derived from the target's structure, read from its source with
`ast` (so it follows edits): `<module>` at the loop's call line (or alone at a loop line), then
k `recurse` frames, 1 <= k <= DEPTH + 1, every one but the innermost at the recursive call line;
the innermost at any line of `recurse`, but a line of the `n == 0` branch only when k = DEPTH + 1
and the recursive call line only when k <= DEPTH. A trailing `<GC>` frame is allowed. This rule
is complete (every stack the program can have satisfies it), which a frozen run cannot be: at 1
kHz a run sees a rebuild's transitional shapes (151 depths x a few lines each) only by chance.
`--blocking` is used as the check on the rule instead: a `--blocking` run (every thread stopped
with ptrace around each read) of the same target must show only stacks the rule allows; its
distinct stacks are counted, any it shows that the rule refuses are printed (the rule would be
wrong), and the non-blocking samples whose stack that frozen run never showed are counted too
("not seen frozen": an upper bound, since rare possible shapes are missing from it).
Error rate is the profiler's own summary's (reads that failed or were refused as torn).

Figure 5: exception mode's share. Target: tests/targets/exceptions.py, one thread alternating
equal counted work (a few ms each) inside an `except` block and outside any: half of its time
has an exception in flight whatever the machine's load (no sleeps, so a loaded machine slows
both halves alike). The oracle is heatline `--blocking` in wall mode, written `--binary`: the
share S of its samples whose thread status has HAS_EXCEPTION (read from a stopped target, so
flag and stack agree). A non-blocking exception-mode run keeps K samples of N sampling ticks (N
from its summary, which counts ticks; K from its output file); it keeps (K / N) / S of what the
oracle says was there: the figure. Both are shares per tick, so achieved rates and run lengths
cancel. Every run of one interpreter samples the same target process, one after the other, the
oracle first and last (pooled), so drift in the target shows and is averaged. A non-blocking
wall-mode `--binary` run's HAS_EXCEPTION share is printed too, to tell "the flag is read wrong"
from "the mode filters too much". Tachyon's `--mode exception` on 3.15 is measured against
heatline's oracle on the same target (in that mode Tachyon keeps only threads holding the GIL or
on a CPU; this target's thread always runs, so that rule costs it nothing here).

    python benchmarks/bench_accuracy.py [--only 4|5] [--python 3.11 --python sid:3.15] [--duration 5]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import bench_sampler as bs
import benchcommon as bc

sys.path.insert(0, str(bs.REPO))
from sampler.model import HAS_EXCEPTION  # noqa: E402
from sampler.replay import open_binary_profile  # noqa: E402

RECURSION = bs.HERE / "targets" / "rebuilding_recursion.py"
EXCEPTIONS = bs.REPO / "tests" / "targets" / "exceptions.py"
DEPTH = 150
LEAVES = (100_000, 1_000)
EXCEPTION_SHARE_BY_DESIGN = 50.0

Stack = tuple[tuple[str, int], ...]  # (function, line), outermost first


# -- figure 4 ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Structure:
    """What rebuilding_recursion.py's stacks can look like, from its source."""

    loop_lines: frozenset[int]   # <module> alone: the while loop's lines
    loop_call: int               # <module> under a recursion: the call in the loop
    body: frozenset[int]         # every line of recurse
    leaf: frozenset[int]         # lines of its `n == 0` branch
    call: int                    # its recursive call
    depth: int

    @classmethod
    def read(cls, path: Path, depth: int) -> Structure:
        tree = ast.parse(path.read_text())
        func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "recurse")
        branch = next(n for n in func.body if isinstance(n, ast.If))
        leaf = {ln for stmt in branch.body for ln in range(stmt.lineno, stmt.end_lineno + 1)}
        call = next(n.lineno for n in ast.walk(func) if isinstance(n, ast.Call)
                    and getattr(n.func, "id", "") == "recurse")
        loop = next(n for n in tree.body if isinstance(n, ast.While))
        loop_call = next(n.lineno for n in ast.walk(loop) if isinstance(n, ast.Call)
                         and getattr(n.func, "id", "") == "recurse")
        return cls(frozenset(range(loop.lineno, loop.end_lineno + 1)), loop_call,
                   frozenset(range(func.lineno, func.end_lineno + 1)), frozenset(leaf), call, depth)

    def possible(self, stack: Stack) -> bool:
        return self.why_impossible(stack) is None

    def why_impossible(self, stack: Stack) -> str | None:
        """None for a stack the program can have; else the first rule it breaks."""
        if stack and stack[-1][0] == "<GC>":
            stack = stack[:-1]
        if not stack or stack[0][0] != "<module>":
            return "the outermost frame is not <module>"
        rest = stack[1:]
        if not rest:
            return None if stack[0][1] in self.loop_lines else f"<module> alone at line {stack[0][1]}"
        if stack[0][1] != self.loop_call:
            return f"<module> at line {stack[0][1]} under a recursion"
        if len(rest) > self.depth + 1:
            return f"{len(rest)} recurse frames (at most {self.depth + 1})"
        for i, (func, line) in enumerate(rest):
            if func != "recurse":
                return f"frame {i + 2} is {func}"
            if i < len(rest) - 1 and line != self.call:
                return f"recurse frame {i + 1} of {len(rest)} (not the innermost) at line {line}, not the call"
        last = rest[-1][1]
        if last in self.leaf and len(rest) != self.depth + 1:
            return f"innermost at leaf line {last} with {len(rest)} recurse frames (the leaf has {self.depth + 1})"
        if last == self.call and len(rest) > self.depth:
            return f"innermost at the call line with {len(rest)} recurse frames (n == 0 there)"
        if last not in self.body:
            return f"innermost recurse at line {last}, outside the function"
        return None


def read_collapsed(path: Path) -> Counter[Stack]:
    """Stacks (outermost first, thread dropped) and their sample counts from a collapsed file."""
    stacks: Counter[Stack] = Counter()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            text, _, count = line.rstrip("\n").rpartition(" ")
            if not text or not count.isdigit():
                continue
            parts = text.split(";")
            if parts[0].startswith("tid:"):
                parts = parts[1:]
            frames = []
            for part in parts:
                pieces = part.rsplit(":", 2)  # file:function:line (a synthetic frame may lack some)
                func = pieces[1] if len(pieces) == 3 else pieces[0]
                frames.append((func, int(pieces[-1]) if pieces[-1].isdigit() else 0))
            stacks[tuple(frames)] += int(count)
    return stacks


def _stacks_of(outcome: bc.Outcome) -> Counter[Stack] | None:
    if not outcome.ok or outcome.output is None or not outcome.output.exists():
        return None
    return read_collapsed(outcome.output)


def figure4(python: bs.Interpreter, seconds: float, scratch: bc.Scratch) -> bc.Table:
    structure = Structure.read(RECURSION, DEPTH)
    table = bc.Table(
        f"4. Impossible stacks at a requested 100 kHz: rebuilding_recursion.py, {DEPTH} deep "
        f"({python.version}, {python.label})",
        ["leaf / profiler", "samples/s", "error %", "samples", "impossible", "impossible %",
         "not seen frozen", "%"])
    frozen: set[Stack] | None = None
    if not bc.heatline_has("--blocking"):
        table.notes.append("oracle check: " + bc.na("heatline has no --blocking yet"))
    else:
        # The short leaf rebuilds most often: its frozen run sees the most transitional shapes.
        target = bc.start_target(python, RECURSION, [str(DEPTH), str(LEAVES[-1])])
        try:
            oracle_s = max(2 * seconds, 5)
            res = bc.run_profiler(bc.HEATLINE, target, ["-r", "1khz", "-d", f"{oracle_s:g}", "--blocking",
                                                        "--collapsed"], scratch, output="frozen.txt",
                                  timeout=oracle_s * 4 + 60)
        finally:
            target.close()
        stacks = _stacks_of(res)
        if stacks is None:
            table.notes.append("oracle check: " + bc.na(res.reason or "no output"))
        else:
            frozen = set(stacks)
            refused = [s for s in stacks if not structure.possible(s)]
            depths = sorted({len(s) - 1 for s in stacks})
            table.notes.append(
                f"oracle check: heatline --blocking at 1 kHz for {oracle_s:g} s (leaf {LEAVES[-1]:,}, "
                f"{res.label}): {sum(stacks.values()):,} samples, {len(frozen)} distinct stacks "
                f"(recursion depths {depths[0]}-{depths[-1]}), of which {len(refused)} the structural rule "
                f"refuses{' (the rule is wrong!)' if refused else ' (the rule agrees with every frozen sample)'}")
            for s in refused[:3]:
                table.notes.append(f"  refused frozen stack: {len(s)} frames: {structure.why_impossible(s)}")
    tools = [bc.HEATLINE, bc.PURE] + ([bc.TACHYON] if python.tachyon_here else [])
    for leaf in LEAVES:
        for tool in tools:
            target = bc.start_target(python, RECURSION, [str(DEPTH), str(leaf)])
            try:
                res = bc.run_profiler(tool, target, ["-r", "100khz", "-d", f"{max(1, round(seconds))}",
                                                     "--collapsed"], scratch, output="recursion.txt",
                                      timeout=seconds * 4 + 60)
            finally:
                target.close()
            label = f"leaf {leaf:,} / {res.label}"
            stacks = _stacks_of(res)
            if stacks is None:
                table.add(label, bc.na(res.reason or "no output"), "", "", "", "", "", "")
                continue
            total = sum(stacks.values())
            bad = sum(n for s, n in stacks.items() if not structure.possible(s))
            unseen = sum(n for s, n in stacks.items() if s not in frozen) if frozen is not None else None
            bc.key(f"4. {python.short_version} {label}: {bc.fmt(res.rate, ',.0f')} samples/s, error "
                   f"{bc.fmt(res.error_pct, '.2f')}%, impossible {bad:,} of {total:,} "
                   f"({100 * bad / total if total else 0:.3f}%) (aim: error < 0.5%, none impossible)")
            table.add(label, bc.fmt(res.rate, ",.0f"), bc.fmt(res.error_pct, ".2f"), f"{total:,}", f"{bad:,}",
                      f"{100 * bad / total if total else 0:.3f}", bc.fmt(unseen, ","),
                      bc.fmt(100 * unseen / total if unseen is not None and total else None, ".2f"))
            for s, n in sorted(((s, n) for s, n in stacks.items() if not structure.possible(s)),
                               key=lambda x: -x[1])[:2]:
                table.notes.append(f"  {label}: impossible x{n}: {len(s)} frames: {structure.why_impossible(s)}")
    table.notes.append("impossible: the stack breaks the target's structure (see the docstring); "
                       "not seen frozen: its exact stack never appeared in the --blocking run (upper bound)")
    table.notes.append("Tachyon's -d is whole seconds; samples/s and error % are each profiler's own summary's")
    return table


# -- figure 5 ---------------------------------------------------------------------------------------


def exception_share(path: Path) -> tuple[int, int]:
    """(samples with HAS_EXCEPTION, all samples) in a --binary file (one thread: the main one)."""
    with_exc = total = 0
    for _ts, threads, weight in open_binary_profile(str(path)).samples(batch=True):
        for t in threads:
            total += weight
            if t.status & HAS_EXCEPTION:
                with_exc += weight
    return with_exc, total


def figure5(python: bs.Interpreter, seconds: float, scratch: bc.Scratch) -> bc.Table:
    table = bc.Table(
        f"5. Exception mode at 1 kHz: exceptions.py, half of its work inside an except block "
        f"({python.version}, {python.label})",
        ["run (one target, in this order)", "samples/s", "ticks", "with exception", "share %", "kept vs oracle"])
    d = f"{max(1, round(seconds))}"
    runs = []
    blocking = bc.heatline_has("--blocking")
    oracle_run = ("oracle: heatline --blocking, wall", bc.HEATLINE, ["--blocking", "--binary"], "bin")
    if blocking:
        runs.append(oracle_run)
    else:
        table.notes.append("oracle: " + bc.na("heatline has no --blocking yet: the design's 50% is used instead"))
    runs.append(("heatline non-blocking, wall (flag read running)", bc.HEATLINE, ["--binary"], "bin"))
    runs.append(("heatline --mode exception", bc.HEATLINE, ["--mode", "exception", "--collapsed"], "txt"))
    runs.append(("heatline pure --mode exception", bc.PURE, ["--mode", "exception", "--collapsed"], "txt"))
    if python.tachyon_here:
        runs.append(("Tachyon --mode exception", bc.TACHYON, ["--mode", "exception", "--collapsed"], "txt"))
    if blocking:
        runs.append(oracle_run)  # before and after: drift in the target's split shows, and is averaged
    results = []
    target = bc.start_target(python, EXCEPTIONS)
    try:
        for label, tool, args, kind in runs:
            res = bc.run_profiler(tool, target, ["-r", "1khz", "-d", d, *args], scratch, output=f"exc.{kind}",
                                  timeout=seconds * 4 + 60)
            if not res.ok or res.output is None or not res.output.exists():
                results.append((label, tool, res, None, None))
            elif kind == "bin":
                exc, total = exception_share(res.output)
                results.append((label, tool, res, exc, total))
            else:
                results.append((label, tool, res, sum(read_collapsed(res.output).values()), res.samples))
    finally:
        target.close()
    oracles = [(e, t) for label, _, _, e, t in results if label.startswith("oracle") and t]
    oracle = (100 * sum(e for e, _ in oracles) / sum(t for _, t in oracles) if oracles
              else None if blocking else EXCEPTION_SHARE_BY_DESIGN)
    for label, tool, res, exc, total in results:
        name = label if tool == bc.TACHYON else f"{label} [{res.walker}]"
        if total is None:
            table.add(name, bc.na(res.reason or "no output"), "", "", "", "")
            continue
        share = 100 * exc / total if total else None
        if "--mode exception" in label:
            bc.key(f"5. {python.short_version} {name}: kept {bc.ratio(share, oracle)} of the --blocking oracle's "
                   f"exception samples ({bc.fmt(share, '.1f')}% vs {bc.fmt(oracle, '.1f')}%; aim >= 0.80x)")
        table.add(name, bc.fmt(res.rate, ",.0f"), f"{total:,}", f"{exc:,}", bc.fmt(share, ".1f"),
                  "" if label.startswith("oracle") else bc.ratio(share, oracle))
    if oracles:
        table.notes.append(f"oracle share (both --blocking runs pooled): {oracle:.1f}%")
    table.notes.append("share = samples with an exception in flight / sampling ticks (exception mode: samples in "
                       "its file / ticks in its summary); kept vs oracle = share / the oracle's share (aim >= 0.80)")
    return table


# -- main -------------------------------------------------------------------------------------------


def run(figures: list[int], specs: list[str], seconds: float, work: bs.Workdirs) -> None:
    scratch = bc.Scratch(work)
    for fig in figures:
        for spec in specs:
            python, why = bc.interpreter(spec)
            if python is None:
                print(f"{fig}. on {spec}: {bc.na(why)}\n")
                continue
            (figure4 if fig == 4 else figure5)(python, seconds, scratch).print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=int, choices=(4, 5), help="one figure (default: both)")
    parser.add_argument("--python", action="append", help="3.11 (host) or sid:3.15; repeatable "
                        "(default: 3.11 and sid:3.15)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    args = parser.parse_args(argv)
    return bc.guarded(lambda work: run([args.only] if args.only else [4, 5], args.python or ["3.11", "sid:3.15"], args.duration, work))


if __name__ == "__main__":
    sys.exit(main())
