import { z } from "zod";
import { ServiceHealth, ServiceRunState } from "./events.js";

export const CheckState = z.strictObject({
  ok: z.boolean(),
  consecutive_failures: z.number().int().nonnegative(),
  detail: z.string().optional(),
  at: z.string(),
});

export const ServiceState = z.strictObject({
  name: z.string(),
  /** `unknown` only when the node is stale: we do not know, which is not the same as missing. */
  state: z.union([ServiceRunState, z.literal("unknown")]),
  health: z.union([ServiceHealth, z.literal("unknown")]),
  pid: z.number().int().optional(),
  exit_code: z.number().int().nullable().optional(),
  signal: z.string().nullable().optional(),
  starts: z.number().int().nonnegative(),
  declared: z.boolean(),
  since: z.string(),
  updated_at: z.string(),
  detail: z.string().optional(),
  checks: z.record(z.string(), CheckState),
  /** W3C traceparent of the event that last changed this service, so the supervisor can continue the trace. */
  traceparent: z.string().optional(),
  last_event_id: z.string(),
  config_hash: z.string().optional(),
  desired_config_hash: z.string().optional(),
  image_digest: z.string().optional(),
  restart_count: z.number().int().nonnegative().optional(),
});
export type ServiceState = z.infer<typeof ServiceState>;

export const NodeState = z.strictObject({
  name: z.string(),
  status: z.enum(["up", "stale"]),
  last_heartbeat: z.string().nullable(),
  heartbeat_interval_ms: z.number().int().positive(),
  agent_started_at: z.string().nullable(),
  dropped_events: z.number().int().nonnegative(),
  host: z
    .strictObject({
      load1: z.number(),
      mem_used_pct: z.number(),
      disks: z.array(z.strictObject({ path: z.string(), used_pct: z.number(), free_bytes: z.number() })),
      at: z.string(),
    })
    .nullable(),
  services: z.record(z.string(), ServiceState),
  /**
   * Ids of the newest events folded for this node (bounded, oldest first), so an event re-sent after
   * JetStream's de-duplication window closed changes nothing. Optional: older snapshots lack it.
   */
  recent_event_ids: z.array(z.string()).optional(),
  /**
   * The stream sequence each of `recent_event_ids` was folded from (same length and order). A message whose id the
   * node lists from that very sequence is already in this record: written by a write whose header did not follow
   * (the observer died in between). Optional: older snapshots lack it.
   */
  recent_event_seqs: z.array(z.number().int().nonnegative()).optional(),
  /** The deploy checkout, as last reported (absent until the agent reports one). */
  repo: z
    .strictObject({
      path: z.string(),
      branch: z.string().nullable(),
      head: z.string().nullable(),
      remote_head: z.string().nullable(),
      behind: z.number().int(),
      ahead: z.number().int(),
      dirty: z.array(z.string()),
      colliding_untracked: z.array(z.string()),
      ignored_count: z.number().int(),
      error: z.string().nullable(),
      at: z.string(),
      colliding_dirty: z.array(z.string()).optional(),
      colliding_ignored: z.array(z.string()).optional(),
    })
    .nullable()
    .optional(),
  /** Secret fingerprints by secret, then by store id. Never values. */
  secrets: z
    .record(
      z.string(),
      z.record(z.string(), z.strictObject({ status: z.enum(["ok", "missing", "empty", "placeholder", "unreadable"]), fingerprint: z.string().nullable(), detail: z.string().optional(), at: z.string() })),
    )
    .optional(),
});
export type NodeState = z.infer<typeof NodeState>;

export const WorldState = z.strictObject({
  version: z.literal(1),
  /** Last JetStream stream sequence folded in; a restarted observer resumes after it. */
  last_seq: z.number().int().nonnegative(),
  events_applied: z.number().int().nonnegative(),
  /** Event time of the newest event folded in (not wall clock: keeps the fold pure). */
  event_time: z.string().nullable(),
  nodes: z.record(z.string(), NodeState),
});
export type WorldState = z.infer<typeof WorldState>;

/** The envelope written to disk and KV: the world plus when the observer wrote it. */
export const Snapshot = z.strictObject({
  world: WorldState,
  written_at: z.string(),
  observer_id: z.string(),
});
export type Snapshot = z.infer<typeof Snapshot>;

export function emptyWorld(): WorldState {
  return { version: 1, last_seq: 0, events_applied: 0, event_time: null, nodes: {} };
}

/**
 * The world store's header record (KV `world.header`): what a snapshot says besides its nodes. Written after the
 * node records it covers, so a reader that has seen a header has seen every node written before it.
 */
export const WorldHeader = z.strictObject({
  version: z.literal(1),
  last_seq: z.number().int().nonnegative(),
  events_applied: z.number().int().nonnegative(),
  event_time: z.string().nullable(),
  /** Writes so far (continued from the previous header by a restarted observer). */
  revision: z.number().int().nonnegative(),
  /** Node records the store holds as of this header; fewer seen by a reader means its view is incomplete. */
  node_count: z.number().int().nonnegative(),
  written_at: z.string(),
  observer_id: z.string(),
});
export type WorldHeader = z.infer<typeof WorldHeader>;
