// Where in a hot line its time went (--opcodes): the server's column pieces, bucketed by their
// share of the line and drawn as decorations on exactly those characters.
import assert from "node:assert/strict";
import { mock } from "./vscode-mock";
import { COLUMN_BUCKETS, HeatPayload, columnBucketOf, columnHeat } from "../src/heat";

function payload(extra: Partial<HeatPayload> = {}): HeatPayload {
  return {
    uri: "file:///w/add.py",
    version: 2,
    profile: { id: "p1", label: "add.py", totalSamples: 1000, live: false, opcodes: true },
    stale: false,
    staleReason: null,
    maxSelfPct: 80,
    lines: [
      {
        line: 4, self: 800, total: 800, selfPct: 80, totalPct: 80, stale: false,
        columns: [
          { start: 8, end: 11, samples: 80, pct: 10, strength: 0.13 },
          { start: 11, end: 14, samples: 600, pct: 75, strength: 1 },
          { start: 14, end: 17, samples: 280, pct: 35, strength: 0.47 },
        ],
      },
      { line: 6, self: 100, total: 100, selfPct: 10, totalPct: 10, stale: true, columns: [{ start: 0, end: 5, pct: 100, strength: 0.1 }] },
      { line: 7, self: 100, total: 100, selfPct: 10, totalPct: 10, columns: [{ start: 5, end: 5, pct: 50 }, { start: -1, end: 3, pct: 50 }] },
    ],
    ...extra,
  };
}

suite("column heat", () => {
  test("pieces go to steps by the strength the server gives them", () => {
    assert.equal(COLUMN_BUCKETS, 4);
    assert.deepEqual([0, 0.1, 0.25, 0.26, 0.5, 0.75, 0.99, 1, 2.5, undefined, NaN].map((p) => columnBucketOf(p)),
      [1, 1, 1, 2, 2, 3, 4, 4, 4, 1, 1]);
    const steps = columnHeat(payload(), 2)!;
    assert.equal(steps.length, COLUMN_BUCKETS);
    assert.deepEqual(steps[0].map((c) => [c.line, c.start, c.end]), [[4, 8, 11]]);
    assert.deepEqual(steps[1].map((c) => [c.line, c.start, c.end]), [[4, 14, 17]], "strength 0.47: the second step");
    assert.deepEqual(steps[2], []);
    assert.deepEqual(steps[3].map((c) => [c.line, c.start, c.end]), [[4, 11, 14]], "the hottest line's heaviest piece");
    assert.match(steps[3][0].hover, /75\.0% of this line's samples/);
  });

  test("stale lines, a stale document, empty or negative pieces and old heat get none", () => {
    const all = (p: HeatPayload, v?: number) => (columnHeat(p, v) || []).flat().map((c) => c.line);
    assert.deepEqual(all(payload(), 2).filter((l) => l !== 4), [], "line 6 is stale, line 7's pieces are empty or negative");
    assert.deepEqual(all(payload({ stale: true, staleReason: "unsaved" }), 2), []);
    assert.equal(columnHeat(payload(), 3), undefined, "heat of version 2 on a document at version 3");
    assert.deepEqual(all(payload({ lines: [{ line: 1, selfPct: 5, totalPct: 5 }] })), [], "a profile without instructions");
  });
});

// The decorations themselves, against a recording stand-in for the vscode API.
type Recorded = { type: number; ranges: Array<[number, number, number, number]> };

suite("column decorations", () => {
  const created: Array<Record<string, unknown>> = [];
  const calls: Recorded[] = [];
  class Range {
    constructor(readonly sl: number, readonly sc: number, readonly el: number, readonly ec: number) {}
  }
  const editor = {
    document: { uri: mock.Uri.parse("file:///w/add.py"), version: 2, lineCount: 20 },
    setDecorations(type: { id: number }, options: Array<{ range: Range }>) {
      calls.push({ type: type.id, ranges: options.map((o) => [o.range.sl, o.range.sc, o.range.el, o.range.ec]) });
    },
  };
  Object.assign(mock, {
    Range,
    ThemeColor: class { constructor(readonly id: string) {} },
    MarkdownString: class { constructor(readonly value: string) {} },
    OverviewRulerLane: { Right: 4 },
  });
  Object.assign(mock.window, {
    createTextEditorDecorationType(opts: Record<string, unknown>) {
      created.push(opts);
      return { id: created.length - 1, dispose() {} };
    },
    onDidChangeVisibleTextEditors: () => ({ dispose() {} }),
    visibleTextEditors: [editor],
  });
  Object.assign(mock.workspace, { textDocuments: [editor.document] });

  test("each piece is drawn on its characters, in its step's theme colour", () => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { HeatDecorations } = require("../src/decorations") as typeof import("../src/decorations");
    const decorations = new HeatDecorations();
    const columnTypes = created
      .map((opts, id) => ({ id, colour: (opts.backgroundColor as { id?: string } | undefined)?.id }))
      .filter((t) => t.colour && t.colour.startsWith("heatline.column"));
    assert.deepEqual(columnTypes.map((t) => t.colour), ["heatline.column1", "heatline.column2", "heatline.column3", "heatline.column4"]);
    decorations.update(payload());
    const drawn = (step: number) => calls.filter((c) => c.type === columnTypes[step].id).pop()!.ranges;
    assert.deepEqual(drawn(0), [[4, 8, 4, 11]]);
    assert.deepEqual(drawn(1), [[4, 14, 4, 17]]);
    assert.deepEqual(drawn(2), []);
    assert.deepEqual(drawn(3), [[4, 11, 4, 14]]);
    decorations.toggle(false);
    assert.ok(columnTypes.every((_, step) => drawn(step).length === 0), "hidden with the heat");
    decorations.dispose();
  });
});
