"""Jupyter kernels a user can attach to: `heatline.listKernels` and `heatline.attachKernel`.

A kernel is a Python process running ipykernel (`python -m ipykernel_launcher -f
kernel-….json`, as Jupyter, VS Code and jupyter_client start one). Listing filters the Python
processes `heatline.listProcesses` finds; attaching is `heatline.attach` once the PID is known
to be a kernel. Which notebook cell a kernel's samples belong to is server/notebook_cells.py's job.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from sampler.target.maps import read_cmdline

from .arguments import AttachArgs, parse
from .commands import attach, command, list_processes
from .errors import CommandFailed

if TYPE_CHECKING:
    from .app import HeatlineServer

_KERNEL_MODULES = ("ipykernel_launcher", "ipykernel")
_KERNEL_SCRIPTS = ("ipykernel_launcher.py",)


def is_kernel_argv(argv: list[str] | None) -> bool:
    """Whether a process with this argv runs ipykernel (only the interpreter's own arguments
    are looked at: a script merely named after it is not a kernel)."""
    if not argv:
        return False
    args = argv[1:]
    for i, arg in enumerate(args):
        if arg == "-m":
            return i + 1 < len(args) and args[i + 1] in _KERNEL_MODULES
        if arg.startswith("-m"):
            return arg[2:] in _KERNEL_MODULES
        if not arg.startswith("-"):  # the script: what follows is its own argv
            return os.path.basename(arg) in _KERNEL_SCRIPTS
    return False


def connection_file(argv: list[str]) -> str | None:
    """The kernel's connection file (`-f FILE`, `-f=FILE`, `--f=FILE`), if its argv names one."""
    for i, arg in enumerate(argv):
        if arg in ("-f", "--f") and i + 1 < len(argv):
            return argv[i + 1]
        for prefix in ("-f=", "--f="):
            if arg.startswith(prefix):
                return arg[len(prefix):]
    return None


@command("heatline.listKernels")
async def list_kernels(ls: HeatlineServer, name: str, args: list) -> list[dict[str, Any]]:
    """The running ipykernel processes, as `heatline.listProcesses` describes them, plus their
    connection file."""
    out = []
    for process in await list_processes.inner(ls, name, args):
        argv = read_cmdline(process["pid"])
        if is_kernel_argv(argv):
            assert argv is not None
            out.append({**process, "connectionFile": connection_file(argv)})
    return out


@command("heatline.attachKernel")
async def attach_kernel(ls: HeatlineServer, name: str, args: list) -> dict[str, Any]:
    """`heatline.attach` for a PID that must be a Jupyter kernel."""
    a = parse(name, AttachArgs, args)
    if not is_kernel_argv(read_cmdline(a.pid)):
        raise CommandFailed(f"PID {a.pid} is not a running Jupyter kernel (ipykernel): pick one from heatline.listKernels")
    return await attach.inner(ls, name, args)
