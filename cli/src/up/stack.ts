import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { generateSigningKey } from "@steward/contracts/command-keys";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { isStackReport, isStackSays, STACK_ID_HEADER } from "@steward/platform/stack-member";
import { freeLoopbackPort } from "./free-port.js";
import { startLocalNats } from "./local-nats.js";
import { makeLocalTls } from "./local-tls.js";
import { seedFileOf, writeNatsKeys } from "../nats-keys.js";
import { NATS_COMPONENTS } from "@steward/contracts/nats-permissions";
import { startLocalPostgres } from "./local-postgres.js";
import { alerterRunning } from "./alerter-env.js";
import { serviceEnv, type UpService } from "./settings.js";
import { defaultsFor, hasApiPort, nodeFlagsFor, operatorStateDir, pinnedPort, stopOrder, wiringFor, type Wires } from "./stack-plan.js";

const serviceMain = (pkg: string): string => fileURLToPath(import.meta.resolve(`@steward/${pkg}/main`));
/** By package name, not by a path relative to this file: the bundled CLI runs this code from cli/dist/chunks/. */
const demoService = (): string => fileURLToPath(import.meta.resolve("@steward/cli/demo/http-service.mjs"));

/** The planner's entry point when it is built; `steward up` runs without it otherwise. */
export function plannerMainPath(): string | undefined {
  try {
    const p = serviceMain("planner");
    return existsSync(p) ? p : undefined;
  } catch {
    return undefined;
  }
}

/** The demo fleet: two nodes of tiny real HTTP services, one declared but not started (so there is something to approve). */
export function demoFleetYaml(ports: { web: number; api: number; worker: number; reports: number }): string {
  const svc = (name: string, port: number, autostart = true) => `      ${name}:
        kind: process
        command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(demoService())}, --port, "${port}", --name, ${name}]
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

export async function writeDemoFleet(file: string): Promise<void> {
  // Ports for the demo fleet's own processes (declared in the spec with fixed ports), not the stack's.
  writeFileSync(file, demoFleetYaml({ web: await freeLoopbackPort(), api: await freeLoopbackPort(), worker: await freeLoopbackPort(), reports: await freeLoopbackPort() }));
}

export interface StackOptions {
  dir: string;
  stackId: string;
  fleetFile: string;
  /** Node names from the fleet spec: one node-agent each. */
  nodes: string[];
  natsUrl?: string | undefined;
  databaseUrl?: string | undefined;
  apiPort?: number | undefined;
  heartbeatMs?: number | undefined;
  /** The operator's environment: settings are passed through from it. */
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

export interface Member {
  name: string;
  engine: boolean;
  /** The current process: a restart replaces it. */
  proc: ChildProcess;
  stop(): Promise<void>;
  /**
   * Services only: starts the service again on the port it reported first (the stack file and the other services
   * know that one), resolving once it reports that port again and answers for this stack; rejects like a start-up.
   */
  restart?(): Promise<void>;
  /** Files to remove once everything has stopped. */
  remove?(): void;
}

export interface RunningStack {
  stackId: string;
  apiUrl: string;
  /** The planner's HTTP API (task inbox, tasks, cost); undefined when the planner is not built. */
  plannerUrl: string | undefined;
  token: string;
  /** The planner's API token (absent without a planner). */
  plannerToken: string;
  natsUrl: string;
  /** The CLI's own NATS seed file (its world reads), when `up` runs its NATS with auth. */
  natsSeedFile: string | undefined;
  /** The CA of the stack's NATS TLS certificate, when `up` runs its NATS with TLS. */
  natsCaFile: string | undefined;
  databaseUrl: string;
  fleetFile: string;
  dir: string;
  nodes: string[];
  metrics: Record<string, string>;
  members: Member[];
}

export interface Stack {
  /** Starts the engines (unless given), every service and one node-agent per node, in that order. */
  start(): Promise<RunningStack>;
  /** Stops what runs (also during start): services newest first, then the engines. Reports each stop; resolves to the ms until all were gone. */
  stop(report?: (name: string, ms: number) => void): Promise<number>;
  /** After stop: removes what the engines keep outside the stack dir. */
  removeFiles(): void;
  /** What runs now, in start order. */
  members(): readonly Member[];
}

/** A service that exited during start-up; exit code 2 means its settings are wrong (its log says which). */
export class ServiceStartError extends Error {
  constructor(readonly service: string, readonly code: number | null, message: string) {
    super(message);
    this.name = "ServiceStartError";
  }
}

export class StackStopped extends Error {
  constructor() {
    super("stopped during start-up");
    this.name = "StackStopped";
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
async function stopChild(proc: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 8000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise((r) => proc.once("exit", r));
  proc.kill(signal);
  const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
  await done;
  clearTimeout(t);
}

/** The lines a service wrote that are not its JSON log (a settings error goes to stderr as plain text). */
function plainLines(logFile: string): string {
  try {
    return readFileSync(logFile, "utf8")
      .split("\n")
      .filter((l) => l.trim() && !l.startsWith("{"))
      .slice(-20)
      .join("\n");
  } catch {
    return "";
  }
}

export function createStack(o: StackOptions): Stack {
  const started: Member[] = [];
  const abort = new AbortController();
  let starting: Promise<unknown> = Promise.resolve();
  const logOf = (name: string) => join(o.dir, "logs", `${name}.log`);

  const register = (m: Member): void => {
    started.push(m);
    if (abort.signal.aborted) throw new StackStopped();
  };

  const spawnService = (name: string, pkg: string, svc: UpService, env: Record<string, string>): ChildProcess => {
    if (abort.signal.aborted) throw new StackStopped();
    const fd = openSync(logOf(name), "a");
    try {
      // Own process group: the terminal's Ctrl-C reaches only `up`, which stops everything in order.
      const proc = spawn(process.execPath, [...nodeFlagsFor(svc), serviceMain(pkg)], { env, stdio: ["ignore", fd, fd, "ipc"], detached: true });
      // What a service asks to be shown on this terminal (the alerter's alerts when no push sink is set).
      proc.on("message", (m) => {
        if (isStackSays(m)) o.log(m.line);
      });
      return proc;
    } finally {
      closeSync(fd);
    }
  };

  /** Spawns a service with an IPC channel, waits for the port it bound, then proves over HTTP that it is ours. */
  const launch = async (name: string, pkg: string, svc: UpService, env: Record<string, string>): Promise<{ port: number; url: string; metricsUrl: string }> => {
    const member: Member = { name, engine: false, proc: spawnService(name, pkg, svc, env), stop: () => stopChild(member.proc) };
    register(member);
    const api = hasApiPort(svc);
    const ready = await waitReady(name, member.proc, api);
    // Restarted on the same ports: the stack file, the other services and the operator's bookmarks know these.
    const again = { ...env, ...pinnedPort(svc, ready.port, ready.metricsPort) };
    member.restart = async () => {
      member.proc = spawnService(name, pkg, svc, again);
      const r = await waitReady(name, member.proc, api);
      if (r.port !== ready.port) throw new ServiceStartError(name, null, `${name} came back on port ${r.port}, not ${ready.port}`);
    };
    return { port: ready.port, url: ready.url, metricsUrl: `http://127.0.0.1:${ready.metricsPort ?? ready.port}/metrics` };
  };

  /**
   * Waits for the port a member reports. With `api` (the executor, the planner) that is its API listener's, and the
   * metrics listener (reported first: their main serves metrics before the API) is recorded on the way.
   */
  const waitReady = async (name: string, proc: ChildProcess, api = false): Promise<{ port: number; url: string; metricsPort?: number | undefined }> => {
    const logFile = logOf(name);
    let metricsPort: number | undefined;
    const port = await new Promise<number>((resolve, reject) => {
      const done = () => {
        proc.off("message", onMessage);
        proc.off("exit", onExit);
        abort.signal.removeEventListener("abort", onAbort);
        clearTimeout(timer);
      };
      const onMessage = (m: unknown) => {
        if (!isStackReport(m)) return;
        if (api && m.role === "metrics") {
          metricsPort = m.port;
          return;
        }
        done();
        resolve(m.port);
      };
      const onExit = (code: number | null, sig: NodeJS.Signals | null) => {
        done();
        const said = plainLines(logFile);
        reject(new ServiceStartError(name, code, `${name} exited (${code ?? sig}) during start-up${said ? `:\n${said}` : ""}\nsee ${logFile}`));
      };
      const onAbort = () => {
        done();
        reject(new StackStopped());
      };
      const timer = setTimeout(() => {
        done();
        reject(new ServiceStartError(name, null, `${name} did not report a listening port within 90 s; see ${logFile}`));
      }, 90_000);
      proc.on("message", onMessage);
      proc.once("exit", onExit);
      abort.signal.addEventListener("abort", onAbort, { once: true });
    });
    const url = `http://127.0.0.1:${port}`;
    // The port came from the process itself; /healthz must also answer with this stack's id.
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.any([abort.signal, AbortSignal.timeout(10_000)]) }).catch((err: unknown) => {
      if (abort.signal.aborted) throw new StackStopped();
      throw new ServiceStartError(name, null, `${name} reported port ${port} but ${url}/healthz does not answer: ${(err as Error).message}`);
    });
    const id = res.headers.get(STACK_ID_HEADER);
    if (!res.ok || id !== o.stackId) throw new ServiceStartError(name, null, `${url}/healthz answered ${res.status} for stack ${id ?? "(none)"}, not this stack (${o.stackId})`);
    return { port, url, metricsPort };
  };

  const start = async (): Promise<RunningStack> => {
    mkdirSync(join(o.dir, "logs"), { recursive: true });
    let natsUrl = o.natsUrl;
    let natsSeedFile: ((identity: string) => string) | undefined;
    let natsCaFile: string | undefined;
    if (!natsUrl) {
      // Auth on: an nkey user per node and component, each with only its own subjects; the seeds stay in the stack dir.
      const keysDir = join(o.dir, "nats", "keys");
      const keys = await writeNatsKeys(keysDir, o.nodes, NATS_COMPONENTS);
      natsSeedFile = (identity) => seedFileOf(keysDir, identity);
      const made = makeLocalTls(join(o.dir, "nats", "tls"));
      const tls = "tls" in made ? made.tls : undefined;
      natsCaFile = tls?.caFile;
      const nats = await startLocalNats(join(o.dir, "nats"), logOf("nats-server"), o.stackId, { authorizationFile: relative(join(o.dir, "nats"), keys.configFile), tls });
      register({ name: "nats-server", engine: true, proc: nats.proc, stop: () => stopChild(nats.proc) });
      natsUrl = nats.url;
      o.log(`nats-server (JetStream)  ${natsUrl}  (nkey users: ${keys.users.length}, seeds in ${join(keysDir, "seeds")}; ${tls ? `TLS, CA ${tls.caFile}` : `no TLS: ${"missing" in made ? made.missing : ""}`})`);
    }
    let databaseUrl = o.databaseUrl;
    if (!databaseUrl) {
      const pg = await startLocalPostgres(join(o.dir, "pg"), logOf("postgres"), o.stackId);
      register({ name: "postgres", engine: true, proc: pg.proc, stop: () => pg.stop(), remove: () => pg.remove() });
      databaseUrl = pg.url;
      o.log(`postgres (local cluster) 127.0.0.1:${new URL(databaseUrl).port}`);
    }

    const w: Wires = {
      dir: o.dir,
      natsUrl,
      databaseUrl,
      token: randomBytes(24).toString("base64url"),
      alerterToken: randomBytes(24).toString("base64url"),
      plannerToken: randomBytes(24).toString("base64url"),
      plannerComponentTokens: { supervisor: randomBytes(24).toString("base64url"), alerter: randomBytes(24).toString("base64url"), console: randomBytes(24).toString("base64url") },
      fleetKey: randomBytes(32).toString("base64url"),
      // A fresh pair per stack: only this stack's executor can sign commands for its agents.
      commandKeys: generateSigningKey(),
      fleetFile: o.fleetFile,
      apiPort: o.apiPort ?? 0,
      apiUrl: "",
      plannerUrl: undefined,
      stateDir: operatorStateDir(o.env),
      natsSeedFile,
      natsCaFile,
    };
    const envOf = (svc: UpService, wires: Wires = w) => serviceEnv(svc, { env: o.env, stackId: o.stackId, wiring: wiringFor(svc, wires), defaults: defaultsFor(svc, wires, o.env) });
    const metrics: Record<string, string> = {};

    const observer = await launch("observer", "observer", "observer", envOf("observer"));
    metrics["observer"] = observer.metricsUrl;
    if (plannerMainPath()) {
      // Before the executor and supervisor: they are given its URL.
      const planner = await launch("planner", "planner", "planner", envOf("planner"));
      w.plannerUrl = planner.url;
      metrics["planner"] = planner.metricsUrl;
      o.log(`planner ${planner.url} (${o.env["OLLAMA_URL"] ? `Ollama ${o.env["OLLAMA_URL"]}` : "no OLLAMA_URL"}${o.env["ANTHROPIC_API_KEY"] ? ", Claude" : ""}; without a model it answers with the rule-based diagnoser)`);
    } else {
      o.log("planner not built (services/planner/dist/main.js): running without task inbox and diagnosis");
    }
    const executor = await launch("executor", "executor", "executor", envOf("executor"));
    w.apiUrl = executor.url;
    metrics["executor"] = executor.metricsUrl;
    const supervisor = await launch("supervisor", "supervisor", "supervisor", envOf("supervisor"));
    metrics["supervisor"] = supervisor.metricsUrl;
    o.log(`observer, supervisor, executor running; API ${w.apiUrl}`);

    const alerter = await launch("alerter", "alerter", "alerter", envOf("alerter"));
    metrics["alerter"] = alerter.metricsUrl;
    o.log(alerterRunning(o.env));

    for (const node of o.nodes) {
      const name = `node-agent-${node}`;
      const env = envOf("node-agent", { ...w, node });
      if (o.heartbeatMs !== undefined) env["HEARTBEAT_MS"] = String(o.heartbeatMs);
      const agent = await launch(name, "node-agent", "node-agent", env);
      metrics[name] = agent.metricsUrl;
    }
    o.log(`node-agents: ${o.nodes.join(", ")}`);
    return { stackId: o.stackId, apiUrl: w.apiUrl, plannerUrl: w.plannerUrl, token: w.token, plannerToken: w.plannerToken, natsUrl, natsSeedFile: natsSeedFile?.("cli"), natsCaFile, databaseUrl, fleetFile: o.fleetFile, dir: o.dir, nodes: o.nodes, metrics, members: started };
  };

  return {
    start() {
      const p = start();
      starting = p.catch(() => undefined);
      return p;
    },
    async stop(report) {
      abort.abort();
      await starting; // a start-up in progress unwinds first; whatever it started is in `started`
      const began = Date.now();
      for (const m of stopOrder(started)) {
        const t0 = Date.now();
        await m.stop().catch(() => undefined);
        report?.(m.name, Date.now() - t0);
      }
      return Date.now() - began;
    },
    removeFiles() {
      for (const m of started) m.remove?.();
    },
    members: () => started,
  };
}
