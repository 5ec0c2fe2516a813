import "./vscode-mock";
import assert from "node:assert/strict";
import { NO_TEST, lensRun, testArgs } from "../src/profileTest";

test("the test at the cursor becomes heatline.profileTest's arguments; no test is one line", () => {
  const found = { path: "/p/tests/test_a.py", node: "TestA::test_b", kind: "function" };
  assert.deepEqual(testArgs(found), { path: "/p/tests/test_a.py", node: "TestA::test_b" });
  assert.deepEqual(testArgs(found, "/venv/bin/python"), { path: "/p/tests/test_a.py", node: "TestA::test_b", python: "/venv/bin/python" });
  for (const none of [null, undefined, {}, { path: "/p/x.py" }, { path: "/p/x.py", node: "" }, "test_a"]) {
    assert.throws(() => testArgs(none), (err: Error) => err.message === NO_TEST && !err.message.includes("\n"));
  }
});

test("a lens's run: profileTest and run (a __main__ block) with the file to save; other commands are left alone", () => {
  assert.deepEqual(lensRun("heatline.profileTest", [{ path: "/p/test_a.py", node: "test_a" }]),
    { command: "heatline.profileTest", args: { path: "/p/test_a.py", node: "test_a" }, file: "/p/test_a.py" });
  assert.deepEqual(lensRun("heatline.run", [{ script: "/p/app.py" }]),
    { command: "heatline.run", args: { script: "/p/app.py" }, file: "/p/app.py" });
  assert.equal(lensRun("heatline.flamegraph", [{ file: "/p/a.py" }]), undefined);
  assert.equal(lensRun("heatline.run", [{ module: "http.server" }]), undefined);
  assert.equal(lensRun("heatline.profileTest", []), undefined);
});
