// "Profile" lenses above tests and `__main__` blocks, and "heatline: Profile Test at Cursor".
// The server finds tests (heatline.testAt) and runs them (heatline.profileTest); here a lens's
// click or the palette command becomes a run started like any other (output file, sampling
// settings: the extension's startProfiling), after the file is saved, since pytest reads it.
import * as vscode from "vscode";
import { pythonSetting, saveIfDirty } from "./workspace";

export type LensRun = "heatline.profileTest" | "heatline.run";
type Server = (command: string, args?: Record<string, unknown>) => Promise<unknown>;
type Start = (command: LensRun, args: Record<string, unknown>) => Promise<void>;

export const NO_TEST = "no test under the cursor: put it in a test_* function or Test* class of a test_*.py or *_test.py file";

/** The heatline.profileTest arguments for what heatline.testAt answered; throws when it found no test. */
export function testArgs(found: unknown, python?: string): Record<string, unknown> {
  const t = found as { path?: unknown; node?: unknown } | null;
  if (!t || typeof t !== "object" || typeof t.path !== "string" || typeof t.node !== "string" || !t.node) {
    throw new Error(NO_TEST);
  }
  return { path: t.path, node: t.node, ...(python ? { python } : {}) };
}

/** A lens's command as the extension starts it: the run's arguments and the file to save
 * first, or undefined for commands that are not a lens's run. */
export function lensRun(command: string, args: unknown[]): { command: LensRun; args: Record<string, unknown>; file: string } | undefined {
  if (command !== "heatline.profileTest" && command !== "heatline.run") return undefined;
  const first = args[0];
  if (!first || typeof first !== "object") return undefined;
  const a = first as Record<string, unknown>;
  const file = command === "heatline.run" ? a.script : a.path;
  if (typeof file !== "string") return undefined;
  return { command, args: { ...a }, file };
}

/** Runs a lens's command through `start`; false when `command` is no lens run (left to the server). */
export async function runFromLens(command: string, args: unknown[], start: Start): Promise<boolean> {
  const run = lensRun(command, args);
  if (!run) return false;
  await saveIfDirty(vscode.Uri.file(run.file));
  const python = pythonSetting();
  await start(run.command, { ...run.args, ...(python && run.args.python === undefined ? { python } : {}) });
  return true;
}

/** Registers heatline.profileTestAtCursor. */
export function registerProfileTest(
  server: Server,
  start: Start,
  register: (id: string, fn: (...a: unknown[]) => Promise<unknown> | unknown) => unknown,
): void {
  register("heatline.profileTestAtCursor", async () => {
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.document.uri.scheme !== "file") throw new Error("open a Python test file to profile a test");
    const found = await server("heatline.testAt", { path: editor.document.uri.fsPath, line: editor.selection.active.line });
    const args = testArgs(found, pythonSetting());
    await saveIfDirty(editor.document.uri);
    await start("heatline.profileTest", args);
  });
}
