import assert from "node:assert/strict";
import { formatSeconds, liveStatus, parseArgs, profileSummary, runChange, statusText, validateArgs, validateModule } from "../src/status";

suite("status bar", () => {
  test("text: grouped samples and elapsed seconds with one decimal", () => {
    assert.equal(statusText(12345, 4.25), "$(flame) heatline: 12,345 samples · 4.2 s");
    assert.equal(statusText(1, 0.05), "$(flame) heatline: 1 sample · 0.0 s");
    assert.equal(statusText(undefined, undefined), "$(flame) heatline: 0 samples · 0.0 s");
    assert.equal(statusText(-3, Number.NaN), "$(flame) heatline: 0 samples · 0.0 s");
  });

  test("long runs: minutes, then hours", () => {
    assert.equal(formatSeconds(59.99), "59.9 s");
    assert.equal(formatSeconds(125), "2 m 05 s");
    assert.equal(formatSeconds(3725), "1 h 02 m");
  });

  test("shown only while the profile is live; server duration wins over the local clock", () => {
    assert.equal(liveStatus(undefined, 0, 0), undefined);
    assert.equal(liveStatus({ live: false, totalSamples: 9 }, 1000, 5000), undefined);
    assert.equal(liveStatus({ live: true, totalSamples: 2000, durationS: 2 }, 1000, 9000), "$(flame) heatline: 2,000 samples · 2.0 s");
    assert.equal(liveStatus({ live: true, totalSamples: 10 }, 1000, 4500), "$(flame) heatline: 10 samples · 3.5 s");
    assert.equal(liveStatus({ live: true, totalSamples: 10, capturedSamples: 12 }, 1000, 4500), "$(flame) heatline: 12 samples · 3.5 s");
  });

  test("an async-aware run says so, with how its tasks are read", () => {
    assert.equal(liveStatus({ live: true, totalSamples: 10, durationS: 1, asyncAware: true, asyncMode: "all" }, 0, 0),
      "$(flame) heatline: 10 samples · 1.0 s · async (all)");
    assert.equal(liveStatus({ live: true, totalSamples: 10, durationS: 1, asyncAware: false, asyncMode: null }, 0, 0),
      "$(flame) heatline: 10 samples · 1.0 s");
  });
});

suite("the run's status-bar item, from heat notifications", () => {
  const live = { live: true, totalSamples: 40, durationS: 0.5 };

  test("a run followed from the notifications the server sends with no document open", () => {
    // start, a delta, the end: what publish() sends (uri null, no lines) while nothing is open
    const notes = [{ live: true, totalSamples: 0 }, live, { live: false, totalSamples: 90, durationS: 1.2 }];
    let watching = false;
    const shown = notes.map((profile) => {
      const change = runChange(profile, watching);
      if (change !== undefined) watching = change !== null;
      return liveStatus(change, 1000, 1500);
    });
    assert.deepEqual(shown, ["$(flame) heatline: 0 samples · 0.5 s", "$(flame) heatline: 40 samples · 0.5 s", undefined]);
    assert.equal(watching, false);
  });

  test("a live profile shows, whether or not a run is watched (a run started elsewhere)", () => {
    assert.equal(runChange(live, false), live);
    assert.equal(runChange(live, true), live);
  });

  test("the watched run ends with its final profile, another profile, or none (cleared)", () => {
    assert.equal(runChange({ live: false, totalSamples: 40 }, true), null);
    assert.equal(runChange(null, true), null);
    // nothing to end when no run is watched; a payload without a profile says nothing
    assert.equal(runChange({ live: false, totalSamples: 40 }, false), undefined);
    assert.equal(runChange(null, false), undefined);
    assert.equal(runChange(undefined, true), undefined);
  });
});

suite("run module", () => {
  test("arguments split like a shell: quotes and backslashes", () => {
    assert.deepEqual(parseArgs(""), []);
    assert.deepEqual(parseArgs("  --port  8000 "), ["--port", "8000"]);
    assert.deepEqual(parseArgs(`-c 'a b' "x \\"y\\"" z\\ w ""`), ["-c", "a b", 'x "y"', "z w", ""]);
    assert.throws(() => parseArgs("'open"), /unterminated/);
    assert.equal(validateArgs("a 'b"), "unterminated ' quote");
    assert.equal(validateArgs("a b"), undefined);
  });

  test("module names are dotted identifiers", () => {
    assert.equal(validateModule("http.server"), undefined);
    assert.equal(validateModule(" pkg._cli "), undefined);
    assert.match(validateModule("")!, /module name/);
    assert.match(validateModule("my-pkg")!, /not a dotted/);
    assert.match(validateModule("a..b")!, /not a dotted/);
  });
});

suite("saved profile summary", () => {
  test("label, samples, mode, python, duration", () => {
    assert.deepEqual(profileSummary({ label: "app.py", totalSamples: 4321, mode: "cpu", pythonVersion: "3.13.1", durationS: 4.31, pid: 7 }), [
      ["Profile", "app.py"], ["Samples", "4,321"], ["Mode", "cpu"], ["Python", "3.13.1"], ["Duration", "4.3 s"], ["PID", "7"],
    ]);
    assert.deepEqual(profileSummary({}), [["Samples", "?"]]);
    // the run's own count, as the CLI printed it, when the server gives it
    assert.deepEqual(profileSummary({ totalSamples: 1496, capturedSamples: 1500 })[0], ["Samples", "1,500"]);
    // async-aware: the mode when the run said it, else only that its stacks hold tasks (a file)
    assert.deepEqual(profileSummary({ mode: "wall", asyncAware: true, asyncMode: "running" })[1], ["Mode", "wall, async (running)"]);
    assert.deepEqual(profileSummary({ mode: "wall", asyncAware: true, asyncMode: null })[1], ["Mode", "wall, async"]);
  });
});
