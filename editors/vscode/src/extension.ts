// heatline for VS Code: starts the heatline language server and maps palette commands onto it.
import * as fs from "fs";
import * as path from "path";
import * as vscode from "vscode";
import { LanguageClient, LanguageClientOptions, ServerOptions } from "vscode-languageclient/node";
import { HeatDecorations } from "./decorations";
import { HeatPayload } from "./heat";
import { registerHotFunctions } from "./hotFunctions";
import { registerKernels } from "./kernels";
import { ENTER_PID_LABEL, ProcessInfo, ProcessItem, RunProcess, processItems, runProcessItems, validatePid } from "./processes";
import { PROFILE_VIEW_TYPE, ProfileEditorProvider } from "./profileEditor";
import { LensRun, registerProfileTest, runFromLens } from "./profileTest";
import { registerRuler } from "./ruler";
import { errorLine, serverCommand, startFailureMessage } from "./server";
import { LiveProfile, liveStatus, parseArgs, runChange, validateArgs, validateModule } from "./status";
import { ShownProfile } from "./shown";
import { pythonSetting, saveIfDirty } from "./workspace";
import { FlamegraphKind, FlamegraphPanels, openAt } from "./webview";

let client: LanguageClient | undefined;

function onPath(name: string): boolean {
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

/** The interpreter selected in the Python extension, when it is installed (optional, feature-detected). */
async function pythonExtensionInterpreter(resource?: vscode.Uri): Promise<string | undefined> {
  try {
    const ext = vscode.extensions.getExtension("ms-python.python");
    if (!ext) return undefined;
    const api = (ext.isActive ? ext.exports : await ext.activate()) as {
      environments?: { getActiveEnvironmentPath?: (r?: vscode.Uri) => { path?: string } | undefined; resolveEnvironment?: (e: unknown) => Promise<{ executable?: { uri?: vscode.Uri } } | undefined> };
      settings?: { getExecutionDetails?: (r?: vscode.Uri) => { execCommand?: string[] } | undefined };
    } | undefined;
    const envs = api?.environments;
    if (envs?.getActiveEnvironmentPath) {
      const active = envs.getActiveEnvironmentPath(resource);
      if (active && envs.resolveEnvironment) {
        const resolved = await envs.resolveEnvironment(active);
        const exe = resolved?.executable?.uri?.fsPath;
        if (exe) return exe;
      }
      if (active?.path) return active.path;
    }
    const exec = api?.settings?.getExecutionDetails?.(resource)?.execCommand;
    if (exec && exec[0]) return exec[0];
  } catch {
    /* optional */
  }
  return undefined;
}

/** The checkout this extension sits in (editors/vscode), for the install hint; undefined when installed. */
function repoRoot(extensionPath: string): string | undefined {
  const root = path.resolve(extensionPath, "..", "..");
  return fs.existsSync(path.join(root, "server")) && fs.existsSync(path.join(root, "sampler")) ? root : undefined;
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const config = vscode.workspace.getConfiguration("heatline");
  const cmd = serverCommand(config.get("serverCommand"), config.get("pythonPath"), onPath("heatline-lsp"), {
    serverPath: config.get("serverPath"),
    // never let a slow Python extension hold up the server: 5 s, then without it
    interpreter: await Promise.race([
      pythonExtensionInterpreter(vscode.workspace.workspaceFolders?.[0]?.uri),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 5000)),
    ]),
  });
  const serverOptions: ServerOptions = { command: cmd.command, args: cmd.args }; // no `transport`: it adds --stdio
  const decorations = new HeatDecorations();
  // `started`: the client is up (requests can go); `ready`: the profile shown before a window
  // reload is back too (panels restored by VS Code wait for it before asking for their data).
  let markStarted!: () => void;
  let markReady!: () => void;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const shown = new ShownProfile(context.workspaceState);
  // Runs and attaches also save a binary profile here, so the window can reopen it after a reload.
  const runOutput = (): string => {
    const dir = (context.storageUri ?? context.globalStorageUri).fsPath;
    fs.mkdirSync(dir, { recursive: true });
    return path.join(dir, "last-run.bin");
  };
  let pendingOutput: string | undefined; // the live run's binary, shown once the run has ended
  const runEnded = () => {
    const output = pendingOutput;
    pendingOutput = undefined;
    if (!output) return;
    // the profiler writes the file as it exits, which can trail the last heat a little
    const deadline = Date.now() + 10_000;
    const check = () => {
      if (fs.existsSync(output)) void shown.set(output);
      else if (Date.now() < deadline) setTimeout(check, 200);
    };
    check();
  };
  const panels = new FlamegraphPanels(context.extensionUri, async (kind, args) => {
    const command = kind === "diff" ? "heatline.diffFlamegraph" : "heatline.flamegraph";
    const result = (await server(command, { ...args, show: false, returnData: true })) as { data?: unknown } | undefined;
    return result?.data;
  });
  context.subscriptions.push(decorations, panels);

  // The status-bar item of a live run: samples and elapsed time; a click stops the run.
  const statusItem = vscode.window.createStatusBarItem("heatline.run", vscode.StatusBarAlignment.Left, 50);
  statusItem.name = "heatline run";
  statusItem.command = "heatline.stopProfiling";
  statusItem.tooltip = "heatline is profiling: click to stop";
  context.subscriptions.push(statusItem);
  let runStartedAt: number | undefined; // set while a run is watched, to time it until the server says
  const showLive = (profile: LiveProfile | null | undefined) => {
    const text = liveStatus(profile, runStartedAt, Date.now());
    if (text) {
      statusItem.text = text;
      statusItem.show();
    } else {
      statusItem.hide();
      runEnded();
      runStartedAt = undefined;
    }
  };
  // Every heat notification says whether the run is live, with its samples and duration, and the
  // server sends one (uri null) even while no document is open: that alone drives the item. A
  // run's start, each delta, its end and a clear all publish heat, the start before the run's
  // command answers, so the item needs no poll and no start of its own.
  const followRun = (profile: LiveProfile | null | undefined) => {
    const change = runChange(profile, runStartedAt !== undefined);
    if (change && runStartedAt === undefined) runStartedAt = Date.now();
    if (change !== undefined) showLive(change);
  };

  const showFlamegraph = async (kind: FlamegraphKind, args: Record<string, unknown> = {}) => {
    const command = kind === "diff" ? "heatline.diffFlamegraph" : "heatline.flamegraph";
    const result = (await server(command, { ...args, show: false, returnData: true })) as { data?: unknown } | undefined;
    if (result && result.data) panels.show(kind, result.data, args);
  };

  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file", language: "python" }, { notebook: "jupyter-notebook", language: "python" }],
    outputChannelName: "heatline",
    // the status-bar item below shows a live run (and stops it on click): no second indicator
    initializationOptions: { runProgress: false },
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
        // A "Profile" lens above a test or a __main__ block: a run like the palette's
        try {
          if (await runFromLens(command, args, startProfiling)) return undefined;
        } catch (err) {
          void vscode.window.showErrorMessage(errorLine(err));
          return undefined;
        }
        return next(command, args);
      },
    },
  };

  client = new LanguageClient("heatline", "heatline", serverOptions, clientOptions);
  // the one handler of heat notifications (a client keeps one per method) hands them on here
  const heatEvents = new vscode.EventEmitter<HeatPayload>();
  context.subscriptions.push(heatEvents);
  context.subscriptions.push(client.onNotification("heatline/heat", (payload: HeatPayload) => {
    decorations.update(payload);
    followRun(payload.profile);
    heatEvents.fire(payload);
  }));
  const ruler = registerRuler(context, heatEvents.event);
  registerHotFunctions(context, heatEvents.event, (command, args) => server(command, args));

  // Every command waits until the profile of before a reload is back, so that a user's run or
  // open is never overtaken (and replaced) by that reopening.
  async function server(command: string, args?: Record<string, unknown>): Promise<unknown> {
    await ready;
    return request(command, args);
  }

  async function request(command: string, args?: Record<string, unknown>): Promise<unknown> {
    await started;
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
    const asyncAware = c.get<boolean>("asyncAware") === true;
    return {
      rate: c.get<number>("samplingRate"), mode: c.get<string>("mode"), allThreads: c.get<boolean>("allThreads"), asyncAware,
      opcodes: c.get<boolean>("opcodes") === true, native: c.get<boolean>("native") === true,
      // the mode only with asyncAware: the server refuses it alone, as `heatline run` does
      ...(asyncAware ? { asyncMode: c.get<string>("asyncMode") } : {}),
    };
  };

  // Run or attach with the sampling settings, saving the samples for a reload; the new run
  // replaces what was shown, and its file is remembered when it ends.
  const startProfiling = async (command: "heatline.run" | "heatline.attach" | "heatline.attachKernel" | LensRun, args: Record<string, unknown>) => {
    const output = runOutput();
    await server(command, { ...args, output, ...sampling() });
    // both at once, before any notification is handled: a run that ends while the clear is
    // stored is still remembered, after it
    pendingOutput = output;
    await shown.clear();
  };

  register("heatline.runFile", async (uri?: unknown) => {
    const target = uri instanceof vscode.Uri ? uri : vscode.window.activeTextEditor?.document.uri;
    if (!target || target.scheme !== "file") throw new Error("open a Python file to profile");
    await saveIfDirty(target);
    const folder = vscode.workspace.getWorkspaceFolder(target);
    await startProfiling("heatline.run", { script: target.fsPath, cwd: folder?.uri.fsPath, python: pythonSetting() });
  });

  registerProfileTest(server, startProfiling, register);

  register("heatline.runModule", async () => {
    const module = await vscode.window.showInputBox({
      title: "heatline: profile a module (python -m)",
      prompt: "Module name",
      placeHolder: "http.server, mypkg.cli",
      validateInput: validateModule,
    });
    if (module === undefined) return;
    const argText = await vscode.window.showInputBox({
      title: `heatline: arguments for ${module.trim()}`,
      prompt: "Arguments (optional; quote with ' or \")",
      validateInput: validateArgs,
    });
    if (argText === undefined) return;
    const folder = vscode.workspace.workspaceFolders?.[0];
    await startProfiling("heatline.run", { module: module.trim(), args: parseArgs(argText), cwd: folder?.uri.fsPath, python: pythonSetting() });
  });

  register("heatline.openWith", async (uri?: unknown) => {
    const target = uri instanceof vscode.Uri ? uri : undefined;
    if (!target) return vscode.commands.executeCommand("heatline.openProfile");
    await vscode.commands.executeCommand("vscode.openWith", target, PROFILE_VIEW_TYPE);
  });

  context.subscriptions.push(
    vscode.window.registerCustomEditorProvider(
      PROFILE_VIEW_TYPE,
      new ProfileEditorProvider(context.extensionUri, server, (file, line) => openAt({ file, line }, undefined), (file) => shown.set(file)),
      { supportsMultipleEditorsPerDocument: true },
    ),
  );

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
    await startProfiling("heatline.attach", { pid });
  });

  registerKernels(register, server, startProfiling);

  register("heatline.stopProfiling", async () => {
    const result = await server("heatline.stop");
    showLive(undefined);
    return result;
  });
  register("heatline.clearProfile", async () => {
    pendingOutput = undefined; // a run cleared while live is forgotten too, not shown once it ends
    await server("heatline.clear");
    await shown.clear();
    decorations.clear();
    vscode.window.setStatusBarMessage("heatline: profile cleared", 3000);
  });

  const pickProfile = async (title: string, openLabel?: string): Promise<string | undefined> => {
    const files = await vscode.window.showOpenDialog({
      title,
      openLabel,
      canSelectMany: false,
      filters: { Profiles: ["bin", "txt", "collapsed", "pstats", "prof"], "All files": ["*"] },
    });
    return files && files[0] ? files[0].fsPath : undefined;
  };

  register("heatline.openProfile", async () => {
    const file = await pickProfile("heatline: open a saved profile");
    if (!file) return;
    await server("heatline.open", { path: file });
    await shown.set(file);
  });

  register("heatline.diffProfile", async () => {
    const file = await pickProfile("heatline: compare the shown profile with a baseline", "Use as baseline");
    if (!file) return;
    await server("heatline.diff", { baseline: file });
    await shown.setBaseline(file);
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

  register("heatline.pickProcess", async () => {
    const status = (await server("heatline.status")) as { profile?: { processes?: RunProcess[]; process?: number | null } | null };
    const processes = status?.profile?.processes;
    if (!processes) {
      void vscode.window.showInformationMessage("heatline: the shown profile is not a run with subprocesses (setting heatline.subprocesses)");
      return;
    }
    const picked = await vscode.window.showQuickPick(runProcessItems(processes, status.profile?.process ?? null), {
      title: "heatline: heat of which process of the run",
      matchOnDescription: true,
      matchOnDetail: true,
    });
    if (!picked) return;
    await server("heatline.showProcess", picked.pid === null ? {} : { pid: picked.pid });
  });

  register("heatline.toggleHeat", () => {
    const on = decorations.toggle();
    ruler.setVisible(on);
    vscode.window.setStatusBarMessage(`heatline: heat ${on ? "shown" : "hidden"}`, 3000);
  });

  try {
    await client.start();
  } catch (err) {
    void vscode.window.showErrorMessage(startFailureMessage(err, cmd, repoRoot(context.extensionPath)));
  } finally {
    markStarted();
  }
  try {
    if (client.isRunning()) await shown.restore(request, (p) => fs.existsSync(p));
  } finally {
    markReady();
  }
}

export async function deactivate(): Promise<void> {
  if (client) await client.stop();
  client = undefined;
}
