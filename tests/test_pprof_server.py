"""The language server's heatline.open takes a pprof file (a profile pulled from a fleet's store
opens as heat): the same lines, self and total as the --binary file it was replayed from."""

from __future__ import annotations


from conftest import heatline, target
from test_lsp_server import client, execute, heat_for, open_doc, wait_until  # noqa: F401 - `client` is a fixture


async def test_heatline_open_shows_a_pprof_file_as_its_binary(client, tmp_path):
    path = target("known_lines.py")
    binary, pprof = tmp_path / "run.bin", tmp_path / "run.pb.gz"
    res = heatline("run", "--binary", "-o", str(binary), path, "1")
    assert res.returncode == 0, res.stderr
    res = heatline("replay", "--pprof", "-o", str(pprof), str(binary))
    assert res.returncode == 0, res.stderr
    uri = open_doc(client, path)
    opened = {}
    for name in (binary, pprof):
        before = len(client.heat)
        await execute(client, "heatline.open", {"path": str(name)})
        opened[name] = await wait_until(lambda: heat_for(client, uri, after=before), f"heat of {name.name}")
    lines = {name: [(n["line"], n["self"], n["total"]) for n in heat["lines"]] for name, heat in opened.items()}
    assert lines[pprof] == lines[binary] and any(line == 7 for line, _s, _t in lines[pprof])  # 0-based: line 8
    assert opened[pprof]["profile"]["totalSamples"] == opened[binary]["profile"]["totalSamples"] > 0
