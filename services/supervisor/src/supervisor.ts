import { performance } from "node:perf_hooks";
import { DRIFT_KEY, WORLD_KEY } from "@steward/contracts/subjects";
import { DriftKind, DriftReport, type Drift } from "@steward/contracts/drift";
import { migrate, type Sql } from "@steward/platform/db";
import { openWorldBucket, type KV, type NatsConnection } from "@steward/platform/bus";
import { FAILED_ACTION_STATES, type Action } from "@steward/contracts/action";
import type { FleetSpec } from "@steward/fleet/fleet-spec";
import type { Logger } from "@steward/platform/logger";
import type { Registry } from "@steward/platform/metrics";
import type { Snapshot } from "@steward/contracts/world-state";
import type { SupervisorConfig } from "./config.js";
import type { Escalator } from "./escalate.js";
import { countByKind } from "@steward/fleet/diff";
import { LeaderLock } from "./leader.js";
import { loadSnapshotFromFile, loadSnapshotFromKv, type Loaded, type SkipReason } from "@steward/world/read";
import { loadSpecSafe } from "@steward/fleet/load";
import { createSupervisorMetrics } from "./metrics.js";
import { createActionsRepository } from "@steward/actions/repository";
import { applyExpiries, applyProposals } from "./apply.js";
import { reconcile } from "./reconcile.js";

export type CycleResult =
  | { status: "ok"; drifts: Drift[]; proposed: Action[]; expired: string[] }
  | { status: "skipped"; reason: SkipReason; detail: string }
  | { status: "standby" };

export type SupervisorSettings = Pick<SupervisorConfig, "fleetSpecPath" | "snapshotPath" | "supervisorId" | "recheckMs" | "snapshotMaxAgeMs" | "actionTtlMs" | "leaderRetryMs">;

export interface SupervisorDeps {
  config: SupervisorSettings;
  nc: NatsConnection;
  sql: Sql;
  logger: Logger;
  registry: Registry;
  clock?: () => Date;
  /** Sends drift a restart does not explain to the planner (optional: PLANNER_URL + PLANNER_TOKEN). */
  escalator?: Escalator;
}

export interface Supervisor {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Runs one cycle now (or joins the one queued after the running one). Throws only on database/KV failures. */
  runCycle(): Promise<CycleResult>;
  isLeader(): boolean;
  /** The last report this supervisor wrote, if any. */
  lastReport(): DriftReport | undefined;
}

const SKIP_WARN_EVERY_MS = 60_000;

/** How long a revision whose rollout failed is not proposed again (a new commit changes the hash sooner). */
const FAILED_REVISION_HOLD_MS = 24 * 3_600_000;

export function createSupervisor(deps: SupervisorDeps): Supervisor {
  const { config, nc, sql, registry } = deps;
  const log = deps.logger.child({ supervisor: config.supervisorId });
  const clock = deps.clock ?? (() => new Date());
  const actions = createActionsRepository(sql);
  const m = createSupervisorMetrics(registry);
  m.isLeader.set(0);

  let kv: KV | undefined;
  let stopped = true;
  let timers: NodeJS.Timeout[] = [];
  let watchStop: (() => void) | undefined;
  let watchDone: Promise<void> | undefined;
  let lastGood: DriftReport | undefined;
  let lastWritten: DriftReport | undefined;
  let current: Promise<CycleResult> | undefined;
  let queued: Promise<CycleResult> | undefined;

  let lastSkipWarn: { reason: string; at: number } | undefined;

  const leader = new LeaderLock(sql, log, (isLeader) => {
    m.isLeader.set(isLeader ? 1 : 0);
    if (isLeader) {
      log.info("became leader");
      trigger("leader");
    } else if (stopped) {
      log.info("released leadership");
    } else {
      log.warn("lost leadership; standing by");
    }
  });

  function trigger(why: string): void {
    if (stopped) return;
    runCycle().catch((err: unknown) => log.error({ err: (err as Error).message, trigger: why }, "supervisor cycle failed"));
  }

  /** Coalescing: at most one cycle runs and at most one waits; triggers during a run share the waiting one. */
  function runCycle(): Promise<CycleResult> {
    if (queued) return queued;
    if (current) {
      const q = current.catch(() => undefined).then(() => {
        queued = undefined;
        return startNow();
      });
      queued = q;
      return q;
    }
    return startNow();
  }

  function startNow(): Promise<CycleResult> {
    const p = cycleOnce().finally(() => {
      if (current === p) current = undefined;
    });
    current = p;
    return p;
  }

  async function cycleOnce(): Promise<CycleResult> {
    if (stopped || !kv || !(await leader.check())) {
      m.cycles.inc({ result: "standby" });
      return { status: "standby" };
    }
    const now = clock();
    const spec = await loadSpecSafe(config.fleetSpecPath);
    if (!spec.ok) return skip(spec, now);
    const snapshot = config.snapshotPath ? await loadSnapshotFromFile(config.snapshotPath) : await loadSnapshotFromKv(kv);
    if (!snapshot.ok) return skip(snapshot, now);
    return evaluate(spec.value, snapshot.value, now, kv);
  }

  async function evaluate(spec: FleetSpec, snapshot: Snapshot, now: Date, bucket: KV): Promise<CycleResult> {
    const view = {
      open: await actions.listOpen(),
      failedDeploys: await actions.listFinished({ since: new Date(now.getTime() - FAILED_REVISION_HOLD_MS), kinds: ["deploy"], states: FAILED_ACTION_STATES }),
    };
    const t0 = performance.now();
    const decided = reconcile(spec, snapshot, view, now, { snapshotMaxAgeMs: config.snapshotMaxAgeMs });
    m.diffSeconds.observe((performance.now() - t0) / 1000);
    const drifts = decided.report;
    const report: DriftReport = {
      computed_at: now.toISOString(),
      snapshot_written_at: snapshot.written_at,
      world_seq: snapshot.world.last_seq,
      supervisor_id: config.supervisorId,
      skipped: null,
      drifts,
    };
    lastGood = report;
    const counts = countByKind(drifts);
    for (const kind of DriftKind.options) m.drift.set({ kind }, counts[kind]);
    try {
      const opts = { supervisorId: config.supervisorId, now, ttlMs: config.actionTtlMs };
      const { proposed } = await applyProposals(actions, decided, opts);
      if (deps.escalator) await deps.escalator.observe({ actions, drifts, snapshot, now });
      const expired = await applyExpiries(actions, decided, opts);
      for (const a of proposed) {
        m.proposed.inc({ kind: a.kind });
        log.info({ action: a.id, node: a.node, service: a.service, kind: a.kind, drift: a.drift_key }, "proposed action");
      }
      if (expired.length > 0) {
        m.expired.inc(expired.length);
        log.info({ actions: expired }, "expired pending actions whose drift cleared");
      }
      m.cycles.inc({ result: "ok" });
      lastSkipWarn = undefined;
      m.lastCycle.set(now.getTime() / 1000);
      log.debug({ drift: counts, proposed: proposed.length }, "cycle done");
      return { status: "ok", drifts, proposed, expired };
    } catch (err) {
      m.cycles.inc({ result: "error" });
      throw err;
    } finally {
      await writeReport(bucket, report);
    }
  }

  async function skip(res: Extract<Loaded<unknown>, { ok: false }>, now: Date): Promise<CycleResult> {
    m.cycles.inc({ result: "skipped" });
    m.skipped.inc({ reason: res.reason });
    // Warn when the reason changes and then once a minute, so a long outage does not flood the log.
    const wall = Date.now();
    const loud = !lastSkipWarn || lastSkipWarn.reason !== res.reason || wall - lastSkipWarn.at >= SKIP_WARN_EVERY_MS;
    if (loud) lastSkipWarn = { reason: res.reason, at: wall };
    log[loud ? "warn" : "debug"]({ reason: res.reason, detail: res.detail }, "cycle skipped; keeping the last good drift report, proposing nothing");
    if (kv) {
      lastGood ??= await readExistingReport(kv);
      const base: DriftReport = lastGood ?? {
        computed_at: now.toISOString(),
        snapshot_written_at: null,
        world_seq: 0,
        supervisor_id: config.supervisorId,
        skipped: null,
        drifts: [],
      };
      await writeReport(kv, { ...base, skipped: { at: now.toISOString(), reason: `${res.reason}: ${res.detail}` } });
    }
    return { status: "skipped", reason: res.reason, detail: res.detail };
  }

  /** A fresh leader continues from the previous leader's last good report rather than from nothing. */
  async function readExistingReport(bucket: KV): Promise<DriftReport | undefined> {
    try {
      const e = await bucket.get(DRIFT_KEY);
      if (!e || e.operation !== "PUT") return undefined;
      const r = DriftReport.safeParse(JSON.parse(e.string()));
      return r.success ? { ...r.data, skipped: null } : undefined;
    } catch {
      return undefined;
    }
  }

  async function writeReport(bucket: KV, report: DriftReport): Promise<void> {
    try {
      await bucket.put(DRIFT_KEY, JSON.stringify(DriftReport.parse(report)));
      lastWritten = report;
    } catch (err) {
      m.reportWriteFailures.inc();
      log.error({ err: (err as Error).message }, "could not write the drift report");
    }
  }

  async function start(): Promise<void> {
    if (!stopped) return;
    await migrate(sql);
    kv = await openWorldBucket(nc);
    stopped = false;
    const iter = await kv.watch({ key: WORLD_KEY });
    watchStop = () => iter.stop();
    watchDone = (async () => {
      for await (const e of iter) {
        if (e.operation === "PUT") trigger("snapshot");
      }
    })().catch((err: unknown) => log.error({ err: (err as Error).message }, "snapshot watch ended"));
    timers = [
      setInterval(() => trigger("timer"), config.recheckMs),
      setInterval(() => {
        if (!stopped) void leader.check();
      }, config.leaderRetryMs),
    ];
    await leader.check();
    trigger("start");
    log.info({ snapshot: config.snapshotPath ?? `kv ${WORLD_KEY}`, spec: config.fleetSpecPath }, "supervisor started");
  }

  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    for (const t of timers) clearInterval(t);
    timers = [];
    watchStop?.();
    await watchDone;
    await Promise.allSettled([current, queued]);
    await leader.release();
    log.info("supervisor stopped");
  }

  return { start, stop, runCycle, isLeader: () => leader.isLeader, lastReport: () => lastWritten };
}
