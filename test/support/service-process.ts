import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** A Steward service run as the operator runs it: its built `dist/main.js` in a process of its own. */
export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  /** Everything it wrote (JSON log lines and the start-up banner), for waiting on a line and for post-mortems. */
  output: string;
}

export type ServiceName = "observer" | "supervisor" | "executor" | "planner" | "alerter" | "node-agent";

/** Every service gets a free metrics port unless the test pins one (a default port would clash between test files). */
export function spawnService(name: ServiceName, env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, [join(ROOT, "services", name, "dist", "main.js")], { env: { ...process.env, LOG_LEVEL: "info", METRICS_PORT: "0", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const p: ServiceProcess = { name, child, output: "" };
  child.stdout?.on("data", (d: Buffer) => (p.output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (p.output += d.toString()));
  return p;
}
