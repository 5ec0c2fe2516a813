// The flame graph (and diff flame graph) beside the editor, in a WebviewPanel under a strict CSP.
// flamegraphHtml, routeMessage and makeNonce are pure and unit-tested.
import * as vscode from "vscode";

export interface HtmlOptions {
  nonce: string;
  cspSource: string;
  scriptUri: string;
  styleUri: string;
  title?: string;
  /** Kept by VS Code (webview setState) so the panel can be restored after a window reload. */
  state?: unknown;
  /** Label/value rows shown above the graph (the saved-profile editor). */
  summary?: Array<[string, string]>;
  /** Initial theme, from the VS Code colour theme kind. */
  theme?: "dark" | "light";
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

/** Text for an HTML attribute value. */
function attr(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

/** Everything up to the page's own content: CSP, title, style, the optional summary. */
function pageStart(o: Pick<HtmlOptions, "nonce" | "cspSource" | "styleUri" | "summary">, title: string): string {
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
${summaryHtml(o.summary)}`;
}

/** The whole page: the viewer's CSS and JS as local resources, the data as inert JSON. */
export function flamegraphHtml(data: unknown, o: HtmlOptions): string {
  if (!/^[A-Za-z0-9]+$/.test(o.nonce)) throw new Error("nonce must be alphanumeric");
  const title = o.title ?? (typeof (data as { title?: unknown })?.title === "string" ? (data as { title: string }).title : "heatline flame graph");
  return `${pageStart(o, title)}<div id="heatline-root"></div>
<script type="application/json" id="heatline-data">${jsonForScript(data)}</script>
<script nonce="${o.nonce}">
(function () {
  if (typeof acquireVsCodeApi === "function") {
    window.heatlineHost = acquireVsCodeApi();
    var state = ${jsonForScript(o.state ?? null)};
    if (state) window.heatlineHost.setState(state);
  }
})();
</script>
<script nonce="${o.nonce}" src="${attr(o.scriptUri)}"></script>
<script nonce="${o.nonce}">
(function () {
  function apply(theme) { if (window.heatline && window.heatline.setTheme && theme) window.heatline.setTheme(theme); }
  var b = document.body.classList;
  if (b.contains("vscode-dark") || b.contains("vscode-high-contrast")) apply("dark");
  else if (b.contains("vscode-light") || b.contains("vscode-high-contrast-light")) apply("light");
  else apply(${jsonForScript(o.theme ?? null)});
  window.addEventListener("message", function (e) {
    var m = e.data;
    if (m && m.type === "theme" && (m.theme === "dark" || m.theme === "light")) apply(m.theme);
  });
})();
</script>
</body>
</html>
`;
}

function summaryHtml(rows: Array<[string, string]> | undefined): string {
  if (!rows || rows.length === 0) return "";
  const items = rows.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join("");
  return `<dl class="heatline-summary">${items}</dl>\n`;
}

/** A page without scripts: a message in place of a graph (e.g. the profile is no longer loaded). */
export function messageHtml(message: string, o: Pick<HtmlOptions, "nonce" | "cspSource" | "styleUri" | "title" | "summary">): string {
  return `${pageStart(o, o.title ?? "heatline")}<p class="heatline-message">${escapeHtml(message)}</p>
</body>
</html>
`;
}

/** VS Code's ColorThemeKind (1 light, 2 dark, 3 high contrast, 4 high contrast light) -> the viewer's theme. */
export function themeFor(kind: number | undefined): "dark" | "light" {
  return kind === 1 || kind === 4 ? "light" : "dark";
}

/** What a panel keeps across a window reload. */
export interface PanelState {
  kind: FlamegraphKind;
  args?: Record<string, unknown>;
}

export function isPanelState(state: unknown): state is PanelState {
  const s = state as PanelState | undefined;
  return !!s && typeof s === "object" && (s.kind === "flamegraph" || s.kind === "diff") && (s.args === undefined || (typeof s.args === "object" && s.args !== null));
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

export const NO_PROFILE = "The profile this panel showed is no longer loaded. Run or open a profile, then Show Flame Graph again.";

/** Fetches a kind's data from the server (null: nothing to show). */
export type FlamegraphFetch = (kind: FlamegraphKind, args: Record<string, unknown>) => Promise<unknown>;

/** One panel per kind, reused; it shows whatever data it is given, and comes back after a reload. */
export class FlamegraphPanels implements vscode.Disposable {
  private panels = new Map<FlamegraphKind, vscode.WebviewPanel>();
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(private readonly extensionUri: vscode.Uri, private readonly fetch?: FlamegraphFetch) {
    this.subscriptions.push(
      vscode.window.onDidChangeActiveColorTheme((t) => {
        const message = { type: "theme", theme: themeFor(t.kind) };
        for (const p of this.panels.values()) void p.webview.postMessage(message);
      }),
    );
    for (const kind of ["flamegraph", "diff"] as FlamegraphKind[]) {
      this.subscriptions.push(
        vscode.window.registerWebviewPanelSerializer(`heatline.${kind}`, {
          deserializeWebviewPanel: (panel, state) => this.restore(kind, panel, state),
        }),
      );
    }
  }

  private get media(): vscode.Uri {
    return vscode.Uri.joinPath(this.extensionUri, "media");
  }

  private adopt(kind: FlamegraphKind, panel: vscode.WebviewPanel): void {
    panel.onDidDispose(() => {
      if (this.panels.get(kind) === panel) this.panels.delete(kind);
    });
    panel.webview.onDidReceiveMessage((msg) => {
      const req = routeMessage(msg);
      if (req) void openAt(req, panel.viewColumn);
    });
    this.panels.set(kind, panel);
  }

  show(kind: FlamegraphKind, data: unknown, args: Record<string, unknown> = {}): void {
    let panel = this.panels.get(kind);
    if (!panel) {
      panel = vscode.window.createWebviewPanel(
        `heatline.${kind}`,
        kind === "diff" ? "heatline: diff flame graph" : "heatline: flame graph",
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
        { enableScripts: true, localResourceRoots: [this.media], retainContextWhenHidden: true },
      );
      this.adopt(kind, panel);
    } else {
      panel.reveal(undefined, true);
    }
    this.render(panel, data, { kind, args });
  }

  private render(panel: vscode.WebviewPanel, data: unknown, state: PanelState): void {
    const webview = panel.webview;
    webview.html = flamegraphHtml(data, {
      nonce: makeNonce(),
      cspSource: webview.cspSource,
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(this.media, "flamegraph.js")).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(this.media, "flamegraph.css")).toString(),
      state,
      theme: themeFor(vscode.window.activeColorTheme?.kind),
    });
  }

  /** After a window reload: ask the server again, or say the profile is gone. */
  async restore(kind: FlamegraphKind, panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    panel.webview.options = { enableScripts: true, localResourceRoots: [this.media] };
    const old = this.panels.get(kind);
    if (old && old !== panel) old.dispose();
    this.adopt(kind, panel);
    const args = isPanelState(state) && state.args ? state.args : {};
    let data: unknown;
    try {
      data = this.fetch ? await this.fetch(kind, args) : undefined;
    } catch {
      data = undefined;
    }
    if (data) {
      this.render(panel, data, { kind, args });
    } else {
      panel.webview.html = messageHtml(NO_PROFILE, {
        nonce: makeNonce(),
        cspSource: panel.webview.cspSource,
        styleUri: panel.webview.asWebviewUri(vscode.Uri.joinPath(this.media, "flamegraph.css")).toString(),
        title: "heatline",
      });
    }
  }

  dispose(): void {
    for (const p of this.panels.values()) p.dispose();
    this.panels.clear();
    for (const d of this.subscriptions) d.dispose();
    this.subscriptions.length = 0;
  }
}

export async function openAt(req: OpenRequest, panelColumn: vscode.ViewColumn | undefined): Promise<void> {
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
