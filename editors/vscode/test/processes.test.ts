import assert from "node:assert/strict";
import { ENTER_PID_LABEL, processItems, runProcessItems, validatePid } from "../src/processes";
import { errorLine, serverCommand, startFailureMessage } from "../src/server";

test("process items show pid, command line, version and a privileges note; Enter PID last", () => {
  const items = processItems([
    { pid: 101, command: "python3  app.py\n--serve", pythonVersion: "3.12.1", needsPrivileges: false },
    { pid: 7, command: "/usr/bin/python3 daemon.py", pythonVersion: "3.11.2", needsPrivileges: true, reason: "owned by root" },
  ]);
  assert.equal(items.length, 3);
  assert.deepEqual(items[0], { label: "$(terminal) 101", description: "Python 3.12.1", detail: "python3 app.py --serve", pid: 101 });
  assert.equal(items[1].label, "$(lock) 7");
  assert.equal(items[1].description, "Python 3.11.2 · needs privileges");
  assert.equal(items[1].detail, "/usr/bin/python3 daemon.py — owned by root");
  assert.equal(items[2].label, ENTER_PID_LABEL);
  assert.equal(items[2].pid, undefined);
  assert.deepEqual(processItems([]).map((i) => i.label), [ENTER_PID_LABEL]);
});

test("run process items: all processes first, then each process with its samples; the shown one picked", () => {
  const items = runProcessItems([
    { pid: 10, command: "python3 main.py", main: true, samples: 1500 },
    { pid: 12, command: "python3 -c from multiprocessing.spawn\nimport x", main: false, samples: 900 },
    { pid: 13, command: "python3 quick.py", main: false, samples: 0, note: "exited before its first sample" },
  ], 12);
  assert.deepEqual(items.map((i) => i.pid), [null, 10, 12, 13]);
  assert.equal(items[0].label, "$(layers) All processes");
  assert.equal(items[1].description, "main · 1,500 samples");
  assert.equal(items[2].detail, "python3 -c from multiprocessing.spawn import x");
  assert.equal(items[3].description, "0 samples · exited before its first sample");
  assert.deepEqual(items.map((i) => i.picked), [false, false, true, false]);
  assert.equal(runProcessItems([], null)[0].picked, true);
});

test("PID validation", () => {
  assert.equal(validatePid("1234"), undefined);
  assert.equal(validatePid(" 42 "), undefined);
  for (const bad of ["", "abc", "-3", "0", "1.5", "99999999"]) assert.ok(validatePid(bad), bad);
});

test("server command: setting, then heatline-lsp, then python -m server", () => {
  assert.deepEqual(serverCommand(["/venv/bin/heatline-lsp", "--log"], "", true), { command: "/venv/bin/heatline-lsp", args: ["--log"] });
  assert.deepEqual(serverCommand([], "/venv/bin/python", true), { command: "heatline-lsp", args: [] });
  assert.deepEqual(serverCommand([], "/venv/bin/python", false), { command: "/venv/bin/python", args: ["-m", "server"] });
  assert.deepEqual(serverCommand(undefined, "", false), { command: "python3", args: ["-m", "server"] });
});

test("errors become one line", () => {
  assert.equal(errorLine(new Error("no profile loaded\nTraceback ...")), "heatline: no profile loaded");
  assert.equal(errorLine({ message: "process 5 is gone" }), "heatline: process 5 is gone");
  assert.equal(errorLine("\n  bad pid  "), "heatline: bad pid");
});

test("server discovery: serverCommand, then serverPath, then heatline-lsp, then the Python extension's interpreter", () => {
  assert.deepEqual(serverCommand(["x", "-y"], "", true, { serverPath: "/opt/heatline-lsp" }), { command: "x", args: ["-y"] });
  assert.deepEqual(serverCommand([], "", true, { serverPath: " /opt/heatline-lsp " }), { command: "/opt/heatline-lsp", args: [] });
  assert.deepEqual(serverCommand([], "", true, { interpreter: "/venv/bin/python" }), { command: "heatline-lsp", args: [] });
  assert.deepEqual(serverCommand([], "", false, { interpreter: "/venv/bin/python" }), { command: "/venv/bin/python", args: ["-m", "server"] });
  assert.deepEqual(serverCommand([], "/usr/bin/python3.12", false, { interpreter: "/venv/bin/python" }), { command: "/usr/bin/python3.12", args: ["-m", "server"] });
});

test("a server that cannot start: one message with what ran and the install command", () => {
  const msg = startFailureMessage(new Error("spawn heatline-lsp ENOENT"), { command: "heatline-lsp", args: [] }, "/src/heatline");
  assert.match(msg, /^heatline: spawn heatline-lsp ENOENT/);
  assert.ok(msg.includes("pip install heatline") && msg.includes("pip install -e /src/heatline") && msg.includes("heatline.serverPath"), msg);
  assert.ok(startFailureMessage("x", { command: "python3", args: ["-m", "server"] }).includes("python3 -m server"));
});
