import { z } from "zod";
import { NODE_NAME_PATTERN } from "./subjects.js";

/**
 * `params` of a `deploy` action: which nodes to roll the stack out to, in order, and how.
 * Everything is optional: without `nodes` the action's own node is the rollout; the executor fills the
 * rest from the fleet spec's `deploy` settings (service, then fleet), then from its defaults.
 */
export const DeployActionParams = z.strictObject({
  nodes: z
    .array(z.string().regex(NODE_NAME_PATTERN, "node names are single NATS subject tokens"))
    .min(1, "list at least one node")
    .refine((n) => new Set(n).size === n.length, "a node is listed twice")
    .optional(),
  max_parallel: z.number().int().min(1).max(100).optional(),
  health_timeout_ms: z.number().int().min(100).max(3_600_000).optional(),
  /** The desired config hash the supervisor saw when it proposed the deploy; a failed rollout of it is not re-proposed. */
  target_config_hash: z.string().max(128).optional(),
});
export type DeployActionParams = z.output<typeof DeployActionParams>;

/** `params` of a signed `deploy` node command. */
export const DeployCommandParams = z.strictObject({
  /** Deadline for the whole node step: pull, create, start, health gate. */
  health_timeout_ms: z.number().int().min(100).max(3_600_000).optional(),
  /** The config hash the node ran before (as the executor saw it), kept so a rollback can name its target. */
  previous_config_hash: z.string().max(128).nullable().optional(),
});
export type DeployCommandParams = z.output<typeof DeployCommandParams>;

/** `params` of a signed `rollback` node command. */
export const RollbackCommandParams = z.strictObject({
  /** The revision to go back to; the node refuses when its recorded previous revision is a different one. null: nothing ran before. */
  to_config_hash: z.string().max(128).nullable().optional(),
  health_timeout_ms: z.number().int().min(100).max(3_600_000).optional(),
});
export type RollbackCommandParams = z.output<typeof RollbackCommandParams>;

export const DeployFailedAlert = z.strictObject({
  action_id: z.string(),
  node: z.string(),
  service: z.string(),
  /** What failed, whether the node was rolled back, which nodes were left untouched. Never secret values. */
  detail: z.string().max(4000),
  rolled_back: z.boolean(),
  untouched: z.array(z.string()),
  at: z.iso.datetime(),
});
export type DeployFailedAlert = z.output<typeof DeployFailedAlert>;
