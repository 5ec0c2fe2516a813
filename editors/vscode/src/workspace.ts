// What the extension's runs read of the workspace: the interpreter setting, and the file they
// profile saved first (the target reads it from disk).
import * as vscode from "vscode";

/** The `heatline.pythonPath` setting; undefined when unset (the server's interpreter). */
export function pythonSetting(): string | undefined {
  return vscode.workspace.getConfiguration("heatline").get<string>("pythonPath") || undefined;
}

/** Saves the open document of `uri` when it has unsaved changes. */
export async function saveIfDirty(uri: vscode.Uri): Promise<void> {
  const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
  if (doc?.isDirty) await doc.save();
}
