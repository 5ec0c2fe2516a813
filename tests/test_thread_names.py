"""Thread names read from a live target's memory, under every CPython on the machine."""

from __future__ import annotations

import dataclasses
import subprocess
import time

import pytest

from conftest import target, wait_ready
from sampler.cpython.thread_names import ThreadNames
from sampler.cpython.unwinder import Unwinder
from sampler.errors import ReadError


class NamedThreads:
    """tests/targets/named_threads.py, driven over its stdin."""

    def __init__(self, spawn, interpreter, *args: str) -> None:
        self.proc = spawn(interpreter, target("named_threads.py"), *args, stdin=subprocess.PIPE)
        wait_ready(self.proc)
        self.threads = []  # (ident, native id, name), main thread first
        while (line := self.proc.stdout.readline().rstrip("\n")) != "done":
            self.threads.append(self._parse(line))
        assert len(self.threads) == 9

    @staticmethod
    def _parse(line: str) -> tuple[int, int, str]:
        ident, native, name = line.split(" ", 2)
        return int(ident), int(native), name

    def command(self, line: str) -> list[str]:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = []
        while (reply := self.proc.stdout.readline().rstrip("\n")) != "ok":
            assert reply, f"target stopped answering: {self.proc.stderr.read()}"
            out.append(reply)
        return out

    def start(self, name: str) -> None:
        (line,) = self.command(f"start {name}")
        self.threads.append(self._parse(line))

    def rename(self, index: int, name: str) -> None:
        """Rename worker `index` (0-7; the main thread is not one of them)."""
        self.command(f"rename {index} {name}")
        ident, native, _old = self.threads[index + 1]
        self.threads[index + 1] = (ident, native, name)

    def stop(self, index: int) -> None:
        self.command(f"stop {index}")
        self.threads[index + 1] = None

    def expected(self, unwinder: Unwinder) -> dict[int, str]:
        """Names by the ids samples carry (the native id where the unwinder knows it), once the
        sampled threads are exactly the live ones (a joined thread may linger a moment)."""
        by_id = {}
        for ident, native, name in filter(None, self.threads):
            by_id[native] = by_id[ident] = name
        live = sum(1 for entry in self.threads if entry)
        ids: list[int] = []
        for _ in range(100):
            try:
                ids = [s.thread_id for s in unwinder.sample()]
            except ReadError:  # a stack changed while it was read: sample again
                continue
            if len(ids) == len(set(ids)) == live and all(i in by_id for i in ids):
                return {i: by_id[i] for i in ids}
            time.sleep(0.02)
        raise AssertionError(f"sampled thread ids {ids} are not those of the live threads {self.threads}")


def names_of(unwinder: Unwinder) -> dict[int, str]:
    """`thread_names()`, asked again if a torn read made it give up ({}) this time."""
    for _ in range(5):
        names = unwinder.thread_names()
        if names:
            return names
        time.sleep(0.01)
    return names


def _interp(unwinder: Unwinder) -> int:
    return unwinder.memory.read_u64(unwinder.runtime.runtime_addr + unwinder.L["runtime.interpreters_head"])


def _comm(name: str) -> str:
    return name.encode("utf-8")[:15].decode("utf-8", "ignore")


def test_names_of_every_thread(interpreter, spawn):
    t = NamedThreads(spawn, interpreter)
    u = Unwinder(t.proc.pid, all_threads=True)
    try:
        expected = t.expected(u)
        names = names_of(u)
        assert expected[t.proc.pid] == "MainThread"  # the main thread's id is the PID
        assert names == expected
        assert sorted(names.values()) == sorted(
            ["MainThread", "renamed-\u2713"] + [f"worker-{i}" for i in range(8) if i != 5]
        )
        assert names == names_of(u)  # the cached path gives the same answer
        # Idents read from the int objects agree with the hashes cached in `_active`'s entries.
        reader = ThreadNames(u.memory, u.runtime)
        reader.rules = dataclasses.replace(reader.rules, hash_is_int_below=0)
        by_ident = reader.read(_interp(u))
        assert by_ident == {ident: name for ident, _native, name in t.threads}
    finally:
        u.close()


def test_names_follow_changes(interpreter, spawn):
    """Renames, new threads and ended threads show on the next read (nothing stale is kept)."""
    t = NamedThreads(spawn, interpreter)
    u = Unwinder(t.proc.pid, all_threads=True)
    try:
        assert names_of(u) == t.expected(u)
        t.rename(0, "again-\u00e9")  # latin-1
        t.rename(1, "wide-\U0001f4a9-" + "x" * 300)  # 4-byte chars, long
        t.rename(2, "")
        t.rename(3, "worker-3")  # same text, new object
        t.start("late starter")
        t.stop(6)
        assert names_of(u) == t.expected(u)
        for n in range(5):  # the same name object over and over, then a new one each time
            t.rename(4, f"round-{n}")
            assert names_of(u) == t.expected(u)
        # Attributes in a dict object (not only values), then in a table of their own.
        t.command("vars 0")
        t.command("bloat 1")
        t.start("after bloat")
        t.rename(0, "vars-renamed")
        t.rename(1, "bloat-renamed")
        assert names_of(u) == t.expected(u)
    finally:
        u.close()


def test_comm_fallback(interpreter, spawn):
    """Where names cannot be read from memory, the OS thread names stand in."""
    t = NamedThreads(spawn, interpreter, "--comm")
    u = Unwinder(t.proc.pid, all_threads=True)
    try:
        reader = ThreadNames(u.memory, u.runtime)
        reader.supported = False
        u._thread_name_reader = reader
        expected = t.expected(u)
        names = names_of(u)
        workers = {i: n for i, n in expected.items() if i != t.proc.pid}
        assert t.proc.pid not in names
        # comm keeps the name a thread started with: worker-5's rename is not passed on.
        assert names == {i: _comm("worker-5" if n == "renamed-\u2713" else n) for i, n in workers.items()}
    finally:
        u.close()


def test_no_threading_module(interpreter, spawn):
    # -S: a site .pth file may import threading on its own.
    p = spawn(*interpreter.python("-S", interpreter.script_path(target("no_threading.py"))))
    wait_ready(p)
    u = Unwinder(p.pid, all_threads=True)
    try:
        assert u.thread_names() == {}
        assert u.thread_names() == {}  # again, through the "absent" shortcut
        assert ThreadNames(u.memory, u.runtime).read(_interp(u)) == {}
    finally:
        u.close()


def test_garbage_raises_only_read_error(interpreter, spawn):
    """Pointed at memory that is not an interpreter state, read() fails with ReadError only."""
    t = NamedThreads(spawn, interpreter)
    u = Unwinder(t.proc.pid, all_threads=True)
    try:
        reader = ThreadNames(u.memory, u.runtime)
        if not reader.supported:
            with pytest.raises(ReadError):
                reader.read(_interp(u))
            return
        assert reader.read(_interp(u))  # the real one works
        rt = u.runtime.runtime_addr
        bases = [0, 8, 1 << 60, rt, _interp(u) + 8, u.runtime.code_type_addr or rt]
        for base in bases:
            for delta in range(0, 4096, 64):
                try:
                    result = reader.read(base + delta)
                except ReadError:
                    continue
                assert isinstance(result, dict)
                assert all(isinstance(k, int) and isinstance(v, str) for k, v in result.items())
    finally:
        u.close()


def test_native_ids_survive_a_field_that_holds_the_pid_in_every_thread(interpreter, spawn):
    """3.9/3.10 find the kernel TID inside glibc's `struct pthread` by inference. A field that
    holds the PID in every thread (seen once in CI) must not pass for the TID field: every
    sampled thread would be the main thread."""
    t = NamedThreads(spawn, interpreter)
    u = Unwinder(t.proc.pid, all_threads=True)
    try:
        if "tstate.native_thread_id" in u.L:
            pytest.skip("this CPython stores the native thread id itself")
        true_off = u._infer_tid_offset()
        assert true_off >= 0
        pthreads = {ident for ident, _native, _name in t.threads}
        main_buf = u.memory.read(u._main_pthread, 2048)
        fake = next(off for off in range(0, true_off, 4)
                    if int.from_bytes(main_buf[off:off + 4], "little", signed=True) != t.proc.pid)
        real_read = u.memory.read
        pid = t.proc.pid.to_bytes(4, "little")

        def read(addr: int, size: int) -> bytes:
            data = real_read(addr, size)
            for p in pthreads:  # the field at `fake` reads as the PID in every thread
                at = p + fake - addr
                if 0 <= at and at + 4 <= len(data):
                    data = data[:at] + pid + data[at + 4:]
            return data

        u.memory.read = read
        u._tid_offset = None
        assert u._infer_tid_offset() == true_off  # distinct TIDs rule the field out

        u._tid_offset = fake  # as if inferred while the threads happened to agree
        ids = sorted(s.thread_id for s in u.sample())
        assert ids == sorted(native for _ident, native, _name in t.threads), ids
        assert u._tid_offset == true_off
    finally:
        u.close()
