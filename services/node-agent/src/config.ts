import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { durationMs, parseEnv, port, secretString } from "@steward/shared";

const count = (def: number, max: number) => z.coerce.number().int().positive().max(max).default(def);

export const NodeAgentEnv = z.object({
  NODE_NAME: z
    .string({ error: "is required" })
    .regex(/^[A-Za-z0-9_-]{1,63}$/, "must be a single NATS subject token: letters, digits, '-' or '_' (max 63)"),
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  FLEET_SPEC: z.string({ error: "is required (path to fleet.yaml)" }).min(1, "is required (path to fleet.yaml)"),
  FLEET_KEY: secretString(),
  HEARTBEAT_MS: durationMs(5000),
  HOST_PROBE_MS: durationMs(15_000),
  SPEC_POLL_MS: durationMs(2000),
  MAX_IN_FLIGHT: count(256, 100_000),
  BACKLOG_MAX: count(10_000, 10_000_000),
  METRICS_PORT: port(9464),
  METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  LOG_DIR: z.string().min(1).optional(),
  STOP_GRACE_MS: durationMs(5000),
  PUBLISH_TIMEOUT_MS: durationMs(5000),
});

export interface NodeAgentConfig {
  nodeName: string;
  natsUrl: string;
  /** Path to fleet.yaml; relative service `cwd`s resolve against its directory. */
  fleetSpec: string;
  fleetKey: string;
  heartbeatMs: number;
  hostProbeMs: number;
  specPollMs: number;
  /** Bound on JetStream publishes awaiting their ack. */
  maxInFlight: number;
  /** Events kept while NATS is unreachable; the oldest are dropped first. */
  backlogMax: number;
  /** 0 picks a free port. */
  metricsPort: number;
  metricsHost: string;
  /** Where supervised processes' stdout/stderr go (`<service>.log`). */
  logDir: string;
  /** SIGTERM → SIGKILL grace when stopping a supervised process. */
  stopGraceMs: number;
  publishTimeoutMs: number;
}

export function defaultLogDir(nodeName: string): string {
  return join(tmpdir(), `steward-node-agent-${nodeName}`, "logs");
}

/** Parses the agent's settings from an env record; throws ConfigError naming each bad setting (never its value). */
export function loadConfig(env: Record<string, string | undefined>): NodeAgentConfig {
  const e = parseEnv("node-agent", NodeAgentEnv, env);
  return {
    nodeName: e.NODE_NAME,
    natsUrl: e.NATS_URL,
    fleetSpec: e.FLEET_SPEC,
    fleetKey: e.FLEET_KEY,
    heartbeatMs: e.HEARTBEAT_MS,
    hostProbeMs: e.HOST_PROBE_MS,
    specPollMs: e.SPEC_POLL_MS,
    maxInFlight: e.MAX_IN_FLIGHT,
    backlogMax: e.BACKLOG_MAX,
    metricsPort: e.METRICS_PORT,
    metricsHost: e.METRICS_HOST,
    logDir: e.LOG_DIR ?? defaultLogDir(e.NODE_NAME),
    stopGraceMs: e.STOP_GRACE_MS,
    publishTimeoutMs: e.PUBLISH_TIMEOUT_MS,
  };
}
