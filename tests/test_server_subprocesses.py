"""The language server with `subprocesses`: a real server runs tests/targets/subprocess_tree.py
with its children followed; heat from every process is merged, and `heatline.showProcess`
shows one process's heat alone."""

from __future__ import annotations

import pytest_lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from conftest import target
from test_lsp_server import SERVER, execute, expect_error, init_params, make_client, wait_until

WORKS = {f"{role}_work" for role in ("parent", "alpha", "beta", "gamma", "delta", "epsilon", "zeta")}


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, client_factory=make_client))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(init_params())
    yield
    await lsp_client.shutdown_session()


async def hottest_works(client: LanguageClient) -> dict[str, int]:
    found = await execute(client, "heatline.hottest", {"count": 200, "kind": "functions"})
    return {f["function"]: f["self"] for f in found if f["function"] in WORKS}


async def test_children_heat_is_merged_and_each_process_can_be_shown_alone(client: LanguageClient):
    invalid = -32602
    message = await expect_error(client, invalid, "heatline.run", {"script": "x.py", "subprocesses": "yes"})
    assert "'subprocesses' must be true or false" in message

    started = await execute(client, "heatline.run", {"script": target("subprocess_tree.py"),
                                                      "args": ["fork", "forkserver", "1.0"], "subprocesses": True})
    await wait_until(lambda: [n for n in client.heat if n["profile"] and n["profile"]["id"] == started["id"]
                              and not n["profile"]["live"]], "the run's final heat")
    status = await execute(client, "heatline.status")
    profile = status["profile"]
    assert status["settings"]["subprocesses"] is False  # the argument, not the setting, asked for it
    processes = profile["processes"]
    assert processes[0]["main"] and processes[0]["pid"] == started["pid"] and profile["process"] is None
    children = processes[1:]
    assert len(children) >= 6, processes  # two workers, gamma, quick, the forker, its grandchild, zeta
    assert all(not p["live"] for p in processes)

    merged = await hottest_works(client)
    assert set(merged) == WORKS, merged

    seen = set()
    for entry in processes:
        shown = await execute(client, "heatline.showProcess", {"pid": entry["pid"]})
        assert shown["process"] == entry["pid"]
        works = await hottest_works(client)
        if entry["main"]:
            assert set(works) == {"parent_work"}, works
        elif works:
            assert len(works) == 1, (entry, works)  # one process's work, none of the others'
            seen |= set(works)
    assert seen == WORKS - {"parent_work"}

    back = await execute(client, "heatline.showProcess", {})
    assert back["process"] is None and back["id"] == started["id"]
    assert set(await hottest_works(client)) == WORKS
    message = await expect_error(client, invalid, "heatline.showProcess", {"pid": "one"})
    assert "'pid' must be an integer" in message


async def test_attach_to_a_shell_shows_its_python_children(client: LanguageClient):
    """`heatline.attach` with subprocesses to a process that is not Python (a shell): the run
    has no samples of its own; its Python children's heat is shown, merged."""
    import subprocess
    import sys

    shell = subprocess.Popen(["sh", "-c", 'read go; "$0" "$1" gamma 0.5; "$0" "$1" zeta 0.5', sys.executable,
                              target("subprocess_tree.py")], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        started = await execute(client, "heatline.attach", {"pid": shell.pid, "subprocesses": True})
        shell.stdin.write("go\n")
        shell.stdin.close()
        await wait_until(lambda: [n for n in client.heat if n["profile"] and n["profile"]["id"] == started["id"]
                                  and not n["profile"]["live"]], "the run's final heat")
    finally:
        if shell.poll() is None:
            shell.kill()
        shell.wait()
    profile = (await execute(client, "heatline.status"))["profile"]
    assert [p["main"] for p in profile["processes"]] == [True, False, False], profile["processes"]
    assert profile["processes"][0]["samples"] == 0
    assert set(await hottest_works(client)) == {"gamma_work", "zeta_work"}
