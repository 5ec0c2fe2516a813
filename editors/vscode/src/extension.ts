// heatline for VS Code: starts the heatline language server and maps palette commands onto it.
import * as vscode from "vscode";
import { LanguageClient, LanguageClientOptions, ServerOptions } from "vscode-languageclient/node";
import { HeatDecorations } from "./decorations";
import { HeatPayload } from "./heat";
import { ENTER_PID_LABEL, ProcessInfo, ProcessItem, processItems, validatePid } from "./processes";
import { errorLine, serverCommand } from "./server";
import { FlamegraphKind, FlamegraphPanels } from "./webview";

let client: LanguageClient | undefined;

function onPath(name: string): boolean {
  const path = require("path") as typeof import("path");
  const fs = require("fs") as typeof import("fs");
  for (const dir of (process.env.PATH || "").split(path.delimiter)) {
    if (!dir) continue;
    try {
      fs.accessSync(path.join(dir, name), fs.constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const config = vscode.workspace.getConfiguration("heatline");
  const cmd = serverCommand(config.get("serverCommand"), config.get("pythonPath"), onPath("heatline-lsp"));
  const serverOptions: ServerOptions = { command: cmd.command, args: cmd.args }; // no `transport`: it adds --stdio
  const decorations = new HeatDecorations();
  const panels = new FlamegraphPanels(context.extensionUri);
  context.subscriptions.push(decorations, panels);

  const showFlamegraph = async (kind: FlamegraphKind, args: Record<string, unknown> = {}) => {
    const command = kind === "diff" ? "heatline.diffFlamegraph" : "heatline.flamegraph";
    const result = (await server(command, { ...args, show: false, returnData: true })) as { data?: unknown } | undefined;
    if (result && result.data) panels.show(kind, result.data);
  };

  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file", language: "python" }],
    outputChannelName: "heatline",
    middleware: {
      // A code lens asks the server to open the page in a browser; show it beside the code instead.
      executeCommand: async (command, args, next) => {
        const first = args[0];
        if ((command === "heatline.flamegraph" || command === "heatline.diffFlamegraph") && first && typeof first === "object" && (first as { show?: unknown }).show) {
          const { show: _show, ...rest } = first as Record<string, unknown>;
          try {
            await showFlamegraph(command === "heatline.diffFlamegraph" ? "diff" : "flamegraph", rest);
          } catch (err) {
            void vscode.window.showErrorMessage(errorLine(err));
          }
          return undefined;
        }
        return next(command, args);
      },
    },
  };

  client = new LanguageClient("heatline", "heatline", serverOptions, clientOptions);
  context.subscriptions.push(client.onNotification("heatline/heat", (payload: HeatPayload) => decorations.update(payload)));

  async function server(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (!client) throw new Error("the language server is not running");
    return client.sendRequest("workspace/executeCommand", { command, arguments: args ? [args] : [] });
  }

  const register = (id: string, fn: (...a: unknown[]) => Promise<unknown> | unknown) =>
    context.subscriptions.push(
      vscode.commands.registerCommand(id, async (...a: unknown[]) => {
        try {
          return await fn(...a);
        } catch (err) {
          void vscode.window.showErrorMessage(errorLine(err));
        }
      }),
    );

  const sampling = () => {
    const c = vscode.workspace.getConfiguration("heatline");
    return { rate: c.get<number>("samplingRate"), mode: c.get<string>("mode"), allThreads: c.get<boolean>("allThreads") };
  };

  register("heatline.runFile", async (uri?: unknown) => {
    const target = uri instanceof vscode.Uri ? uri : vscode.window.activeTextEditor?.document.uri;
    if (!target || target.scheme !== "file") throw new Error("open a Python file to profile");
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === target.toString());
    if (doc?.isDirty) await doc.save();
    const folder = vscode.workspace.getWorkspaceFolder(target);
    const python = vscode.workspace.getConfiguration("heatline").get<string>("pythonPath") || undefined;
    await server("heatline.run", { script: target.fsPath, cwd: folder?.uri.fsPath, python, ...sampling() });
    vscode.window.setStatusBarMessage(`heatline: profiling ${vscode.workspace.asRelativePath(target)}`, 5000);
  });

  register("heatline.attachProcess", async () => {
    const list = (await server("heatline.listProcesses")) as ProcessInfo[];
    const picked = await vscode.window.showQuickPick<ProcessItem>(processItems(list || []), {
      title: "heatline: attach to a Python process",
      placeHolder: "pid, command line, Python version",
      matchOnDescription: true,
      matchOnDetail: true,
    });
    if (!picked) return;
    let pid = picked.pid;
    if (picked.label === ENTER_PID_LABEL || pid === undefined) {
      const text = await vscode.window.showInputBox({ title: "heatline: attach to PID", prompt: "Process id", validateInput: validatePid });
      if (text === undefined) return;
      pid = Number(text.trim());
    }
    await server("heatline.attach", { pid, ...sampling() });
  });

  register("heatline.stopProfiling", () => server("heatline.stop"));
  register("heatline.clearProfile", async () => {
    await server("heatline.clear");
    decorations.clear();
  });

  register("heatline.openProfile", async () => {
    const files = await vscode.window.showOpenDialog({
      title: "heatline: open a saved profile",
      canSelectMany: false,
      filters: { Profiles: ["bin", "txt", "collapsed", "pstats", "prof"], "All files": ["*"] },
    });
    if (files && files[0]) await server("heatline.open", { path: files[0].fsPath });
  });

  register("heatline.diffProfile", async () => {
    const files = await vscode.window.showOpenDialog({
      title: "heatline: compare the shown profile with a baseline",
      openLabel: "Use as baseline",
      canSelectMany: false,
      filters: { Profiles: ["bin", "txt", "collapsed", "pstats", "prof"], "All files": ["*"] },
    });
    if (files && files[0]) await server("heatline.diff", { baseline: files[0].fsPath });
  });

  register("heatline.showFlamegraph", () => showFlamegraph("flamegraph"));
  register("heatline.showDiffFlamegraph", () => showFlamegraph("diff"));

  register("heatline.hottestLines", async () => {
    const spots = (await server("heatline.hottest", { count: 30, kind: "lines" })) as Array<{
      file: string; path?: string | null; uri?: string | null; line: number; function: string; selfPct: number; totalPct: number; stale?: boolean;
    }>;
    if (!spots || spots.length === 0) throw new Error("no profile loaded");
    const items = spots.map((s) => ({
      label: `${s.selfPct.toFixed(1)}% · ${s.totalPct.toFixed(1)}%  ${s.function}`,
      description: `${vscode.workspace.asRelativePath(s.path || s.file)}:${s.line + 1}${s.stale ? " (stale)" : ""}`,
      spot: s,
    }));
    const picked = await vscode.window.showQuickPick(items, { title: "heatline: hottest lines (self · total)", matchOnDescription: true });
    if (!picked) return;
    const uri = picked.spot.uri ? vscode.Uri.parse(picked.spot.uri) : vscode.Uri.file(picked.spot.path || picked.spot.file);
    const doc = await vscode.workspace.openTextDocument(uri);
    const pos = new vscode.Position(Math.max(0, picked.spot.line), 0);
    await vscode.window.showTextDocument(doc, { selection: new vscode.Range(pos, pos) });
  });

  register("heatline.toggleHeat", () => {
    const on = decorations.toggle();
    vscode.window.setStatusBarMessage(`heatline: heat ${on ? "shown" : "hidden"}`, 3000);
  });

  try {
    await client.start();
  } catch (err) {
    void vscode.window.showErrorMessage(
      `${errorLine(err)} (server: ${[cmd.command, ...cmd.args].join(" ")}; install heatline with \`pip install heatline\` or set heatline.serverCommand)`,
    );
  }
}

export async function deactivate(): Promise<void> {
  if (client) await client.stop();
  client = undefined;
}
