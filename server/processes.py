"""A `--subprocesses` run's processes in the server: the heat of all of them merged (the run's
view), or of one process (`heatline.showProcess`), each process's view kept current as the run
streams (sampler/live_processes.py rebuilds every process's profile)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .arguments import ShowProcessArgs, parse
from .commands import _require_view, command
from .errors import CommandFailed
from .profile_view import ProfileView

if TYPE_CHECKING:
    from .app import HeatlineServer


class RunProcesses:
    """The processes of one run: the main one and the subprocesses it started."""

    def __init__(self, reader, all_view: ProfileView) -> None:
        self.reader = reader
        self.all = all_view
        self.views: dict[int, ProfileView] = {}

    def entries(self) -> list[dict[str, Any]]:
        """The main process first, then the subprocesses by PID: what a picker lists."""
        stats = self.reader.profile.stats
        main = self.reader.family.profile_of(stats.pid)
        out = [{"pid": stats.pid, "command": " ".join(stats.argv), "main": True,
                "samples": main.total_weight if main is not None else 0, "output": self.reader.output,
                "live": self.all.live, "note": None}]
        for pid, child in sorted(self.reader.family.children.items()):
            out.append({"pid": pid, "command": " ".join(child.argv), "main": False, "samples": child.profile.total_weight,
                        "output": child.output, "live": child.live and self.all.live, "note": child.note})
        return out

    def describe(self, view: ProfileView) -> dict[str, Any]:
        return {"processes": self.entries(), "process": view.process}

    def view_for(self, pid: int | None) -> ProfileView:
        if pid is None:
            return self.all
        view = self.views.get(pid)
        if view is None:
            profile = self.reader.family.profile_of(pid)
            if profile is None:
                raise CommandFailed(f"process {pid} is not part of this run")
            view = ProfileView(profile=profile, source=self.all.source, label=f"{self.all.label} · PID {pid}",
                               started_at=self.all.started_at, live=self.all.live, async_aware=self.all.async_aware,
                               async_mode=self.all.async_mode, processes=self, process=pid)
            self.views[pid] = view
        return view

    def changed(self) -> None:
        for view in (self.all, *self.views.values()):
            view.live = self.all.live
            view.changed()


@command("heatline.showProcess")
async def show_process(ls: HeatlineServer, name: str, args: list) -> dict[str, Any]:
    """Show the heat of one process of the run (`pid`), or of all of them (`pid` null)."""
    a = parse(name, ShowProcessArgs, args)
    view = _require_view(ls)
    if view.processes is None:
        raise CommandFailed("the profile shown is not a run with --subprocesses: it has one process")
    chosen = view.processes.view_for(a.pid)
    if chosen is not ls.view:
        ls.set_view(chosen)
    return chosen.describe()
