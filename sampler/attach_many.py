"""`heatline attach PID PID...` and `attach --all-python`: many processes at once, one output
per process named by PID (as --subprocesses names its children's), so one command covers a host.

Each process is sampled on a thread of its own by `subprocesses.FollowedProcess`, the sampler
--subprocesses gives every child: its own walker, Profile and collector, its file written as
soon as it ends. `-d` is counted from each one's first sample, and a signal (Ctrl-C, SIGTERM, SIGHUP)
stops them all at once; the summary lists each process's samples and file, or why it has none.
"""

from __future__ import annotations

import argparse
import sys

from sampler.errors import NoPythonProcessesError, ProcessNotFoundError, UsageError
from sampler.output_path import tell

JOIN_STEP_S = 0.2  # how often the waiting main thread wakes (signal handlers run in it)


def target_pids(args: argparse.Namespace) -> list[int]:
    """The PIDs given, or with --all-python every Python process this user may read."""
    if not args.all_python:
        return sorted(set(args.pid))
    import os

    from sampler.processes import list_python_processes

    pids = [p.pid for p in list_python_processes(exclude=[os.getppid()]) if not p.needs_privileges]
    if not pids:
        raise NoPythonProcessesError("no Python process this user may read is running.")
    return pids


def check(args: argparse.Namespace) -> None:
    """What a many-process attach cannot do, refused before anything starts."""
    for flag, given in (("--live", args.live), ("--subprocesses", args.subprocesses)):
        if given:
            raise UsageError(f"heatline: error: {flag} takes one PID, not several or --all-python")
    if args.all_python and args.pid:
        raise UsageError("heatline: error: give PIDs or --all-python, not both")
    if not args.pid and not args.all_python:
        raise UsageError("heatline: error: give a PID (or several, or --all-python)")
    for pid in args.pid:
        if pid <= 0:
            raise ProcessNotFoundError(pid)


def cmd_attach_many(args: argparse.Namespace) -> int:
    from sampler.launcher import StopSignals
    from sampler.subprocesses import FollowedProcess, StopAll, check_outputs, summary_lines
    from sampler.target.descendants import exec_identity
    from sampler.target.maps import read_cmdline

    check(args)
    check_outputs(args)
    followed = []
    missing = []
    for pid in target_pids(args):
        identity = exec_identity(pid)
        if identity is None:
            missing.append(pid)
            continue
        followed.append(FollowedProcess(pid, identity, " ".join(read_cmdline(pid) or []), args,
                                        duration_s=args.duration))
    if not followed:
        raise ProcessNotFoundError(missing[0])
    signals = StopSignals().install()
    try:
        signals.sampling(StopAll(*followed))
        for process in followed:
            process.start()
        for process in followed:
            while process.running:  # in steps: a signal's handler runs between them
                process.thread.join(JOIN_STEP_S)
    finally:
        signals.restore()
    results = [process.result for process in followed]
    lines = summary_lines(results, [], len(results))
    lines[0] = f"Processes: {len(results)} attached"
    lines += [f"  PID {pid}: no such process" for pid in missing]
    stream = sys.stdout
    for line in lines:
        tell(line, stream)
    return 0 if any(r.output for r in results) else 1
