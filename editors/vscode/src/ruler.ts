// The hottest lines of each visible editor, marked on the scrollbar's overview ruler so they can
// be found without scrolling: the document's N lines with the most self time (shares of the whole
// profile, as the server sends them), N from the setting heatline.overviewRulerLines (0: none).
import * as vscode from "vscode";
import { HeatPayload, forDocument, isCurrent } from "./heat";

export const RULER_LINES_SETTING = "overviewRulerLines";
export const DEFAULT_RULER_LINES = 5;
/** Theme colours (package.json `contributes.colors`): the hottest line's mark, and the others'. */
export const HOTTEST_RULER_COLOR = "heatline.overviewRulerHottest";
export const HOT_RULER_COLOR = "heatline.overviewRuler";

/**
 * The `count` lines of a document with the most self time, hottest first (ties: the upper line
 * first). Stale lines are left out (their heat may not be theirs), as is everything when the heat
 * is older than the document.
 */
export function rulerLines(payload: HeatPayload | undefined, count: number, documentVersion?: number): number[] {
  if (!payload || !(count >= 1) || payload.stale || !isCurrent(payload.version, documentVersion)) return [];
  const lines = (Array.isArray(payload.lines) ? payload.lines : []).filter(
    (l) => typeof l.line === "number" && l.line >= 0 && !l.stale && l.selfPct > 0,
  );
  lines.sort((a, b) => b.selfPct - a.selfPct || a.line - b.line);
  return lines.slice(0, Math.floor(count)).map((l) => l.line);
}

/** The setting's value as a line count: a whole number from 0 (off), the default when unset or odd. */
export function rulerCount(value: unknown): number {
  return typeof value === "number" && isFinite(value) && value >= 0 ? Math.floor(value) : DEFAULT_RULER_LINES;
}

export class HotLineRuler implements vscode.Disposable {
  private readonly hottest: vscode.TextEditorDecorationType;
  private readonly others: vscode.TextEditorDecorationType;
  private readonly heat = new Map<string, HeatPayload>();
  private readonly subscriptions: vscode.Disposable[] = [];
  private visible = true; // Toggle Heat hides the marks with the heat
  private count = rulerCount(vscode.workspace.getConfiguration("heatline").get(RULER_LINES_SETTING));

  constructor() {
    this.hottest = vscode.window.createTextEditorDecorationType({
      overviewRulerColor: new vscode.ThemeColor(HOTTEST_RULER_COLOR),
      overviewRulerLane: vscode.OverviewRulerLane.Full,
    });
    this.others = vscode.window.createTextEditorDecorationType({
      overviewRulerColor: new vscode.ThemeColor(HOT_RULER_COLOR),
      overviewRulerLane: vscode.OverviewRulerLane.Right,
    });
    this.subscriptions.push(
      vscode.window.onDidChangeVisibleTextEditors((editors) => editors.forEach((e) => this.applyTo(e))),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (!e.affectsConfiguration(`heatline.${RULER_LINES_SETTING}`)) return;
        this.count = rulerCount(vscode.workspace.getConfiguration("heatline").get(RULER_LINES_SETTING));
        vscode.window.visibleTextEditors.forEach((editor) => this.applyTo(editor));
      }),
    );
  }

  /** A `heatline/heat` notification: kept per document, drawn where it is visible. */
  update(payload: HeatPayload): void {
    if (!forDocument(payload)) return;
    const key = vscode.Uri.parse(payload.uri).toString();
    if (payload.profile) this.heat.set(key, payload);
    else this.heat.delete(key);
    for (const editor of vscode.window.visibleTextEditors) {
      if (editor.document.uri.toString() === key) this.applyTo(editor);
    }
  }

  setVisible(visible: boolean): void {
    this.visible = visible;
    vscode.window.visibleTextEditors.forEach((editor) => this.applyTo(editor));
  }

  /** The lines marked in an editor now, hottest first (what the ruler shows). */
  marked(editor: vscode.TextEditor): number[] {
    if (!this.visible) return [];
    const lines = rulerLines(this.heat.get(editor.document.uri.toString()), this.count, editor.document.version);
    return lines.filter((line) => line < editor.document.lineCount);
  }

  private applyTo(editor: vscode.TextEditor): void {
    const ranges = this.marked(editor).map((line) => new vscode.Range(line, 0, line, 0));
    editor.setDecorations(this.hottest, ranges.slice(0, 1));
    editor.setDecorations(this.others, ranges.slice(1));
  }

  dispose(): void {
    this.subscriptions.forEach((s) => s.dispose());
    this.hottest.dispose();
    this.others.dispose();
  }
}

/** The ruler, fed every heat notification (`onHeat`), disposed with the extension. */
export function registerRuler(context: vscode.ExtensionContext, onHeat: vscode.Event<HeatPayload>): HotLineRuler {
  const ruler = new HotLineRuler();
  context.subscriptions.push(ruler, onHeat((payload) => ruler.update(payload)));
  return ruler;
}
