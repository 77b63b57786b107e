import { z } from "zod";
import { ActionKind, Channel, DriftActionKind } from "./action.js";

export const DriftKind = z.enum(["missing", "down", "unhealthy", "unknown", "unmanaged", "config_drift", "secret_drift", "repo_drift", "deploy_failed"]);
export type DriftKind = z.infer<typeof DriftKind>;

/**
 * An operator's "no" to a proposal, kept: a rejected action holds its drift (same node, service, action kind and
 * cause) until the drift changes or clears, or until the time the operator gave (`reject --for 2h`) passes, or until
 * an operator releases it. The rejected action's id is the hold's id. Owned by the actions repository.
 */
export const Hold = z.strictObject({
  action_id: z.string(),
  node: z.string(),
  service: z.string(),
  kind: ActionKind,
  /** The nodes it covers: a rollout's nodes, else the action's node. */
  nodes: z.array(z.string()),
  /** The drift kind the proposal answered (`down`, `unhealthy`, ...); null for an action not proposed for a drift (held only by time). */
  cause: DriftKind.nullable(),
  /** The revision a deploy aimed at: a new one is a changed drift. */
  target: z.string().nullable(),
  held_by: z.string(),
  channel: Channel,
  reason: z.string(),
  created_at: z.string(),
  /** null: until the drift changes or clears. */
  until: z.string().nullable(),
  ended_at: z.string().nullable(),
  /** Who or what ended it, and why ("drift cleared", "time up", an operator's release). */
  end_reason: z.string().nullable(),
});
export type Hold = z.infer<typeof Hold>;

/** What a held drift says about its hold in the drift report. */
export const DriftHeld = Hold.pick({ action_id: true, cause: true, held_by: true, channel: true, reason: true, created_at: true, until: true });
export type DriftHeld = z.infer<typeof DriftHeld>;

export const Drift = z.strictObject({
  /** Stable across cycles: `${kind}:${node}/${service}`. */
  key: z.string(),
  kind: DriftKind,
  node: z.string(),
  service: z.string(),
  /** `alert`: tell the operator, never act. `action`: propose a fix. `report`: list only. */
  severity: z.enum(["action", "alert", "report"]),
  message: z.string(),
  since: z.string().nullable(),
  /** The action this drift proposes, if any. */
  proposes: DriftActionKind.nullable(),
  /** What the proposed fix aims at, when it is a revision (a deploy's desired config hash). */
  target: z.string().max(200).optional(),
  traceparent: z.string().optional(),
  /** Present while an operator's rejection holds this drift: nothing is proposed for it (see `Hold`). */
  held: DriftHeld.optional(),
});
export type Drift = z.infer<typeof Drift>;

export const DriftReport = z.strictObject({
  computed_at: z.string(),
  snapshot_written_at: z.string().nullable(),
  world_seq: z.number().int().nonnegative(),
  supervisor_id: z.string(),
  /** Why the last cycle did not run, when it did not (the report below is then the last good one). */
  skipped: z.strictObject({ at: z.string(), reason: z.string() }).nullable(),
  drifts: z.array(Drift),
});
export type DriftReport = z.infer<typeof DriftReport>;

/** The drift report's header record (KV `drift.header`); the findings live in one record per node. */
export const DriftHeader = z.strictObject({
  computed_at: z.string(),
  snapshot_written_at: z.string().nullable(),
  world_seq: z.number().int().nonnegative(),
  supervisor_id: z.string(),
  skipped: z.strictObject({ at: z.string(), reason: z.string() }).nullable(),
  /** Findings in the node records this header covers. */
  drift_count: z.number().int().nonnegative(),
});
export type DriftHeader = z.infer<typeof DriftHeader>;

/** One node's findings (KV `drift.node.<name>`), sorted by key. */
export const NodeDrifts = z.strictObject({ node: z.string(), drifts: z.array(Drift) });
export type NodeDrifts = z.infer<typeof NodeDrifts>;

/**
 * The pseudo-service of a node's deploy checkout in drifts and actions (`repo_drift`, `pull`). Not a valid
 * service name, so it never clashes with a declared service.
 */
export const REPO_SERVICE = "@repo";
