import { performance } from "node:perf_hooks";
import { DriftKind, type DriftReport, type Drift } from "@steward/contracts/drift";
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
import { LeaderLock } from "@steward/platform/leader-lock";
import { SUPERVISOR_LOCK_KEY } from "./leader.js";
import { loadSnapshotFromFile, type Loaded, type SkipReason } from "@steward/world/read";
import { watchWorld, type WorldCache } from "@steward/world/world-store";
import { createWatchRestartReporter } from "@steward/world/watch-restarts";
import { createDriftWriter, readDrift, type DriftWriter } from "@steward/world/drift-store";
import { createSpecCache } from "@steward/fleet/load";
import { createSupervisorMetrics } from "./metrics.js";
import { createActionsRepository } from "@steward/actions/repository";
import { applyExpiries, applyHoldEnds, applyProposals } from "./apply.js";
import { reconcile, type DriftState, type ReconcileInput, type Reconciled } from "./reconcile.js";

export type CycleResult =
  | { status: "ok"; drifts: Drift[]; proposed: Action[]; expired: string[]; full: boolean; diffed: number }
  | { status: "skipped"; reason: SkipReason; detail: string }
  | { status: "standby" };

export type SupervisorSettings = Pick<SupervisorConfig, "fleetSpecPath" | "snapshotPath" | "supervisorId" | "recheckMs" | "snapshotMaxAgeMs" | "actionTtlMs" | "leaderRetryMs"> &
  Partial<Pick<SupervisorConfig, "fullRecheckMs">>;

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
  /**
   * Runs one cycle now (or joins the one queued after the running one); `full`: it diffs every node, not only the
   * changed ones. Throws only on database/KV failures.
   */
  runCycle(opts?: { full?: boolean }): Promise<CycleResult>;
  isLeader(): boolean;
  /** The last report this supervisor wrote, if any. */
  lastReport(): DriftReport | undefined;
}

const SKIP_WARN_EVERY_MS = 60_000;

/** Every node is diffed again this often even without changes (FULL_RECHECK_MS). */
const DEFAULT_FULL_RECHECK_MS = 60_000;

/** How long start-up waits for the world store's first load before its first cycle (which then skips, not guesses). */
const WORLD_LOAD_WAIT_MS = 10_000;

/** How long a revision whose rollout failed is not proposed again (a new commit changes the hash sooner). */
const FAILED_REVISION_HOLD_MS = 24 * 3_600_000;

export function createSupervisor(deps: SupervisorDeps): Supervisor {
  const { config, nc, sql, registry } = deps;
  const log = deps.logger.child({ supervisor: config.supervisorId });
  const clock = deps.clock ?? (() => new Date());
  const actions = createActionsRepository(sql);
  const m = createSupervisorMetrics(registry);
  const watchRestarts = createWatchRestartReporter(registry, log);
  m.isLeader.set(0);

  let kv: KV | undefined;
  let worldCache: WorldCache | undefined;
  let driftWriter: DriftWriter | undefined;
  let stopped = true;
  let timers: NodeJS.Timeout[] = [];
  let lastGood: DriftReport | undefined;
  let lastWritten: DriftReport | undefined;
  let current: Promise<CycleResult> | undefined;
  let queued: Promise<CycleResult> | undefined;

  let lastSkipWarn: { reason: string; at: number } | undefined;
  const specs = createSpecCache();
  /** What the last good cycle computed, for the next one to diff only what changed. */
  let state: DriftState | undefined;
  /** Nodes the world store reported changed since the last cycle started. */
  let dirty = new Set<string>();
  /** The next cycle diffs every node: at start, on becoming leader, on the slow timer, after a skip or a failure. */
  let wantFull = true;

  const leader = new LeaderLock(sql, log, (isLeader) => {
    m.isLeader.set(isLeader ? 1 : 0);
    if (isLeader) {
      // Another leader may have written the report meanwhile: start from what KV holds, not from our last write,
      // and diff every node again.
      driftWriter = undefined;
      wantFull = true;
      log.info("became leader");
      trigger("leader");
    } else if (stopped) {
      log.info("released leadership");
    } else {
      log.warn("lost leadership; standing by");
    }
  }, SUPERVISOR_LOCK_KEY);

  function trigger(why: string): void {
    if (stopped) return;
    if (why === "full") wantFull = true;
    runCycle().catch((err: unknown) => log.error({ err: (err as Error).message, trigger: why }, "supervisor cycle failed"));
  }

  /** Coalescing: at most one cycle runs and at most one waits; triggers during a run share the waiting one. */
  function runCycle(opts: { full?: boolean } = {}): Promise<CycleResult> {
    if (opts.full) wantFull = true;
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
    const started = performance.now();
    // Taken before the world is read: a change that lands meanwhile is in the next cycle's set (and triggers it).
    const changed = dirty;
    dirty = new Set();
    const full = wantFull || !state || config.snapshotPath !== undefined;
    wantFull = false;
    const spec = await specs.load(config.fleetSpecPath);
    if (spec.parsed) m.specParses.inc({ result: spec.ok ? "ok" : "invalid" });
    if (!spec.ok) return skip(spec, now);
    // A cycle sees at least what the store held when it started (one small read of the header).
    if (worldCache) await worldCache.sync(2_000).catch(() => false);
    const snapshot: Loaded<Snapshot> = config.snapshotPath
      ? await loadSnapshotFromFile(config.snapshotPath)
      : (worldCache?.read() ?? { ok: false, reason: "snapshot_missing", detail: "world store not watched yet" });
    if (!snapshot.ok) return skip(snapshot, now);
    try {
      // A snapshot file is read whole every time: nothing says which nodes changed in it.
      return await evaluate(spec.value, snapshot.value, now, kv, full || !state ? undefined : { state, changed });
    } finally {
      m.cycleSeconds.observe((performance.now() - started) / 1000);
    }
  }

  async function evaluate(spec: FleetSpec, snapshot: Snapshot, now: Date, bucket: KV, since: ReconcileInput["since"]): Promise<CycleResult> {
    const view = {
      open: await actions.listOpen(),
      failedDeploys: await actions.listFinished({ since: new Date(now.getTime() - FAILED_REVISION_HOLD_MS), kinds: ["deploy"], states: FAILED_ACTION_STATES }),
      holds: await actions.listHolds(),
    };
    const t0 = performance.now();
    const decided = reconcile({ spec, world: snapshot, actions: view, now, opts: { snapshotMaxAgeMs: config.snapshotMaxAgeMs }, since });
    m.diffSeconds.observe((performance.now() - t0) / 1000);
    m.nodesDiffed.inc({ cycle: decided.full ? "full" : "changes" }, decided.diffed);
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
    let applied = false;
    try {
      const opts = { supervisorId: config.supervisorId, now, ttlMs: config.actionTtlMs };
      const { proposed } = await applyProposals(actions, decided, opts);
      if (deps.escalator) await deps.escalator.observe({ actions, drifts, snapshot, now, nodes: decided.full ? undefined : since?.changed });
      const expired = await applyExpiries(actions, decided, opts);
      const ended = await applyHoldEnds(actions, decided, opts);
      if (ended.length > 0) log.info({ holds: ended }, "ended holds whose drift changed or cleared, or whose time ran out");
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
      log.debug({ drift: counts, proposed: proposed.length, full: decided.full, diffed: decided.diffed, changed: decided.changed.length }, "cycle done");
      applied = true;
      return { status: "ok", drifts, proposed, expired, full: decided.full, diffed: decided.diffed };
    } catch (err) {
      m.cycles.inc({ result: "error" });
      throw err;
    } finally {
      const reported = await writeReport(bucket, report, decided);
      // After a failure to apply or to write, the next cycle diffs every node again; after a failed write it also
      // writes every node (the writer skips the records it did write).
      state = reported ? decided.state : undefined;
      if (!applied || !reported) wantFull = true;
    }
  }

  async function skip(res: Extract<Loaded<unknown>, { ok: false }>, now: Date): Promise<CycleResult> {
    m.cycles.inc({ result: "skipped" });
    // The nodes that changed meanwhile were not diffed: the next good cycle diffs every node.
    wantFull = true;
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
    const r = await readDrift(bucket, 10_000);
    return r.ok ? { ...r.value, skipped: null } : undefined;
  }

  /**
   * Writes the report: after a cycle, only the nodes whose findings changed (`decided`); after a skip, only the
   * header. The writer writes it whole when it has not yet (a new leader). False when it could not be written.
   */
  async function writeReport(bucket: KV, report: DriftReport, decided?: Pick<Reconciled, "state" | "changed">): Promise<boolean> {
    try {
      driftWriter ??= createDriftWriter(bucket);
      if (decided) await driftWriter.writeNodes(report, decided.state.report, decided.changed);
      else await driftWriter.writeNodes(report, new Map(), []);
      lastWritten = report;
      return true;
    } catch (err) {
      m.reportWriteFailures.inc();
      log.error({ err: (err as Error).message }, "could not write the drift report");
      return false;
    }
  }

  async function start(): Promise<void> {
    if (!stopped) return;
    await migrate(sql);
    kv = await openWorldBucket(nc, 1, { onWaiting: (err) => log.warn({ err: err.message }, "world store not created yet; waiting for the observer") });
    stopped = false;
    if (!config.snapshotPath) {
      // One cycle per observer write (its header), not per node record: the cycle coalesces anyway.
      worldCache = watchWorld(kv, {
        onChange: (c) => {
          for (const n of c.changed) dirty.add(n);
          for (const n of c.removed) dirty.add(n);
          trigger("world");
        },
        onError: (err) => log.warn({ err: err.message }, "world store watch failed; re-reading"),
        onRestart: watchRestarts.onRestart("world"),
      });
      const loaded = await Promise.race([worldCache.ready().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), WORLD_LOAD_WAIT_MS).unref())]);
      if (!loaded) log.warn({ waited_ms: WORLD_LOAD_WAIT_MS }, "world store not loaded yet; cycles skip until it is");
    }
    timers = [
      // A cycle without world changes still notices a snapshot growing too old and actions that changed.
      setInterval(() => trigger("timer"), config.recheckMs),
      setInterval(() => trigger("full"), config.fullRecheckMs ?? DEFAULT_FULL_RECHECK_MS),
      setInterval(() => {
        if (!stopped) void leader.check();
      }, config.leaderRetryMs),
    ];
    await leader.check();
    trigger("start");
    log.info({ snapshot: config.snapshotPath ?? "world store (kv)", spec: config.fleetSpecPath }, "supervisor started");
  }

  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    for (const t of timers) clearInterval(t);
    timers = [];
    await Promise.allSettled([current, queued]);
    await worldCache?.stop();
    worldCache = undefined;
    await leader.release();
    log.info("supervisor stopped");
  }

  return { start, stop, runCycle, isLeader: () => leader.isLeader, lastReport: () => lastWritten };
}
