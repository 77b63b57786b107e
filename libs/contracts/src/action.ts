import { z } from "zod";

export const ActionKind = z.enum(["start", "stop", "restart", "deploy", "pull"]);
export type ActionKind = z.infer<typeof ActionKind>;

export const ActionState = z.enum(["pending", "approved", "rejected", "expired", "running", "succeeded", "failed", "failed_unknown"]);
export type ActionState = z.infer<typeof ActionState>;

/** States in which an action still blocks a new proposal for the same (node, service, kind). */
export const OPEN_ACTION_STATES = ["pending", "approved", "running"] as const satisfies readonly ActionState[];

export const Channel = z.enum(["cli", "api", "web", "ntfy", "telegram", "supervisor", "executor", "policy", "system"]);
export type Channel = z.infer<typeof Channel>;

export const Action = z.strictObject({
  id: z.string(),
  node: z.string(),
  service: z.string(),
  kind: ActionKind,
  state: ActionState,
  reason: z.string(),
  drift_key: z.string().nullable(),
  proposed_by: z.string(),
  diagnosis: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  expires_at: z.string(),
  result: z.string().nullable(),
  traceparent: z.string().nullable(),
  /** What the kind needs beyond (node, service), e.g. a rollout's nodes and max_parallel. */
  params: z.record(z.string(), z.unknown()).optional(),
  /** The planner task whose diagnosis proposed it. */
  task_id: z.string().nullable().optional(),
});
export type Action = z.infer<typeof Action>;

export const AuditEntry = z.strictObject({
  id: z.number().int(),
  action_id: z.string(),
  at: z.string(),
  from_state: ActionState.nullable(),
  to_state: ActionState,
  actor: z.string(),
  channel: Channel,
  detail: z.string().nullable(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

export type TransitionEvent =
  | { type: "approve" }
  | { type: "reject" }
  | { type: "expire" }
  | { type: "start_run" }
  | { type: "succeed" }
  | { type: "fail" }
  | { type: "lose_executor" };

export type TransitionResult = { ok: true; to: ActionState } | { ok: false; reason: "invalid_transition"; from: ActionState; event: TransitionEvent["type"] };

/** Pure action state machine: pending → approved|rejected|expired; approved → running|expired; running → succeeded|failed|failed_unknown. */
export function transition(from: ActionState, event: TransitionEvent): TransitionResult {
  const to = ((): ActionState | undefined => {
    switch (event.type) {
      case "approve": return from === "pending" ? "approved" : undefined;
      case "reject": return from === "pending" ? "rejected" : undefined;
      case "expire": return from === "pending" || from === "approved" ? "expired" : undefined;
      case "start_run": return from === "approved" ? "running" : undefined;
      case "succeed": return from === "running" ? "succeeded" : undefined;
      case "fail": return from === "running" ? "failed" : undefined;
      case "lose_executor": return from === "running" ? "failed_unknown" : undefined;
      default: {
        const never: never = event;
        return never;
      }
    }
  })();
  return to ? { ok: true, to } : { ok: false, reason: "invalid_transition", from, event: event.type };
}
