import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, openSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseFleetSpec, type FleetSpec } from "@steward/fleet/fleet-spec";
import { startLocalPostgres, type LocalPostgres } from "./local-postgres.js";
import { alerterEnv, ALERTS_OFF_MESSAGE } from "./alerter-env.js";

export async function freePort(preferred?: number): Promise<number> {
  const tryPort = (p: number) =>
    new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.unref();
      s.on("error", reject);
      s.listen(p, "127.0.0.1", () => {
        const a = s.address();
        const got = typeof a === "object" && a ? a.port : p;
        s.close(() => resolve(got));
      });
    });
  if (preferred) {
    try {
      return await tryPort(preferred);
    } catch {
      /* taken: fall through to any free port */
    }
  }
  return tryPort(0);
}

const serviceMain = (pkg: string): string => fileURLToPath(import.meta.resolve(`@steward/${pkg}/main`));
export const DEMO_SERVICE = fileURLToPath(new URL("../../demo/http-service.mjs", import.meta.url));

/** The demo fleet: two nodes of tiny real HTTP services, one declared but not started (so there is something to approve). */
export function demoFleetYaml(ports: { web: number; api: number; worker: number; reports: number }): string {
  const svc = (name: string, port: number, autostart = true) => `      ${name}:
        kind: process
        command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(DEMO_SERVICE)}, --port, "${port}", --name, ${name}]
        autostart: ${autostart}
        health:
          - type: http
            url: http://127.0.0.1:${port}/health
            interval: 1s
            timeout: 500ms
            retries: 2
`;
  return `# Demo fleet written by \`steward up\`. Edit it while the stack runs: the supervisor re-reads it every cycle.
version: 1
fleet: demo
nodes:
  demo-a:
    description: first demo node
    services:
${svc("web", ports.web)}${svc("api", ports.api)}  demo-b:
    description: second demo node
    services:
${svc("worker", ports.worker)}${svc("reports", ports.reports, false)}`;
}

export interface StackOptions {
  dir: string;
  fleetFile?: string;
  natsUrl?: string;
  databaseUrl?: string;
  apiPort?: number;
  heartbeatMs?: number;
  log: (line: string) => void;
}

export interface RunningStack {
  apiUrl: string;
  /** The planner's HTTP API (task inbox, tasks, cost); undefined when the planner is not built. */
  plannerUrl: string | undefined;
  token: string;
  natsUrl: string;
  databaseUrl: string;
  fleetFile: string;
  dir: string;
  nodes: string[];
  metrics: Record<string, string>;
  children: Map<string, ChildProcess>;
  stop(opts?: { keepDir?: boolean }): Promise<void>;
}

async function waitHttp(url: string, proc: ChildProcess, name: string, logFile: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode} during start-up; see ${logFile}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (r.ok) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`${name} did not answer ${url} within ${timeoutMs} ms; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves once anything answers HTTP at `url` (any status: the planner's routes all want a token). */
async function waitListening(url: string, proc: ChildProcess, name: string, logFile: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode} during start-up; see ${logFile}`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`${name} did not answer ${url} within ${timeoutMs} ms; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The planner's entry point when it is built; `steward up` runs without it otherwise. */
export function plannerMainPath(): string | undefined {
  try {
    const p = serviceMain("planner");
    return existsSync(p) ? p : undefined;
  } catch {
    return undefined;
  }
}

/** Model backends are the operator's to choose: pass them through when set. Without any, the planner uses its rule-based diagnoser. */
export function plannerPassThrough(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ["OLLAMA_URL", "MODEL_GROUPS", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CLAUDE_ENABLED", "CLAUDE_MODEL", "CAP_PER_TASK_USD", "CAP_PER_AGENT_DAY_USD", "CAP_GLOBAL_DAY_USD"]) {
    const v = env[k];
    if (v !== undefined && v !== "") out[k] = v;
  }
  return out;
}

async function stopChild(proc: ChildProcess, graceMs = 8000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
  await done;
  clearTimeout(t);
}

/** Starts NATS and PostgreSQL (unless given), every Steward service, and one node-agent per node of the fleet. */
export async function startStack(o: StackOptions): Promise<RunningStack> {
  mkdirSync(join(o.dir, "logs"), { recursive: true });
  const children = new Map<string, ChildProcess>();
  let pg: LocalPostgres | undefined;
  const cleanup: (() => Promise<void>)[] = [];
  const stop = async (opts: { keepDir?: boolean } = {}) => {
    // Node-agents first (they stop their services), then the control plane, then the engines.
    const order = [...children.keys()].sort((a, b) => Number(b.startsWith("node-agent")) - Number(a.startsWith("node-agent")));
    for (const name of order) {
      const c = children.get(name);
      if (c) await stopChild(c);
    }
    for (const f of cleanup.reverse()) await f().catch(() => undefined);
    if (!opts.keepDir) rmSync(o.dir, { recursive: true, force: true });
  };

  try {
    const logOf = (name: string) => join(o.dir, "logs", `${name}.log`);
    let natsUrl = o.natsUrl;
    if (!natsUrl) {
      const port = await freePort();
      const store = join(o.dir, "nats");
      mkdirSync(store, { recursive: true });
      const fd = openSync(logOf("nats-server"), "a");
      const nats = spawn(process.env["NATS_SERVER_BIN"] ?? "nats-server", ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", store], { stdio: ["ignore", fd, fd] });
      await new Promise<void>((resolve, reject) => {
        nats.once("error", (e) => reject(new Error(`cannot start nats-server (${e.message}); install it (Debian: apt-get install nats-server) or set NATS_URL`)));
        nats.once("spawn", () => resolve());
      });
      children.set("nats-server", nats);
      natsUrl = `nats://127.0.0.1:${port}`;
      const { connect } = await import("@nats-io/transport-node");
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          const nc = await connect({ servers: natsUrl, timeout: 1000 });
          await nc.close();
          break;
        } catch (err) {
          if (nats.exitCode !== null || Date.now() > deadline) throw new Error(`nats-server did not start: ${(err as Error).message}; see ${logOf("nats-server")}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      o.log(`nats-server (JetStream)  ${natsUrl}`);
    }

    let databaseUrl = o.databaseUrl;
    if (!databaseUrl) {
      pg = await startLocalPostgres(join(o.dir, "pg"), await freePort(), logOf("postgres"));
      cleanup.push(() => pg!.stop());
      databaseUrl = pg.url;
      o.log(`postgres (local cluster) 127.0.0.1:${new URL(databaseUrl).port}`);
    }

    let fleetFile = o.fleetFile;
    if (!fleetFile) {
      fleetFile = join(o.dir, "fleet.yaml");
      writeFileSync(fleetFile, demoFleetYaml({ web: await freePort(), api: await freePort(), worker: await freePort(), reports: await freePort() }));
    }
    const { readFileSync } = await import("node:fs");
    const parsed = parseFleetSpec(readFileSync(fleetFile, "utf8"), fleetFile);
    if (!parsed.ok) throw new Error(`fleet spec is invalid:\n${parsed.problems.map((p) => `${p.file}:${p.path}: ${p.message}`).join("\n")}`);
    const spec: FleetSpec = parsed.spec;

    const token = randomBytes(24).toString("base64url");
    const fleetKey = randomBytes(32).toString("base64url");
    const apiPort = await freePort(o.apiPort ?? 7070);
    const snapshotPath = join(o.dir, "world.json");
    const metrics: Record<string, string> = {};
    const baseEnv = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: process.env["HOME"] ?? o.dir, NATS_URL: natsUrl, LOG_LEVEL: process.env["LOG_LEVEL"] ?? "info" };
    if (process.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]) Object.assign(baseEnv, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: process.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] });

    const launch = async (name: string, pkg: string, env: Record<string, string>) => {
      const mport = await freePort();
      metrics[name] = `http://127.0.0.1:${mport}/metrics`;
      const fd = openSync(logOf(name), "a");
      const child = spawn(process.execPath, [serviceMain(pkg)], { env: { ...baseEnv, METRICS_PORT: String(mport), ...env }, stdio: ["ignore", fd, fd] });
      children.set(name, child);
      return { child, mport };
    };

    const obs = await launch("observer", "observer", { SNAPSHOT_PATH: snapshotPath });
    await waitHttp(`http://127.0.0.1:${obs.mport}/healthz`, obs.child, "observer", logOf("observer"));
    // The planner (diagnosis, task inbox): the supervisor escalates drift a restart does not explain to it.
    const planner = plannerMainPath() ? { port: await freePort(), env: plannerPassThrough(process.env) } : undefined;
    const plannerUrl = planner ? `http://127.0.0.1:${planner.port}` : undefined;
    const sup = await launch("supervisor", "supervisor", { DATABASE_URL: databaseUrl, FLEET_SPEC: fleetFile, ...(plannerUrl ? { PLANNER_URL: plannerUrl, PLANNER_TOKEN: token } : {}) });
    const exe = await launch("executor", "executor", { DATABASE_URL: databaseUrl, API_TOKEN: token, FLEET_KEY: fleetKey, HTTP_PORT: String(apiPort), HTTP_HOST: "127.0.0.1" });
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    await waitHttp(`${apiUrl}/healthz`, exe.child, "executor", logOf("executor"));
    await waitHttp(`http://127.0.0.1:${sup.mport}/healthz`, sup.child, "supervisor", logOf("supervisor"));
    o.log(`observer, supervisor, executor running; API ${apiUrl}`);
    if (planner && plannerUrl) {
      const pl = await launch("planner", "planner", { ...planner.env, DATABASE_URL: databaseUrl, API_TOKEN: token, FLEET_SPEC: fleetFile, HTTP_PORT: String(planner.port), HTTP_HOST: "127.0.0.1" });
      metrics["planner"] = `${plannerUrl}/metrics`;
      await waitListening(plannerUrl, pl.child, "planner", logOf("planner"));
      o.log(`planner ${plannerUrl} (${planner.env["OLLAMA_URL"] ? `Ollama ${planner.env["OLLAMA_URL"]}` : "no OLLAMA_URL"}${planner.env["ANTHROPIC_API_KEY"] ? ", Claude" : ""}; without a model it answers with the rule-based diagnoser)`);
    } else {
      o.log("planner not built (services/planner/dist/main.js): running without task inbox and diagnosis");
    }

    const alertSettings = alerterEnv(process.env);
    if (alertSettings) {
      const al = await launch("alerter", "alerter", { CONSOLE_URL: `${apiUrl}/console`, ...alertSettings, DATABASE_URL: databaseUrl, API_TOKEN: token, EXECUTOR_URL: apiUrl, ...(plannerUrl ? { PLANNER_URL: plannerUrl, PLANNER_TOKEN: token } : {}) });
      await waitHttp(`http://127.0.0.1:${al.mport}/healthz`, al.child, "alerter", logOf("alerter"));
      o.log(`alerter running (sinks from NTFY_*/TELEGRAM_*/WEBHOOK_* settings)`);
    } else o.log(ALERTS_OFF_MESSAGE);

    const nodes = Object.keys(spec.nodes);
    for (const node of nodes) {
      const name = `node-agent-${node}`;
      const a = await launch(name, "node-agent", {
        NODE_NAME: node,
        FLEET_SPEC: fleetFile,
        FLEET_KEY: fleetKey,
        HEARTBEAT_MS: String(o.heartbeatMs ?? 2000),
        LOG_DIR: join(o.dir, "service-logs", node),
      });
      await waitHttp(`http://127.0.0.1:${a.mport}/healthz`, a.child, name, logOf(name));
    }
    o.log(`node-agents: ${nodes.join(", ")}`);
    return { apiUrl, plannerUrl, token, natsUrl, databaseUrl, fleetFile, dir: o.dir, nodes, metrics, children, stop };
  } catch (err) {
    await stop({ keepDir: true });
    throw err;
  }
}
