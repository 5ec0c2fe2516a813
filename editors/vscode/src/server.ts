// Pure: how to start the language server from the settings.

export interface ServerCommand {
  command: string;
  args: string[];
}

/** `configured` non-empty wins; else heatline-lsp when on PATH; else `<python> -m server`. */
export function serverCommand(configured: unknown, pythonPath: unknown, hasHeatlineLsp: boolean): ServerCommand {
  if (Array.isArray(configured) && configured.length > 0 && configured.every((s) => typeof s === "string") && configured[0]) {
    return { command: configured[0], args: configured.slice(1) };
  }
  if (hasHeatlineLsp) return { command: "heatline-lsp", args: [] };
  const python = typeof pythonPath === "string" && pythonPath.trim() ? pythonPath.trim() : "python3";
  return { command: python, args: ["-m", "server"] };
}

/** One line for window.showErrorMessage out of whatever an LSP request rejected with. */
export function errorLine(err: unknown): string {
  let text = err instanceof Error ? err.message : typeof err === "string" ? err : (err as { message?: string })?.message ?? String(err);
  text = String(text).split(/\r?\n/).find((l) => l.trim()) ?? "unknown error";
  return `heatline: ${text.trim()}`;
}
