"""`workspace/executeCommand` handlers: run, attach, stop, list processes, open, diff, flame
graphs, clear, hottest, status.

Every handler validates its arguments (server/arguments.py) and turns the sampler's one-line
errors into a `window/showMessage` plus an LSP error response, so a bad request never stops
the server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import time
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from lsprotocol import types
from pygls.uris import from_fs_path

from sampler.cli import validate_async
from sampler.errors import HeatlineError, UsageError
from sampler.output_path import check_output
from sampler.target.maps import read_cmdline

from .arguments import (
    AttachArgs, DiffArgs, FlamegraphArgs, HottestArgs, NoArgs, PathArgs, RunArgs, SamplingArgs, parse,
)
from .errors import CommandFailed, InternalError, InvalidArguments, one_line
from .profile_view import ProfileView
from .runs import ActiveRun

if TYPE_CHECKING:
    from .app import HeatlineServer

COMMANDS: dict[str, Callable[..., Awaitable[Any]]] = {}
STOP_TIMEOUT_S = 30.0
CLI_ERROR_PREFIX = "heatline: error: "  # the CLI's usage errors start so; a command names itself


def command(name: str):
    def register(fn):
        # Unannotated on purpose: pygls reads the handler's signature and type hints to convert
        # arguments, and these must reach the validator exactly as the client sent them.
        async def handler(ls, *args):
            try:
                return await fn(ls, name, list(args))
            except (InvalidArguments, CommandFailed) as err:
                ls.show_error(err.message)
                raise
            except HeatlineError as err:
                ls.show_error(str(err))
                raise CommandFailed(str(err)) from None
            except Exception as err:  # a bug: the traceback to the log, one line to the user
                logging.getLogger(__name__).exception("%s failed", name)
                message = f"internal error: {one_line(str(err)) if str(err) else type(err).__name__}"
                ls.show_error(message)
                raise InternalError(message) from None

        handler.__name__ = fn.__name__
        handler.inner = fn  # for a command built on another (errors reported once); not __wrapped__: pygls reads that signature
        COMMANDS[name] = handler
        return handler

    return register


def _require_view(ls: HeatlineServer) -> ProfileView:
    if ls.view is None:
        raise CommandFailed("no profile is loaded: run a script, attach to a process or open a profile first")
    return ls.view


def _sampling_choices(ls: HeatlineServer, name: str, a: SamplingArgs) -> argparse.Namespace:
    """What a run samples: each argument given, else the user's setting, refused as the CLI
    refuses the same flags (its rules, not a copy of them). The asyncMode setting applies with
    async-aware profiling only, so turning that off never leaves every run refused."""
    s = ls.settings
    async_aware = s.async_aware if a.async_aware is None else a.async_aware
    chosen = argparse.Namespace(
        rate=a.rate or s.sampling_rate, mode=a.mode or s.mode, gc=a.gc is not False,
        all_threads=s.all_threads if a.all_threads is None else a.all_threads,
        async_aware=async_aware, async_mode=a.async_mode or (s.async_mode if async_aware else "running"),
        opcodes=s.opcodes if a.opcodes is None else a.opcodes, native=s.native if a.native is None else a.native,
        subprocesses=s.subprocesses if a.subprocesses is None else a.subprocesses,
    )
    try:
        validate_async(chosen)
    except UsageError as err:
        raise InvalidArguments(f"{name}: {str(err).removeprefix(CLI_ERROR_PREFIX)}") from None
    return chosen


def _sampling_flags(ls: HeatlineServer, chosen: argparse.Namespace, a: SamplingArgs) -> list[str]:
    flags = ["-r", str(chosen.rate), "--mode", chosen.mode]
    if chosen.all_threads:
        flags.append("-a")
    if a.duration:
        flags += ["-d", repr(a.duration)]
    if not chosen.gc:
        flags.append("--no-gc")
    if chosen.async_aware:
        flags += ["--async-aware", "--async-mode", chosen.async_mode]
    flags += [flag for flag, on in (("--opcodes", chosen.opcodes), ("--native", chosen.native)) if on]
    if chosen.subprocesses:
        flags.append("--subprocesses")
    if a.output:
        output = ls.user_path(a.output)
        check_output(output, binary=True)  # refused before the run starts, as the CLI does
        flags += ["--binary", "-o", output]
    return flags


def _async_mode(chosen: argparse.Namespace) -> str | None:
    return chosen.async_mode if chosen.async_aware else None


async def _start(ls: HeatlineServer, run: ActiveRun) -> dict[str, Any]:
    if ls.active_run is not None:
        raise CommandFailed(f"a profiling run is already active ({ls.active_run.label}): stop it first with heatline.stop")
    ls.active_run = run
    try:
        return await run.start()
    except BaseException:
        if ls.active_run is run:
            ls.active_run = None
        raise


@command("heatline.run")
async def run(ls: HeatlineServer, name: str, args: list) -> dict[str, Any]:
    a = parse(name, RunArgs, args)
    if (a.script is None) == (a.module is None):
        raise InvalidArguments(f"{name} needs exactly one of 'script' (a path) or 'module' (a module name)")
    cwd = ls.user_path(a.cwd) if a.cwd else (ls.roots[0] if ls.roots else None)
    if cwd is not None and not os.path.isdir(cwd):
        raise CommandFailed(f"the working directory {cwd} does not exist")
    chosen = _sampling_choices(ls, name, a)
    if a.script is not None:
        script = os.path.normpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(a.script)))
        if not os.path.isfile(script):
            raise CommandFailed(f"no such script: {script}")
        target, label = [script], os.path.basename(script)
        if cwd is None:
            cwd = os.path.dirname(script)
    else:
        target, label = ["-m", a.module], f"-m {a.module}"
    return await launch(ls, a, chosen, [*target, *a.args], label, cwd, a.python or ls.settings.python_path)


async def launch(ls: HeatlineServer, a: SamplingArgs, chosen: argparse.Namespace, target: list[str], label: str,
                 cwd: str | None, python: str | None) -> dict[str, Any]:
    """Start `heatline run` on `target` (a script or `-m module`, then its arguments) in `cwd`
    under `python` (None: the server's), sampling as `chosen` (`_sampling_choices`) says."""
    flags = _sampling_flags(ls, chosen, a)
    if python:
        flags += ["--python", python]
    sampler_args = ["run", *flags, *target]
    ls.log(f"heatline: profiling {shlex.join(target)} in {cwd}", types.MessageType.Info)
    return await _start(ls, ActiveRun(ls, "run", label, sampler_args, cwd, a.duration, _async_mode(chosen)))


@command("heatline.attach")
async def attach(ls: HeatlineServer, name: str, args: list) -> dict[str, Any]:
    a = parse(name, AttachArgs, args)
    chosen = _sampling_choices(ls, name, a)
    if a.pid == os.getpid():
        raise CommandFailed(f"PID {a.pid} is this heatline language server itself: heatline cannot profile itself")
    label = f"PID {a.pid}"
    argv = read_cmdline(a.pid)  # None for a bad pid: the sampler says precisely what is wrong
    if argv:
        label += f" ({os.path.basename(argv[1] if len(argv) > 1 else argv[0])})"
    sampler_args = ["attach", *_sampling_flags(ls, chosen, a), str(a.pid)]
    return await _start(ls, ActiveRun(ls, "attach", label, sampler_args, None, a.duration, _async_mode(chosen)))


@command("heatline.stop")
async def stop(ls: HeatlineServer, name: str, args: list) -> dict[str, Any]:
    parse(name, NoArgs, args)
    active = ls.active_run
    if active is None:
        raise CommandFailed("no profiling run is active")
    active.stop()
    try:
        return await asyncio.wait_for(asyncio.shield(active.finished), STOP_TIMEOUT_S)
    except asyncio.TimeoutError:
        active.session.kill()
        raise CommandFailed("the profiler did not stop in time and was killed") from None


@command("heatline.listProcesses")
async def list_processes(ls: HeatlineServer, name: str, args: list) -> list[dict[str, Any]]:
    parse(name, NoArgs, args)
    from sampler.processes import list_python_processes

    exclude = {os.getpid()}
    if ls.active_run is not None and ls.active_run.session.pid:
        exclude.add(ls.active_run.session.pid)
    found = await asyncio.to_thread(list_python_processes, exclude=exclude)
    return [
        {
            "pid": p.pid, "command": p.command, "executable": p.executable, "pythonVersion": p.python_version,
            "needsPrivileges": p.needs_privileges, "reason": p.reason, "cwd": p.cwd,
        }
        for p in found
    ]


class _LoadProgress:
    """Work-done progress for loading a file; reports come from the loading thread."""

    def __init__(self, ls: HeatlineServer, title: str) -> None:
        self.ls = ls
        self.title = title
        self.token: str | None = None
        self.last_pct = -1

    async def begin(self) -> None:
        if not self.ls.supports_progress:
            return
        token = f"heatline-load-{uuid.uuid4()}"
        try:
            await self.ls.work_done_progress.create_async(token)
        except Exception:
            return
        self.token = token
        self.ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(title="heatline", message=self.title, percentage=0))

    def from_thread(self, done: int, total: int) -> None:
        pct = min(100, int(100 * done / total)) if total else 0
        if self.token is None or pct == self.last_pct or self.ls.loop is None:
            return
        self.last_pct = pct
        self.ls.loop.call_soon_threadsafe(
            self.ls.work_done_progress.report, self.token,
            types.WorkDoneProgressReport(message=f"{done:,} of {total:,} samples", percentage=pct),
        )

    def end(self, message: str) -> None:
        if self.token is not None:
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))


async def _load(ls: HeatlineServer, path: str) -> ProfileView:
    from sampler.loaders import load_profile

    path = ls.user_path(path)
    progress = _LoadProgress(ls, f"loading {os.path.basename(path)}")
    await progress.begin()
    try:
        loaded = await asyncio.to_thread(load_profile, path, progress.from_thread)
        try:
            written = os.stat(path).st_mtime
        except OSError:
            written = time.time()
        view = ProfileView(
            profile=loaded.profile, source="file", label=os.path.basename(path),
            # Sources saved after the run began may not be what ran; without a recorded start,
            # the profile file's own time is the latest the run can have begun.
            started_at=loaded.recorded_start or written,
            exact_totals=loaded.exact_totals, line_totals=loaded.line_totals,
            async_aware=any(frame.is_task for frame in loaded.profile.frames),
        )
        await asyncio.to_thread(view.index)  # built off the loop: big profiles take a while
    finally:
        progress.end("loaded")
    return view


@command("heatline.open")
async def open_profile(ls: HeatlineServer, name: str, args: list) -> dict[str, Any]:
    a = parse(name, PathArgs, args)
    view = await _load(ls, a.path)
    ls.set_view(view)
    return view.describe()


@command("heatline.diff")
async def diff(ls: HeatlineServer, name: str, args: list) -> dict[str, Any]:
    a = parse(name, DiffArgs, args)
    if a.current is not None:
        current = await _load(ls, a.current)
    else:
        current = _require_view(ls)
        if current.live:
            raise CommandFailed("the profile is still being recorded: stop the run before comparing it")
    baseline = await _load(ls, a.baseline)
    current.baseline = baseline
    current.changed()
    if ls.view is current:
        ls.publish()
    else:
        ls.set_view(current)
    return {"current": current.describe(), "baseline": baseline.describe(), "changes": _biggest_changes(current)}


def _biggest_changes(view: ProfileView, count: int = 10) -> list[dict[str, Any]]:
    """The lines whose self share moved most between the baseline and the current profile."""
    assert view.baseline is not None
    cur, base = view.index(), view.baseline.index()
    shares: dict[tuple[str, int], list[float]] = {}
    for index, slot in ((cur, 0), (base, 1)):
        for filename in index.filenames():
            for line, heat in index.lines(filename).items():
                entry = shares.setdefault((filename, line), [0.0, 0.0])
                entry[slot] = 100.0 * heat.self_samples / index.total_samples if index.total_samples else 0.0
    ranked = sorted(shares.items(), key=lambda item: -abs(item[1][0] - item[1][1]))[:count]
    return [
        {"file": f, "line": line - 1, "selfPct": round(now, 2), "baselineSelfPct": round(before, 2),
         "deltaSelfPct": round(now - before, 2)}
        for (f, line), (now, before) in ranked if now != before
    ]


def _focus(ls: HeatlineServer, view: ProfileView, a: FlamegraphArgs) -> dict[str, str] | None:
    """The profile's own names for the function a client asked about."""
    if a.function is None:
        return None
    filename = view.matcher(ls.roots).filename_for(ls.user_path(a.file)) if a.file else None
    wanted = a.function
    short = wanted.rsplit(".", 1)[-1]
    best = None
    for frame in view.profile.frames:
        if filename is not None and frame.filename != filename:
            continue
        # 3.11+ profiles name methods by qualname ("Worker.run"), older ones by name ("run").
        if frame.funcname == wanted:
            best = frame
            break
        if best is None and frame.funcname.rsplit(".", 1)[-1] == short:
            best = frame
    if best is None:
        return None
    return {"funcname": best.funcname, "filename": best.filename}


def _output_path(ls: HeatlineServer, requested: str | None, stem: str) -> str:
    if requested:
        return ls.user_path(requested)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    directory = os.path.join(cache, "heatline")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f"{stem}.html")


async def _write_page(ls: HeatlineServer, a: FlamegraphArgs, data: dict[str, Any], stem: str) -> dict[str, Any]:
    from sampler.collectors.flamegraph import render_html
    from sampler.output_path import write_output

    path = _output_path(ls, a.output, stem)
    html = await asyncio.to_thread(render_html, data, data.get("title"))
    check_output(path)
    # Regular files are replaced atomically, devices and FIFOs written into (as the CLI does).
    await asyncio.to_thread(write_output, path, lambda fh: fh.write(html.encode("utf-8")))
    uri = from_fs_path(path)
    if a.show:
        await ls.window_show_document_async(types.ShowDocumentParams(uri=uri, external=True))
    result: dict[str, Any] = {"path": path, "uri": uri, "focused": bool(data.get("focus"))}
    if a.return_data:
        result["data"] = data
    return result


@command("heatline.flamegraph")
async def flamegraph(ls: HeatlineServer, name: str, args: list) -> dict[str, Any]:
    from sampler.collectors.flamegraph import default_title, flamegraph_data

    a = parse(name, FlamegraphArgs, args)
    view = _require_view(ls)
    data = await asyncio.to_thread(flamegraph_data, view.profile, title=default_title(view.profile))
    focus = _focus(ls, view, a)
    if focus is not None:
        data["focus"] = focus
    return await _write_page(ls, a, data, f"flamegraph-{view.id}")


@command("heatline.diffFlamegraph")
async def diff_flamegraph(ls: HeatlineServer, name: str, args: list) -> dict[str, Any]:
    from sampler.collectors.diff_flamegraph import diff_flamegraph_data
    from sampler.collectors.flamegraph import default_title

    a = parse(name, FlamegraphArgs, args)
    view = _require_view(ls)
    if view.baseline is None:
        raise CommandFailed("no baseline to compare with: run heatline.diff with a baseline profile first")
    data = await asyncio.to_thread(
        diff_flamegraph_data, view.profile, view.baseline.profile,
        title=default_title(view.profile, "differential flame graph"),
    )
    focus = _focus(ls, view, a)
    if focus is not None:
        data["focus"] = focus
    return await _write_page(ls, a, data, f"diff-flamegraph-{view.id}")


@command("heatline.clear")
async def clear(ls: HeatlineServer, name: str, args: list) -> None:
    parse(name, NoArgs, args)
    if ls.active_run is not None:
        ls.active_run.stop()
    ls.set_view(None)


@command("heatline.hottest")
async def hottest(ls: HeatlineServer, name: str, args: list) -> list[dict[str, Any]]:
    a = parse(name, HottestArgs, args)
    view = _require_view(ls)
    index = view.index()
    matcher = view.matcher(ls.roots)
    total = index.total_samples
    out = []
    if a.kind == "lines":
        for filename, heat, funcname in index.hottest_lines(a.count, by=a.by):
            out.append(_location(ls, matcher, filename, heat.line, funcname, heat.self_samples,
                                 view.line_totals.get((filename, heat.line), heat.total_samples), total))
    else:
        for filename, funcname, line, self_n, total_n in index.hottest_functions(a.count, by=a.by):
            out.append(_location(ls, matcher, filename, line, funcname, self_n, total_n, total))
    return out


def _location(ls: HeatlineServer, matcher, filename: str, line: int, funcname: str, self_n: int, total_n: int,
              total: int) -> dict[str, Any]:
    """One hot spot, with where it is now in the editor when the file is open there."""
    path = matcher.doc_path_for(filename)
    uri = from_fs_path(path) if path else ls.cells.uri_for(filename)  # a kernel's cell: the open cell
    now_line, stale = line - 1, False
    if uri is not None and (uri in ls.workspace.text_documents or ls.cells.is_cell(uri)):
        heat = ls.document_heat(uri)
        for entry in heat.lines.values():
            if entry.profiled_line == line:
                now_line, stale = entry.line, entry.stale
                break
    return {
        "file": filename, "path": path, "uri": uri, "line": now_line, "function": funcname,
        "self": self_n, "total": total_n,
        "selfPct": round(100.0 * self_n / total, 2) if total else 0.0,
        "totalPct": round(100.0 * total_n / total, 2) if total else 0.0,
        "stale": stale,
    }


@command("heatline.status")
async def status(ls: HeatlineServer, name: str, args: list) -> dict[str, Any]:
    parse(name, NoArgs, args)
    s = ls.settings
    return {
        "version": ls.version,
        "profile": ls.view.describe() if ls.view else None,
        "running": ls.active_run is not None,
        "settings": {"samplingRate": s.sampling_rate, "mode": s.mode, "allThreads": s.all_threads,
                     "asyncAware": s.async_aware, "asyncMode": s.async_mode, "opcodes": s.opcodes, "native": s.native,
                     "inlayHintThreshold": s.inlay_hint_threshold, "codeLens": s.code_lens,
                     "inlayHints": s.inlay_hints, "pythonPath": s.python_path, "subprocesses": s.subprocesses,
                     "testLenses": s.test_lenses},
    }


from . import processes as _processes  # noqa: E402,F401 - registers heatline.showProcess (it uses `command`)
from . import testrun as _testrun  # noqa: E402,F401 - registers heatline.profileTest and heatline.testAt
from . import hot_functions as _hot_functions  # noqa: E402,F401 - registers heatline.hotFunctions (it uses `command`)
from . import kernels as _kernels  # noqa: E402,F401 - registers heatline.listKernels, heatline.attachKernel
