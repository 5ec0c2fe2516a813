// The flame graph (and diff flame graph) beside the editor, in a WebviewPanel under a strict CSP.
// flamegraphHtml, routeMessage and makeNonce are pure and unit-tested.
import * as vscode from "vscode";

export interface HtmlOptions {
  nonce: string;
  cspSource: string;
  scriptUri: string;
  styleUri: string;
  title?: string;
}

const JSON_ESCAPES: Record<string, string> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/** JSON safe to place inside <script type="application/json">: it can never close the element. */
export function jsonForScript(data: unknown): string {
  return JSON.stringify(data ?? null).replace(/[<>&\u2028\u2029]/g, (c) => JSON_ESCAPES[c]);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

export function makeNonce(random: (n: number) => Uint8Array = defaultRandom): string {
  return Buffer.from(random(24)).toString("base64").replace(/[+/=]/g, "");
}

function defaultRandom(n: number): Uint8Array {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return require("crypto").randomBytes(n);
}

export function contentSecurityPolicy(o: Pick<HtmlOptions, "nonce" | "cspSource">): string {
  return [
    "default-src 'none'",
    `img-src ${o.cspSource} data:`,
    `style-src ${o.cspSource}`,
    `script-src 'nonce-${o.nonce}'`,
  ].join("; ");
}

/** The whole page: the viewer's CSS and JS as local resources, the data as inert JSON. */
export function flamegraphHtml(data: unknown, o: HtmlOptions): string {
  if (!/^[A-Za-z0-9]+$/.test(o.nonce)) throw new Error("nonce must be alphanumeric");
  const title = o.title ?? (typeof (data as { title?: unknown })?.title === "string" ? (data as { title: string }).title : "heatline flame graph");
  const attr = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${attr(contentSecurityPolicy(o))}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="${attr(o.styleUri)}">
</head>
<body>
<div id="heatline-root"></div>
<script type="application/json" id="heatline-data">${jsonForScript(data)}</script>
<script nonce="${o.nonce}">
(function () {
  if (typeof acquireVsCodeApi === "function") window.heatlineHost = acquireVsCodeApi();
})();
</script>
<script nonce="${o.nonce}" src="${attr(o.scriptUri)}"></script>
<script nonce="${o.nonce}">
(function () {
  var b = document.body.classList;
  if (window.heatline && (b.contains("vscode-dark") || b.contains("vscode-high-contrast"))) window.heatline.setTheme("dark");
  else if (window.heatline && b.contains("vscode-light")) window.heatline.setTheme("light");
})();
</script>
</body>
</html>
`;
}

export interface OpenRequest {
  file: string;
  line: number; // 0-based
}

/** A message from the page -> what to open, or undefined for anything else. */
export function routeMessage(message: unknown): OpenRequest | undefined {
  if (!message || typeof message !== "object") return undefined;
  const m = message as { type?: unknown; file?: unknown; line?: unknown };
  if (m.type !== "open" || typeof m.file !== "string" || !m.file || m.file.startsWith("<")) return undefined;
  const line = typeof m.line === "number" && Number.isFinite(m.line) && m.line >= 1 ? Math.floor(m.line) - 1 : 0;
  return { file: m.file, line };
}

export type FlamegraphKind = "flamegraph" | "diff";

/** One panel per kind, reused; it shows whatever data it is given. */
export class FlamegraphPanels implements vscode.Disposable {
  private panels = new Map<FlamegraphKind, vscode.WebviewPanel>();

  constructor(private readonly extensionUri: vscode.Uri) {}

  show(kind: FlamegraphKind, data: unknown): void {
    const media = vscode.Uri.joinPath(this.extensionUri, "media");
    let panel = this.panels.get(kind);
    if (!panel) {
      panel = vscode.window.createWebviewPanel(
        `heatline.${kind}`,
        kind === "diff" ? "heatline: diff flame graph" : "heatline: flame graph",
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
        { enableScripts: true, localResourceRoots: [media], retainContextWhenHidden: true },
      );
      const created = panel;
      created.onDidDispose(() => this.panels.delete(kind));
      created.webview.onDidReceiveMessage((msg) => {
        const req = routeMessage(msg);
        if (req) void openAt(req, created.viewColumn);
      });
      this.panels.set(kind, created);
    } else {
      panel.reveal(undefined, true);
    }
    const webview = panel.webview;
    webview.html = flamegraphHtml(data, {
      nonce: makeNonce(),
      cspSource: webview.cspSource,
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(media, "flamegraph.js")).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(media, "flamegraph.css")).toString(),
    });
  }

  dispose(): void {
    for (const p of this.panels.values()) p.dispose();
    this.panels.clear();
  }
}

async function openAt(req: OpenRequest, panelColumn: vscode.ViewColumn | undefined): Promise<void> {
  try {
    let uri = vscode.Uri.file(req.file);
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!req.file.startsWith("/") && folder) uri = vscode.Uri.joinPath(folder.uri, req.file);
    const doc = await vscode.workspace.openTextDocument(uri);
    const other = vscode.window.visibleTextEditors.find((e) => e.viewColumn !== undefined && e.viewColumn !== panelColumn);
    const pos = new vscode.Position(Math.min(req.line, Math.max(0, doc.lineCount - 1)), 0);
    await vscode.window.showTextDocument(doc, {
      viewColumn: other?.viewColumn ?? vscode.ViewColumn.Beside,
      selection: new vscode.Range(pos, pos),
    });
  } catch (err) {
    void vscode.window.showErrorMessage(`heatline: cannot open ${req.file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
