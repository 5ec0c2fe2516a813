// The few parts of the `vscode` module that the unit-tested modules touch at load time.
// Importing this first makes `require("vscode")` resolve to it.
import Module = require("module");

class Uri {
  constructor(readonly scheme: string, readonly path: string) {}
  static file(p: string) { return new Uri("file", p); }
  static parse(s: string) { return new Uri(s.split(":")[0], s.replace(/^[a-z]+:\/\//, "")); }
  static joinPath(base: Uri, ...parts: string[]) { return new Uri(base.scheme, [base.path, ...parts].join("/")); }
  get fsPath() { return this.path; }
  toString() { return `${this.scheme}://${this.path}`; }
}

export const mock = {
  Uri,
  ViewColumn: { Active: -1, Beside: -2, One: 1, Two: 2 },
  window: {},
  workspace: {},
};

const M = Module as unknown as { _resolveFilename: (req: string, ...rest: unknown[]) => string };
const original = M._resolveFilename;
M._resolveFilename = function (request: string, ...rest: unknown[]) {
  if (request === "vscode") return "vscode";
  return original.call(this, request, ...rest);
};
(require.cache as Record<string, unknown>)["vscode"] = { id: "vscode", filename: "vscode", loaded: true, exports: mock };
