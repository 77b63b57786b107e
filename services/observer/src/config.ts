import { hostname } from "node:os";
import { z } from "zod";
import { ConfigError, durationMs, parseEnv, port } from "@steward/platform/config";
import { FLEET_METRICS_MAX_SERIES } from "./fleet-gauges.js";

/**
 * Liveness writes (libs/world/src/liveness.ts): 100 a second leaves a fleet of up to ~375 nodes (heartbeats every
 * 5 s, host figures every 15 s) written as before; at 1,000 nodes each node's heartbeat reaches the store every
 * ~10 s instead of every 5 s, for about a third of the writes.
 */
export const LIVENESS_WRITES_PER_S = 100;
export const LIVENESS_MAX_AGE_MS = 10_000;

export const ObserverConfigSchema = z.object({
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  SNAPSHOT_PATH: z.string().min(1).default("./.steward/world.json"),
  OBSERVER_ID: z.string().min(1).optional(),
  SNAPSHOT_DEBOUNCE_MS: durationMs(50),
  STALE_CHECK_MS: durationMs(1_000),
  MISSED_HEARTBEATS: z.coerce.number().int().positive().default(3),
  SNAPSHOT_MAX_INTERVAL_MS: durationMs(5_000),
  /**
   * Node records whose only change is liveness (a heartbeat restating them) are written at most this many per second,
   * the least recently written first; 0: every change is written at once. Real changes are never held back.
   */
  LIVENESS_WRITES_PER_S: z.coerce.number().nonnegative().default(LIVENESS_WRITES_PER_S),
  /** No node's liveness waits longer than this for its write. */
  LIVENESS_MAX_AGE_MS: durationMs(LIVENESS_MAX_AGE_MS),
  METRICS_PORT: port(9465),
  METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /** Above this many per-service and per-check series, /metrics exports the fleet's node series only. */
  FLEET_METRICS_MAX_SERIES: z.coerce.number().int().nonnegative().default(FLEET_METRICS_MAX_SERIES),
  /** Set to run observers as active + standby: the active one holds a Postgres advisory lock. Unset: always active. */
  DATABASE_URL: z.string().min(1).optional(),
  LEADER_RETRY_MS: durationMs(1_000),
  /** An active observer that stops answering (SIGSTOP, a hung loop) loses the lock after this long. */
  LEADER_LEASE_MS: durationMs(5_000),
});

/** Every setting this service reads from its environment (`steward up` passes these through and lists them in its help). */
export const SETTINGS: readonly string[] = [...Object.keys(ObserverConfigSchema.shape)];

export interface ObserverConfig {
  natsUrl: string;
  snapshotPath: string;
  observerId: string;
  snapshotDebounceMs: number;
  staleCheckMs: number;
  missedHeartbeats: number;
  snapshotMaxIntervalMs: number;
  livenessWritesPerS: number;
  livenessMaxAgeMs: number;
  metricsPort: number;
  metricsHost: string;
  streamReplicas: number;
  fleetMetricsMaxSeries: number;
  databaseUrl: string | undefined;
  /** How often a standby tries the lock and the active one confirms it still holds it. */
  leaderRetryMs: number;
  leaderLeaseMs: number;
}

/** Reads the observer's settings from an env-like record; errors name the setting. */
export function loadConfig(env: Record<string, string | undefined>): ObserverConfig {
  const c = parseEnv("observer", ObserverConfigSchema, env);
  // The active observer's lock checks are what keep its session busy: a lease shorter than a few of them would
  // hand the lock away from a healthy observer.
  if (c.LEADER_LEASE_MS < 3 * c.LEADER_RETRY_MS) {
    throw new ConfigError("observer", [{ setting: "LEADER_LEASE_MS", message: `must be at least 3 x LEADER_RETRY_MS (${3 * c.LEADER_RETRY_MS} ms), got ${c.LEADER_LEASE_MS} ms` }]);
  }
  return {
    natsUrl: c.NATS_URL,
    snapshotPath: c.SNAPSHOT_PATH,
    observerId: c.OBSERVER_ID ?? `${hostname()}-${process.pid}`,
    snapshotDebounceMs: c.SNAPSHOT_DEBOUNCE_MS,
    staleCheckMs: c.STALE_CHECK_MS,
    missedHeartbeats: c.MISSED_HEARTBEATS,
    snapshotMaxIntervalMs: c.SNAPSHOT_MAX_INTERVAL_MS,
    livenessWritesPerS: c.LIVENESS_WRITES_PER_S,
    livenessMaxAgeMs: c.LIVENESS_MAX_AGE_MS,
    metricsPort: c.METRICS_PORT,
    metricsHost: c.METRICS_HOST,
    streamReplicas: c.STREAM_REPLICAS,
    fleetMetricsMaxSeries: c.FLEET_METRICS_MAX_SERIES,
    databaseUrl: c.DATABASE_URL,
    leaderRetryMs: c.LEADER_RETRY_MS,
    leaderLeaseMs: c.LEADER_LEASE_MS,
  };
}
