// Pure: the server's heatline.listProcesses result -> QuickPick items, and PID input validation.

export interface ProcessInfo {
  pid: number;
  command?: string;
  executable?: string;
  pythonVersion?: string | null;
  needsPrivileges?: boolean;
  reason?: string | null;
  cwd?: string | null;
}

export interface ProcessItem {
  label: string;
  description?: string;
  detail?: string;
  pid?: number; // undefined: the "Enter PID…" item
}

export const ENTER_PID_LABEL = "$(edit) Enter PID…";

export function processItems(processes: ProcessInfo[]): ProcessItem[] {
  const items: ProcessItem[] = (processes || []).map((p) => {
    const desc = [p.pythonVersion ? `Python ${p.pythonVersion}` : "", p.needsPrivileges ? "needs privileges" : ""]
      .filter(Boolean)
      .join(" · ");
    const detail = [oneLine(p.command || p.executable || ""), p.needsPrivileges && p.reason ? oneLine(p.reason) : ""]
      .filter(Boolean)
      .join(" — ");
    return { label: `$(${p.needsPrivileges ? "lock" : "terminal"}) ${p.pid}`, description: desc, detail, pid: p.pid };
  });
  items.push({ label: ENTER_PID_LABEL, description: "attach to a process not listed" });
  return items;
}

/** A process of a --subprocesses run, as heatline.status lists it (profile.processes). */
export interface RunProcess {
  pid: number;
  command?: string;
  main?: boolean;
  samples?: number;
  note?: string | null;
}

export interface RunProcessItem {
  label: string;
  description?: string;
  detail?: string;
  pid: number | null; // null: all processes
  picked?: boolean;
}

/** QuickPick items for heatline.showProcess: "All processes", then each process; `shown` is the PID shown now (null: all). */
export function runProcessItems(processes: RunProcess[], shown: number | null): RunProcessItem[] {
  const items: RunProcessItem[] = [{ label: "$(layers) All processes", description: "heat of every process, merged", pid: null, picked: shown === null }];
  for (const p of processes || []) {
    const desc = [p.main ? "main" : "", `${(p.samples || 0).toLocaleString("en-US")} samples`, p.note ? oneLine(p.note) : ""]
      .filter(Boolean)
      .join(" · ");
    items.push({ label: `$(terminal) ${p.pid}`, description: desc, detail: oneLine(p.command || ""), pid: p.pid, picked: shown === p.pid });
  }
  return items;
}

function oneLine(s: string): string {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length > 200 ? flat.slice(0, 199) + "…" : flat;
}

/** InputBox validation: undefined when fine, else the message. */
export function validatePid(text: string): string | undefined {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return "A process id is a positive whole number";
  const n = Number(t);
  if (n < 1 || n > 4194304) return "Not a valid process id";
  return undefined;
}
