// What the window shows, kept across window reloads: the language server restarts with the
// extension host and forgets its profile, so the extension remembers the profile's file (a saved
// profile, or the binary a run or attach left behind) and its baseline, and reopens them.
// No runtime imports, so it runs under mocha without VS Code.

export interface Shown {
  path: string;
  baseline?: string;
}

/** The part of vscode.Memento used here (workspaceState). */
export interface StateStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): Thenable<void>;
}

type Server = (command: string, args?: Record<string, unknown>) => Promise<unknown>;

const KEY = "heatline.shown";

function isShown(value: unknown): value is Shown {
  const v = value as Shown | undefined;
  return !!v && typeof v === "object" && typeof v.path === "string" && v.path.length > 0 &&
    (v.baseline === undefined || (typeof v.baseline === "string" && v.baseline.length > 0));
}

export class ShownProfile {
  constructor(private readonly store: StateStore) {}

  get(): Shown | undefined {
    const value = this.store.get<unknown>(KEY);
    return isShown(value) ? value : undefined;
  }

  /** A new profile is on show (its baseline, if any, no longer applies). */
  async set(path: string): Promise<void> {
    await this.store.update(KEY, { path });
  }

  /** The shown profile is now compared with `baseline`. */
  async setBaseline(baseline: string): Promise<void> {
    const shown = this.get();
    if (shown) await this.store.update(KEY, { ...shown, baseline });
  }

  async clear(): Promise<void> {
    await this.store.update(KEY, undefined);
  }

  /**
   * Reopen what was shown before the reload. A file that is gone, or that the server refuses, is
   * forgotten rather than retried on every start; returns what was reopened.
   */
  async restore(server: Server, exists: (path: string) => boolean): Promise<Shown | undefined> {
    const shown = this.get();
    if (!shown) return undefined;
    if (!exists(shown.path)) {
      await this.clear();
      return undefined;
    }
    try {
      await server("heatline.open", { path: shown.path });
    } catch {
      await this.clear();
      return undefined;
    }
    if (shown.baseline && exists(shown.baseline)) {
      try {
        await server("heatline.diff", { baseline: shown.baseline });
        return shown;
      } catch {
        /* the profile itself is back: keep it, without the baseline */
      }
    }
    await this.set(shown.path);
    return { path: shown.path };
  }
}
