import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { ensureStreams, jetstream, openWorldBucket, type KV, type NatsConnection } from "@steward/platform/bus";
import { emptyWorld, type WorldState } from "@steward/contracts/world-state";
import { createPositionLog } from "@steward/world/liveness";
import { createWorldWriter } from "@steward/world/world-store";
import type { Logger } from "@steward/platform/logger";
import type { Sql } from "@steward/platform/db";
import type { Registry } from "@steward/platform/metrics";
import { LIVENESS_MAX_AGE_MS, LIVENESS_WRITES_PER_S, type ObserverConfig } from "./config.js";
import { createEventConsumer } from "./event-consumer.js";
import { createObserverLeadership } from "./leadership.js";
import { registerFleetGauges } from "./fleet-gauges.js";
import { createObserverMetrics } from "./observer-metrics.js";
import { updateNodeGauges, type ObserverState } from "./observer-state.js";
import { DEFAULT_HEARTBEAT_INTERVAL_MS, markStale } from "./reduce.js";
import { staleCheckTime } from "./stale-clock.js";
import { alignWithStream, loadWorld, recreateConsumer } from "./resume.js";
import { removeLeftoverTempFiles } from "./snapshot-store.js";
import { createWorldPublisher } from "./world-publisher.js";

export type ObserverSettings = Pick<
  ObserverConfig,
  "snapshotPath" | "observerId" | "snapshotDebounceMs" | "staleCheckMs" | "missedHeartbeats" | "snapshotMaxIntervalMs" | "streamReplicas"
> &
  Partial<Pick<ObserverConfig, "leaderRetryMs" | "leaderLeaseMs" | "fleetMetricsMaxSeries" | "livenessWritesPerS" | "livenessMaxAgeMs">>;

export interface ObserverDeps {
  config: ObserverSettings;
  nc: NatsConnection;
  logger: Logger;
  registry: Registry;
  /**
   * With a database, observers run as one active and any number of standbys: the active one holds a Postgres
   * advisory lock. A standby neither consumes the events nor writes the world store. Without one: always active.
   */
  sql?: Sql;
  /** Wall clock, injectable for tests; the reducer itself never reads it. */
  clock?: () => Date;
}

export interface Observer {
  start(): Promise<void>;
  /** Stops consuming, writes a final snapshot and acks what it holds. Leaves the connection open (it was injected). */
  stop(): Promise<void>;
  world(): WorldState;
  /** True while this observer folds and writes (always, without a lock). */
  isActive(): boolean;
}

/**
 * Wires the observer's parts: activation (resume, then consume) and its reverse, the stale-node tick, and the
 * leadership that turns them on and off. Folding lives in event-consumer.ts, writing in world-publisher.ts.
 */
export function createObserver(deps: ObserverDeps): Observer {
  const { config, nc, logger, registry } = deps;
  const clock = deps.clock ?? (() => new Date());
  const metrics = createObserverMetrics(registry);
  const state: ObserverState = { world: emptyWorld(), stopping: true, unacked: undefined, position: { streamTimeMs: undefined, pending: 0, processedAtMs: 0 }, positions: createPositionLog(emptyWorld()) };
  const publisher = createWorldPublisher({ state, snapshotPath: config.snapshotPath, snapshotDebounceMs: config.snapshotDebounceMs, logger, metrics, clock, onFenced: () => void confirmAfterFence() });
  const consumer = createEventConsumer({
    state,
    js: jetstream(nc),
    logger,
    metrics,
    clock,
    publisher,
    mayRecreate: async () => !leadership || (await leadership.check()),
    recreate: async () => {
      const pending = await recreateConsumer(nc, state.world.last_seq);
      state.position = { ...state.position, pending, processedAtMs: clock().getTime() };
    },
  });
  let kv: KV | undefined;
  let ticker: ReturnType<typeof setInterval> | undefined;
  let active = false;
  // The fleet as gauges for Grafana, from the world this observer folds and writes to the world store (a standby: none).
  registerFleetGauges(registry, () => (active ? state.world : undefined), config.fleetMetricsMaxSeries);

  function onTick(): void {
    const now = clock();
    const world = state.world;
    // While the observer is behind the stream, silence is judged at its place in the stream, not at the wall clock.
    const asOf = staleCheckTime(now, state.position, config.missedHeartbeats * DEFAULT_HEARTBEAT_INTERVAL_MS);
    const next = asOf ? markStale(world, asOf, { missedHeartbeats: config.missedHeartbeats }) : world;
    if (next !== world) {
      const stale = Object.values(next.nodes)
        .filter((n) => n.status === "stale" && world.nodes[n.name]?.status !== "stale")
        .map((n) => n.name);
      // A fleet-wide outage is one line of bounded size (5,000 names were a 60 KB line), not every name.
      logger.warn({ count: stale.length, nodes: stale.slice(0, 20) }, "nodes stale: heartbeats stopped");
      state.world = next;
      updateNodeGauges(next, metrics);
      publisher.schedule();
    } else if (now.getTime() - publisher.lastWriteAt() >= config.snapshotMaxIntervalMs && !publisher.busy()) {
      // Written even when idle, so `written_at` shows the observer is alive.
      void publisher.writeNow();
    }
  }

  /** Becomes the active observer: resumes from the newest world it can find and consumes from the sequence after it. */
  async function activate(): Promise<void> {
    if (!kv) return;
    // A fresh writer: the first write after a takeover rewrites every node and drops keys of nodes this world lacks.
    const perS = config.livenessWritesPerS ?? LIVENESS_WRITES_PER_S;
    const liveness = perS > 0 ? { writesPerSecond: perS, maxAgeMs: config.livenessMaxAgeMs ?? LIVENESS_MAX_AGE_MS } : undefined;
    publisher.useWriter(createWorldWriter({ kv, observerId: config.observerId, maxRecordBytes: nc.info?.max_payload ? nc.info.max_payload - 4096 : undefined, liveness }));
    state.unacked = undefined;
    state.world = await alignWithStream(nc, await loadWorld(config.snapshotPath, kv, logger), logger);
    state.positions.reset(state.world);
    metrics.lastSeq.set(state.world.last_seq);
    updateNodeGauges(state.world, metrics);
    // Nothing folded yet: with messages pending, the stale check waits for the first one (see staleCheckTime).
    state.position = { streamTimeMs: undefined, pending: await recreateConsumer(nc, state.world.last_seq), processedAtMs: clock().getTime() };
    state.stopping = false;
    await publisher.writeNow(true);
    consumer.start();
    ticker = setInterval(onTick, Math.min(config.staleCheckMs, config.snapshotMaxIntervalMs));
    active = true;
    metrics.active.set(1);
  }

  /**
   * A write found the store changed by another writer. With a lock: confirm it (a lost lock stands this observer
   * by; a held one means the other writer had none, and this one rewrites every node). Without: say so and go on.
   */
  async function confirmAfterFence(): Promise<void> {
    if (!leadership) {
      logger.error({ observer_id: config.observerId }, "another writer changed the world store; without DATABASE_URL observers take no lock, so run only one");
      publisher.resume();
      return;
    }
    const still = await leadership.check().catch(() => false);
    if (still && active) publisher.resume();
  }

  /** Stops consuming and folding; writes already under way finish. */
  async function halt(): Promise<void> {
    state.stopping = true;
    if (ticker) clearInterval(ticker);
    ticker = undefined;
    publisher.cancelScheduled();
    await consumer.stop();
  }

  /** Stops consuming and writing; does not write a last snapshot (another observer may own the store by now). */
  async function deactivate(): Promise<void> {
    active = false;
    metrics.active.set(0);
    publisher.useWriter(undefined);
    await halt();
    await publisher.settled();
  }

  const leadership = deps.sql
    ? createObserverLeadership({
        sql: deps.sql,
        logger,
        retryMs: config.leaderRetryMs ?? 1_000,
        leaseMs: config.leaderLeaseMs ?? 5_000,
        async takeOver() {
          if (active) return true;
          try {
            await activate();
            logger.info({ last_seq: state.world.last_seq, nodes: Object.keys(state.world.nodes).length, observer_id: config.observerId }, "took over as the active observer");
            return true;
          } catch (err) {
            logger.error({ err: (err as Error).message }, "taking over failed; releasing the lock");
            await deactivate();
            return false;
          }
        },
        async standBy() {
          if (!active) return;
          logger.warn({ last_seq: state.world.last_seq, observer_id: config.observerId }, "lost the observer lock; standing by");
          await deactivate();
        },
      })
    : undefined;

  return {
    async start() {
      await mkdir(dirname(config.snapshotPath), { recursive: true });
      const removed = await removeLeftoverTempFiles(config.snapshotPath);
      if (removed) logger.info({ removed }, "removed temp files left by an interrupted snapshot write");
      await ensureStreams(nc, { replicas: config.streamReplicas });
      kv = await openWorldBucket(nc, config.streamReplicas);
      metrics.active.set(0);
      if (leadership) await leadership.start();
      else await activate();
      if (active) logger.info({ last_seq: state.world.last_seq, nodes: Object.keys(state.world.nodes).length, observer_id: config.observerId }, "observer started");
      else logger.info({ observer_id: config.observerId }, "observer started as standby: another observer holds the lock");
    },
    async stop() {
      await leadership?.close();
      if (active) {
        // The lock is still ours until released below: the last snapshot and acks are safe to write.
        await halt();
        await publisher.writeNow(true);
      }
      await deactivate();
      await leadership?.release();
      logger.info({ last_seq: state.world.last_seq }, "observer stopped");
    },
    // A shallow copy: callers keep a stable view while the observer goes on folding into its own.
    world: () => ({ ...state.world, nodes: { ...state.world.nodes } }),
    isActive: () => active,
  };
}
