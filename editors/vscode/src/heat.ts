// Pure: a `heatline/heat` notification -> per-line decorations in a fixed number of buckets.
// No runtime imports, so it runs under `node --test` without VS Code.

export const BUCKETS = 8;
/** Steps of the pieces of a hot line where its time went (--opcodes), by their share of the line. */
export const COLUMN_BUCKETS = 4;

/**
 * A piece of a line (character offsets in it) holding `pct` percent of the line's samples, drawn
 * with `strength` (0-1: the server weighs it against the line's heaviest piece and the line's
 * heat against the hottest line's).
 */
export interface HeatColumn {
  start: number;
  end: number;
  samples?: number;
  pct: number;
  strength?: number;
}

export interface HeatLine {
  line: number; // 0-based
  self?: number;
  total?: number;
  selfPct: number;
  totalPct: number;
  stale?: boolean;
  baselineSelfPct?: number | null;
  deltaSelfPct?: number | null;
  /** where in the line its time went, from the server (--opcodes; fresh hot lines only) */
  columns?: HeatColumn[];
}

export interface HeatPayload {
  /** null when no document is open: the notification then only describes the profile */
  uri: string | null;
  version?: number | null;
  profile?: { id?: string; source?: string; label?: string; totalSamples?: number; capturedSamples?: number; mode?: string; live?: boolean; durationS?: number; opcodes?: boolean; native?: boolean } | null;
  stale?: boolean;
  staleReason?: string | null;
  lines: HeatLine[];
  maxSelfPct?: number;
  maxTotalPct?: number;
}

/** Whether a notification is heat for a document, rather than the document-less one (`uri` null). */
export function forDocument(payload: HeatPayload | undefined): payload is HeatPayload & { uri: string } {
  return !!payload && typeof payload.uri === "string";
}

export interface LineDecoration {
  line: number;
  text: string; // end-of-line text, "12.3% · 41.0%"
  hover: string; // markdown
}

export interface HeatBuckets {
  /** buckets[0] has text only (no self time); buckets[1..BUCKETS] get ever stronger backgrounds. */
  buckets: LineDecoration[][];
  stale: LineDecoration[];
}

/** Whether heat computed for `heatVersion` may be drawn on a document now at `documentVersion`. */
export function isCurrent(heatVersion: number | null | undefined, documentVersion: number | undefined): boolean {
  if (heatVersion === null || heatVersion === undefined || documentVersion === undefined) return true;
  return heatVersion >= documentVersion;
}

export function pct(value: number | null | undefined): string {
  const v = typeof value === "number" && isFinite(value) ? value : 0;
  return `${v.toFixed(1)}%`;
}

export function lineText(line: HeatLine): string {
  let text = `${pct(line.selfPct)} · ${pct(line.totalPct)}`;
  if (typeof line.deltaSelfPct === "number") {
    const d = line.deltaSelfPct;
    text += ` (${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(1)})`;
  }
  return text;
}

export function lineHover(line: HeatLine, payload: HeatPayload, stale: boolean): string {
  const parts = [`**heatline** — self ${pct(line.selfPct)} · total ${pct(line.totalPct)}`];
  if (typeof line.self === "number" && typeof line.total === "number") {
    parts.push(`${line.self.toLocaleString("en-US")} self / ${line.total.toLocaleString("en-US")} total samples`);
  }
  if (typeof line.baselineSelfPct === "number") parts.push(`baseline self ${pct(line.baselineSelfPct)}`);
  if (payload.profile?.label) parts.push(`profile: ${escapeMarkdown(payload.profile.label)}`);
  if (stale) parts.push(`*stale*${payload.staleReason ? ": " + escapeMarkdown(payload.staleReason) : ""}`);
  return parts.join("\n\n");
}

function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!<>|]/g, (c) => "\\" + c);
}

/** The bucket (0..buckets) of a line's self share relative to the hottest line. */
export function bucketOf(selfPct: number, maxSelfPct: number, buckets = BUCKETS): number {
  if (!(selfPct > 0) || !(maxSelfPct > 0)) return 0;
  const ratio = Math.min(1, selfPct / maxSelfPct);
  return Math.max(1, Math.min(buckets, Math.ceil(ratio * buckets)));
}

/** Decorations for a payload, or undefined if it was computed for an older document version. */
export function bucketHeat(payload: HeatPayload, documentVersion?: number, buckets = BUCKETS): HeatBuckets | undefined {
  if (!isCurrent(payload.version, documentVersion)) return undefined;
  const out: HeatBuckets = { buckets: Array.from({ length: buckets + 1 }, () => []), stale: [] };
  const lines = Array.isArray(payload.lines) ? payload.lines : [];
  let max = typeof payload.maxSelfPct === "number" ? payload.maxSelfPct : 0;
  if (!(max > 0)) for (const l of lines) max = Math.max(max, l.selfPct || 0);
  for (const l of lines) {
    if (typeof l.line !== "number" || l.line < 0) continue;
    const stale = !!(payload.stale || l.stale);
    const deco: LineDecoration = { line: l.line, text: lineText(l), hover: lineHover(l, payload, stale) };
    if (stale) out.stale.push(deco);
    else out.buckets[bucketOf(l.selfPct, max, buckets)].push(deco);
  }
  return out;
}

/** Default alpha (0..1) of bucket i's background, as used for the contributed colour defaults. */
export function bucketAlpha(i: number, buckets = BUCKETS): number {
  if (i <= 0) return 0;
  return Math.round((0.06 + (0.5 - 0.06) * ((i - 1) / Math.max(1, buckets - 1))) * 100) / 100;
}

export function bucketColorId(i: number): string {
  return `heatline.heat${i}`;
}

export interface ColumnDecoration {
  line: number;
  start: number; // character offsets in the line, as the server sent them
  end: number;
  hover: string;
}

/** The step (1..buckets) of a piece drawn with the server's `strength` (0-1). */
export function columnBucketOf(strength: number | undefined, buckets = COLUMN_BUCKETS): number {
  const v = typeof strength === "number" && isFinite(strength) ? strength : 0;
  return Math.max(1, Math.min(buckets, Math.ceil(v * buckets - 1e-9)));
}

/**
 * The server's column pieces (where in each hot line its time went) by step of their strength;
 * none on stale lines or for heat older than the document.
 */
export function columnHeat(payload: HeatPayload, documentVersion?: number, buckets = COLUMN_BUCKETS): ColumnDecoration[][] | undefined {
  if (!isCurrent(payload.version, documentVersion)) return undefined;
  const out: ColumnDecoration[][] = Array.from({ length: buckets }, () => []);
  if (payload.stale) return out;
  for (const l of Array.isArray(payload.lines) ? payload.lines : []) {
    if (l.stale || typeof l.line !== "number" || l.line < 0 || !Array.isArray(l.columns)) continue;
    for (const c of l.columns) {
      if (typeof c.start !== "number" || typeof c.end !== "number" || c.start < 0 || !(c.end > c.start)) continue;
      const hover = `**heatline** — ${pct(c.pct)} of this line's samples here`;
      out[columnBucketOf(c.strength, buckets) - 1].push({ line: l.line, start: c.start, end: c.end, hover });
    }
  }
  return out;
}

export function columnColorId(i: number): string {
  return `heatline.column${i}`;
}
