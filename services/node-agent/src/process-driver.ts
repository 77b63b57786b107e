import type { FleetSpec, ProcessService, SecretRef, ServiceSpec } from "@steward/fleet/fleet-spec";
import type { Logger } from "@steward/platform/logger";
import type { NodeCommandReply } from "@steward/contracts/node-command";
import type { CheckSample, NodeEvent } from "@steward/contracts/events";
import type { AgentMetrics } from "./metrics.js";
import { newEventId } from "./publisher.js";
import { diffServices, startOrder } from "./plan.js";
import { createProcessRecords, reclaimLeftovers } from "./process-records.js";
import { SpawnError, SupervisedService, type ServiceHooks } from "./supervised-service.js";
import type { OpHandler, ServiceCommand, ServiceDriver } from "./driver.js";

export interface ProcessDriverDeps {
  node: string;
  logDir: string;
  /** Where each running service's process group is recorded (`<it>/processes/`), to be found after the agent died. */
  stateDir: string;
  /** Relative `cwd`s resolve against it (the fleet spec's directory). */
  baseDir: string;
  stopGraceMs: number;
  logger: Logger;
  metrics: AgentMetrics;
  publish(e: NodeEvent): void;
  now(): string;
  resolveSecret(ref: SecretRef): string | undefined;
}

/** `process` services: real child processes, their health checks, and the node commands that start, stop and restart them (a process has no deploy or rollback). */
export interface ProcessDriver extends ServiceDriver {
  readonly kind: "process";
  readonly ops: { readonly start: OpHandler; readonly stop: OpHandler; readonly restart: OpHandler; readonly drill: OpHandler };
  /** The spec the agent starts with: every declared process service, none started yet. */
  load(spec: FleetSpec): void;
  /** A reloaded spec: new services are added stopped (Steward proposes, the operator approves), removed ones reported undeclared. */
  setSpec(spec: FleetSpec): void;
  /**
   * Stops what an earlier agent of this node left running (kill -9 leaves its children), then starts, in dependency
   * order, the `autostart` services and those that ran under that agent; then reports every service once.
   */
  autostart(): Promise<void>;
  /** Supervised services by name (the log tail and the secret probe read them). */
  readonly services: ReadonlyMap<string, SupervisedService>;
  shutdown(): Promise<void>;
  /** Synchronous SIGKILL of every process group: for `process.on("exit")`. */
  killNow(): void;
  /** Each current check's latest result with when it ran, for the heartbeat (events go out only on a flip). */
  checkSamples(): CheckSample[];
}

/** The process driver owns `process` services; other kinds belong to their own drivers. */
export function processServices(all: Record<string, ServiceSpec>): Record<string, ProcessService> {
  const out: Record<string, ProcessService> = {};
  for (const [name, s] of Object.entries(all)) if (s.kind === "process") out[name] = s;
  return out;
}

export function createProcessDriver(deps: ProcessDriverDeps): ProcessDriver {
  const { node, logger, metrics } = deps;
  const services = new Map<string, SupervisedService>();
  const lastEmitted = new Map<string, string>();
  /** The latest result of each check run, by service then check name: heartbeats restate them. */
  const samples = new Map<string, Map<string, CheckSample>>();
  let declared: Record<string, ProcessService> = {};
  const records = createProcessRecords({ stateDir: deps.stateDir, logger, now: () => new Date(deps.now()) });

  function emit(svc: SupervisedService, force = false): void {
    const o = svc.observation();
    const key = `${o.state}|${o.health}|${o.declared}|${o.pid ?? ""}`;
    if (!force && lastEmitted.get(svc.name) === key) return;
    lastEmitted.set(svc.name, key);
    deps.publish({ type: "service", id: newEventId(node), node, ts: deps.now(), ...o });
  }

  /** A service that left the spec is kept (reported undeclared) only while its process still runs. */
  function forgetIfGone(svc: SupervisedService): void {
    if (!svc.declared && !svc.running && services.get(svc.name) === svc) {
      services.delete(svc.name);
      lastEmitted.delete(svc.name);
      samples.delete(svc.name);
      logger.info({ service: svc.name }, "undeclared service no longer runs; forgetting it");
    }
  }

  const hooks: ServiceHooks = {
    onExit(svc) {
      metrics.processExits.inc({ service: svc.name });
      emit(svc, true);
      forgetIfGone(svc);
    },
    onStarted(svc) {
      metrics.processStarts.inc({ service: svc.name });
      emit(svc);
    },
    onCheck(svc, run, result, okChanged) {
      metrics.healthChecks.inc({ service: svc.name, check: run.name, result: result.ok ? "ok" : "fail" });
      const sample: CheckSample = { service: svc.name, check: run.name, ok: result.ok, consecutive_failures: run.progress.consecutiveFailures, detail: result.detail.slice(0, 2000), at: deps.now() };
      let bySvc = samples.get(svc.name);
      if (!bySvc) samples.set(svc.name, (bySvc = new Map()));
      bySvc.set(run.name, sample);
      // An event only when the result flips (no event per run); the counts in between ride on the heartbeat.
      if (okChanged) {
        const { at, ...rest } = sample;
        deps.publish({ type: "health_check", id: newEventId(node), node, ts: at, ...rest });
      }
      emit(svc);
    },
  };

  function make(name: string, spec: ProcessService): SupervisedService {
    return new SupervisedService(name, spec, { node, logDir: deps.logDir, baseDir: deps.baseDir, stopGraceMs: deps.stopGraceMs, logger: logger.child({ service: name }), hooks, resolveSecret: deps.resolveSecret, records });
  }

  /** Runs one op on a supervised service under its lock; `op` resolves with the pid it leaves running. Never throws. */
  async function command(cmd: ServiceCommand, op: (svc: SupervisedService) => Promise<number | null>): Promise<NodeCommandReply> {
    const svc = services.get(cmd.service);
    if (!svc || (!svc.declared && cmd.op !== "stop")) {
      const message = svc ? `service '${cmd.service}' is no longer declared on node '${node}'; only stop is allowed` : `no service '${cmd.service}' on node '${node}'`;
      logger.warn({ code: "unknown_service", command_id: cmd.id, op: cmd.op, service: cmd.service }, "node command refused");
      return { ok: false, id: cmd.id, code: "unknown_service", message };
    }
    logger.info({ command_id: cmd.id, action_id: cmd.action_id, op: cmd.op, service: cmd.service }, "executing node command");
    try {
      const pid = await svc.exclusive(() => op(svc));
      emit(svc, true);
      return { ok: true, id: cmd.id, node, service: cmd.service, pid, detail: `${cmd.op} done; state ${svc.state}` };
    } catch (err) {
      emit(svc, true);
      const message = err instanceof SpawnError ? err.message : `${cmd.op} failed: ${(err as Error).message}`;
      logger.warn({ code: "failed", command_id: cmd.id, op: cmd.op, service: cmd.service, message }, "node command failed");
      return { ok: false, id: cmd.id, code: "failed", message };
    } finally {
      forgetIfGone(svc);
    }
  }

  return {
    kind: "process",
    services,

    load(spec) {
      declared = processServices(spec.nodes[node]?.services ?? {});
      for (const [name, s] of Object.entries(declared)) services.set(name, make(name, s));
    },

    setSpec(spec) {
      const next = processServices(spec.nodes[node]?.services ?? {});
      const diff = diffServices(declared, next);
      declared = next;
      if (diff.added.length + diff.removed.length + diff.changed.length > 0) logger.info({ ...diff }, "fleet spec reloaded");
      for (const name of diff.added) {
        const existing = services.get(name);
        const s = next[name] as ProcessService;
        if (existing) {
          // Declared again while its old process still runs: it is managed again.
          existing.declared = true;
          existing.setSpec(s);
          emit(existing, true);
          continue;
        }
        // Never started on reload: a new declaration is drift for the supervisor to propose, the operator to approve.
        const svc = make(name, s);
        services.set(name, svc);
        emit(svc, true);
      }
      for (const name of diff.changed) services.get(name)?.setSpec(next[name] as ProcessService);
      for (const name of diff.removed) {
        const svc = services.get(name);
        if (!svc) continue;
        svc.declared = false;
        emit(svc, true);
        forgetIfGone(svc);
      }
    },

    async autostart() {
      const ranBefore = new Set(await reclaimLeftovers(records, deps.stopGraceMs, logger));
      for (const name of startOrder(declared)) {
        const svc = services.get(name);
        if (!svc || !(svc.spec.autostart || ranBefore.has(name))) continue;
        await svc.exclusive(() => svc.start()).catch((err: unknown) => logger.warn({ service: name, err: (err as Error).message }, "autostart failed"));
      }
      for (const svc of services.values()) emit(svc);
    },

    has: (service) => services.has(service),

    observe: () => [...services.values()].map((s) => s.observation()),

    ops: {
      start: (cmd) => command(cmd, (svc) => svc.start()),
      stop: (cmd) =>
        command(cmd, async (svc) => {
          await svc.stop();
          return null;
        }),
      restart: (cmd) => command(cmd, (svc) => svc.restart()),
      // A restart drill (steward drill): killed like a crash, for the loop to notice and bring back.
      drill: (cmd) =>
        command(cmd, async (svc) => {
          await svc.kill();
          return null;
        }),
    },

    async shutdown() {
      await Promise.all([...services.values()].map((s) => s.shutdown().catch((err: unknown) => logger.warn({ service: s.name, err }, "stop failed"))));
    },

    killNow() {
      for (const s of services.values()) s.killNow();
    },

    checkSamples() {
      const out: CheckSample[] = [];
      for (const svc of services.values()) {
        const bySvc = samples.get(svc.name);
        if (!bySvc) continue;
        // Only checks the service still declares: a check dropped from the spec is not restated forever.
        for (const run of svc.checks) {
          const sample = bySvc.get(run.name);
          if (sample) out.push(sample);
        }
      }
      return out;
    },
  };
}
