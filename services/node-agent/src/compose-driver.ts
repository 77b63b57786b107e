import { mkdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { DeployCommandParams, RollbackCommandParams } from "@steward/contracts/deploy";
import { hmacHex, type NodeCommandBody, type NodeCommandReply } from "@steward/contracts/node-command";
import { withSpan } from "@steward/platform/tracing";
import { writeFileAtomic } from "@steward/platform/atomic-write";
import type { ComposeService, FleetSpec, SecretRef } from "@steward/fleet/fleet-spec";
import type { Logger } from "@steward/platform/logger";
import type { ServiceHealth, ServiceObservation } from "@steward/contracts/events";
import { runCheck } from "./checks.js";
import {
  ComposeError,
  LABEL_SERVICE,
  buildRevision,
  containerCreateBody,
  containerHealth,
  containerName,
  deployOrder,
  mergeComposeFiles,
  observeContainers,
  worst,
  type StackRevision,
} from "./compose.js";
import { DockerError, type DockerClient } from "./docker/client.js";
import type { ContainerInspect } from "./docker/types.js";
import { parseEnvFile } from "./env-file.js";
import { aggregateHealth, type CheckProgress } from "./plan.js";

/** A deploy step on this node that did not reach a healthy stack: what failed, in operator words. */
export class StackDeployError extends Error {
  constructor(
    readonly stackName: string,
    readonly step: "config" | "pull" | "create" | "start" | "health" | "rollback",
    detail: string,
  ) {
    super(detail);
    this.name = "StackDeployError";
  }
}

/** What the node remembers about a stack across restarts: what it deployed and what ran before. Secret-free. */
interface StackRecord {
  version: 1;
  deployed: StackRevision | null;
  previous: StackRevision | null;
  /** Containers ran before Steward's first deploy of this stack: they cannot be re-created by a rollback. */
  previous_unknown: boolean;
}

const EMPTY_RECORD: StackRecord = { version: 1, deployed: null, previous: null, previous_unknown: false };

export interface ComposeDriverDeps {
  node: string;
  docker: DockerClient;
  fleetKey: string;
  /** Directory of the fleet spec: the deploy checkout (`repo_path` / `repo.path`) resolves against it. */
  specDir: string;
  /** Where stack records (deployed/previous revision) are kept. */
  stateDir: string;
  probeMs: number;
  logger: Logger;
  /** Publishes a `service` observation of a stack. */
  publish(o: ServiceObservation): void;
  /** Resolves `{ secret: name }` env values; without it such values fail the deploy, naming the secret. */
  resolveSecret?: (ref: SecretRef) => string | undefined;
  /** How often a deploy re-inspects containers while waiting for health (ms). */
  pollMs?: number;
  /** Grace for `stop` before the engine kills (s). */
  stopGraceS?: number;
}

export interface ComposeDriver {
  /** The spec the agent now runs with. Never throws. */
  setSpec(spec: FleetSpec): void;
  has(service: string): boolean;
  /** Last observation of every declared stack (for heartbeats). */
  status(): ServiceObservation[];
  /** Runs a verified node command for a stack. Never throws. */
  execute(cmd: NodeCommandBody): Promise<NodeCommandReply>;
  /** Probes every stack now; resolves when done. */
  probeNow(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
  /** For the secret probe: one variable of a stack's running container environment; the value stays with the caller. */
  readContainerEnv(service: string, key: string): Promise<{ found: true; value: string } | { found: false; status: "missing" | "unreadable"; detail: string }>;
}

interface Stack {
  name: string;
  spec: ComposeService;
  project: string;
  checkout: string;
  healthTimeoutMs: number;
  obs: ServiceObservation;
  lastKey: string;
  lock: Promise<unknown>;
  deploying: string | undefined;
  stoppedByCommand: boolean;
  checks: CheckProgress[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export function createComposeDriver(deps: ComposeDriverDeps): ComposeDriver {
  const { docker, logger } = deps;
  const pollMs = deps.pollMs ?? 250;
  const stacks = new Map<string, Stack>();
  let timer: NodeJS.Timeout | undefined;
  let probing: Promise<void> | undefined;
  let stopped = false;

  const recordPath = (name: string) => join(deps.stateDir, "compose", `${name}.json`);

  async function loadRecord(name: string): Promise<StackRecord> {
    try {
      const r = JSON.parse(await readFile(recordPath(name), "utf8")) as StackRecord;
      return r.version === 1 ? { ...EMPTY_RECORD, ...r } : { ...EMPTY_RECORD };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") logger.warn({ stack: name, err: (err as Error).message }, "stack record unreadable; treating as never deployed");
      return { ...EMPTY_RECORD };
    }
  }

  async function saveRecord(name: string, r: StackRecord): Promise<void> {
    await mkdir(join(deps.stateDir, "compose"), { recursive: true });
    await writeFileAtomic(recordPath(name), JSON.stringify(r, null, 2));
  }

  function exclusive<T>(s: Stack, fn: () => Promise<T>): Promise<T> {
    const next = s.lock.then(fn, fn);
    s.lock = next.catch(() => undefined);
    return next;
  }

  async function readText(s: Stack, rel: string): Promise<string> {
    try {
      return await readFile(resolve(s.checkout, rel), "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ComposeError(rel, code === "ENOENT" ? `not found in the deploy checkout ${s.checkout}` : `cannot read (${code ?? "error"})`);
    }
  }

  /** The revision the spec asks for, computed from this node's deploy checkout. */
  async function desiredRevision(s: Stack): Promise<StackRevision> {
    const files = [];
    for (const f of s.spec.files) files.push({ path: f, text: await readText(s, f) });
    const services = mergeComposeFiles(files);
    let envFile: string | null = null;
    const digests: Record<string, string> = {};
    if (s.spec.env_file) {
      envFile = resolve(s.checkout, s.spec.env_file);
      // Values are digested with the fleet key and dropped here: the hash changes with them, nothing reveals them.
      for (const [k, v] of parseEnvFile(await readText(s, s.spec.env_file))) digests[k] = hmacHex(deps.fleetKey, `steward-env-file\u0000${k}\u0000${v}`).slice(0, 24);
    }
    return buildRevision({ project: s.project, services, env: s.spec.env, env_file: envFile, env_file_digests: digests });
  }

  /** The final environment of one container. Holds values: used for the create body only, never logged. */
  async function containerEnv(s: Stack, r: StackRevision, service: string): Promise<Record<string, string>> {
    const env: Record<string, string> = { ...r.services[service]?.environment };
    if (r.env_file) {
      let text: string;
      try {
        text = await readFile(r.env_file, "utf8");
      } catch (err) {
        throw new StackDeployError(s.name, "config", `env file ${r.env_file}: ${(err as NodeJS.ErrnoException).code ?? "unreadable"}`);
      }
      for (const [k, v] of parseEnvFile(text)) env[k] = v;
    }
    for (const [k, v] of Object.entries(r.env)) {
      if (typeof v === "string") {
        env[k] = v;
        continue;
      }
      const value = deps.resolveSecret?.(v);
      if (value === undefined) throw new StackDeployError(s.name, "config", `secret '${v.secret}' (for ${k}) cannot be resolved on node ${deps.node}`);
      env[k] = value;
    }
    return env;
  }

  async function inspectAll(s: Stack): Promise<ContainerInspect[]> {
    const list = await docker.listProjectContainers(s.project);
    const out: ContainerInspect[] = [];
    for (const c of list) {
      try {
        out.push(await docker.inspectContainer(c.Id));
      } catch (err) {
        if (!(err instanceof DockerError && err.status === 404)) throw err; // removed meanwhile
      }
    }
    return out;
  }

  function emit(s: Stack, o: ServiceObservation, force = false): void {
    s.obs = o;
    const key = JSON.stringify(o);
    if (!force && key === s.lastKey) return;
    s.lastKey = key;
    deps.publish(o);
  }

  async function runSpecChecks(s: Stack): Promise<ServiceHealth> {
    if (s.spec.health.length === 0) return "none";
    if (s.checks.length !== s.spec.health.length) s.checks = s.spec.health.map((c) => ({ retries: c.retries, passedOnce: false, consecutiveFailures: 0 }));
    for (const [i, check] of s.spec.health.entries()) {
      const r = await runCheck(check, { cwd: s.checkout, env: { PATH: process.env["PATH"] ?? "" } });
      const p = s.checks[i] as CheckProgress;
      s.checks[i] = r.ok ? { ...p, passedOnce: true, consecutiveFailures: 0 } : { ...p, consecutiveFailures: p.consecutiveFailures + 1 };
    }
    return aggregateHealth(s.checks);
  }

  async function probe(s: Stack, force = false): Promise<void> {
    await withSpan("probe.compose", { attributes: { "steward.service": s.name } }, async () => {
      let desiredHash: string | undefined;
      let desiredError: string | undefined;
      try {
        desiredHash = (await desiredRevision(s)).hash;
      } catch (err) {
        desiredError = (err as Error).message;
      }
      let o: ServiceObservation;
      try {
        o = observeContainers(s.name, await inspectAll(s), { desiredHash, desiredError, stoppedByCommand: s.stoppedByCommand });
      } catch (err) {
        // The engine did not answer: we cannot see the stack, which is not the same as it being down.
        o = { service: s.name, state: "unknown", health: "none", starts: s.obs.starts, declared: true, detail: `cannot read containers: ${(err as Error).message}`.slice(0, 2000) };
        if (desiredHash) o.desired_config_hash = desiredHash;
      }
      if (o.state === "running") {
        const specHealth = await runSpecChecks(s);
        o.health = worst([o.health, specHealth]);
      } else {
        s.checks = [];
      }
      if (s.deploying) {
        o.state = "starting";
        o.health = "starting";
        o.detail = `deploying ${s.deploying}`;
      }
      emit(s, o, force);
    });
  }

  async function probeAll(): Promise<void> {
    if (probing) return probing;
    probing = (async () => {
      for (const s of stacks.values()) await probe(s).catch((err: unknown) => logger.warn({ stack: s.name, err: (err as Error).message }, "stack probe failed"));
    })().finally(() => (probing = undefined));
    return probing;
  }

  async function waitHealthy(s: Stack, id: string, service: string, deadline: number): Promise<string> {
    for (;;) {
      let c: ContainerInspect;
      try {
        c = await docker.inspectContainer(id);
      } catch (err) {
        throw new StackDeployError(s.name, "health", `container ${containerName(s.project, service)}: ${(err as Error).message}`);
      }
      const name = c.Name.replace(/^\//, "");
      if (!c.State.Running) throw new StackDeployError(s.name, "health", `container ${name} ${c.State.Status} (exit code ${c.State.ExitCode}) during its health gate`);
      const h = containerHealth(c);
      if (h === "healthy") return `${name} healthy`;
      if (h === "none") return `${name} running (no container healthcheck)`;
      if (h === "unhealthy") throw new StackDeployError(s.name, "health", `container ${name} is unhealthy (failing streak ${c.State.Health?.FailingStreak ?? 0})`);
      if (Date.now() >= deadline) throw new StackDeployError(s.name, "health", `container ${name} still ${h} when the health gate closed`);
      await sleep(Math.min(pollMs, Math.max(10, deadline - Date.now())));
    }
  }

  async function waitSpecChecks(s: Stack, deadline: number): Promise<string[]> {
    const done: string[] = [];
    for (const [i, check] of s.spec.health.entries()) {
      const name = check.name ?? `${check.type}-${i}`;
      for (;;) {
        const r = await runCheck(check, { cwd: s.checkout, env: { PATH: process.env["PATH"] ?? "" } });
        if (r.ok) break;
        if (Date.now() >= deadline) throw new StackDeployError(s.name, "health", `health check ${name} still failing when the health gate closed: ${r.detail}`);
        await sleep(Math.min(pollMs, check.interval, Math.max(10, deadline - Date.now())));
      }
      done.push(`check ${name} ok`);
    }
    return done;
  }

  async function removeContainers(s: Stack, which: (c: ContainerInspect) => boolean): Promise<void> {
    for (const c of await inspectAll(s)) {
      if (!which(c)) continue;
      if (c.State.Running) await docker.stopContainer(c.Id, deps.stopGraceS ?? 10);
      await docker.removeContainer(c.Id, { force: true });
    }
  }

  /** Brings the stack to `r`: per service in dependency order pull, replace, start, wait for health; then the spec's checks. */
  async function apply(s: Stack, r: StackRevision, deadline: number): Promise<string> {
    const steps: string[] = [];
    s.deploying = r.hash;
    s.stoppedByCommand = false;
    try {
      for (const service of deployOrder(r.services)) {
        const def = r.services[service];
        if (!def) continue;
        const env = await containerEnv(s, r, service);
        try {
          await docker.pullImage(def.image);
        } catch (err) {
          throw new StackDeployError(s.name, "pull", `pull ${def.image}: ${(err as Error).message}`);
        }
        let id: string;
        try {
          await removeContainers(s, (c) => c.Config.Labels?.[LABEL_SERVICE] === service);
          id = (await docker.createContainer(containerName(r.project, service), containerCreateBody(r, s.name, service, env, s.checkout))).Id;
        } catch (err) {
          throw err instanceof StackDeployError ? err : new StackDeployError(s.name, "create", `${service}: ${(err as Error).message}`);
        }
        try {
          await docker.startContainer(id);
        } catch (err) {
          throw new StackDeployError(s.name, "start", `${service}: ${(err as Error).message}`);
        }
        steps.push(await waitHealthy(s, id, service, deadline));
      }
      // Services that left the compose files go away with the deploy, as `docker compose up --remove-orphans`.
      await removeContainers(s, (c) => !((c.Config.Labels?.[LABEL_SERVICE] ?? "") in r.services));
      steps.push(...(await waitSpecChecks(s, deadline)));
      return steps.join(", ");
    } finally {
      s.deploying = undefined;
    }
  }

  async function deploy(s: Stack, cmd: NodeCommandBody): Promise<string> {
    const params = DeployCommandParams.safeParse(cmd.params ?? {});
    if (!params.success) throw new StackDeployError(s.name, "config", `invalid deploy params: ${params.error.issues[0]?.message ?? "invalid"}`);
    const timeout = params.data.health_timeout_ms ?? s.healthTimeoutMs;
    const deadline = Date.now() + timeout;
    let r: StackRevision;
    try {
      r = await desiredRevision(s);
    } catch (err) {
      throw new StackDeployError(s.name, "config", (err as Error).message);
    }
    const rec = await loadRecord(s.name);
    const next: StackRecord = { ...rec };
    if (rec.deployed === null) {
      next.previous = null;
      next.previous_unknown = (await inspectAll(s)).length > 0;
    } else if (rec.deployed.hash !== r.hash) {
      next.previous = rec.deployed;
      next.previous_unknown = false;
    }
    next.deployed = r;
    // Recorded before touching containers, so a rollback knows the previous revision even if the agent dies mid-way.
    await saveRecord(s.name, next);
    logger.info({ stack: s.name, config_hash: r.hash, previous: next.previous?.hash ?? null, timeout_ms: timeout }, "deploying stack");
    const done = await apply(s, r, deadline);
    return `deployed ${r.hash} (${done})`;
  }

  async function rollback(s: Stack, cmd: NodeCommandBody): Promise<string> {
    const params = RollbackCommandParams.safeParse(cmd.params ?? {});
    if (!params.success) throw new StackDeployError(s.name, "rollback", `invalid rollback params: ${params.error.issues[0]?.message ?? "invalid"}`);
    const rec = await loadRecord(s.name);
    if (!rec.deployed) throw new StackDeployError(s.name, "rollback", `nothing was deployed by Steward for ${s.name} on ${deps.node}; nothing to roll back`);
    const want = params.data.to_config_hash;
    const have = rec.previous?.hash ?? null;
    if (rec.previous_unknown) throw new StackDeployError(s.name, "rollback", `the containers that ran before were not deployed by Steward; they cannot be re-created`);
    if (want !== undefined && want !== have) throw new StackDeployError(s.name, "rollback", `the previous revision recorded here is ${have ?? "none"}, not ${want}; refusing to roll back to something else`);
    const failed = rec.deployed;
    const deadline = Date.now() + (params.data.health_timeout_ms ?? s.healthTimeoutMs);
    logger.warn({ stack: s.name, from: failed.hash, to: have }, "rolling stack back");
    if (!rec.previous) {
      await removeContainers(s, () => true);
      await saveRecord(s.name, { version: 1, deployed: null, previous: failed, previous_unknown: false });
      return `rolled back: nothing ran before ${failed.hash}, its containers were removed`;
    }
    const prev = rec.previous;
    await saveRecord(s.name, { version: 1, deployed: prev, previous: failed, previous_unknown: false });
    const done = await apply(s, prev, deadline);
    return `rolled back to ${prev.hash} (${done})`;
  }

  async function startStop(s: Stack, op: "start" | "stop" | "restart"): Promise<string> {
    const containers = await inspectAll(s);
    if (containers.length === 0) throw new StackDeployError(s.name, "start", `stack ${s.name} has no containers on ${deps.node}; deploy it`);
    if (op !== "start") {
      s.stoppedByCommand = true;
      for (const c of containers) await docker.stopContainer(c.Id, deps.stopGraceS ?? 10);
    }
    if (op !== "stop") {
      s.stoppedByCommand = false;
      const r = await desiredRevision(s).catch(() => undefined);
      const order = r ? deployOrder(r.services) : [];
      const rank = (c: ContainerInspect) => {
        const i = order.indexOf(c.Config.Labels?.[LABEL_SERVICE] ?? "");
        return i < 0 ? order.length : i;
      };
      for (const c of [...containers].sort((a, b) => rank(a) - rank(b))) await docker.startContainer(c.Id);
    }
    return `${op} done (${containers.length} container${containers.length === 1 ? "" : "s"})`;
  }

  async function runOp(s: Stack, cmd: NodeCommandBody): Promise<string> {
    switch (cmd.op) {
      case "deploy":
        return deploy(s, cmd);
      case "rollback":
        return rollback(s, cmd);
      case "start":
      case "stop":
      case "restart":
        return startStop(s, cmd.op);
      case "pull":
        throw new StackDeployError(s.name, "config", `op 'pull' applies to the deploy checkout, not to stack ${s.name}`);
      default: {
        const never: never = cmd.op;
        throw new Error(`unknown op ${String(never)}`);
      }
    }
  }

  return {
    setSpec(spec) {
      const nodeSpec = spec.nodes[deps.node];
      const checkout = resolve(deps.specDir, nodeSpec?.repo_path ?? spec.repo?.path ?? ".");
      const seen = new Set<string>();
      for (const [name, svc] of Object.entries(nodeSpec?.services ?? {})) {
        if (svc.kind !== "compose") continue;
        seen.add(name);
        const healthTimeoutMs = svc.deploy?.health_timeout ?? spec.deploy.health_timeout;
        const prev = stacks.get(name);
        if (prev) {
          Object.assign(prev, { spec: svc, project: svc.project ?? name, checkout, healthTimeoutMs });
          continue;
        }
        stacks.set(name, {
          name,
          spec: svc,
          project: svc.project ?? name,
          checkout,
          healthTimeoutMs,
          obs: { service: name, state: "stopped", health: "none", starts: 0, declared: true },
          lastKey: "",
          lock: Promise.resolve(),
          deploying: undefined,
          stoppedByCommand: false,
          checks: [],
        });
      }
      // A stack that left the spec is no longer reported; its containers are left as they are (never removed unasked).
      for (const name of [...stacks.keys()]) if (!seen.has(name)) stacks.delete(name);
      if (!stopped && timer) void probeAll();
    },

    has: (service) => stacks.has(service),

    status: () => [...stacks.values()].map((s) => s.obs),

    async execute(cmd) {
      const s = stacks.get(cmd.service);
      if (!s) return { ok: false, id: cmd.id, code: "unknown_service", message: `no stack '${cmd.service}' on node '${deps.node}'` };
      return withSpan("node-agent.compose", { attributes: { "steward.service": s.name, "steward.command.op": cmd.op } }, () =>
        exclusive(s, async (): Promise<NodeCommandReply> => {
          try {
            const detail = await runOp(s, cmd);
            await probe(s, true).catch(() => undefined);
            logger.info({ stack: s.name, op: cmd.op, command_id: cmd.id }, "stack command done");
            return { ok: true, id: cmd.id, node: deps.node, service: s.name, pid: null, detail };
          } catch (err) {
            await probe(s, true).catch(() => undefined);
            const message = err instanceof StackDeployError || err instanceof ComposeError ? err.message : `${cmd.op} failed: ${(err as Error).message}`;
            logger.warn({ stack: s.name, op: cmd.op, command_id: cmd.id, message }, "stack command failed");
            return { ok: false, id: cmd.id, code: "failed", message: message.slice(0, 2000) };
          }
        }),
      );
    },

    probeNow: probeAll,

    start() {
      if (timer || stopped) return;
      void probeAll();
      timer = setInterval(() => void probeAll(), deps.probeMs);
    },

    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await probing;
    },

    async readContainerEnv(service, key) {
      const s = stacks.get(service);
      if (!s) return { found: false, status: "missing", detail: `no stack '${service}' on this node` };
      let containers: ContainerInspect[];
      try {
        containers = (await inspectAll(s)).filter((c) => c.State.Running);
      } catch (err) {
        return { found: false, status: "unreadable", detail: `cannot read containers: ${(err as Error).message}` };
      }
      for (const c of containers) {
        const line = (c.Config.Env ?? []).find((e) => e.startsWith(`${key}=`));
        if (line !== undefined) return { found: true, value: line.slice(key.length + 1) };
      }
      return { found: false, status: "missing", detail: containers.length ? `no ${key} in the environment of stack ${service}` : `stack ${service} has no running container` };
    },
  };
}
