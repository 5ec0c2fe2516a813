#!/usr/bin/env python3
"""The language server on a big profile: `heatline.open` of a 1M-sample binary to heat on screen.

The profile is the one bench_formats.py makes (a real run of tests/targets/varied_stacks.py,
extended to 1M thread samples by a random walk over what the real run observed), written as a
zstd `--binary` file. A real `heatline-lsp` process is then driven over stdio by a pygls client,
as an editor would: the target's source is open, `heatline.open` is sent, and the clock stops
when the `heatline/heat` notification for that document arrives.

What it prints (figures only): the profile's size; the time from sending `heatline.open` to the
heat notification (median of --repeat runs, each in a fresh server) and to the command's
response; the notification's size in bytes (as JSON) and line count; code-lens, inlay-hint and
hover response times after loading; the server's peak memory.

Then a live update at that size, in process: the same samples go through a `Profile` with the
live stream's `DeltaSink` (as `python -m sampler.live` does) into a `LiveProfileReader`, the
server's `ProfileView` and its document tracker, with the target's source open. Once all but the
last samples are in and heat was shown once, each further delta carries one second of a 10-minute
run at that size (1/600 of the samples). Timed per delta (median and worst of --deltas): the
server's handling, from the stream line to the heat notification's JSON (`reader.feed`, the view's
update, the document's heat, the payload), and then the code lenses the client asks for after
the refresh. Building the delta on the child's side and the pipe are not timed.

Run from the repository root:  python benchmarks/bench_lsp.py [--samples 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from bench_formats import learned_ticks, write_binary  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import client_capabilities, make_test_lsp_client  # noqa: E402

from sampler.live import DeltaSink, LiveProfileReader, StreamWriter, start_message  # noqa: E402
from sampler.model import Profile, RunStats  # noqa: E402
from server.documents import DocumentTracker  # noqa: E402
from server.presentation import code_lenses, heat_payload  # noqa: E402
from server.profile_view import ProfileView  # noqa: E402

TARGET = os.path.join(ROOT, "tests", "targets", "varied_stacks.py")


def _plain(value):
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def one_run(profile_path: str) -> dict[str, float]:
    client = make_test_lsp_client()
    arrived: asyncio.Future = asyncio.get_running_loop().create_future()
    uri = pathlib.Path(TARGET).as_uri()

    @client.feature("heatline/heat")
    def on_heat(ls, params):
        note = _plain(params)
        if note["uri"] == uri and note["lines"] and not arrived.done():
            arrived.set_result((time.perf_counter(), note))

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def on_lens_refresh(ls, params):
        return None

    await client.start_io(sys.executable, "-m", "server")
    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=pathlib.Path(ROOT).as_uri()))
    text = pathlib.Path(TARGET).read_text(encoding="utf-8")
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
    t0 = time.perf_counter()
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="heatline.open", arguments=[{"path": profile_path}]))
    t_response = time.perf_counter()
    t_heat, note = await asyncio.wait_for(arrived, 600)
    ident = types.TextDocumentIdentifier(uri=uri)
    t1 = time.perf_counter()
    await client.text_document_code_lens_async(types.CodeLensParams(text_document=ident))
    t2 = time.perf_counter()
    await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=ident, range=types.Range(start=types.Position(line=0, character=0),
                                               end=types.Position(line=len(text.splitlines()), character=0))))
    t3 = time.perf_counter()
    hot = max(note["lines"], key=lambda line: line["selfPct"])["line"]
    await client.text_document_hover_async(types.HoverParams(text_document=ident, position=types.Position(line=hot, character=0)))
    t4 = time.perf_counter()
    rss = _peak_rss_mb(client._server.pid)
    await client.shutdown_session()
    await client.stop()
    return {
        "heat_s": t_heat - t0, "response_s": t_response - t0,
        "bytes": len(json.dumps(note, separators=(",", ":")).encode()), "lines": len(note["lines"]),
        "lens_ms": (t2 - t1) * 1000, "hint_ms": (t3 - t2) * 1000, "hover_ms": (t4 - t3) * 1000, "rss_mb": rss,
    }


def live_updates(ticks: list, run: RunStats, deltas: int) -> dict[str, list[float]]:
    """Milliseconds per live delta at the profile's full size (see the module docstring)."""
    child = Profile(run)
    sink = DeltaSink(child, StreamWriter(None), 1.0, lambda: None)
    reader = LiveProfileReader()
    reader.feed(json.dumps(start_message(run, time.time())))
    per_delta = max(1, len(ticks) // 600)
    split = len(ticks) - per_delta * deltas
    for ts, threads in ticks[:split]:
        child.collect(ts, threads)
    reader.feed(json.dumps(sink.delta()))
    view = ProfileView(profile=reader.profile, source="run", label="bench", started_at=time.time(), live=True)
    docs = DocumentTracker()
    uri = pathlib.Path(TARGET).as_uri()
    text = pathlib.Path(TARGET).read_text(encoding="utf-8")
    roots = (ROOT,)

    def publish() -> None:
        heat = docs.heat(uri, TARGET, text, "utf-16", view, roots)
        json.dumps(heat_payload(uri, 1, heat))

    def lenses() -> None:
        code_lenses(TARGET, docs.functions(uri, docs.heat(uri, TARGET, text, "utf-16", view, roots)))

    publish()  # the heat on screen before the deltas, as in a run
    lenses()
    out: dict[str, list[float]] = {"heat_ms": [], "lens_ms": [], "samples": []}
    for i in range(deltas):
        part = ticks[split + i * per_delta:split + (i + 1) * per_delta]
        for ts, threads in part:
            child.collect(ts, threads)
        out["samples"].append(sum(len(threads) for _, threads in part))
        line = json.dumps(sink.delta())
        t0 = time.perf_counter()
        reader.feed(line)
        view.changed()
        publish()
        t1 = time.perf_counter()
        lenses()
        t2 = time.perf_counter()
        out["heat_ms"].append((t1 - t0) * 1000)
        out["lens_ms"].append((t2 - t1) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=1_000_000, help="thread samples in the profile")
    ap.add_argument("--repeat", type=int, default=3, help="fresh servers to time")
    ap.add_argument("--deltas", type=int, default=20, help="live deltas to time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lsp-") as tmp:
        reader, ticks, _ = learned_ticks(tmp, args.samples)
        path = os.path.join(tmp, "big.bin")
        write_binary(path, ticks, reader.run_stats(), "zstd")
        n = sum(len(t) for _, t in ticks)
        distinct = len({t.frames for _, threads in ticks for t in threads})
        live = live_updates(ticks, reader.run_stats(), args.deltas)
        del ticks
        print(f"profile: {n:,} thread samples, {distinct:,} distinct stacks, "
              f"{os.path.getsize(path) / 1e6:.1f} MB (zstd)")
        runs = [asyncio.run(one_run(path)) for _ in range(args.repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    every = ", ".join(f"{r['heat_s']:.2f}" for r in runs)
    print(f"heatline.open -> heatline/heat: {med['heat_s']:.2f} s median of {len(runs)} "
          f"(all: {every}); command response {med['response_s']:.2f} s")
    print(f"heat notification: {med['bytes']:,.0f} bytes of JSON, {med['lines']:.0f} lines")
    print(f"after loading: code lens {med['lens_ms']:.1f} ms, inlay hints {med['hint_ms']:.1f} ms, "
          f"hover {med['hover_ms']:.1f} ms")
    print(f"server peak memory: {med['rss_mb']:.0f} MB")
    per_delta = statistics.median(live["samples"])
    print(f"live update at {n:,} samples, deltas of {per_delta:,.0f} samples (1 s of a 10-minute run): "
          f"stream line -> heat JSON {statistics.median(live['heat_ms']):.1f} ms median, "
          f"{max(live['heat_ms']):.1f} ms worst of {len(live['heat_ms'])}; code lenses after it "
          f"{statistics.median(live['lens_ms']):.1f} ms median, {max(live['lens_ms']):.1f} ms worst")


if __name__ == "__main__":
    main()
