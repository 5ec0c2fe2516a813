// Saved profiles (*.bin) as a read-only custom editor: the server loads the file (so its heat shows
// in the source editors) and the editor shows the summary and the flame graph.
import * as vscode from "vscode";
import { flamegraphHtml, makeNonce, messageHtml, routeMessage, themeFor } from "./webview";
import { profileSummary, ProfileDescription } from "./status";

export const PROFILE_VIEW_TYPE = "heatline.profile";

type Server = (command: string, args?: Record<string, unknown>) => Promise<unknown>;

export class ProfileEditorProvider implements vscode.CustomReadonlyEditorProvider {
  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly server: Server,
    private readonly open: (file: string, line: number) => Promise<void>,
    private readonly opened: (file: string) => Promise<void> | void = () => undefined,
  ) {}

  openCustomDocument(uri: vscode.Uri): vscode.CustomDocument {
    return { uri, dispose: () => undefined };
  }

  async resolveCustomEditor(document: vscode.CustomDocument, panel: vscode.WebviewPanel): Promise<void> {
    const media = vscode.Uri.joinPath(this.extensionUri, "media");
    panel.webview.options = { enableScripts: true, localResourceRoots: [media] };
    const webview = panel.webview;
    const base = {
      nonce: makeNonce(),
      cspSource: webview.cspSource,
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(media, "flamegraph.css")).toString(),
      title: `heatline: ${document.uri.path.split("/").pop()}`,
    };
    webview.html = messageHtml(`Loading ${document.uri.fsPath}…`, base);
    webview.onDidReceiveMessage((msg) => {
      const req = routeMessage(msg);
      if (req) void this.open(req.file, req.line);
    });
    try {
      const described = (await this.server("heatline.open", { path: document.uri.fsPath })) as ProfileDescription | undefined;
      await this.opened(document.uri.fsPath);
      const summary = profileSummary(described ?? {});
      const result = (await this.server("heatline.flamegraph", { show: false, returnData: true })) as { data?: unknown } | undefined;
      if (!result || !result.data) {
        webview.html = messageHtml("The profile has no samples to draw.", { ...base, summary });
        return;
      }
      webview.html = flamegraphHtml(result.data, {
        ...base,
        scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(media, "flamegraph.js")).toString(),
        summary,
        theme: themeFor(vscode.window.activeColorTheme?.kind),
      });
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      webview.html = messageHtml(`heatline cannot open ${document.uri.fsPath}: ${text}`, base);
    }
  }
}
