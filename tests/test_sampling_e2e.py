"""End to end: real targets under every CPython on the machine, profiled through the real CLI.

Every assertion checks what the target is known to do: which functions run, on which lines,
in which threads and states, and in what proportions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


from conftest import favoured, has_func, heatline, parse_collapsed, start_ready, target, wait_ready, weight_where

MAIN_LINES = tuple(f"known_lines.py:main:{n}" for n in range(18, 22))


def _collapsed(tmp_path, *args: str) -> list:
    out = tmp_path / "out.txt"
    res = heatline(*args[:1], *(["--collapsed", "-o", str(out)]), *args[1:])
    assert res.returncode == 0, res.stderr
    return parse_collapsed(str(out))


def _attach(tmp_path, pid: int, *opts: str, duration: str = "1.5") -> list:
    out = tmp_path / "out.txt"
    res = heatline("attach", str(pid), "-d", duration, "--collapsed", "-o", str(out), *opts)
    assert res.returncode == 0, res.stderr
    assert "Captured" in res.stdout
    return parse_collapsed(str(out))


def test_run_known_functions_and_lines(host_interpreter, tmp_path):
    # `run` launches the interpreter itself; the sid root's ones are covered by the attach tests.
    out = tmp_path / "out.txt"
    res = heatline("run", "--python", host_interpreter.path, "-d", "1.5", "--collapsed", "-o", str(out),
                   target("known_lines.py"), "30")
    assert res.returncode == 0, res.stderr
    rows = parse_collapsed(str(out))
    total = sum(c for *_x, c in rows)
    # 1.5 s at 1 kHz is 1,500 on an idle machine; a loaded one takes fewer, enough for shares.
    assert total > 200
    # Every stack is <module> -> main -> inner, and nothing of the launcher shows.
    for _tid, frames, _c in rows:
        assert frames[0].startswith("known_lines.py:<module>:"), frames
        assert "_coordinator" not in ";".join(frames) and "runpy" not in ";".join(frames)
    # Right after start-up a sample may still catch the module on its imports; then main().
    in_main = weight_where(rows, lambda f: f[0] == "known_lines.py:<module>:25" and f[1:2] and f[1] in MAIN_LINES)
    assert in_main / total > 0.98
    inner = weight_where(rows, lambda f: f[-1].startswith("known_lines.py:inner:"))
    assert inner / total > 0.95
    hot = weight_where(rows, lambda f: f[-1] in ("known_lines.py:inner:7", "known_lines.py:inner:8"))
    assert hot / total > 0.8


def test_run_module_strips_launcher(tmp_path):
    out = tmp_path / "out.txt"
    res = heatline("run", "-d", "1", "--collapsed", "-o", str(out), "-m", "known_lines", "30",
                   cwd=os.path.dirname(target("known_lines.py")))
    assert res.returncode == 0, res.stderr
    rows = parse_collapsed(str(out))
    assert rows
    total = sum(c for *_x, c in rows)
    for _tid, frames, _c in rows:
        # Finding and loading the module (importlib) is part of running it, as with python -m.
        assert frames[0].startswith(("known_lines.py:<module>:", "<frozen importlib")), frames
        assert not any("runpy" in f or "_coordinator" in f for f in frames)
    assert weight_where(rows, lambda f: f[0].startswith("known_lines.py:<module>:")) / total > 0.98


def test_attach_known_functions(interpreter, tmp_path, spawn):
    p = spawn(interpreter, target("known_lines.py"))
    wait_ready(p)
    rows = _attach(tmp_path, p.pid)
    total = sum(c for *_x, c in rows)
    assert total > 200  # 1,500 on an idle machine
    assert weight_where(rows, lambda f: f[-1].startswith("known_lines.py:inner:")) / total > 0.95
    assert all(f[0] == "known_lines.py:<module>:25" for _t, f, _c in rows)
    assert all(f[1] in MAIN_LINES for _t, f, _c in rows)
    # The loop condition is cheap next to the call: nearly all time is below line 21.
    assert weight_where(rows, lambda f: f[1] == "known_lines.py:main:21") / total > 0.95


def test_deep_recursion(interpreter, tmp_path, spawn):
    p = spawn(interpreter, target("recursion.py"), "150")
    wait_ready(p)
    rows = _attach(tmp_path, p.pid, duration="1")
    deepest = max(sum(1 for f in frames if ":recurse:" in f) for _t, frames, _c in rows)
    assert deepest == 151
    total = sum(c for *_x, c in rows)
    full = weight_where(rows, lambda f: sum(1 for x in f if ":recurse:" in x) == 151)
    assert full / total > 0.8  # most time is spent at the bottom of the recursion
    for _t, frames, _c in rows:
        assert all(x == "recursion.py:recurse:10" for x in frames[2:-1] if ":recurse:" in x)


def test_threads_all_vs_main(interpreter, tmp_path, spawn):
    p = spawn(interpreter, target("threads.py"))
    wait_ready(p)
    rows = _attach(tmp_path, p.pid, "-a")
    tids_by_worker: dict[str, set[int]] = {}
    for tid, frames, _c in rows:
        for i in range(8):
            if has_func(frames, f"worker_{i}"):
                tids_by_worker.setdefault(f"worker_{i}", set()).add(tid)
    assert sorted(tids_by_worker) == [f"worker_{i}" for i in range(8)]
    all_tids = [next(iter(t)) for t in tids_by_worker.values()]
    assert all(len(t) == 1 for t in tids_by_worker.values()) and len(set(all_tids)) == 8
    # Thread ids are the OS thread ids, so they match /proc/PID/task.
    tasks = {int(t) for t in os.listdir(f"/proc/{p.pid}/task")}
    assert set(all_tids) <= tasks
    main_rows = [r for r in rows if has_func(r[1], "main_loop")]
    assert main_rows and {r[0] for r in main_rows} == {p.pid}
    # Without -a only the main thread is sampled.
    rows = _attach(tmp_path, p.pid, duration="1")
    assert {tid for tid, *_x in rows} == {p.pid}
    assert all(has_func(f, "main_loop") for _t, f, _c in rows)


def test_generators_and_coroutines(interpreter, tmp_path, spawn):
    p = spawn(interpreter, target("gen_coro.py"))
    wait_ready(p)
    rows = _attach(tmp_path, p.pid, duration="2")
    in_gen = weight_where(rows, lambda f: f[-1] == "gen_coro.py:produce:8")
    assert in_gen, "generator body never seen"
    # The target runs while its frames are read: a sampler preempted between two reads on a
    # loaded machine may join halves of two moments (CI saw such stacks), so a few may stray;
    # a walker that lost a generator's caller would put none of them under it.
    assert weight_where(rows, lambda f: f[-1] == "gen_coro.py:produce:8"
                        and f[-2].startswith("gen_coro.py:consume_generator:")) >= 0.9 * in_gen
    in_coro = weight_where(rows, lambda f: f[-1] == "gen_coro.py:coro_work:24")
    assert in_coro, "coroutine body never seen"
    assert weight_where(rows, lambda f: f[-1] == "gen_coro.py:coro_work:24"
                        and any(":coro_driver:" in x for x in f)) >= 0.9 * in_coro


def test_wall_vs_cpu_mode(interpreter, tmp_path, spawn):
    p = spawn(interpreter, target("io_vs_cpu.py"))
    wait_ready(p)
    wall = _attach(tmp_path, p.pid, "-a", "--mode", "wall")
    blocked = weight_where(wall, lambda f: has_func(f, "blocked_in_io"))
    busy = weight_where(wall, lambda f: has_func(f, "busy"))
    assert blocked > 0.3 * (blocked + busy) and busy > 0.3 * (blocked + busy)
    assert any(f[-1] == "io_vs_cpu.py:blocked_in_io:6" for _t, f, _c in wall)
    cpu = _attach(tmp_path, p.pid, "-a", "--mode", "cpu")
    assert weight_where(cpu, lambda f: has_func(f, "blocked_in_io")) == 0
    assert weight_where(cpu, lambda f: has_func(f, "busy")) > 500


def test_gil_mode(interpreter, tmp_path, spawn):
    p = spawn(interpreter, target("io_vs_cpu.py"))
    wait_ready(p)
    rows = _attach(tmp_path, p.pid, "-a", "--mode", "gil")
    # The busy thread holds the GIL; the one blocked in read() released it.
    assert weight_where(rows, lambda f: has_func(f, "blocked_in_io")) == 0
    assert weight_where(rows, lambda f: has_func(f, "busy")) > 500


def test_exception_mode(interpreter, tmp_path, spawn):
    p = spawn(interpreter, target("exceptions.py"))
    wait_ready(p)
    # The target alternates equal counted work with and without an exception being handled:
    # each is about half of a wall profile, however many samples a busy machine lets the
    # profiler take (wall mode keeps every sample it takes).
    wall = _attach(tmp_path, p.pid)
    wall_total = sum(c for *_x, c in wall)
    assert weight_where(wall, lambda f: has_func(f, "plain")) >= 0.3 * wall_total > 0
    assert weight_where(wall, lambda f: has_func(f, "handling")) >= 0.3 * wall_total

    # A sample is kept only if the exception is seen in flight on both sides of the stack copy,
    # so exception mode keeps a share of those moments; what it keeps must be right. How many
    # samples a run takes and keeps depends on the CPU the profiler gets, so profile until 150
    # handler samples are in rather than for a fixed time, and judge the share kept against the
    # samples taken.
    def handling_of(rows):
        return weight_where(rows, lambda f: has_func(f, "handling"))

    rows: list = []
    captured = 0
    out = tmp_path / "exc.txt"
    deadline = time.monotonic() + 60
    while handling_of(rows) < 150 and time.monotonic() < deadline:
        res = heatline("attach", str(p.pid), "-d", "2.5", "--collapsed", "-o", str(out), "--mode", "exception")
        assert res.returncode == 0, res.stderr
        captured += int(res.stdout.split("Captured ", 1)[1].split()[0].replace(",", ""))
        rows += parse_collapsed(str(out))
    handling = handling_of(rows)
    plain = weight_where(rows, lambda f: has_func(f, "plain"))
    assert handling >= 150
    assert handling >= 0.1 * captured, (handling, captured)
    assert plain <= 0.02 * handling
    assert any(f[-2] == "exceptions.py:handling:12" for _t, f, _c in rows if len(f) >= 2)


def test_unicode_names(interpreter, tmp_path, spawn):
    p = spawn(interpreter, target("unicode_💩.py"))
    wait_ready(p)
    rows = _attach(tmp_path, p.pid, duration="1")
    stacks = [f for _t, f, _c in rows]
    assert any(f[-1].startswith("unicode_💩.py:function1:") and f[-2] == "unicode_💩.py:кириллица:9" for f in stacks)


def test_accuracy_70_30(interpreter, tmp_path, spawn):
    """A target spending a known 70/30 split of CPU is measured within 5 percentage points.

    Idle, and beside two CPU hogs, runs measure 0.696-0.705; under the bursty load of full test
    runs beside other work it came out at 0.669 and 0.670 (three times in two days), so 3 points
    was a figure only a quiet machine reaches. A wrong attribution (the samples of one function
    counted to the other, or lost) moves it far more than 5 points."""
    out = tmp_path / "out.txt"
    example = os.path.join(os.path.dirname(target("x")), "..", "..", "examples", "hotspots.py")
    if interpreter.rooted:  # attach until it exits: the same profile, without the launcher
        p = start_ready(spawn, interpreter, example, "4", prefix=favoured())
        res = heatline("attach", str(p.pid), "--collapsed", "-o", str(out), prefix=favoured())
    else:
        res = heatline("run", "--python", interpreter.path, "--collapsed", "-o", str(out), example, "4",
                       prefix=favoured())
    assert res.returncode == 0, res.stderr
    rows = parse_collapsed(str(out))
    parse = weight_where(rows, lambda f: has_func(f, "parse_records"))
    check = weight_where(rows, lambda f: has_func(f, "checksum"))
    share = parse / (parse + check)
    assert abs(share - 0.70) <= 0.05, f"parse_records share {share:.3f}"


def test_pstats_table_and_file(tmp_path):
    res = heatline("run", "-d", "1", target("known_lines.py"), "30")
    assert res.returncode == 0, res.stderr
    assert "Profile Stats:" in res.stdout
    assert "known_lines.py:8(inner)" in res.stdout
    out = tmp_path / "p.pstats"
    res = heatline("run", "-d", "1", "-o", str(out), target("known_lines.py"), "30")
    assert res.returncode == 0, res.stderr
    import pstats

    st = pstats.Stats(str(out))
    inner_direct = sum(v[0] for k, v in st.stats.items() if k[2] == "inner")
    total_direct = sum(v[0] for v in st.stats.values())
    assert inner_direct / total_direct > 0.95
    main_cum = max(v[1] for k, v in st.stats.items() if k[2] == "main")
    assert main_cum / total_direct > 0.95


def test_dump(interpreter, spawn):
    p = spawn(interpreter, target("threads.py"))
    wait_ready(p)
    res = heatline("dump", str(p.pid), "-a")
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert f'Stack dump for PID {p.pid}, thread {p.pid} "MainThread" (main thread' in text
    assert "most recent call last):" in text
    assert "in main_loop" in text and "time.sleep(0.01)" in text
    assert sum(f"in worker_{i}" in text for i in range(8)) == 8
    # Each worker's stack is headed by its own thread's name.
    for block in text.split("Stack dump for PID")[1:]:
        for i in range(8):
            if f"in worker_{i}\n" in block:
                assert f'"worker-{i}"' in block.splitlines()[0]


def test_target_exit_mid_run_still_writes(interpreter, tmp_path, spawn):
    out = tmp_path / "out.txt"
    if interpreter.rooted:  # an attached target that exits mid-run
        p = start_ready(spawn, interpreter, target("exits_mid_run.py"), "2")  # outlives attaching
        res = heatline("attach", str(p.pid), "--collapsed", "-o", str(out))
    else:
        res = heatline("run", "--python", interpreter.path, "--collapsed", "-o", str(out), target("exits_mid_run.py"))
    # `run` exits with the target's status (3), so CI fails when the program fails.
    assert res.returncode == (0 if interpreter.rooted else 3), res.stderr
    rows = parse_collapsed(str(out))
    assert weight_where(rows, lambda f: has_func(f, "short_lived")) > 300
    if not interpreter.rooted:
        assert "exited with status 3" in res.stderr


def test_ctrl_c_still_writes(tmp_path):
    out = tmp_path / "out.txt"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sampler", "run", "--collapsed", "-o", str(out), target("known_lines.py")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Interrupted by user." in stderr
    rows = parse_collapsed(str(out))
    assert weight_where(rows, lambda f: has_func(f, "inner")) > 500


def test_summary_and_realtime_stats(tmp_path):
    res = heatline("run", "-d", "1.5", "-r", "500", "--realtime-stats", "--collapsed", "-o", str(tmp_path / "o.txt"),
                   target("known_lines.py"), "30")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    captured = next(line for line in lines if line.startswith("Captured"))
    n = int(captured.split()[1].replace(",", ""))
    # 1.5 s at 500 Hz: 750 ticks; the jittered clock (±50% per interval) spreads that by ~±8 (1σ).
    assert 650 <= n <= 800
    assert any(line.startswith("Sample rate:") for line in lines)
    assert any(line.startswith("Error rate:") for line in lines)
    assert "Stats:" in res.stderr and "Hz" in res.stderr


def test_gc_frames(interpreter, tmp_path, spawn):
    p = spawn(interpreter, target("gc_heavy.py"))
    wait_ready(p)
    rows = _attach(tmp_path, p.pid)
    total = sum(c for *_x, c in rows)
    in_gc = weight_where(rows, lambda f: f[-1] == "<GC>")
    assert in_gc > 0.2 * total
    # <GC> sits on top of the code that triggered the collection: mostly the explicit
    # gc.collect() on line 12, sometimes an automatic one during the allocations of line 10.
    assert all(f.index("<GC>") == len(f) - 1 for _t, f, _c in rows if "<GC>" in f)
    explicit = weight_where(rows, lambda f: f[-2:] == ["gc_heavy.py:churn:12", "<GC>"])
    assert explicit > 0.5 * in_gc
    assert all(len(f) > 1 for _t, f, _c in rows if "<GC>" in f)  # never a bare <GC>
    rows = _attach(tmp_path, p.pid, "--no-gc")
    assert weight_where(rows, lambda f: "<GC>" in f) == 0
    # Shares of this run's own samples: a loaded machine may give the two runs different counts.
    no_gc_total = sum(c for *_x, c in rows)
    assert weight_where(rows, lambda f: f[-1] == "gc_heavy.py:churn:12") > 0.2 * no_gc_total


def test_gil_mode_one_holder_per_sample(interpreter, tmp_path, spawn):
    """Two threads compete for the GIL: each sample shows at most the one that holds it."""
    p = spawn(interpreter, target("gil_contention.py"))
    wait_ready(p)
    out = tmp_path / "out.txt"
    res = heatline("attach", str(p.pid), "-a", "-d", "1.5", "--mode", "gil", "--collapsed", "-o", str(out))
    assert res.returncode == 0, res.stderr
    samples = int(res.stdout.split("Captured ", 1)[1].split()[0].replace(",", ""))
    rows = parse_collapsed(str(out))
    held = sum(c for *_x, c in rows)
    assert 0.8 * samples <= held <= samples  # one holder per sample (none while it switches)
    a = weight_where(rows, lambda f: has_func(f, "spin_a"))
    b = weight_where(rows, lambda f: has_func(f, "spin_b"))
    assert a > 0.2 * held and b > 0.2 * held  # both get their turns
    assert weight_where(rows, lambda f: f[-1].endswith(":21")) <= 0.02 * held


def test_slow_rates_end_with_the_target_and_the_duration(tmp_path, spawn):
    """One tick every 100 s: a target that exits after 0.6 s, or a 1 s duration, still ends the
    run then, not ticks later (the timeout is far below one tick, far above the run)."""
    out = tmp_path / "out.txt"
    res = heatline("run", "-r", "0.01", "--collapsed", "-o", str(out), target("exits_mid_run.py"), timeout=60)
    assert res.returncode == 3, res.stderr  # the target's status
    assert "exited with status 3" in res.stderr
    p = spawn(sys.executable, target("known_lines.py"))
    wait_ready(p)
    res = heatline("attach", str(p.pid), "-r", "0.01", "-d", "1", "--collapsed", "-o", str(out), timeout=60)
    assert res.returncode == 0, res.stderr
    assert p.poll() is None


# -- stacks deeper than the walk, names longer than a read (README, "Trustworthy stacks") ------

DEPTH_LIMIT = 2048  # a deeper stack keeps its innermost 2,048 frames under a "<truncated>" root
NAME_LIMIT = 1000  # a longer name keeps its first 1,000 characters and "…"


def _attach_counted(tmp_path, pid: int) -> tuple[list, float, int]:
    """(rows, error rate in %, samples captured) of a 1 s collapsed profile of `pid`."""
    out = tmp_path / "out.txt"
    res = heatline("attach", str(pid), "-d", "1", "--collapsed", "-o", str(out))
    assert res.returncode == 0, res.stderr
    error_rate = float(res.stdout.split("Error rate: ", 1)[1].split()[0])
    captured = int(res.stdout.split("Captured ", 1)[1].split()[0].replace(",", ""))
    return parse_collapsed(str(out)), error_rate, captured


def test_stack_deeper_than_the_limit_is_cut_and_marked(interpreter, tmp_path, spawn):
    """A recursion 3,000 deep (every sample had failed): each sample counts, with the innermost
    frames, the leaf included, under the cut marker; the kept part is still checked, so every
    frame is where the code puts it and no stack is cut without the marker."""
    p = spawn(interpreter, target("deep_recursion.py"), "3000")
    wait_ready(p)
    rows, error_rate, captured = _attach_counted(tmp_path, p.pid)
    assert error_rate <= 10.0  # the leaf lasts 1 s: rebuilds of the recursion are rare
    total = sum(c for *_x, c in rows)
    assert total == captured > 0  # every sample taken is in the profile
    at_leaf = 0
    for _tid, frames, count in rows:
        # A stack without the marker is whole (taken while the recursion was shallower): it
        # starts at the module, and a cut one holds no more than the limit.
        assert frames[0] == "<truncated>" or frames[0].startswith("deep_recursion.py:<module>:"), frames[:3]
        kept = frames[1:]
        assert len(kept) <= DEPTH_LIMIT
        assert all(f == "deep_recursion.py:recurse:19" for f in kept[:-1]), set(kept[:-1])
        assert not kept or kept[-1].startswith("deep_recursion.py:recurse:")
        if frames[0] == "<truncated>" and len(kept) == DEPTH_LIMIT and kept[-1] in (
            "deep_recursion.py:recurse:16", "deep_recursion.py:recurse:17"
        ):
            at_leaf += count
    assert at_leaf / total > 0.8  # the innermost 2,048 of 3,001 frames, spinning in the leaf


def test_long_function_and_file_names_are_cut_and_marked(interpreter, tmp_path, spawn):
    """A function and a file with 10,000-character names (never sampled before): sampled, each
    name cut to its first 1,000 characters and the marker."""
    p = spawn(interpreter, target("long_names.py"))
    wait_ready(p)
    rows, error_rate, captured = _attach_counted(tmp_path, p.pid)
    assert error_rate <= 10.0
    total = sum(c for *_x, c in rows)
    assert total == captured > 0
    func = f"generated.py:{'g' * NAME_LIMIT}\u2026:2"
    spin = tuple(f"{'h' * NAME_LIMIT}\u2026:spin:{line}" for line in (3, 4))
    hot = weight_where(rows, lambda f: f[0] == "long_names.py:<module>:16" and f[1:2] == [func] and f[2:] and f[2] in spin)
    assert hot / total > 0.95, rows[0][1]
