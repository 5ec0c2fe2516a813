// Draws `heatline/heat` on the visible editors: one decoration type per bucket, created once.
import * as vscode from "vscode";
import {
  BUCKETS, COLUMN_BUCKETS, ColumnDecoration, HeatBuckets, HeatPayload, LineDecoration, bucketColorId, bucketHeat, columnColorId,
  columnHeat, forDocument, isCurrent,
} from "./heat";

export class HeatDecorations implements vscode.Disposable {
  private readonly types: vscode.TextEditorDecorationType[] = [];
  private readonly staleType: vscode.TextEditorDecorationType;
  // where in a hot line its time went (--opcodes): drawn over the line's background
  private readonly columnTypes: vscode.TextEditorDecorationType[] = [];
  private readonly heat = new Map<string, HeatPayload>();
  private readonly subscriptions: vscode.Disposable[] = [];
  private enabled = true;

  constructor() {
    const after = { color: new vscode.ThemeColor("editorCodeLens.foreground"), margin: "0 0 0 2em" };
    for (let i = 0; i <= BUCKETS; i++) {
      const opts: vscode.DecorationRenderOptions = { isWholeLine: true, after };
      if (i > 0) opts.backgroundColor = new vscode.ThemeColor(bucketColorId(i));
      // the overview ruler is src/ruler.ts's: the hottest lines only, as many as the user set
      this.types.push(vscode.window.createTextEditorDecorationType(opts));
    }
    this.staleType = vscode.window.createTextEditorDecorationType({
      isWholeLine: true,
      after: { color: new vscode.ThemeColor("heatline.stale"), margin: "0 0 0 2em", fontStyle: "italic" },
    });
    for (let i = 1; i <= COLUMN_BUCKETS; i++) {
      this.columnTypes.push(vscode.window.createTextEditorDecorationType({
        backgroundColor: new vscode.ThemeColor(columnColorId(i)),
        borderRadius: "2px",
        fontWeight: i === COLUMN_BUCKETS ? "bold" : undefined,
      }));
    }
    this.subscriptions.push(
      vscode.window.onDidChangeVisibleTextEditors((editors) => editors.forEach((e) => this.applyTo(e))),
    );
  }

  get isEnabled(): boolean {
    return this.enabled;
  }

  /** A new payload from the server: remembered per document, drawn where visible. */
  update(payload: HeatPayload): void {
    if (!forDocument(payload)) return; // the document-less notification has no lines to draw
    const key = keyOf(payload.uri);
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === key);
    if (doc && !isCurrent(payload.version, doc.version)) return; // a newer one is on its way
    this.heat.set(key, payload);
    for (const editor of vscode.window.visibleTextEditors) {
      if (editor.document.uri.toString() === key) this.applyTo(editor);
    }
  }

  lastHeat(uri: string): HeatPayload | undefined {
    return this.heat.get(keyOf(uri));
  }

  toggle(on = !this.enabled): boolean {
    this.enabled = on;
    vscode.window.visibleTextEditors.forEach((e) => this.applyTo(e));
    return this.enabled;
  }

  clear(): void {
    this.heat.clear();
    vscode.window.visibleTextEditors.forEach((e) => this.applyTo(e));
  }

  applyTo(editor: vscode.TextEditor): void {
    const payload = this.heat.get(editor.document.uri.toString());
    const buckets: HeatBuckets | undefined =
      this.enabled && payload ? bucketHeat(payload, editor.document.version) : undefined;
    const lineCount = editor.document.lineCount;
    const toOptions = (list: LineDecoration[]): vscode.DecorationOptions[] =>
      list
        .filter((d) => d.line < lineCount)
        .map((d) => ({
          range: new vscode.Range(d.line, 0, d.line, 0),
          hoverMessage: new vscode.MarkdownString(d.hover),
          renderOptions: { after: { contentText: d.text } },
        }));
    this.types.forEach((type, i) => editor.setDecorations(type, buckets ? toOptions(buckets.buckets[i]) : []));
    editor.setDecorations(this.staleType, buckets ? toOptions(buckets.stale) : []);
    const columns = buckets && payload ? columnHeat(payload, editor.document.version) : undefined;
    const toRanges = (list: ColumnDecoration[]): vscode.DecorationOptions[] =>
      list
        .filter((c) => c.line < lineCount)
        .map((c) => ({ range: new vscode.Range(c.line, c.start, c.line, c.end), hoverMessage: new vscode.MarkdownString(c.hover) }));
    this.columnTypes.forEach((type, i) => editor.setDecorations(type, columns ? toRanges(columns[i]) : []));
  }

  dispose(): void {
    this.subscriptions.forEach((s) => s.dispose());
    this.types.forEach((t) => t.dispose());
    this.staleType.dispose();
    this.columnTypes.forEach((t) => t.dispose());
  }
}

function keyOf(uri: string): string {
  try {
    return vscode.Uri.parse(uri).toString();
  } catch {
    return uri;
  }
}
