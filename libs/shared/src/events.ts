import { z } from "zod";

/** What a node-agent knows about one of its services right now. */
export const ServiceRunState = z.enum(["running", "starting", "stopped", "exited", "failed"]);
export type ServiceRunState = z.infer<typeof ServiceRunState>;
export const ServiceHealth = z.enum(["healthy", "unhealthy", "starting", "none"]);
export type ServiceHealth = z.infer<typeof ServiceHealth>;

const Base = {
  /** Unique per event; used as `Nats-Msg-Id` so re-sends de-duplicate. */
  id: z.string().min(8).max(128),
  node: z.string().min(1).max(63),
  /** ISO timestamp at the agent. */
  ts: z.iso.datetime(),
};

export const ServiceObservation = z.strictObject({
  service: z.string().min(1).max(63),
  state: ServiceRunState,
  health: ServiceHealth,
  pid: z.number().int().positive().optional(),
  exit_code: z.number().int().nullable().optional(),
  signal: z.string().nullable().optional(),
  /** Times the agent (re)started it since the agent started. */
  starts: z.number().int().nonnegative().default(0),
  /** Whether the spec the agent runs with declares it. */
  declared: z.boolean().default(true),
  detail: z.string().max(2000).optional(),
});
export type ServiceObservation = z.output<typeof ServiceObservation>;

export const ServiceEvent = z.strictObject({ type: z.literal("service"), ...Base, ...ServiceObservation.shape });
export type ServiceEvent = z.output<typeof ServiceEvent>;

export const HealthCheckEvent = z.strictObject({
  type: z.literal("health_check"),
  ...Base,
  service: z.string().min(1).max(63),
  check: z.string().min(1).max(128),
  ok: z.boolean(),
  consecutive_failures: z.number().int().nonnegative(),
  detail: z.string().max(2000).optional(),
});
export type HealthCheckEvent = z.output<typeof HealthCheckEvent>;

export const HostEvent = z.strictObject({
  type: z.literal("host"),
  ...Base,
  load1: z.number().nonnegative(),
  mem_used_pct: z.number().min(0).max(100),
  disks: z.array(z.strictObject({ path: z.string(), used_pct: z.number().min(0).max(100), free_bytes: z.number().nonnegative() })).default([]),
});
export type HostEvent = z.output<typeof HostEvent>;

/** Level-based: a heartbeat restates every service, so a missed event cannot leave the world wrong for long. */
export const HeartbeatEvent = z.strictObject({
  type: z.literal("heartbeat"),
  ...Base,
  interval_ms: z.number().int().positive(),
  agent_version: z.string().max(64).default("0"),
  started_at: z.iso.datetime(),
  services: z.array(ServiceObservation).default([]),
  /** Events the agent dropped while NATS was unreachable (bounded backlog). */
  dropped_events: z.number().int().nonnegative().default(0),
});
export type HeartbeatEvent = z.output<typeof HeartbeatEvent>;

export const NodeEvent = z.discriminatedUnion("type", [ServiceEvent, HealthCheckEvent, HostEvent, HeartbeatEvent]);
export type NodeEvent = z.output<typeof NodeEvent>;
export type NodeEventInput = z.input<typeof NodeEvent>;

/** Why a message went to the dead-letter stream. */
export const DeadLetter = z.strictObject({
  reason: z.enum(["invalid_json", "schema", "subject_mismatch"]),
  detail: z.string(),
  subject: z.string(),
  stream_seq: z.number().int().nonnegative().optional(),
  received_at: z.iso.datetime(),
  /** The original payload, base64, so nothing is lost. */
  payload_b64: z.string(),
});
export type DeadLetter = z.infer<typeof DeadLetter>;
