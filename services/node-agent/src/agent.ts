import { mkdir, stat, statfs } from "node:fs/promises";
import { freemem, loadavg, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { FleetSpecError, formatProblem, loadFleetSpec, type FleetSpec } from "@steward/fleet/fleet-spec";
import { commandSubject } from "@steward/contracts/subjects";
import { connectNats, contextFromHeaders, type NatsConnection } from "@steward/platform/bus";
import { withSpan } from "@steward/platform/tracing";
import type { Logger } from "@steward/platform/logger";
import { DEFAULT_COMMAND_SKEW_MS, type NodeCommandReply } from "@steward/contracts/node-command";
import type { Registry } from "@steward/platform/metrics";
import type { ServiceObservation } from "@steward/contracts/events";
import { dispatchCommand, verifyCommand } from "./commands.js";
import { createSeenCommandLog } from "./seen-command-file.js";
import { createDriverTable, type ServiceKind } from "./driver.js";
import { serveLogTail } from "./log-tail.js";
import { serveContainerInspect } from "./container-inspect.js";
import type { NodeAgentConfig } from "./config.js";
import { createAgentMetrics, type AgentMetrics } from "./metrics.js";
import { diskUsage, memUsedPct } from "./plan.js";
import { EventPublisher, newEventId } from "./publisher.js";
import { createProcessDriver } from "./process-driver.js";
import { createSecretProbe } from "./secret-probe.js";
import { createComposeDriver } from "./compose-driver.js";
import { DockerClient } from "./docker/client.js";
import { createRepoWatcher } from "./repo-watch.js";

export const AGENT_VERSION = "0.1.0";
/** How long a command's reply waits for the events published before it to be stored (see `events_seq`). */
const REPLY_EVENTS_WAIT_MS = 2000;

type Subscription = ReturnType<NatsConnection["subscribe"]>;
type Msg = Parameters<NonNullable<NonNullable<Parameters<NatsConnection["subscribe"]>[1]>["callback"]>>[1];

export interface NodeAgentDeps {
  config: NodeAgentConfig;
  /** A connection to use (the caller owns it). Without it the agent connects itself, retrying until NATS answers. */
  nc?: NatsConnection;
  logger: Logger;
  registry: Registry;
  clock?: () => Date;
}

export interface NodeAgent {
  start(): Promise<void>;
  /** Stops probing, stops every supervised process, flushes what it can, closes its own connection. */
  stop(): Promise<void>;
  status(): ServiceObservation[];
  /** Events dropped from the backlog while NATS was unreachable. */
  readonly droppedEvents: number;
  /** Synchronous SIGKILL of every supervised process group: for `process.on("exit")`. */
  killChildrenNow(): void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export function createNodeAgent(deps: NodeAgentDeps): NodeAgent {
  const { config, logger } = deps;
  const node = config.nodeName;
  const clock = deps.clock ?? (() => new Date());
  const metrics: AgentMetrics = createAgentMetrics(deps.registry);
  const publisher = new EventPublisher({
    node,
    maxInFlight: config.maxInFlight,
    backlogMax: config.backlogMax,
    publishTimeoutMs: config.publishTimeoutMs,
    logger,
    metrics,
  });
  const timers: NodeJS.Timeout[] = [];
  let specStamp = "";
  let startedAt = clock().toISOString();
  let ownNc: NatsConnection | undefined;
  let commandSub: Subscription | undefined;
  let logTailSub: { unsubscribe(): void } | undefined;
  let inspectSub: { unsubscribe(): void } | undefined;
  let stopping = false;
  let started = false;
  const baseDir = dirname(resolve(config.fleetSpec));
  /** What the agent keeps across restarts: deployed stacks, and the process groups of running services. */
  const stateDir = config.stateDir ?? join(config.logDir, "..", "state");
  /** Command ids accepted, in STATE_DIR too: a captured command does not replay after a restart. */
  const seen = createSeenCommandLog({ stateDir });
  /** When commands start counting as "issued before this agent started"; set in start(). */
  let commandsSince = clock();
  /** Every service this node declares, by kind: commands go to that kind's driver; a secret store in a non-process service is read through its driver. */
  let declaredKinds = new Map<string, ServiceKind>();
  // Fingerprints of this node's secret stores; also resolves `{ secret: name }` env values for process services.
  const secrets = createSecretProbe({
    node,
    fleetKey: config.fleetKey,
    specDir: baseDir,
    logger: logger.child({ probe: "secret" }),
    publish: (e) => publisher.publish(e),
    clock,
    locate: (name) => {
      const svc = processes.services.get(name);
      if (svc) return { kind: "process", pid: svc.pid };
      return declaredKinds.has(name) ? { kind: "other" } : { kind: "absent" };
    },
    probeMs: config.secretProbeMs ?? 60_000,
    pollMs: config.secretPollMs ?? 5000,
    // Called only once probing runs, after `compose` below exists.
    containerEnv: (service, key) => compose.readContainerEnv(service, key),
  });
  // Compose stacks: applied with the real Compose when found (else the Engine API subset), observed through the
  // Engine API; the engine is only contacted when the node declares a stack.
  const compose = createComposeDriver({
    node,
    docker: new DockerClient({ host: config.dockerHost, apiVersion: config.dockerApiVersion }),
    fleetKey: config.fleetKey,
    specDir: baseDir,
    stateDir,
    probeMs: config.dockerProbeMs ?? 5000,
    composeApply: config.composeApply ?? "auto",
    ...(config.dockerHost ? { dockerHost: config.dockerHost } : {}),
    logger: logger.child({ driver: "compose" }),
    publish: (o) => publisher.publish({ type: "service", id: newEventId(node), node, ts: now(), ...o }),
    resolveSecret: (ref) => secrets.resolve(ref),
  });
  // The deploy checkout: reported as `repo` events, pulled (fast-forward only) by the `pull` command.
  const repo = createRepoWatcher({ node, fleetSpec: config.fleetSpec, publish: (e) => publisher.publish(e), logger: logger.child({ probe: "repo" }), clock, fetchTimeoutMs: config.repoFetchTimeoutMs ?? 30_000, gitTimeoutMs: 15_000 });

  const now = () => clock().toISOString();
  // `process` services: child processes this agent supervises.
  const processes = createProcessDriver({
    node,
    logDir: config.logDir,
    stateDir,
    baseDir,
    stopGraceMs: config.stopGraceMs,
    logger,
    metrics,
    publish: (e) => publisher.publish(e),
    now,
    resolveSecret: (ref) => secrets.resolve(ref),
  });

  // Commands for a service go to the driver of its kind; the table refuses an op the kind does not support.
  const drivers = createDriverTable({ node, drivers: { process: processes, compose }, kindOf: (service) => declaredKinds.get(service), logger });

  function status(): ServiceObservation[] {
    return drivers.observe();
  }

  function takeSpec(spec: FleetSpec): void {
    secrets.setSpec(spec);
    declaredKinds = new Map(Object.entries(spec.nodes[node]?.services ?? {}).map(([name, svc]) => [name, svc.kind]));
    compose.setSpec(spec);
  }

  async function heartbeat(): Promise<void> {
    await withSpan("probe.heartbeat", {}, () => {
      publisher.publish({
        type: "heartbeat",
        id: newEventId(node),
        node,
        ts: now(),
        interval_ms: config.heartbeatMs,
        agent_version: AGENT_VERSION,
        started_at: startedAt,
        services: status(),
        checks: processes.checkSamples(),
        dropped_events: publisher.dropped,
      });
    });
  }

  async function probeHost(): Promise<void> {
    await withSpan("probe.host", {}, async () => {
      const disks = [];
      for (const path of [...new Set(["/", config.logDir])]) {
        try {
          disks.push(diskUsage(path, await statfs(path)));
        } catch (err) {
          logger.warn({ path, err: (err as Error).message }, "cannot read disk usage");
        }
      }
      publisher.publish({
        type: "host",
        id: newEventId(node),
        node,
        ts: now(),
        load1: Math.max(0, loadavg()[0] ?? 0),
        mem_used_pct: memUsedPct(totalmem(), freemem()),
        disks,
      });
    });
  }

  function every(ms: number, what: string, fn: () => Promise<void>): void {
    let running = false;
    const t = setInterval(() => {
      if (running || stopping) return;
      running = true;
      fn()
        .catch((err: unknown) => logger.error({ err, what }, "periodic task failed"))
        .finally(() => (running = false));
    }, ms);
    timers.push(t);
  }

  async function readSpecStamp(): Promise<string> {
    const s = await stat(config.fleetSpec);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  }

  async function pollSpec(): Promise<void> {
    let stamp: string;
    try {
      stamp = await readSpecStamp();
    } catch (err) {
      if (specStamp !== "missing") logger.warn({ file: config.fleetSpec, code: (err as NodeJS.ErrnoException).code }, "cannot read the fleet spec; keeping the last good one");
      specStamp = "missing";
      return;
    }
    if (stamp === specStamp) return;
    specStamp = stamp;
    let spec: FleetSpec;
    try {
      spec = await loadFleetSpec(config.fleetSpec);
      takeSpec(spec);
    } catch (err) {
      metrics.specReloads.inc({ result: "invalid" });
      const problems = err instanceof FleetSpecError ? err.problems.slice(0, 10).map(formatProblem) : [(err as Error).message];
      logger.warn({ file: config.fleetSpec, problems }, "fleet spec changed but is invalid; keeping the last good one");
      return;
    }
    metrics.specReloads.inc({ result: "ok" });
    processes.setSpec(spec);
  }

  function attachNats(nc: NatsConnection): void {
    publisher.attach(nc);
    commandSub = nc.subscribe(commandSubject(node), {
      callback: (err, msg) => {
        if (err) {
          logger.warn({ err: err.message }, "command subscription error");
          return;
        }
        void handleCommand(msg);
      },
    });
    logTailSub = serveLogTail(nc, { node, logDir: config.logDir, services: () => processes.services, resolveSecret: (ref) => secrets.resolve(ref), compose, logger });
    inspectSub = serveContainerInspect(nc, { node, compose, isDeclared: (service) => declaredKinds.has(service), logger });
    logger.info({ subject: commandSubject(node) }, "taking node commands");
  }

  async function connectLoop(): Promise<void> {
    for (let attempt = 0; !stopping; attempt++) {
      try {
        const nc = await connectNats(config.natsUrl, `node-agent-${node}`, { timeout: 2000 });
        if (stopping) {
          await nc.close();
          return;
        }
        ownNc = nc;
        attachNats(nc);
        return;
      } catch (err) {
        if (attempt === 0) logger.warn({ err: (err as Error).message }, "NATS unreachable at start; probing and buffering events, retrying");
        await sleep(Math.min(2000, 250 * 2 ** Math.min(attempt, 3)));
      }
    }
  }

  async function handleCommand(msg: Msg): Promise<void> {
    const t0 = performance.now();
    const parent = contextFromHeaders(msg.headers);
    let op = "unknown";
    let result = "invalid";
    try {
      await withSpan("node-agent.command", { parent, attributes: { "steward.node": node } }, async (span) => {
        const reply = await executeCommand(msg.data, (o) => (op = o));
        result = reply.ok ? "ok" : reply.code;
        span.setAttributes({ "steward.command.op": op, "steward.command.result": result });
        msg.respond(JSON.stringify(reply));
      });
    } catch (err) {
      logger.error({ err }, "command handling failed");
    } finally {
      metrics.commands.inc({ op, result });
      metrics.commandDuration.observe({ op }, (performance.now() - t0) / 1000);
    }
  }

  async function executeCommand(data: Uint8Array, setOp: (op: string) => void): Promise<NodeCommandReply> {
    const bounds = { startedAt: commandsSince, skewMs: config.commandSkewMs, maxLifetimeMs: config.commandMaxLifetimeMs };
    const verdict = verifyCommand(data, { node, keys: config.commandKeys, now: clock(), seen, bounds });
    if (!verdict.ok) {
      setOp(verdict.op);
      logger.warn({ code: verdict.reply.code, command_id: verdict.reply.id, op: verdict.op, reason: verdict.reply.message }, "node command refused");
      return verdict.reply;
    }
    const cmd = verdict.cmd;
    setOp(cmd.op);
    // Consumed once it passed the checks, whatever happens next: the same id is never executed twice, not even after
    // a restart, so it is on disk before anything runs. If it cannot be recorded, nothing runs.
    try {
      await seen.remember(cmd.id, Date.parse(cmd.expires_at), clock().getTime());
    } catch (err) {
      const message = `could not record the command id in ${stateDir} (${(err as Error).message}); refused, as it could be replayed after a restart`;
      logger.error({ command_id: cmd.id, op: cmd.op }, message);
      return { ok: false, id: cmd.id, code: "failed", message };
    }
    const reply = await dispatchCommand(cmd, { checkout: { pull: (c) => repo.pull(c) }, services: drivers });
    if (!reply.ok) return reply;
    // The driver published what it saw after the command before returning; the reply says where in the stream
    // that is, so the executor never takes a heartbeat sent during the command for the command's outcome.
    const seq = await publisher.storedThrough(REPLY_EVENTS_WAIT_MS);
    if (seq === null) logger.warn({ command_id: cmd.id, backlog: publisher.backlog }, "events not stored in time; the reply carries no events_seq");
    return seq === null ? reply : { ...reply, events_seq: seq };
  }

  return {
    get droppedEvents() {
      return publisher.dropped;
    },

    async start() {
      if (started) throw new Error("node-agent already started");
      started = true;
      startedAt = now();
      commandsSince = clock();
      const loaded = await seen.load(commandsSince.getTime());
      if (loaded.state === "unreadable") {
        // Without the ids seen before the restart, even the clock-skew allowance could let a captured command replay:
        // only commands issued after this start are taken.
        commandsSince = new Date(commandsSince.getTime() + (config.commandSkewMs ?? DEFAULT_COMMAND_SKEW_MS));
        logger.error({ reason: loaded.reason, state_dir: stateDir }, "the seen-commands file is unreadable; refusing every command issued before this start, clock-skew allowance included");
      }
      logger.info({ trusted_keys: config.commandKeys.map((k) => k.id), remembered_commands: loaded.state === "loaded" ? loaded.ids : 0 }, "verifying node commands with the executor's public key");
      await mkdir(config.logDir, { recursive: true });
      // An unreadable spec at start is fatal: without it the agent cannot know what it supervises.
      specStamp = await readSpecStamp();
      const spec = await loadFleetSpec(config.fleetSpec);
      const nodeSpec = spec.nodes[node];
      if (!nodeSpec) logger.warn({ node, file: config.fleetSpec }, "this node is not declared in the fleet spec; supervising nothing until it is");
      processes.load(spec);
      takeSpec(spec);

      if (deps.nc) attachNats(deps.nc);
      else void connectLoop();

      await processes.autostart();
      await heartbeat();
      await probeHost();
      every(config.heartbeatMs, "heartbeat", heartbeat);
      every(config.hostProbeMs, "host probe", probeHost);
      every(config.specPollMs, "spec poll", pollSpec);
      secrets.start();
      compose.start();
      every(config.repoProbeMs ?? 60_000, "repo probe", repo.probe);
      void repo.probe().catch((err: unknown) => logger.warn({ err }, "first repo probe failed"));
      logger.info({ services: processes.services.size, log_dir: config.logDir }, "node-agent started");
    },

    async stop() {
      if (stopping) return;
      stopping = true;
      for (const t of timers) clearInterval(t);
      secrets.stop();
      await compose.stop();
      commandSub?.unsubscribe();
      logTailSub?.unsubscribe();
      inspectSub?.unsubscribe();
      await processes.shutdown();
      // A last heartbeat restating that everything is stopped, so the observer need not wait for staleness.
      await heartbeat().catch(() => undefined);
      const flushed = await publisher.flush(2000);
      if (!flushed) logger.warn({ backlog: publisher.backlog }, "stopping with events not yet published");
      publisher.close();
      if (ownNc) await ownNc.drain().catch(() => ownNc?.close());
      logger.info("node-agent stopped");
    },

    status,

    killChildrenNow() {
      processes.killNow();
    },
  };
}
