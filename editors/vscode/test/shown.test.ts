import assert from "node:assert/strict";
import { ShownProfile } from "../src/shown";

class Store {
  data = new Map<string, unknown>();
  get<T>(key: string): T | undefined {
    return this.data.get(key) as T | undefined;
  }
  update(key: string, value: unknown): Thenable<void> {
    if (value === undefined) this.data.delete(key);
    else this.data.set(key, JSON.parse(JSON.stringify(value)));
    return Promise.resolve();
  }
}

function recorder(fail: Set<string> = new Set()) {
  const calls: Array<[string, Record<string, unknown> | undefined]> = [];
  const server = async (command: string, args?: Record<string, unknown>) => {
    calls.push([command, args]);
    if (fail.has(command)) throw new Error(`${command} refused`);
    return {};
  };
  return { calls, server };
}

suite("shown profile across reloads", () => {
  test("a set profile and its baseline are reopened in order", async () => {
    const shown = new ShownProfile(new Store());
    await shown.set("/p/now.bin");
    await shown.setBaseline("/p/before.bin");
    const { calls, server } = recorder();
    assert.deepEqual(await shown.restore(server, () => true), { path: "/p/now.bin", baseline: "/p/before.bin" });
    assert.deepEqual(calls, [["heatline.open", { path: "/p/now.bin" }], ["heatline.diff", { baseline: "/p/before.bin" }]]);
  });

  test("a new profile drops the old baseline; a baseline without a profile is ignored", async () => {
    const shown = new ShownProfile(new Store());
    await shown.setBaseline("/p/before.bin");
    assert.equal(shown.get(), undefined);
    await shown.set("/p/a.bin");
    await shown.setBaseline("/p/before.bin");
    await shown.set("/p/b.bin");
    assert.deepEqual(shown.get(), { path: "/p/b.bin" });
  });

  test("nothing shown, cleared, or malformed state: nothing is sent", async () => {
    const store = new Store();
    const shown = new ShownProfile(store);
    const { calls, server } = recorder();
    assert.equal(await shown.restore(server, () => true), undefined);
    await shown.set("/p/a.bin");
    await shown.clear();
    assert.equal(await shown.restore(server, () => true), undefined);
    store.data.set("heatline.shown", { path: 42 });
    assert.equal(await shown.restore(server, () => true), undefined);
    assert.deepEqual(calls, []);
  });

  test("a deleted file or one the server refuses is forgotten", async () => {
    const shown = new ShownProfile(new Store());
    await shown.set("/p/gone.bin");
    const { calls, server } = recorder();
    assert.equal(await shown.restore(server, () => false), undefined);
    assert.equal(shown.get(), undefined);
    assert.deepEqual(calls, []);

    await shown.set("/p/corrupt.bin");
    const refusing = recorder(new Set(["heatline.open"]));
    assert.equal(await shown.restore(refusing.server, () => true), undefined);
    assert.equal(shown.get(), undefined);
  });

  test("a baseline that is gone or refused leaves the profile shown without it", async () => {
    const shown = new ShownProfile(new Store());
    await shown.set("/p/now.bin");
    await shown.setBaseline("/p/before.bin");
    const refusing = recorder(new Set(["heatline.diff"]));
    assert.deepEqual(await shown.restore(refusing.server, () => true), { path: "/p/now.bin" });
    assert.deepEqual(shown.get(), { path: "/p/now.bin" });

    await shown.setBaseline("/p/before.bin");
    const { calls, server } = recorder();
    assert.deepEqual(await shown.restore(server, (p) => p !== "/p/before.bin"), { path: "/p/now.bin" });
    assert.deepEqual(calls, [["heatline.open", { path: "/p/now.bin" }]]);
  });
});
