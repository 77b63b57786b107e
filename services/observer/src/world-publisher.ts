import { performance } from "node:perf_hooks";
import type { Logger } from "@steward/platform/logger";
import { WorldWriteError, type WorldWriter } from "@steward/world/world-store";
import type { ObserverMetrics } from "./observer-metrics.js";
import { safeAck, updateNodeGauges, type ObserverState } from "./observer-state.js";
import { writeSnapshotFile } from "./snapshot-store.js";

/** A write that failed waits this long before the next try, so a full disk does not spin. */
const WRITE_RETRY_MS = 1_000;
/**
 * The file snapshot (the whole world, the observer's resume point) costs in proportion to the fleet. It is written
 * at an interval of this many times its last cost, so it takes at most ~1/FILE_COST_FACTOR of the observer's time
 * at any fleet size; a small world is written as often as the store, a 5,000-node one every few seconds.
 */
const FILE_COST_FACTOR = 20;
/** A write that left nodes' liveness for later is followed by another within this long, even on a quiet stream. */
const DEFERRED_RETRY_MS = 1_000;
/** Upper bound on the file interval: a restart replays at most this much of the stream. */
const FILE_MAX_INTERVAL_MS = 30_000;

export interface WorldPublisherDeps {
  state: ObserverState;
  snapshotPath: string;
  snapshotDebounceMs: number;
  logger: Logger;
  metrics: ObserverMetrics;
  clock: () => Date;
  /**
   * Another writer changed the world store under this observer (see WorldWriteError.fenced). Publishing is held
   * until the observer confirms it is still the active one (`resume`) or stops it (`useWriter(undefined)`).
   */
  onFenced(): void;
}

/** Publishes the observer's world: changed nodes to the world store (throttled), the whole world to the snapshot file (adaptive), then acks what they cover. */
export interface WorldPublisher {
  /** Starts publishing to a fresh writer (the first write rewrites every node); undefined stops publishing. */
  useWriter(store: WorldWriter | undefined): void;
  /** The world changed: a write goes out within `delayMs` (throttle, not debounce). */
  schedule(delayMs?: number): void;
  /**
   * Writes the nodes that changed to the world store (header last), then acks what it covers; the file snapshot
   * goes with it when due or forced. Acks are flow control only: a restart resumes from its snapshot's sequence.
   */
  writeNow(forceFile?: boolean): Promise<void>;
  /** A write is under way or scheduled. */
  busy(): boolean;
  /** Clock time (ms) of the last successful write to the world store. */
  lastWriteAt(): number;
  /** Ends the hold after a fenced write: this observer is still the active one; its next write rewrites every node. */
  resume(): void;
  /** Drops scheduled writes; one under way finishes. */
  cancelScheduled(): void;
  /** Resolves once no write is under way. */
  settled(): Promise<void>;
}

export function createWorldPublisher(deps: WorldPublisherDeps): WorldPublisher {
  const { state, logger, metrics, clock } = deps;
  let store: WorldWriter | undefined;
  /** When the file snapshot is due next (adaptive, see FILE_COST_FACTOR). */
  let fileDueAt = 0;
  let writeTimer: ReturnType<typeof setTimeout> | undefined;
  /** A file snapshot skipped for cost is still written once due, even if nothing else changes meanwhile. */
  let fileTimer: ReturnType<typeof setTimeout> | undefined;
  let writing: Promise<void> | undefined;
  let dirty = false;
  /** The last write left some nodes' liveness for later (the writer's liveness budget). */
  let deferred = false;
  let lastWriteAt = 0;
  /** Set by a fenced write: nothing is written until the observer knows it still holds the lock. */
  let fenced = false;

  function schedule(delayMs = deps.snapshotDebounceMs): void {
    dirty = true;
    // Throttle, not debounce: under a steady stream a snapshot still goes out every `delayMs`.
    if (writeTimer || writing || state.stopping) return;
    writeTimer = setTimeout(() => {
      writeTimer = undefined;
      void writeNow();
    }, delayMs);
  }

  function scheduleFile(): void {
    if (fileTimer) return;
    fileTimer = setTimeout(() => {
      fileTimer = undefined;
      if (!state.stopping && !writing && !writeTimer) void writeNow();
    }, Math.max(0, fileDueAt - Date.now()) + 1);
    fileTimer.unref?.();
  }

  async function writeNow(forceFile = false): Promise<void> {
    while (writing) await writing;
    if (writeTimer) {
      clearTimeout(writeTimer);
      writeTimer = undefined;
    }
    if (!store || fenced) return;
    dirty = false;
    const writtenAt = clock().toISOString();
    const ack = state.unacked;
    const fileStart = performance.now();
    const fileDue = forceFile || Date.now() >= fileDueAt;
    // A forced write (activation, stop) writes every changed node: a stopping observer leaves nothing waiting.
    const prepared = store.prepare(state.world, writtenAt, forceFile ? undefined : state.positions);
    const fileJson = fileDue ? prepared.snapshotJson() : undefined;
    let retry = false;
    writing = (async () => {
      const end = metrics.snapshotWriteSeconds.startTimer();
      try {
        const r = await prepared.commit();
        metrics.snapshotsWritten.inc();
        metrics.nodesWritten.inc(r.nodesWritten);
        metrics.nodesDeferred.set(r.nodesDeferred);
        deferred = r.nodesDeferred > 0;
        if (r.oversized.length > 0) {
          metrics.snapshotWriteErrors.inc({ store: "kv_oversized" }, r.oversized.length);
          logger.error({ nodes: r.oversized }, "node records too big for one KV message: left out of the world store (readers see them as unknown)");
        }
        lastWriteAt = clock().getTime();
        if (ack) {
          safeAck(ack, logger);
          if (state.unacked === ack) state.unacked = undefined;
        }
      } catch (err) {
        if (err instanceof WorldWriteError && err.fenced) {
          metrics.snapshotWriteErrors.inc({ store: "kv_fenced" });
          logger.warn({ err: err.message }, "another observer wrote the world store since this one's last write: holding writes until this observer knows it is still the active one");
          fenced = true;
          deps.onFenced();
        } else {
          metrics.snapshotWriteErrors.inc({ store: "kv" });
          logger.error({ err: (err as Error).message, failures: err instanceof WorldWriteError ? err.failures.length : undefined }, "world store write failed; retrying");
          retry = true;
        }
      } finally {
        end();
      }
      if (fileJson !== undefined) {
        try {
          await writeSnapshotFile(deps.snapshotPath, fileJson);
          metrics.fileSnapshotsWritten.inc();
        } catch (err) {
          metrics.snapshotWriteErrors.inc({ store: "file" });
          logger.error({ err: (err as Error).message, path: deps.snapshotPath }, "snapshot file write failed");
        }
        const costMs = performance.now() - fileStart;
        const interval = Math.min(FILE_MAX_INTERVAL_MS, Math.max(deps.snapshotDebounceMs, FILE_COST_FACTOR * costMs));
        metrics.fileIntervalSeconds.set(interval / 1000);
        fileDueAt = Date.now() + interval;
      }
      updateNodeGauges(state.world, metrics);
    })();
    try {
      await writing;
    } finally {
      writing = undefined;
    }
    if (fenced) return;
    if (retry) schedule(Math.max(WRITE_RETRY_MS, deps.snapshotDebounceMs));
    else if (dirty) schedule();
    // Liveness left for later is written by a later write even if nothing else changes meanwhile.
    else if (deferred && !state.stopping) schedule(DEFERRED_RETRY_MS);
    else if (Date.now() < fileDueAt && !state.stopping) scheduleFile();
  }

  return {
    useWriter(next) {
      store = next;
      fenced = false;
      if (next) fileDueAt = 0;
    },
    resume() {
      if (!fenced) return;
      fenced = false;
      schedule(0);
    },
    schedule,
    writeNow,
    busy: () => writing !== undefined || writeTimer !== undefined,
    lastWriteAt: () => lastWriteAt,
    cancelScheduled() {
      if (writeTimer) clearTimeout(writeTimer);
      writeTimer = undefined;
      if (fileTimer) clearTimeout(fileTimer);
      fileTimer = undefined;
    },
    async settled() {
      while (writing) await writing;
    },
  };
}
