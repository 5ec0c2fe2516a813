import assert from "node:assert/strict";
import { BUCKETS, HeatPayload, bucketAlpha, bucketHeat, bucketOf, forDocument, isCurrent, lineText } from "../src/heat";

function payload(extra: Partial<HeatPayload> = {}): HeatPayload {
  return {
    uri: "file:///w/app.py",
    version: 3,
    profile: { id: "p1", label: "run app.py", totalSamples: 1000, live: false },
    stale: false,
    staleReason: null,
    maxSelfPct: 40,
    maxTotalPct: 90,
    lines: [
      { line: 9, self: 400, total: 900, selfPct: 40, totalPct: 90, stale: false },
      { line: 4, self: 200, total: 200, selfPct: 20, totalPct: 20, stale: false },
      { line: 2, self: 1, total: 1, selfPct: 0.1, totalPct: 0.1, stale: false },
      { line: 1, self: 0, total: 900, selfPct: 0, totalPct: 90, stale: false },
      { line: 7, self: 50, total: 50, selfPct: 5, totalPct: 5, stale: true },
    ],
    ...extra,
  };
}

test("hottest line lands in the top bucket, others scale with self share", () => {
  const b = bucketHeat(payload(), 3)!;
  assert.equal(b.buckets.length, BUCKETS + 1);
  assert.deepEqual(b.buckets[BUCKETS].map((d) => d.line), [9]);
  assert.deepEqual(b.buckets[BUCKETS / 2].map((d) => d.line), [4]);
  assert.deepEqual(b.buckets[1].map((d) => d.line), [2]);
  assert.deepEqual(b.buckets[0].map((d) => d.line), [1], "no self time: text only");
});

test("end-of-line text is self · total with one decimal", () => {
  const b = bucketHeat(payload(), 3)!;
  assert.equal(b.buckets[BUCKETS][0].text, "40.0% · 90.0%");
  assert.equal(lineText({ line: 0, selfPct: 12.34, totalPct: 41 }), "12.3% · 41.0%");
  assert.equal(lineText({ line: 0, selfPct: 2, totalPct: 3, deltaSelfPct: -1.25 }), "2.0% · 3.0% (−1.3)");
  assert.match(b.buckets[BUCKETS][0].hover, /400 self \/ 900 total samples/);
});

test("stale lines get their own style, a stale document makes every line stale", () => {
  const b = bucketHeat(payload(), 3)!;
  assert.deepEqual(b.stale.map((d) => d.line), [7]);
  assert.match(b.stale[0].hover, /stale/);
  const all = bucketHeat(payload({ stale: true, staleReason: "unsaved edits" }), 3)!;
  assert.equal(all.stale.length, 5);
  assert.ok(all.buckets.every((l) => l.length === 0));
  assert.match(all.stale[0].hover, /unsaved edits/);
});

test("heat for an older document version is ignored; newer or unversioned is drawn", () => {
  assert.equal(bucketHeat(payload({ version: 2 }), 3), undefined);
  assert.ok(bucketHeat(payload({ version: 3 }), 3));
  assert.ok(bucketHeat(payload({ version: 4 }), 3));
  assert.ok(bucketHeat(payload({ version: null }), 3));
  assert.ok(bucketHeat(payload(), undefined));
  assert.equal(isCurrent(1, 2), false);
  assert.equal(isCurrent(undefined, 2), true);
});

test("bucketing edge cases: no max, negative lines, empty payload", () => {
  assert.equal(bucketOf(0, 10), 0);
  assert.equal(bucketOf(10, 0), 0);
  assert.equal(bucketOf(50, 10), BUCKETS);
  const b = bucketHeat({ uri: "file:///x.py", lines: [{ line: -1, selfPct: 5, totalPct: 5 }, { line: 0, selfPct: 5, totalPct: 5 }] })!;
  assert.deepEqual(b.buckets[BUCKETS].map((d) => d.line), [0], "max computed from the lines");
  assert.deepEqual(bucketHeat({ uri: "file:///x.py", lines: [] })!.stale, []);
  assert.ok(bucketAlpha(1) < bucketAlpha(BUCKETS) && bucketAlpha(0) === 0);
});

test("the document-less notification (no document open) is not heat for a document", () => {
  assert.equal(forDocument(payload()), true);
  const none = payload({ uri: null, version: null, lines: [], maxSelfPct: 0, maxTotalPct: 0 });
  assert.equal(forDocument(none), false);
  assert.equal(forDocument({ ...none, uri: 7 as unknown as string }), false);
  assert.equal(forDocument(undefined), false);
});
