import { mock } from "./vscode-mock";
import assert from "node:assert/strict";
import { HeatPayload } from "../src/heat";
import type { HotFunction } from "../src/hotFunctions";
import { DEFAULT_RULER_LINES, rulerCount, rulerLines } from "../src/ruler";

// What the tree items need of `vscode`, beyond the shared mock: set before the module is loaded
// (a module's `import * as vscode` copies the names there are then). Another suite's Range, when
// there is one, is kept (both take the start line first).
class EventEmitter<T> {
  private listeners: Array<(e: T) => void> = [];
  event = (fn: (e: T) => void) => {
    this.listeners.push(fn);
    return { dispose: () => undefined };
  };
  fire(e: T) {
    this.listeners.forEach((fn) => fn(e));
  }
  dispose() {}
}
Object.assign(mock, {
  EventEmitter,
  TreeItem: class {
    tooltip?: string;
    command?: unknown;
    iconPath?: unknown;
    constructor(readonly label: string, readonly collapsibleState: number) {}
  },
  TreeItemCollapsibleState: { None: 0 },
  ThemeIcon: class { constructor(readonly id: string) {} },
});
if (!(mock as Record<string, unknown>).Range) {
  Object.assign(mock, { Range: class { constructor(readonly startLine: number, readonly startCharacter: number, readonly endLine: number, readonly endCharacter: number) {} } });
}
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { HotFunctionsProvider, functionLabel, functionPlace, orderFunctions } = require("../src/hotFunctions") as typeof import("../src/hotFunctions");

function heat(lines: HeatPayload["lines"], extra: Partial<HeatPayload> = {}): HeatPayload {
  return { uri: "file:///w/app.py", version: 2, profile: { id: "p1", live: false }, lines, ...extra };
}

const LINES: HeatPayload["lines"] = [
  { line: 3, selfPct: 0, totalPct: 100 },
  { line: 9, selfPct: 12, totalPct: 12 },
  { line: 16, selfPct: 48.7, totalPct: 48.7 },
  { line: 15, selfPct: 23.8, totalPct: 23.8 },
  { line: 8, selfPct: 8.6, totalPct: 8.6 },
  { line: 20, selfPct: 12, totalPct: 40, stale: true },
  { line: 24, selfPct: 0.2, totalPct: 72 },
];

suite("overview ruler: which lines", () => {
  test("the N lines with most self time, hottest first, ties by line", () => {
    assert.deepEqual(rulerLines(heat(LINES), 3, 2), [16, 15, 9]);
    const tie = heat([...LINES, { line: 2, selfPct: 12, totalPct: 12 }]);
    assert.deepEqual(rulerLines(tie, 4, 2), [16, 15, 2, 9]);
  });

  test("no self time, stale lines and stale heat are never marked", () => {
    assert.deepEqual(rulerLines(heat(LINES), 100, 2), [16, 15, 9, 8, 24], "not 3 (no self) nor 20 (stale)");
    assert.deepEqual(rulerLines(heat(LINES, { stale: true }), 5, 2), []);
  });

  test("0 marks nothing; heat older than the document marks nothing", () => {
    assert.deepEqual(rulerLines(heat(LINES), 0, 2), []);
    assert.deepEqual(rulerLines(heat(LINES), 5, 3), [], "heat of version 2 on a document at version 3");
    assert.deepEqual(rulerLines(undefined, 5), []);
  });

  test("the setting: a whole count from 0, the default when unset or odd", () => {
    assert.equal(rulerCount(undefined), DEFAULT_RULER_LINES);
    assert.equal(DEFAULT_RULER_LINES, 5);
    assert.equal(rulerCount(0), 0);
    assert.equal(rulerCount(7.9), 7);
    assert.equal(rulerCount(-1), DEFAULT_RULER_LINES);
    assert.equal(rulerCount("3"), DEFAULT_RULER_LINES);
  });
});

function fn(name: string, selfShare: number, totalShare: number, line = 0): HotFunction {
  return { function: name, file: "/w/app.py", path: "/w/app.py", uri: "file:///w/app.py", line, self: 0, total: 0, selfShare, totalShare };
}

suite("hot functions view", () => {
  test("ordered by self share, then total, then name", () => {
    const list = [fn("main", 0.004, 1), fn("<module>", 0, 1), fn("fast_path", 0.27, 0.27), fn("slow_path", 0.72, 0.72), fn("aux", 0, 1)];
    assert.deepEqual(orderFunctions(list).map((f) => f.function), ["slow_path", "fast_path", "main", "<module>", "aux"]);
  });

  test("labels give self and total; the tooltip the file and 1-based line", () => {
    const f = fn("slow_path", 0.7234, 0.7234, 13);
    assert.equal(functionLabel(f), "slow_path — self 72.3% · total 72.3%");
    assert.equal(functionPlace(f), "/w/app.py:14");
    assert.equal(functionPlace({ ...f, path: null, stale: true }), "/w/app.py:14 (stale)");
  });

  test("items open the def line; heat refetches when visible; a clear empties the view", async () => {
    const answers: HotFunction[][] = [[fn("fast_path", 0.3, 0.3, 6), fn("slow_path", 0.7, 0.7, 13)]];
    const asked: string[] = [];
    const provider = new HotFunctionsProvider(async (command) => {
      asked.push(command);
      return answers.shift() ?? [];
    });
    let changes = 0;
    provider.onDidChangeTreeData(() => changes++);
    provider.heat(heat(LINES));
    assert.deepEqual(asked, [], "nothing is fetched while the view is hidden");
    provider.setVisible(true);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(asked, ["heatline.hotFunctions"]);
    assert.deepEqual(provider.getChildren().map((f) => f.function), ["slow_path", "fast_path"]);
    const item = provider.getTreeItem(provider.getChildren()[0]) as unknown as {
      label: string; tooltip: string; command: { command: string; arguments: [{ path: string }, { selection: object }] };
    };
    assert.equal(item.label, "slow_path — self 70.0% · total 70.0%");
    assert.equal(item.command.command, "vscode.open");
    assert.equal(Object.values(item.command.arguments[1].selection)[0], 13, "the range starts on the def line");
    assert.equal(changes, 1);
    provider.heat(heat([], { profile: null }));
    assert.deepEqual(provider.getChildren(), []);
    assert.equal(changes, 2);
    provider.dispose();
  });
});
