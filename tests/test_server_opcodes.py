"""`--opcodes` and `--native` through the language server: `heatline.run`/`attach` take `opcodes`
and `native` (validated like the other arguments, the CLI's refusals passed on); a hot line's
hover names its instructions with their share and whether CPython specialized them, and says how
much of the line's time was in C; the heat notification carries the columns of each hot line
where its time went. The target (tests/targets/add_and_compress.py) alternates an integer add
loop (its hottest instruction is the add) with zlib compression (its line's time is in C)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from conftest import ALL_INTERPRETERS, ROOT, target, wait_ready
from sampler.cli import build_parser
from sampler.lineindex import SpanHeat
from server.arguments import SamplingArgs
from sampler.cpython.opcodes import opcode_table
from server.instructions import ColumnSpan, column_spans, instructions, summary
from server.line_tracking import units_at_byte
from server.presentation import instruction_markdown
from server.settings import Settings, settings_from
from test_lsp_server import as_uri, client, execute, heat_for, line_of, open_doc, wait_until  # noqa: F401 (client: a fixture)

TARGET = target("add_and_compress.py")
MANIFEST = os.path.join(ROOT, "editors", "vscode", "package.json")


def marked(marker: str) -> tuple[int, str]:
    """(0-based line, text) of the target's line ending in `# MARKER`."""
    with open(TARGET, encoding="utf-8") as fh:
        for n, text in enumerate(fh):
            if text.rstrip().endswith(f"# {marker}"):
                return n, text.rstrip("\n")
    raise AssertionError(f"{marker} is not in {TARGET}")


ADD_ROW, ADD_TEXT = marked("ADD")
COMPRESS_ROW, _ = marked("COMPRESS")
_EXPR = "total + i + i + i + i"
ADD_EXPR = (ADD_TEXT.index(_EXPR), ADD_TEXT.index(_EXPR) + len(_EXPR))
_INSTRUCTION = re.compile(r"(\S+?)( \(not specialized\))? (<1|\d+)%")


def hover_instructions(text: str) -> list[tuple[str, bool, float]]:
    """(name, marked not specialized, share) of each instruction a hover lists, in its order."""
    line = next((line for line in text.splitlines() if line.startswith("instructions: ")), None)
    assert line is not None, text
    rows = []
    for part in line[len("instructions: "):].split(" · "):
        match = _INSTRUCTION.fullmatch(part)
        assert match, (part, line)
        rows.append((match[1], bool(match[2]), 0.5 if match[3] == "<1" else float(match[3])))
    return rows


def on_the_additions(pieces: list[dict]) -> float:
    """The share of the add line's samples on pieces within its additions' columns."""
    return sum(p["pct"] for p in pieces if ADD_EXPR[0] <= p["start"] and p["end"] <= ADD_EXPR[1])


def in_c(text: str) -> float | None:
    match = re.search(r"^in C: (<1|\d+)%", text, re.M)
    return (0.5 if match[1] == "<1" else float(match[1])) if match else None


async def hover_text(client: LanguageClient, uri: str, line: int) -> str:
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=4)))
    assert hover is not None, f"no hover on line {line}"
    return hover.contents.value


async def profile_target(client: LanguageClient, interpreter, spawn, **extra: Any) -> tuple[str, dict, dict]:
    """The target profiled for 1.5 s with `extra` (run by a host interpreter, attached to in the
    sid root): (document uri, the command's answer, the final heat)."""
    uri = as_uri(TARGET)
    opened = vars(client).setdefault("opened_docs", set())
    if uri not in opened:
        opened.add(open_doc(client, TARGET))
    if interpreter is not None and interpreter.rooted:
        proc = spawn(interpreter, TARGET, "4")
        wait_ready(proc)
        started = await execute(client, "heatline.attach", {"pid": proc.pid, "duration": 1.5, **extra})
    else:
        python = {"python": interpreter.path} if interpreter is not None else {}
        started = await execute(client, "heatline.run", {"script": TARGET, "args": ["1.5"], **python, **extra})

    def final() -> dict | None:
        note = heat_for(client, uri, live=False)
        return note if note is not None and note["profile"]["id"] == started["id"] else None

    return uri, started, await wait_until(final, "the final heat")


# -- a real target on every CPython --------------------------------------------------------------


@pytest.mark.parametrize("interpreter", ALL_INTERPRETERS)
async def test_hover_names_the_add_its_columns_and_the_time_in_c(client: LanguageClient, interpreter, spawn):
    uri, started, final = await profile_target(client, interpreter, spawn, opcodes=True, native=True, rate=1000)
    version = tuple(int(p) for p in started["pythonVersion"].split(".")[:2])
    assert started["opcodes"] is True and started["native"] is True, started
    profile = final["profile"]
    assert profile["opcodes"] is True and profile["native"] is True, profile
    assert profile["totalSamples"] > 300, profile

    # The add line: its add instruction has the largest share, by its version's name.
    add = line_of(final, ADD_ROW)
    assert add is not None and add["self"] > 0, final["lines"]
    text = await hover_text(client, uri, ADD_ROW)
    rows = hover_instructions(text)
    expected = "BINARY_OP_ADD_INT" if version >= (3, 11) else "BINARY_ADD"
    assert rows[0][0] == expected and not rows[0][1], (version, rows)
    assert rows[0][2] >= max(share for _, _, share in rows), rows
    assert sum(share for _, _, share in rows) <= 100 + len(rows), rows  # shares of one line
    assert in_c(text) is None, text  # no call on the add line: no time in C

    # Where the add line's time went: mostly on the additions (each add has its own piece, the
    # store's target another; 3.11+ record columns, 3.9/3.10 have none to send).
    if version >= (3, 11):
        pieces = add.get("columns")
        assert pieces, add
        assert all(0 <= p["start"] < p["end"] <= len(ADD_TEXT) and 0 < p["pct"] <= 100 for p in pieces), pieces
        assert [p["start"] for p in pieces] == sorted(p["start"] for p in pieces), "in order along the line"
        assert all(a["end"] <= b["start"] for a, b in zip(pieces, pieces[1:])), "pieces do not overlap"
        assert on_the_additions(pieces) > 50, (ADD_EXPR, pieces)
        # how strongly to draw each piece: never above its line's heat against the hottest line's
        hottest = max(line["selfPct"] for line in final["lines"])
        for line in final["lines"]:
            for p in line.get("columns", ()):
                assert 0 <= p["strength"] <= line["selfPct"] / hottest + 1e-3, (line, hottest)
        if add["selfPct"] == hottest:
            assert max(p["strength"] for p in pieces) == 1, pieces
    else:
        assert "columns" not in add, add

    # The compress line: nearly all its time inside zlib (generous: C is most of it).
    share = in_c(await hover_text(client, uri, COMPRESS_ROW))
    assert share is not None and share >= 60, (share, await hover_text(client, uri, COMPRESS_ROW))


async def test_without_the_flags_hovers_and_heat_have_no_instructions(client: LanguageClient):
    uri, started, final = await profile_target(client, None, None)
    assert started["opcodes"] is False and started["native"] is False
    assert final["profile"]["opcodes"] is False and final["profile"]["native"] is False
    assert not any("columns" in line for line in final["lines"]), final["lines"]
    text = await hover_text(client, uri, ADD_ROW)
    assert "instructions:" not in text and in_c(text) is None, text


async def test_a_saved_opcode_profile_reopens_with_its_instructions(client: LanguageClient, tmp_path):
    saved = tmp_path / "run.bin"
    uri, _, final = await profile_target(client, None, None, opcodes=True, output=str(saved))
    live_rows = hover_instructions(await hover_text(client, uri, ADD_ROW))
    before = len(client.heat)
    described = await execute(client, "heatline.open", {"path": str(saved)})
    assert described["opcodes"] is True, described
    reopened = await wait_until(lambda: heat_for(client, uri, after=before), "heat of the saved file")
    assert line_of(reopened, ADD_ROW)["columns"] == line_of(final, ADD_ROW)["columns"]
    assert hover_instructions(await hover_text(client, uri, ADD_ROW)) == live_rows


# -- arguments and settings ----------------------------------------------------------------------

MALFORMED = [
    ({"opcodes": "yes"}, "argument 'opcodes' must be true or false"),
    ({"opcodes": 1}, "argument 'opcodes' must be true or false"),
    ({"native": "true"}, "argument 'native' must be true or false"),
    ({"native": [True]}, "argument 'native' must be true or false"),
    ({"native": True, "asyncAware": True}, "--native are incompatible with --async-aware"),
]


async def refused(client: LanguageClient, command: str, arguments: dict) -> str:
    """The one-line InvalidParams message `command` answers `arguments` with."""
    with pytest.raises(JsonRpcException) as info:
        await execute(client, command, arguments)
    assert info.value.code == -32602 and "Traceback" not in repr(info.value.data), (command, arguments, info.value)
    message = info.value.message
    assert "\n" not in message and message.startswith(f"{command}: "), (arguments, message)
    return message


async def test_malformed_opcodes_and_native_arguments_are_one_line_errors(client: LanguageClient):
    """Each refused before anything starts (one server for all: each case leaves it as it was)."""
    for command, base in (("heatline.run", {"script": TARGET}), ("heatline.attach", {"pid": os.getpid()})):
        messages = [await refused(client, command, {**base, **given}) for given, _ in MALFORMED]
        assert all(fragment in message for (_, fragment), message in zip(MALFORMED, messages)), messages
    status = await execute(client, "heatline.status")
    assert status["running"] is False and status["profile"] is None


def test_settings_and_editors_offer_the_flags_with_the_clis_defaults():
    defaults = build_parser().parse_args(["run", "x.py"])
    assert (Settings().opcodes, Settings().native) == (defaults.opcodes, defaults.native) == (False, False)
    assert settings_from({"opcodes": True, "native": True}) == (Settings(opcodes=True, native=True), [])
    settings, problems = settings_from({"opcodes": "on", "native": 0})
    assert settings == Settings() and len(problems) == 2 and all("true or false" in p for p in problems), problems
    assert {f.name for f in dataclasses.fields(SamplingArgs)} >= {"opcodes", "native"}
    with open(MANIFEST, encoding="utf-8") as fh:
        props = json.load(fh)["contributes"]["configuration"]["properties"]
    for name in ("opcodes", "native"):
        assert props[f"heatline.{name}"]["type"] == "boolean" and props[f"heatline.{name}"]["default"] is False
        assert f"--{name}" in props[f"heatline.{name}"]["description"]


# -- the shapes, on known input ------------------------------------------------------------------


def test_instruction_summary_marks_specialized_and_generic_forms():
    table = opcode_table("3.12.1")
    op = {name: int(code) for code, name in table.mapping()["names"].items()}
    from sampler.lineindex import OpcodeHeat

    heats = [OpcodeHeat(op["BINARY_OP_ADD_INT"], 61, ()), OpcodeHeat(op["LOAD_ATTR_INSTANCE_VALUE"], 22, ()),
             OpcodeHeat(op["CALL"], 9, ()), OpcodeHeat(op["RETURN_VALUE"], 8, ())]
    assert summary(instructions(heats, table, 100)) == (
        "BINARY_OP_ADD_INT 61% · LOAD_ATTR_INSTANCE_VALUE 22% · CALL (not specialized) 9% · RETURN_VALUE 8%")
    old = opcode_table("3.9")
    assert old.info(124).opname == "LOAD_FAST" and old.info(23).opname == "BINARY_ADD"
    assert summary(instructions([OpcodeHeat(23, 3, ()), OpcodeHeat(124, 1, ())], old, 400)) == "BINARY_ADD 1% · LOAD_FAST <1%"
    assert instruction_markdown([], table, 1, 400) == ["in C: <1% (1 sample)", ""]
    assert instruction_markdown([], table, 0, 400) == []
    guessed = opcode_table("")  # a profile that does not say its Python: the newest names, and a note
    assert not guessed.exact and "names as in Python" in instruction_markdown(
        instructions([OpcodeHeat(0, 1, ())], guessed, 1), guessed, 0, 1)[1]
    many = [OpcodeHeat(code, 10, ()) for code in sorted(op.values())[:8]]
    assert summary(instructions(many, table, 80)).endswith("· others 25%")


def test_column_pieces_go_to_the_smallest_span_and_count_the_line():
    # `x = total + i * 2`: the multiplication inside the addition, each with its own samples
    spans = [SpanHeat((5, 8, 21), 60), SpanHeat((5, 16, 21), 30), SpanHeat((5, 4, 5), 10), SpanHeat((5, -1, -1), 5)]
    assert column_spans(spans, 5, 100) == [
        ColumnSpan(4, 5, 10, 10.0), ColumnSpan(8, 16, 60, 60.0), ColumnSpan(16, 21, 30, 30.0)]
    # an expression going on to the next line runs to this line's end; one from an earlier line is none of it
    assert column_spans([SpanHeat((6, 4, 2), 50), SpanHeat((4, 0, 9), 50)], 5, 100) == [ColumnSpan(4, None, 50, 50.0)]
    assert column_spans([SpanHeat((5, 0, 3), 0)], 5, 100) == [] and column_spans(spans, 5, 0) == []


def test_byte_columns_become_the_clients_units():
    text = "s = 'é😀' + x"  # CPython counts bytes: é is 2, 😀 is 4 (2 UTF-16 units)
    plus = text.encode("utf-8").index(b"+")
    assert units_at_byte(text, plus, "utf-8") == plus
    assert units_at_byte(text, plus, "utf-16") == text.index("+") + 1
    assert units_at_byte(text, plus, "utf-32") == text.index("+")
    assert units_at_byte(text, 10_000, "utf-16") == len(text) + 1 and units_at_byte("abc", 2, "utf-16") == 2
