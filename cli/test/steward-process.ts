/** The CLI as an operator runs it, for the end-to-end tests: `steward <cmd>` and a `steward up` in the background. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { waitFor } from "@steward/testkit";

export const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));

export interface StewardRun<T> {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is JSON (`--json`). */
  json: T;
}

export function runSteward<T = unknown>(home: string, args: string[], timeoutMs = 20_000): StewardRun<T> {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, STEWARD_HOME: home, STEWARD_USER: "e2e-operator" }, encoding: "utf8", timeout: timeoutMs });
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json: json as T };
}

/**
 * The same as runSteward without blocking this process's event loop: for tests whose stand-ins (a fake Ollama,
 * ntfy) live in this process and must keep answering while the CLI runs.
 */
export function runStewardAsync<T = unknown>(home: string, args: string[], timeoutMs = 20_000): Promise<StewardRun<T>> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, STEWARD_HOME: home, STEWARD_USER: "e2e-operator" }, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => {
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json: json as T });
    });
  });
}

export interface RunningUp {
  proc: ChildProcess;
  /** Everything `steward up` printed so far. */
  output(): string;
  /** SIGTERM, as Ctrl-C would; waits up to 30 s for the stack to drain. */
  stop(): Promise<void>;
}

/** Starts `steward up` with its own NATS and PostgreSQL (NATS_URL/DATABASE_URL unset) and waits until it says it is up. */
export async function startUp(home: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}, unset: string[] = []): Promise<RunningUp> {
  const env: NodeJS.ProcessEnv = { ...process.env, STEWARD_HOME: home, ...extraEnv };
  for (const k of ["NATS_URL", "DATABASE_URL", ...unset]) delete env[k];
  const proc = spawn(process.execPath, [CLI, "up", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<never>((_, reject) => proc.once("exit", (code) => reject(new Error(`steward up exited (${code}):\n${out}`))));
  exited.catch(() => undefined);
  await Promise.race([waitFor("steward up to be ready", () => out.includes("Steward is up"), 90_000, 200), exited]);
  return {
    proc,
    output: () => out,
    async stop() {
      if (proc.exitCode !== null) return;
      const done = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await Promise.race([done, new Promise((r) => setTimeout(r, 30_000))]);
    },
  };
}
