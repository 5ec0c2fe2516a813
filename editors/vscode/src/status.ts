// Pure: the status-bar text of a live run, and the arguments of "Run Module…".
// No runtime imports, so it runs under mocha without VS Code.

/** "$(flame) heatline: 12,345 samples · 4.2 s" */
export function statusText(samples: number | undefined, seconds: number | undefined): string {
  const n = typeof samples === "number" && Number.isFinite(samples) && samples > 0 ? Math.floor(samples) : 0;
  const s = typeof seconds === "number" && Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
  return `$(flame) heatline: ${n.toLocaleString("en-US")} ${n === 1 ? "sample" : "samples"} · ${formatSeconds(s)}`;
}

/** 4.2 s under a minute, 2 m 05 s under an hour, then 1 h 02 m. */
export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${(Math.floor(seconds * 10) / 10).toFixed(1)} s`;
  const whole = Math.floor(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)} m ${String(whole % 60).padStart(2, "0")} s`;
  return `${Math.floor(whole / 3600)} h ${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")} m`;
}

/** Shell-like split: whitespace separates, '…' is literal, "…" allows \" and \\, a backslash escapes outside quotes. */
export function parseArgs(text: string): string[] {
  const out: string[] = [];
  let cur = "";
  let started = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && (text[i + 1] === '"' || text[i + 1] === "\\")) cur += text[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      started = true;
    } else if (c === "\\" && i + 1 < text.length) {
      cur += text[++i];
      started = true;
    } else if (/\s/.test(c)) {
      if (started) out.push(cur);
      cur = "";
      started = false;
    } else {
      cur += c;
      started = true;
    }
  }
  if (quote) throw new Error(`unterminated ${quote} quote`);
  if (started) out.push(cur);
  return out;
}

/** InputBox validation: undefined when fine, else the reason. */
export function validateModule(text: string): string | undefined {
  const name = text.trim();
  if (!name) return "a module name, e.g. http.server or mypkg.cli";
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(name)) return "not a dotted Python module name";
  return undefined;
}

/** Whether a validateInput for arguments accepts `text`. */
export function validateArgs(text: string): string | undefined {
  try {
    parseArgs(text);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export interface LiveProfile {
  live?: boolean;
  asyncAware?: boolean;
  asyncMode?: string | null;
  totalSamples?: number;
  capturedSamples?: number;
  durationS?: number;
}

/**
 * What a profile description (each heat notification carries one) means for the status-bar
 * item: the live profile to show; null when the watched run is over (its profile finished,
 * another replaced it, or it was cleared); undefined when nothing changes.
 */
export function runChange(profile: LiveProfile | null | undefined, watching: boolean): LiveProfile | null | undefined {
  if (profile && profile.live) return profile;
  return watching && profile !== undefined ? null : undefined;
}

/** Status-bar state out of a profile description: text when live, undefined when it should hide. */
export function liveStatus(profile: LiveProfile | null | undefined, startedAt: number | undefined, now: number): string | undefined {
  if (!profile || !profile.live) return undefined;
  const seconds = typeof profile.durationS === "number" && profile.durationS > 0 ? profile.durationS : startedAt ? (now - startedAt) / 1000 : 0;
  return statusText(profile.capturedSamples ?? profile.totalSamples, seconds) + (profile.asyncAware ? ` · ${asyncLabel(profile)}` : "");
}

/** "async (running)": how an async-aware profile's tasks were read; "async" when a file does not say. */
export function asyncLabel(profile: { asyncMode?: string | null }): string {
  return profile.asyncMode ? `async (${profile.asyncMode})` : "async";
}

export interface ProfileDescription {
  label?: string | null;
  source?: string | null;
  totalSamples?: number | null;
  capturedSamples?: number | null;
  mode?: string | null;
  asyncAware?: boolean | null;
  asyncMode?: string | null;
  pythonVersion?: string | null;
  durationS?: number | null;
  pid?: number | null;
}

/** The saved-profile editor's summary rows: label, samples, mode, Python, duration. */
export function profileSummary(d: ProfileDescription): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  if (d.label || d.source) rows.push(["Profile", String(d.label || d.source)]);
  // the run's own count (what the CLI printed); heat percentages are of the samples with a Python stack
  const samples = typeof d.capturedSamples === "number" ? d.capturedSamples : d.totalSamples;
  rows.push(["Samples", typeof samples === "number" ? samples.toLocaleString("en-US") : "?"]);
  if (d.mode) rows.push(["Mode", d.asyncAware ? `${d.mode}, ${asyncLabel(d)}` : d.mode]);
  if (d.pythonVersion) rows.push(["Python", d.pythonVersion]);
  if (typeof d.durationS === "number" && d.durationS > 0) rows.push(["Duration", formatSeconds(d.durationS)]);
  if (d.pid) rows.push(["PID", String(d.pid)]);
  return rows;
}
