import "./vscode-mock";
import { strict as assert } from "assert";
import { kernelItems } from "../src/kernels";

test("kernel items: pid, Python version and connection file; no Enter PID item", () => {
  const items = kernelItems([
    { pid: 42, command: "/venv/bin/python -m ipykernel_launcher -f /run/jupyter/kernel-ab12.json", pythonVersion: "3.12.1", connectionFile: "/run/jupyter/kernel-ab12.json" },
    { pid: 7, command: "python -m ipykernel_launcher", needsPrivileges: true, reason: "owned by root", connectionFile: null },
  ]);
  assert.deepEqual(items.map((i) => i.pid), [42, 7]);
  assert.equal(items[0].label, "$(notebook) 42");
  assert.equal(items[0].description, "Python 3.12.1 · kernel-ab12.json");
  assert.equal(items[0].detail, "/venv/bin/python -m ipykernel_launcher -f /run/jupyter/kernel-ab12.json");
  assert.equal(items[1].label, "$(lock) 7");
  assert.equal(items[1].description, "needs privileges");
  assert.deepEqual(kernelItems([]), []);
});
