"""Start-up shim that `heatline run` executes under the *target's* interpreter (3.9+).

It must stay standalone (no heatline imports, no newer syntax): it tells the profiler it is up,
waits until the profiler has attached, then runs the user's script or module as `__main__`.
The profiler strips this file's frames (and runpy's, for -m) from every sample.

usage: python _coordinator.py READY_FD GO_FD CWD (script|module) TARGET [ARGS...]
"""

import os
import sys
import types


def _signal(fd, message):
    os.write(fd, message.encode("utf-8", "replace") + b"\n")


def _run_script(path, argv):
    with open(path, "rb") as fh:
        source = fh.read()
    code = compile(source, path, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    main.__spec__ = None
    sys.modules["__main__"] = main
    sys.argv = [path] + argv
    exec(code, main.__dict__)


def _run_module(name, argv):
    import runpy  # already imported before the profiler started sampling

    sys.argv = [name] + argv  # runpy replaces argv[0] with the module's file
    runpy.run_module(name, run_name="__main__", alter_sys=True)


def main():
    ready_fd, go_fd = int(sys.argv[1]), int(sys.argv[2])
    cwd, kind, target, argv = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
    os.chdir(cwd)
    if kind == "module":
        sys.path[0] = cwd
        import importlib.util
        import runpy  # noqa: F401 - import now, so its loading is not sampled as the target's

        try:
            found = importlib.util.find_spec(target) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            _signal(ready_fd, "error:No module named " + repr(target))
            sys.exit(1)
    else:
        target = os.path.abspath(target)
        if not os.path.isfile(target):
            _signal(ready_fd, "error:Script " + repr(target) + " not found")
            sys.exit(1)
        sys.path[0] = os.path.dirname(target)
    _signal(ready_fd, "ready")
    os.close(ready_fd)
    go = os.read(go_fd, 16)
    os.close(go_fd)
    if go.strip() != b"go":
        sys.exit(1)  # the profiler gave up on us
    if kind == "module":
        _run_module(target, argv)
    else:
        _run_script(target, argv)


def _report_crash(exc):
    # Show the user's traceback as plain `python script.py` would, without our frames.
    tb = exc.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename == __file__
        or tb.tb_frame.f_code.co_filename in ("<frozen runpy>",)
        or os.path.basename(tb.tb_frame.f_code.co_filename) == "runpy.py"
    ):
        tb = tb.tb_next
    # 3.12+'s default hook prints exc.__traceback__ and ignores its tb argument: cut both.
    exc.__traceback__ = tb
    sys.excepthook(type(exc), exc, tb)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's program failed; report like python
        _report_crash(exc)
        if isinstance(exc, KeyboardInterrupt):
            # As python does: die by SIGINT, so the caller sees how the program ended.
            import signal

            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        sys.exit(1)
