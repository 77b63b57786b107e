import { z } from "zod";
import { NODE_NAME_PATTERN } from "./subjects.js";

/** A node's name: one NATS subject token (its events' subject) and one KV key token (its world record). */
export const NodeName = z.string().regex(NODE_NAME_PATTERN, "must be a single NATS subject token: letters, digits, '-' or '_' (max 63)");

/** What a node-agent knows about one of its services right now. */
/** `unknown`: the agent cannot observe it right now (e.g. the Docker engine does not answer); never treated as down. */
export const ServiceRunState = z.enum(["running", "starting", "stopped", "exited", "failed", "unknown"]);
export type ServiceRunState = z.infer<typeof ServiceRunState>;
export const ServiceHealth = z.enum(["healthy", "unhealthy", "starting", "none"]);
export type ServiceHealth = z.infer<typeof ServiceHealth>;

const Base = {
  /** Unique per event; used as `Nats-Msg-Id` so re-sends de-duplicate. */
  id: z.string().min(8).max(128),
  node: NodeName,
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
  /** Hash of what runs (compose files, env, image), compared with the spec's for `config_drift`. */
  config_hash: z.string().max(128).optional(),
  /** Compose stacks: the hash the spec asks for, computed by the agent from its deploy checkout (the supervisor cannot read node files). */
  desired_config_hash: z.string().max(128).optional(),
  /** Containers only (docker driver). */
  image_digest: z.string().max(200).optional(),
  restart_count: z.number().int().nonnegative().optional(),
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

/** The deploy checkout on a node, as git sees it. */
export const RepoEvent = z.strictObject({
  type: z.literal("repo"),
  ...Base,
  path: z.string(),
  branch: z.string().nullable(),
  head: z.string().nullable(),
  remote_head: z.string().nullable(),
  behind: z.number().int().nonnegative(),
  ahead: z.number().int().nonnegative(),
  /** Tracked files with local changes. */
  dirty: z.array(z.string()).max(1000),
  /** Untracked paths that the incoming commits would add: they block a pull. */
  colliding_untracked: z.array(z.string()).max(1000),
  /** How many git-ignored files are present (never their names' contents). */
  ignored_count: z.number().int().nonnegative(),
  error: z.string().max(2000).nullable(),
  /** Tracked files with local changes that the incoming commits also change: a fast-forward would refuse. */
  colliding_dirty: z.array(z.string()).max(1000).default([]),
  /** Git-ignored paths that the incoming commits add: Steward never overwrites them, so a pull refuses. */
  colliding_ignored: z.array(z.string()).max(1000).default([]),
});
export type RepoEvent = z.output<typeof RepoEvent>;

/** One declared secret in one store on this node: a keyed fingerprint (HMAC), never the value. */
export const SecretEvent = z.strictObject({
  type: z.literal("secret"),
  ...Base,
  secret: z.string().min(1).max(63),
  /** Stable id of the store within the secret, e.g. `env_file:stacks/app/.env#DB_PASSWORD`. */
  store: z.string().min(1).max(500),
  status: z.enum(["ok", "missing", "empty", "placeholder", "unreadable"]),
  /** HMAC-SHA256(fleet key, value), hex, truncated; null unless status is ok or placeholder. */
  fingerprint: z.string().regex(/^[0-9a-f]{16,64}$/).nullable(),
  detail: z.string().max(500).optional(),
});
export type SecretEvent = z.output<typeof SecretEvent>;

/**
 * The latest result of one health check, as a heartbeat restates it: `health_check` events go out only when a check
 * flips, so without this the world's `consecutive_failures` would stay at the count of the flip (1) while the
 * failures go on. `at` is when the check ran, so a restatement never overrides a newer result.
 */
export const CheckSample = z.strictObject({
  service: z.string().min(1).max(63),
  check: z.string().min(1).max(128),
  ok: z.boolean(),
  consecutive_failures: z.number().int().nonnegative(),
  detail: z.string().max(2000).optional(),
  at: z.iso.datetime(),
});
export type CheckSample = z.output<typeof CheckSample>;

/** Level-based: a heartbeat restates every service, so a missed event cannot leave the world wrong for long. */
export const HeartbeatEvent = z.strictObject({
  type: z.literal("heartbeat"),
  ...Base,
  interval_ms: z.number().int().positive(),
  agent_version: z.string().max(64).default("0"),
  started_at: z.iso.datetime(),
  services: z.array(ServiceObservation).default([]),
  /** Each check's latest result (absent from older agents). */
  checks: z.array(CheckSample).max(2000).default([]),
  /** Events the agent dropped while NATS was unreachable (bounded backlog). */
  dropped_events: z.number().int().nonnegative().default(0),
});
export type HeartbeatEvent = z.output<typeof HeartbeatEvent>;

export const NodeEvent = z.discriminatedUnion("type", [ServiceEvent, HealthCheckEvent, HostEvent, HeartbeatEvent, RepoEvent, SecretEvent]);
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
