import { z } from "zod";
import type { ActionKind } from "./action.js";

/**
 * Restart drills: an approved `drill` action kills a healthy service on purpose (through the node-agent's signed
 * command path) and times how the loop brings it back: the world showing it down, the supervisor's pending restart,
 * its approval, and the service healthy again, against the service's `recovery_objective` in the fleet spec.
 */
export const DRILL_KIND = "drill" as const satisfies ActionKind;

/** The only follow-up a drill may approve by itself (with `--approve`): the restart proposed for the service it killed. */
export const DRILL_FOLLOW_UP_KIND = "restart" as const satisfies ActionKind;

/** What a drill action carries in `params` (fixed when it is proposed, so the operator approves exactly this). */
export const DrillParams = z.strictObject({
  /** The service's recovery objective from the fleet spec, in ms: healthy again within it, or the drill is missed. */
  objective_ms: z.number().int().positive(),
  /** How long the drill watches after the kill before it gives up waiting for the service (then: missed). */
  window_ms: z.number().int().positive(),
  /** The operator's `--approve`: the drill approves the restart it caused (and nothing else), as `drill:<id>`. */
  approve_restart: z.boolean(),
});
export type DrillParams = z.infer<typeof DrillParams>;

/** passed / missed the objective; refused (nothing was touched); failed (the kill itself did not happen or the drill was cut short). */
export const DrillVerdict = z.enum(["passed", "missed", "refused", "failed"]);
export type DrillVerdict = z.infer<typeof DrillVerdict>;

const ms = z.number().int().nonnegative().nullable();

/** One drill's outcome (the API's drill schemas are in executor-api.ts), kept in Postgres (`drill_results`, owned by libs/actions). Times are ms after the kill was sent. */
export const DrillResult = z.strictObject({
  drill_id: z.string(),
  node: z.string(),
  service: z.string(),
  verdict: DrillVerdict,
  reason: z.string(),
  objective_ms: z.number().int().positive(),
  approve_restart: z.boolean(),
  /** When the kill was sent; null when the drill was refused before it. */
  started_at: z.string().nullable(),
  /** The world showed the service down. */
  detected_ms: ms,
  /** The restart was pending (its `created_at`). */
  proposed_ms: ms,
  /** The restart was approved (its audit row). */
  approved_ms: ms,
  /** The world showed the service running and healthy again (a new start). */
  recovered_ms: ms,
  restart_action_id: z.string().nullable(),
  approved_by: z.string().nullable(),
  finished_at: z.string(),
});
export type DrillResult = z.infer<typeof DrillResult>;
