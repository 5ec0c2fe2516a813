// The "Hot functions" view (heatline's view container on the activity bar): the profile's
// heaviest functions by self time, from the server's `heatline.hotFunctions`; a click opens the
// function. Refetched as heat arrives (at most once per REFRESH_MS while a run streams, and only
// while the view is visible), emptied when the profile is cleared.
import * as vscode from "vscode";
import { HeatPayload, pct } from "./heat";

export const VIEW_ID = "heatline.hotFunctions";
export const REFRESH_MS = 1000;
const COUNT = 50;

/** One entry of `heatline.hotFunctions`; `line` is the 0-based line of its `def`, shares are 0..1. */
export interface HotFunction {
  function: string;
  file: string;
  path?: string | null;
  uri?: string | null;
  line: number;
  self: number;
  total: number;
  selfShare: number;
  totalShare: number;
  stale?: boolean;
}

/** Heaviest self time first; then by total, then by name (the server's order, kept if it changes). */
export function orderFunctions(list: HotFunction[]): HotFunction[] {
  return [...list].sort(
    (a, b) => b.selfShare - a.selfShare || b.totalShare - a.totalShare || (a.function < b.function ? -1 : a.function > b.function ? 1 : 0),
  );
}

export function functionLabel(f: HotFunction): string {
  return `${f.function} — self ${pct(100 * f.selfShare)} · total ${pct(100 * f.totalShare)}`;
}

/** Where the function is, as its tooltip says: the local file when the server found one. */
export function functionPlace(f: HotFunction): string {
  return `${f.path || f.file}:${f.line + 1}${f.stale ? " (stale)" : ""}`;
}

type Request = (command: string, args?: Record<string, unknown>) => Promise<unknown>;

export class HotFunctionsProvider implements vscode.TreeDataProvider<HotFunction>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private items: HotFunction[] = [];
  private loaded = false; // the last heat said a profile is shown
  private visible = false;
  private generation = 0; // bumped on clear: an answer asked for before it is dropped
  private lastFetch = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly request: Request) {}

  get functions(): HotFunction[] {
    return this.items;
  }

  getTreeItem(f: HotFunction): vscode.TreeItem {
    const item = new vscode.TreeItem(functionLabel(f), vscode.TreeItemCollapsibleState.None);
    item.tooltip = functionPlace(f);
    item.iconPath = new vscode.ThemeIcon("symbol-function");
    const target = f.uri ? vscode.Uri.parse(f.uri) : f.path ? vscode.Uri.file(f.path) : undefined;
    if (target) {
      const at = new vscode.Range(f.line, 0, f.line, 0);
      item.command = { command: "vscode.open", title: "Open", arguments: [target, { selection: at }] };
    }
    return item;
  }

  getChildren(parent?: HotFunction): HotFunction[] {
    return parent ? [] : this.items;
  }

  /** A heat notification: a shown profile is refetched (throttled), none empties the view. */
  heat(payload: HeatPayload): void {
    if (!payload.profile) return this.clear();
    this.loaded = true;
    this.schedule();
  }

  setVisible(visible: boolean): void {
    this.visible = visible;
    if (visible) this.schedule();
  }

  clear(): void {
    this.loaded = false;
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.items.length) {
      this.items = [];
      this.changed.fire();
    }
  }

  private schedule(): void {
    if (!this.loaded || !this.visible || this.timer) return;
    const wait = Math.max(0, this.lastFetch + REFRESH_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.fetch();
    }, wait);
  }

  private async fetch(): Promise<void> {
    const generation = this.generation;
    this.lastFetch = Date.now();
    let list: HotFunction[];
    try {
      list = ((await this.request("heatline.hotFunctions", { count: COUNT })) as HotFunction[]) || [];
    } catch {
      return; // the server said why (a message); the view keeps what it had
    }
    if (generation !== this.generation || !this.loaded) return;
    this.items = orderFunctions(list);
    this.changed.fire();
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.changed.dispose();
  }
}

/** The view and its provider, fed every heat notification (`onHeat`). */
export function registerHotFunctions(context: vscode.ExtensionContext, onHeat: vscode.Event<HeatPayload>, request: Request): HotFunctionsProvider {
  const provider = new HotFunctionsProvider(request);
  const view = vscode.window.createTreeView(VIEW_ID, { treeDataProvider: provider });
  provider.setVisible(view.visible);
  context.subscriptions.push(
    provider, view, onHeat((payload) => provider.heat(payload)), view.onDidChangeVisibility((e) => provider.setVisible(e.visible)),
  );
  return provider;
}
