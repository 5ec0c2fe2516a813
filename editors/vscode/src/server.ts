// Pure: how to start the language server from the settings.

export interface ServerCommand {
  command: string;
  args: string[];
}

export interface ServerLookup {
  /** heatline.serverPath: a heatline-lsp executable. */
  serverPath?: unknown;
  /** The interpreter the Python extension selected, if any. */
  interpreter?: string;
}

/**
 * `configured` (heatline.serverCommand) non-empty wins; then heatline.serverPath; then heatline-lsp
 * when on PATH; else `<python> -m server` with heatline.pythonPath, the Python extension's
 * interpreter or python3.
 */
export function serverCommand(configured: unknown, pythonPath: unknown, hasHeatlineLsp: boolean, lookup: ServerLookup = {}): ServerCommand {
  if (Array.isArray(configured) && configured.length > 0 && configured.every((s) => typeof s === "string") && configured[0]) {
    return { command: configured[0], args: configured.slice(1) };
  }
  if (typeof lookup.serverPath === "string" && lookup.serverPath.trim()) return { command: lookup.serverPath.trim(), args: [] };
  if (hasHeatlineLsp) return { command: "heatline-lsp", args: [] };
  const python = typeof pythonPath === "string" && pythonPath.trim()
    ? pythonPath.trim()
    : lookup.interpreter && lookup.interpreter.trim() ? lookup.interpreter.trim() : "python3";
  return { command: python, args: ["-m", "server"] };
}

/** The one message shown when the server cannot start: what ran and how to install heatline. */
export function startFailureMessage(err: unknown, cmd: ServerCommand, repo?: string): string {
  const install = repo ? `\`pip install heatline\` (or from a checkout: \`pip install -e ${repo}\`)` : "`pip install heatline` (or from a checkout: `pip install -e <repo>`)";
  return `${errorLine(err)} — the heatline language server did not start (${[cmd.command, ...cmd.args].join(" ")}). ` +
    `Install it into your Python with ${install}, or set heatline.serverPath / heatline.serverCommand.`;
}

/** One line for window.showErrorMessage out of whatever an LSP request rejected with. */
export function errorLine(err: unknown): string {
  let text = err instanceof Error ? err.message : typeof err === "string" ? err : (err as { message?: string })?.message ?? String(err);
  text = String(text).split(/\r?\n/).find((l) => l.trim()) ?? "unknown error";
  return `heatline: ${text.trim()}`;
}
