// "heatline: Attach to Kernel…": a quick pick of the running Jupyter kernels (the server's
// heatline.listKernels), then heatline.attachKernel, started like any attach. The heat lands on
// the notebook's cells, which the language client syncs (its document selector names them).
import * as vscode from "vscode";
import { ProcessInfo, ProcessItem, processItems } from "./processes";

export interface KernelInfo extends ProcessInfo {
  connectionFile?: string | null;
}

export const NO_KERNELS = "heatline: no running Jupyter kernel (ipykernel) found: start one by running a notebook cell, then try again";

/** QuickPick items: the kernels as the process picker shows processes, with their connection file. */
export function kernelItems(kernels: KernelInfo[]): ProcessItem[] {
  const items = processItems(kernels || []).filter((item) => item.pid !== undefined);
  return items.map((item, i) => {
    const file = kernels[i].connectionFile;
    const name = file ? file.split(/[\\/]/).pop() : undefined;
    return {
      ...item,
      label: item.label.replace("$(terminal)", "$(notebook)"),
      description: [item.description, name].filter(Boolean).join(" · "),
    };
  });
}

type Register = (id: string, fn: (...a: unknown[]) => Promise<unknown> | unknown) => void;
type Server = (command: string, args?: Record<string, unknown>) => Promise<unknown>;
type Start = (command: "heatline.attachKernel", args: Record<string, unknown>) => Promise<void>;

export function registerKernels(register: Register, server: Server, startProfiling: Start): void {
  register("heatline.attachToKernel", async () => {
    const kernels = ((await server("heatline.listKernels")) as KernelInfo[]) || [];
    if (!kernels.length) {
      void vscode.window.showInformationMessage(NO_KERNELS);
      return;
    }
    const picked = await vscode.window.showQuickPick<ProcessItem>(kernelItems(kernels), {
      title: "heatline: attach to a Jupyter kernel",
      placeHolder: "pid, kernel command line, connection file",
      matchOnDescription: true,
      matchOnDetail: true,
    });
    if (!picked || picked.pid === undefined) return;
    await startProfiling("heatline.attachKernel", { pid: picked.pid });
  });
}
